"""kpbench run on generated data, two models per framework, local Ray with 2 fake GPUs."""

import duckdb
import numpy as np
import pytest
from rich.console import Console

from runner.cli import main
from runner.data.index import open_dataset
from runner.errors import UserError
from runner.predictions import load_pair, read_provenance
from runner.run.driver import run_benchmark
from runner.score.compare import compare_runs

from .helpers import read_predictions, sample_config

MODELS = ["pytorch/squeezenet1_1", "pytorch/resnet18", "keras/mobilenet", "keras/resnet50"]


def _config(sample_dir, out, **overrides):
    # a whole GPU per actor (the default shares pack several: tests/test_gpu_packing_run.py)
    return sample_config(sample_dir, out, **{"models": MODELS, "shard_size": 4, "batch_size": 3,
                                             "gpu_share": 1.0, **overrides})


@pytest.fixture(scope="module")
def two_runs(ray_two_fake_gpus, sample_dir, tmp_path_factory):
    outs = [tmp_path_factory.mktemp("run_a"), tmp_path_factory.mktemp("run_b")]
    for out in outs:
        outcome = run_benchmark(_config(sample_dir, out), Console(quiet=True))
        assert outcome.failed == {}
    return outs


def test_exactly_one_row_per_image_per_model_with_right_labels(two_runs, sample_dir):
    dataset = open_dataset(str(sample_dir / "val"), classes=str(sample_dir / "classes.txt"))
    truth = {r.position: (r.image_id, r.label) for r in dataset.records}
    frame = read_predictions(two_runs[0]).to_pandas()
    assert sorted(set(zip(frame.framework, frame.model, strict=True))) == sorted(
        tuple(m.split("/")) for m in MODELS
    )
    for (_, _), group in frame.groupby(["framework", "model"]):
        assert sorted(group.position) == list(range(len(dataset)))
        for row in group.itertuples():
            assert (row.image_id, row.label) == truth[row.position]
            assert row.status == "ok"
            assert list(row.top5_prob) == sorted(row.top5_prob, reverse=True)


def test_each_actor_had_its_own_gpu(two_runs):
    intervals = []
    for folder in (two_runs[0] / "predictions").glob("framework=*/model=*"):
        provenances = [read_provenance(p) for p in folder.glob("*.parquet")]
        (gpu_ids,) = {tuple(p.gpu_ids) for p in provenances}
        (started,) = {p.actor_started for p in provenances}
        # a GPU was assigned, so the driver and CUDA versions are recorded (here, where the GPUs
        # are Ray's fakes and no nvidia-smi exists, as "unknown (nvidia-smi not found)")
        assert all(p.nvidia_driver and p.cuda for p in provenances)
        intervals.append((gpu_ids, started, max(p.written_at for p in provenances)))
    assert all(len(ids) == 1 and ids[0] in {"0", "1"} for ids, _, _ in intervals)
    assert {ids for ids, _, _ in intervals} == {("0",), ("1",)}
    for i, (ids_a, start_a, end_a) in enumerate(intervals):
        for ids_b, start_b, end_b in intervals[i + 1 :]:
            overlapping = start_a < end_b and start_b < end_a
            assert not (overlapping and ids_a == ids_b), "two live actors shared a GPU"


def test_two_runs_give_identical_predictions(two_runs):
    columns = ["framework", "model", "position", "top5_class", "top5_prob"]
    tables = [read_predictions(out, columns) for out in two_runs]
    assert tables[0].equals(tables[1])


def test_random_weights_are_recorded_in_every_file(two_runs):
    for path in (two_runs[0] / "predictions").rglob("*.parquet"):
        provenance = read_provenance(path)
        assert provenance.weights == "random"
        assert provenance.dataset.images == 15


def test_score_writes_the_table(two_runs, capsys):
    assert main(["score", str(two_runs[0])]) == 0
    printed = capsys.readouterr().out
    assert "weights: random" in printed
    csv = (two_runs[0] / "results" / "accuracy.csv").read_text().splitlines()
    assert csv[0].startswith("framework,model,acc1,acc5,rank1,rank5,images,errors,")
    assert len(csv) == 1 + len(MODELS)
    assert all(",15,0,0,random,reference," in line for line in csv[1:])


def test_readable_with_duckdb(two_runs):
    glob = str(two_runs[0] / "predictions" / "**" / "*.parquet")
    counts = duckdb.sql(
        f"select framework, model, count(*) n from read_parquet('{glob}', hive_partitioning=true)"
        " group by all order by all"
    ).fetchall()
    assert [n for _, _, n in counts] == [15] * len(MODELS)


def test_rerun_resumes_without_recomputing(two_runs, sample_dir):
    files = sorted((two_runs[0] / "predictions").rglob("*.parquet"))
    stamps = [p.stat().st_mtime_ns for p in files]
    outcome = run_benchmark(_config(sample_dir, two_runs[0]), Console(quiet=True))
    assert outcome.failed == {}
    assert [p.stat().st_mtime_ns for p in files] == stamps


def test_a_different_config_into_the_same_folder_is_refused(two_runs, sample_dir):
    with pytest.raises(UserError, match="different dataset or config.*--overwrite"):
        run_benchmark(_config(sample_dir, two_runs[0], seed=1), Console(quiet=True))


@pytest.fixture(scope="module")
def batched_keras_run(ray_two_fake_gpus, sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run_batched")
    config = _config(sample_dir, out, models=["keras/resnet50"], keras_mode="batched", batch_size=4)
    assert run_benchmark(config, Console(quiet=True)).failed == {}
    return out


def test_compare_batched_with_reproducible_keras(two_runs, batched_keras_run):
    (row,) = compare_runs(two_runs[0], batched_keras_run)  # keras/resnet50 is the one in both
    folder = "predictions/framework=keras/model=resnet50"
    one, batched = (load_pair(out / folder, probabilities=True) for out in (two_runs[0], batched_keras_run))
    assert read_provenance(next((batched_keras_run / folder).glob("*.parquet"))).batch_mode == "batched"
    assert row.images == 15
    assert row.top1_changed == int((one.top[:, 0] != batched.top[:, 0]).sum())
    if np.array_equal(one.top, batched.top):
        assert row.max_prob_diff == float(np.abs(one.probs - batched.probs).max())
    assert row.identical == (
        np.array_equal(one.top, batched.top) and np.array_equal(one.probs, batched.probs)
    )


def test_compare_two_reruns_is_identical(two_runs, capsys):
    assert main(["compare", str(two_runs[0]), str(two_runs[1]), "--require-identical"]) == 0
    assert f"identical: all {len(MODELS)} model(s)" in capsys.readouterr().out
