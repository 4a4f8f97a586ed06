"""Fixtures shared by the test modules (plain helpers live in tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray

from runner.data.sample import write_sample_dataset


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
