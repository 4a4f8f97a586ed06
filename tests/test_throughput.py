"""Shared decoding and replicas: faster, and still exactly the same predictions."""

from collections import defaultdict

import pytest
from rich.console import Console

from runner.data.sample import write_sample_dataset
from runner.predictions import read_provenance
from runner.run.driver import run_benchmark

from .helpers import read_predictions, sample_config

# four models, one recipe (shorter side 256, crop 224, bilinear) under the reference protocol
SHARING = ["pytorch/squeezenet1_1", "pytorch/resnet18", "keras/mobilenet", "keras/resnet50"]


def _run(sample_dir, out, **overrides):
    config = sample_config(sample_dir, out, **{"models": SHARING, "shard_size": 3, "batch_size": 3,
                                               **overrides})
    assert run_benchmark(config, Console(quiet=True)).failed == {}
    return out


def _table(out):
    return read_predictions(out, ["framework", "model", "position", "status", "top5_class",
                                  "top5_prob"])


def _decode_ids(out):
    """shard index -> the decode ids its files name, one per model."""
    ids = defaultdict(list)
    for path in (out / "predictions").rglob("*.parquet"):
        provenance = read_provenance(path)
        ids[provenance.shard.index].append(provenance.decode.decode_id)
    return ids


@pytest.fixture(scope="module")
def shared_and_separate(ray_two_fake_gpus, sample_dir, tmp_path_factory):
    shared = _run(sample_dir, tmp_path_factory.mktemp("shared"))
    separate = _run(sample_dir, tmp_path_factory.mktemp("separate"), share_decoding=False)
    return shared, separate


def test_shared_decoding_gives_the_same_predictions_as_decoding_per_model(shared_and_separate):
    shared, separate = shared_and_separate
    assert _table(shared).equals(_table(separate))


def test_shared_decoding_decodes_less(shared_and_separate):
    shared, separate = shared_and_separate
    shared_ids, separate_ids = _decode_ids(shared), _decode_ids(separate)
    assert set(shared_ids) == set(separate_ids) == set(range(5))
    # without sharing, one decode per model per shard; with it (and the crops cache, which
    # holds them for the models that start later), one per shard for all four models
    assert all(len(set(ids)) == len(SHARING) for ids in separate_ids.values())
    assert all(len(ids) == len(SHARING) and len(set(ids)) == 1 for ids in shared_ids.values())


def test_replicas_split_a_model_and_keep_one_row_per_image(ray_two_fake_gpus, tmp_path):
    # one model, two slots (a whole fake GPU each), replicas free to start: both slots work on
    # it from the start
    data = write_sample_dataset(tmp_path / "data", num_classes=5, per_class=8)
    out = _run(data, tmp_path / "out", models=["keras/resnet50"], shard_size=1,
               replica_start_seconds=0, gpu_share=1.0)
    files = list((out / "predictions").rglob("*.parquet"))
    assert len({read_provenance(path).pid for path in files}) == 2
    frame = _table(out).to_pandas()
    assert sorted(frame.position) == list(range(40))
