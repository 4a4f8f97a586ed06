from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
def sample_dir(tmp_path_factory) -> Path:
    """5 classes spread over the 1000 (indices 0, 250, 500, 749, 999), 3 images each."""
    return write_sample_dataset(tmp_path_factory.mktemp("sample"), num_classes=5, per_class=3)
