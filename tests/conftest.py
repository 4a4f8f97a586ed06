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
KERAS_LOADS = {"tensorflow": ["tensorflow"], "jax": [], "torch": ["torch"]}


def probe(framework: str, check: str, args, env: dict | None = None, timeout: int = 900) -> dict:
    """Run a tests.framework_probe check in a child process (one framework per process)."""
    completed = subprocess.run(
        [sys.executable, "-m", "tests.framework_probe", framework, check, json.dumps(args)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    document = json.loads(completed.stdout.strip().splitlines()[-1])
    # Keras loads its backend's framework only (on jax, neither PyTorch nor TensorFlow)
    backend = args.get("backend") if isinstance(args, dict) else None
    expected = {"pytorch": ["torch"], "keras": KERAS_LOADS[backend or "tensorflow"]}[framework]
    assert document["frameworks_loaded"] == expected, "a probe must load exactly one framework"
    return document["result"]


def run_cli(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session", autouse=True)
def throughput_record(tmp_path_factory):
    """Runs record their speed under $KPBENCH_HOME (plan calibration): keep the tests' apart."""
    os.environ["KPBENCH_HOME"] = str(tmp_path_factory.mktemp("kpbench-home"))


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
