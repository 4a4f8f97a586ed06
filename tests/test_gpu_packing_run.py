"""Packing in a real run, on Ray's fake GPUs: `--local-cpus 8 --local-gpus 2 --gpu-share 0.4`
runs four actors at once (two per GPU), not five; an actor given no GPU sees none. Through a
user-catalog stand-in model (tests/user_models/recorder.py) that records its environment and
its forward passes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from runner.cli import main
from runner.predictions import PROVENANCE_KEY

MODELS = 5
STAND_IN = Path(__file__).parent / "user_models" / "recorder.py"
ENTRY = """\
  - framework: pytorch
    name: recorder_{i}
    builder: recorder.py:recorder
    input_size: 32
    mean: [0.5, 0.5, 0.5]
    std: [0.5, 0.5, 0.5]
    recipes: {{reference: {{resize: shorter_side, size: 36, crop: 32, interpolation: bilinear}}}}
"""


@pytest.fixture
def stand_in(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """(the catalog of MODELS stand-ins, the folder they record into)."""
    shutil.copy(STAND_IN, tmp_path / "recorder.py")
    catalog = tmp_path / "recorders.yaml"
    catalog.write_text("set: recorders\nmodels:\n" + "".join(ENTRY.format(i=i) for i in range(MODELS)))
    record = tmp_path / "record"
    record.mkdir()
    # the local Ray this run starts passes the driver's environment on to its actors
    monkeypatch.setenv("KPBENCH_TEST_RECORD", str(record))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # what an unfixed zero-GPU actor would see
    return catalog, record


def _run(sample_dir: Path, out: Path, catalog: Path, *flags: str, models: str = "recorders") -> None:
    argv = ["run", "--data", str(sample_dir / "val"), "--classes", str(sample_dir / "classes.txt"),
            "--out", str(out), "--catalog", str(catalog), "--models", models,
            "--weights", "random", "--no-sanity", "--batch-size", "64", *flags]
    assert main(argv) == 0


def _records(folder: Path) -> list[list[dict]]:
    return [[json.loads(line) for line in path.read_text().splitlines()] for path in folder.glob("*.jsonl")]


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(stop, -1) for _, stop in intervals])
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def test_four_actors_share_two_gpus_at_a_share_of_0_4(sample_dir, tmp_path, stand_in, capsys, monkeypatch):
    catalog, record = stand_in
    monkeypatch.setenv("KPBENCH_TEST_HOLD", "4")  # a model waits until 4 have loaded
    _run(sample_dir, tmp_path / "run", catalog, "--local-cpus", "8", "--local-gpus", "2",
         "--gpu-share", "0.4")
    assert "plan: 4 actor slot(s)" in capsys.readouterr().out
    actors = _records(record)
    assert len(actors) == MODELS  # one actor each (one shard per model)
    intervals = [tuple(entry["forward"]) for actor in actors for entry in actor if "forward" in entry]
    assert _most_at_once(intervals) == 4  # 2 per GPU: floor(1 / 0.4); 2 / 0.4 would be 5
    first_four = sorted(actor[0]["built"] for actor in actors)[:4]
    assert max(intervals)[0] > max(first_four)  # the fifth started after the first four loaded
    seen = {actor[0]["CUDA_VISIBLE_DEVICES"] for actor in actors}
    assert seen <= {"0", "1"}, seen  # Ray gives each actor its one GPU
    provenance = json.loads(pq.read_schema(next((tmp_path / "run").rglob("shard-*.parquet")))
                            .metadata[PROVENANCE_KEY])
    assert provenance["memory_policy"]["gpu_share"] == 0.4
    assert provenance["memory_policy"]["torch_memory_fraction"] == pytest.approx(0.36)


def test_an_actor_given_no_gpu_sees_no_gpu(sample_dir, tmp_path, stand_in):
    catalog, record = stand_in
    _run(sample_dir, tmp_path / "run", catalog, "--local-cpus", "2", "--local-gpus", "2",
         "--device", "cpu", models="recorder_0")
    actors = _records(record)
    assert actors and {actor[0]["CUDA_VISIBLE_DEVICES"] for actor in actors} == {""}
