"""Fixtures shared by the test modules (plain helpers live in tests/helpers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import ray

from runner.data.sample import write_sample_dataset

from .helpers import GROUND_TRUTH, NORTHCUTT, SHARED
from .s3server import s3_server  # noqa: F401  (a fixture: a local S3 server, for the modules that ask)


@pytest.fixture(scope="session", autouse=True)
def throughput_record(tmp_path_factory):
    """Runs record their speed under $KPBENCH_HOME (plan calibration): keep the tests' apart."""
    os.environ["KPBENCH_HOME"] = str(tmp_path_factory.mktemp("kpbench-home"))


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """5 classes spread over the 1000 (indices 0, 250, 500, 749, 999), 3 images each."""
    return write_sample_dataset(tmp_path_factory.mktemp("sample"), num_classes=5, per_class=3)


def _local_ray(**resources):
    # "local": a new instance of the module's own, never a cluster that `ray start` left running
    # on the machine (ray.init would join it, and refuse the resources asked for here).
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", **resources)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_two_fake_gpus():
    """A local Ray per test module, declaring 2 GPUs on this CPU-only machine."""
    yield from _local_ray(num_gpus=2)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray per test module, CPUs only."""
    yield from _local_ray()


@pytest.fixture(scope="session")
def imported_2019(tmp_path_factory) -> Path:
    """The 2019 benchmark's 34 prediction files imported into a run folder (about 20 s)."""
    from runner.import_npy import import_npy

    if not (NORTHCUTT / "published_table.csv").exists() or not GROUND_TRUTH.exists():
        pytest.skip(f"2019 reference data not found under {SHARED}")
    out = tmp_path_factory.mktemp("northcutt2019")
    for framework in ("keras", "pytorch"):
        import_npy(str(NORTHCUTT / f"{framework}_imagenet"), str(out), ground_truth=str(GROUND_TRUTH))
    return out
