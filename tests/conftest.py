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

from .s3server import s3_server  # noqa: F401  (a fixture: a local S3 server, for the modules that ask)

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
