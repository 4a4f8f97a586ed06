"""What real GPUs do, on fake GPUs (`local_gpus`): user-catalog stand-ins (user_models/faulty.py)
raise PyTorch's real exception types. Out of memory halves the batch, a device fault moves the
pair off that GPU for good, a load that fails after a restart says so (not AttributeError)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from rich.console import Console

from runner.data.sample import write_sample_dataset
from runner.predictions import pair_folders, read_failure, read_provenance
from runner.run.actors import ShardPredictor, _Forward
from runner.run.devices import read_devices
from runner.run.driver import run_benchmark

from .helpers import read_predictions, sample_config
from .test_real_weights import USER_MODELS

CATALOG = str(USER_MODELS / "faults.yaml")


@pytest.fixture(scope="module")
def thirty_images(tmp_path_factory):
    return write_sample_dataset(tmp_path_factory.mktemp("thirty"), num_classes=5, per_class=6)


def _run(sample, out, models, **overrides):
    printed = io.StringIO()
    config = sample_config(sample, out, models, catalog=[CATALOG], shard_size=12, sanity=False,
                           **overrides)
    outcome = run_benchmark(config, Console(file=printed, width=300))
    return outcome, printed.getvalue()


def _provenances(out, model):
    folder = next(f for f in pair_folders(out) if f.name == f"model={model}")
    return [read_provenance(path) for path in folder.files("*.parquet")]


def _one_row_per_image(out, models, images=30):
    frame = read_predictions(out).to_pandas()
    for model in models:
        rows = frame[frame.model == model]
        assert sorted(rows.position) == list(range(images)), model
        assert (rows.status == "ok").all()


def test_out_of_memory_halves_the_batch_and_keeps_it(ray_two_fake_gpus, thirty_images, tmp_path):
    outcome, printed = _run(thirty_images, tmp_path, ["oom_above_8"], batch_size=64)
    assert outcome.failed == {}
    _one_row_per_image(tmp_path, ["oom_above_8"])
    shards = _provenances(tmp_path, "oom_above_8")
    # shards infer in the order their crops arrive: the first full one (12 images) finds the
    # batch that fits, the other keeps it; the last shard's 6 images fit whichever batch it got
    full = [p for p in shards if p.shard.stop - p.shard.start == 12]
    assert sorted((p.forward_batch, p.oom_retries) for p in full) == [(8, 0), (8, 3)]
    assert sum(p.oom_retries for p in shards) == 3
    assert len({p.pair_key for p in shards}) == 1  # the key keeps the configured batch
    assert [line.split(" at batch ")[1].split(" ")[0] for line in printed.splitlines()
            if "out of memory" in line] == ["64", "32", "16"]  # one line per retry


class _Adapter:
    """Out of memory on its first `fails` calls, whatever the batch."""

    def __init__(self, fails):
        self.fails = fails

    def predict(self, batch):
        if self.fails:
            self.fails -= 1
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")
        return np.full((len(batch), 1000), 1e-3, np.float32)


def _predictor(fails):
    predictor = ShardPredictor.__new__(ShardPredictor)  # no model load: the retry policy alone
    predictor.adapter, predictor.forward_batch, predictor.forward_threads = _Adapter(fails), 1, 1
    predictor.job = type("Job", (), {"name": "keras/mobilenet", "forward_threads": 1})()
    return predictor


def test_one_image_mode_frees_memory_and_retries_once():
    images = np.zeros((3, 8, 8, 3), np.uint8)
    passes = _Forward(1)
    assert _predictor(fails=1)._forward(images, passes).shape == (3, 1000)
    assert len(passes.retries) == 1 and "after freeing device memory" in passes.retries[0]
    with pytest.raises(torch.cuda.OutOfMemoryError):
        _predictor(fails=2)._forward(images, _Forward(1))


def test_a_device_fault_moves_the_pair_off_that_gpu(ray_two_fake_gpus, thirty_images, tmp_path):
    models = ["faults_on_gpu_1_a", "faults_on_gpu_1_b"]  # started at once: one lands on GPU 1
    outcome, printed = _run(thirty_images, tmp_path, models, gpus_per_actor=1.0)  # a GPU each
    assert outcome.failed == {}
    _one_row_per_image(tmp_path, models)
    shards = [p for model in models for p in _provenances(tmp_path, model)]
    assert {tuple(p.gpu_ids) for p in shards} == {("0",)}
    assert sorted({p.device_retries for p in shards}) == [0, 1]  # the moved pair counts its move
    [device] = read_devices(tmp_path)
    assert device.gpu_ids == ["1"] and "illegal memory access" in device.error
    assert device.pair in {f"pytorch/{m}" for m in models}
    assert f"excluded {device.device}" in printed and "restarts away from it (retry 1 of 2)" in printed
    assert all(read_failure(folder) is None for folder in pair_folders(tmp_path))


def test_a_load_that_fails_after_a_restart_reports_the_load_error(ray_two_fake_gpus, thirty_images,
                                                                  tmp_path, monkeypatch):
    monkeypatch.setenv("KPBENCH_FAULT_AFTER_SHARDS", "1")  # the actor dies in its second shard
    monkeypatch.setenv("KPBENCH_FAULT_DIR", str(tmp_path))
    outcome, printed = _run(thirty_images, tmp_path / "out", ["fails_second_load"], replicas=1)
    [reason] = outcome.failed.values()
    assert "failed to load: RuntimeError: checkpoint /local/ckpt.pt vanished" in reason
    assert "AttributeError" not in printed
    [folder] = pair_folders(tmp_path / "out")
    failure = json.loads((folder / "_failed.json").read_text())
    assert failure["kind"] == "load_error" and failure["reason"] == reason
