from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import ray

from runner.config import RunConfig, load_config
from runner.data.sample import write_sample_dataset

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "reference"


def probe(framework: str, check: str, args, env: dict | None = None, timeout: int = 900) -> dict:
    """Run a tests.framework_probe check in a child process (one framework per process)."""
    completed = subprocess.run(
        [sys.executable, "-m", "tests.framework_probe", framework, check, json.dumps(args)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    document = json.loads(completed.stdout.strip().splitlines()[-1])
    expected = {"pytorch": ["torch"], "keras": ["tensorflow"]}[framework]
    assert document["frameworks_loaded"] == expected, "a probe must load exactly one framework"
    return document["result"]


def run_cli(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def imported_2019(tmp_path_factory) -> Path:
    """The 2019 benchmark's 34 models (../shared/reference/northcutt2019) as one run with file
    names, imported once for the session."""
    from runner.score.import_npy import import_npy

    northcutt, ground_truth = SHARED / "northcutt2019", SHARED / "imagenet" / "val_ground_truth.csv"
    if not (northcutt / "published_table.csv").exists() or not ground_truth.exists():
        pytest.skip(f"2019 reference data not found under {SHARED}")
    out = tmp_path_factory.mktemp("northcutt2019")
    for framework in ("keras", "pytorch"):
        import_npy(str(northcutt / f"{framework}_imagenet"), str(out), ground_truth=str(ground_truth))
    return out


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """5 classes spread over the 1000 (indices 0, 250, 500, 749, 999), 3 images each."""
    return write_sample_dataset(tmp_path_factory.mktemp("sample"), num_classes=5, per_class=3)


@pytest.fixture(scope="module")
def ray_two_fake_gpus():
    """A local Ray per test module, declaring 2 GPUs on this CPU-only machine."""
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


def sample_config(sample_dir: Path, out: Path, models: list[str], **overrides) -> RunConfig:
    """A random-weight run over the generated sample data."""
    return load_config(None, {
        "data": str(sample_dir / "val"), "classes": str(sample_dir / "classes.txt"),
        "out": str(out), "models": models, "weights": "random", **overrides,
    })
