"""The contracts of a predictions file: pair_key, provenance and failure files, as earlier runs
wrote them (so that their folders still resume and score)."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from runner.catalog import ModelSpec
from runner.config import RunConfig
from runner.data.records import DatasetIndex
from runner.errors import UserError
from runner.plan.pairs import _job
from runner.predictions import (
    FAILURE_FILE,
    PROVENANCE_KEY,
    PairIdentity,
    Provenance,
    load_pair,
    read_failure,
    read_provenance,
    record_failure,
)

SPEC = {"framework": "keras", "name": "mobilenet", "family": "mobilenet", "builder": "MobileNet",
        "weights_id": "imagenet", "weights_file": "mobilenet_1_0_224_tf.h5", "input_size": 224,
        "num_params": 4253864, "preprocess": "tf",
        "recipes": {"northcutt2019": {"resize": "squash", "size": 224, "interpolation": "nearest"},
                    "reference": {"resize": "shorter_side", "size": 256, "crop": 224,
                                  "interpolation": "bilinear"}},
        "published": {"northcutt2019": [69.02, 88.48], "documented": [70.4, 89.5]},
        "gflops": 0.569, "documented_source": "keras.io/api/applications table",
        "model_set": "northcutt2019"}
DATASET = DatasetIndex(root="/data/val", layout="class_folders", classes=("n01440764",), records=(),
                       fingerprint="5f1d3c0ffee0a1b2")


def _job_for(tmp_path, backend="tensorflow", **settings):
    cfg = RunConfig(data="/data/val", out=str(tmp_path), batch_size=8, seed=3, **settings)
    return _job(cfg, ModelSpec.model_validate(SPEC), backend, DATASET, "run0")


# Keys computed by kpbench before PairIdentity existed: a rerun of these configs must resume.
@pytest.mark.parametrize("keras_mode, weights, key", [
    ("reproducible", "random", "ab896813537539ab"),
    ("reproducible", "pretrained", "f729115a58d44309"),
    ("batched", "random", "c8c06249748327a7"),
    ("batched", "pretrained", "6c2109b9f91cbd53"),
])
def test_pair_key_of_a_fixed_config_is_unchanged(tmp_path, keras_mode, weights, key):
    assert _job_for(tmp_path, keras_mode=keras_mode, weights=weights).pair_key == key


def test_the_architecture_key_is_not_hashed(tmp_path):
    cfg = RunConfig(data="/data/val", out=str(tmp_path), batch_size=8, seed=3)
    named = _job(cfg, ModelSpec.model_validate({**SPEC, "arch": "mobilenet_v1"}), "tensorflow",
                 DATASET, "run0")
    assert named.pair_key == _job_for(tmp_path).pair_key == "f729115a58d44309"


def test_a_new_setting_keeps_old_keys_at_its_default_and_changes_them_otherwise(tmp_path):
    fields = {"schema_version": 1, "dataset": "d", "spec": SPEC, "weights": "random",
              "protocol": "reference", "seed": 0, "forward_batch": 1}
    old = PairIdentity(**fields).key
    assert PairIdentity(**fields, precision="fp32", keras_backend=None).key == old
    assert PairIdentity(**fields, precision="bf16").key != old
    assert PairIdentity(**fields, keras_backend="jax").key != old
    assert PairIdentity(**{**fields, "seed": 1}).key != old  # every field is hashed


@pytest.mark.parametrize("backend, precision", [("jax", "fp32"), ("torch", "fp32"),
                                                ("tensorflow", "bf16"), ("tensorflow", "tf32")])
def test_another_backend_or_precision_is_another_pair(tmp_path, backend, precision):
    job = _job_for(tmp_path, backend=backend, precision=precision)
    assert job.pair_key != "f729115a58d44309"
    assert (job.backend, job.precision) == (backend, precision)


ACTOR_PROVENANCE = {  # a file written by a Ray actor (random weights, PyTorch, CPU)
    "actor_started": 1795982612.9643016, "batch_mode": "batched",
    "dataset": {"classes": 1000, "fingerprint": "6c5cf990e24c279b", "images": 15,
                "layout": "class_folders", "root": "/tmp/sample/val"},
    "decode": {"decode_id": "81f884211a1e", "decode_seconds": 0.0794, "decoded_by": "vm:11501"},
    "determinism": {"CUBLAS_WORKSPACE_CONFIG": ":4096:8", "cudnn_benchmark": False,
                    "cudnn_deterministic": True, "seed": 0, "tf32": False,
                    "use_deterministic_algorithms": True},
    "device": "cpu", "forward_batch": 3, "forward_threads": 2, "framework": "pytorch",
    "gpu_ids": [], "hostname": "vm", "images_per_s": 20.903, "kpbench_version": "0.1.0",
    "libraries": {"torch": "2.14.1+cu130", "torchvision": "0.29.1+cu130"},
    "model": "squeezenet1_1", "node_id": "680ffbb51fdf9d594a1ffe5afa7c660f5c297b3d088a4b14f6af34af",
    "pair_key": "855cdb52da91fac5", "pid": 11501, "protocol": "reference",
    "recipe": {"crop": 224, "interpolation": "bilinear", "resize": "shorter_side", "size": 256},
    "run_id": "b344260f73dd", "schema_version": 1, "shard": {"index": 1, "start": 4, "stop": 8},
    "shard_seconds": 0.1914,
    "spec": {"builder": "squeezenet1_1", "builder_kwargs": {}, "documented_source": "torchvision",
             "family": "squeezenet", "framework": "pytorch", "gflops": 0.349, "input_size": 224,
             "mean": [0.485, 0.456, 0.406], "model_set": "northcutt2019", "name": "squeezenet1_1",
             "num_params": 1235496, "preprocess": "torch",
             "published": {"documented": [58.178, 80.624], "northcutt2019": [56.42, 79.21]},
             "recipes": {}, "std": [0.229, 0.224, 0.225], "weights_file": None,
             "weights_id": "SqueezeNet1_1_Weights.IMAGENET1K_V1"},
    "weights": "random", "weights_file": None, "written_at": 1795982614.4033766,
}
IMPORT_PROVENANCE = {  # a file written by import-npy, for a model the catalog does not have
    "batch_mode": "imported", "dataset": {"fingerprint": "dabfd6b2aa70a659", "images": 50000,
                                          "layout": "imported"},
    "device": None, "framework": "keras", "kpbench_version": "0.1.0", "model": "vgg16",
    "pair_key": "11a67237a6a3c3e7", "protocol": "northcutt2019", "run_id": "34face018ed2",
    "schema_version": 1, "shard": {"index": 0, "start": 0, "stop": 50000}, "shard_seconds": None,
    "source": {"files": {"vgg16_keras_imagenet_top5preds.npy": "8e80"}, "folder": "/npy",
               "kind": "northcutt2019 top-5 .npy", "labels": "row // 50"},
    "spec": None, "weights": "pretrained",
}


@pytest.mark.parametrize("document", [ACTOR_PROVENANCE, IMPORT_PROVENANCE])
def test_provenance_of_earlier_files_reads_typed_and_writes_the_same_bytes(document):
    text = json.dumps(document, sort_keys=True)  # as kpbench has always written it
    provenance = Provenance.read_json(text)
    assert provenance.to_json() == text.encode()
    assert provenance.dataset.images == document["dataset"]["images"]
    assert provenance.pair_key == document["pair_key"]
    assert provenance.given("decode") == ("decode" in document)


def test_provenance_is_strict_when_written_and_lenient_when_read():
    with pytest.raises(ValidationError, match="devcie"):
        Provenance(**{**ACTOR_PROVENANCE, "devcie": "cuda:0"})
    # a file of another kpbench version: an entry this one does not declare loads and is kept
    newer = json.dumps({**ACTOR_PROVENANCE, "forward_seconds_new": 1.5}, sort_keys=True)
    provenance = Provenance.read_json(newer)
    assert isinstance(provenance, Provenance) and provenance.to_json() == newer.encode()
    with pytest.raises(AttributeError, match="devcie"):
        provenance.given("devcie")  # a misspelt field is an error, not "not given"


def test_actor_provenance_fields_are_typed():
    provenance = Provenance.model_validate(ACTOR_PROVENANCE)
    assert provenance.spec.published["northcutt2019"] == (56.42, 79.21)
    assert provenance.spec.family == "squeezenet" and provenance.decode.decode_seconds == 0.0794
    assert provenance.shard.stop == 8 and provenance.gpu_ids == []


def test_unreadable_provenance_is_one_clear_error(tmp_path):
    path = tmp_path / "shard-00000.parquet"
    document = {key: value for key, value in IMPORT_PROVENANCE.items() if key != "pair_key"}
    table = pa.table({"position": [0]}).replace_schema_metadata({PROVENANCE_KEY: json.dumps(document)})
    pq.write_table(table, path)
    with pytest.raises(UserError, match=r"shard-00000.parquet: unreadable kpbench provenance \(pair_key"):
        read_provenance(path)


def test_failure_file_reads_back_reason_first(tmp_path):
    job = _job_for(tmp_path, weights="random")
    record_failure(tmp_path, job, "weights file not cached")
    folder = tmp_path / "predictions" / "framework=keras" / "model=mobilenet"
    text = (folder / FAILURE_FILE).read_text()
    assert list(json.loads(text))[:3] == ["framework", "model", "reason"]
    failure = read_failure(folder)
    assert (failure.reason, failure.run_id, failure.dataset.fingerprint) == (
        "weights file not cached", "run0", DATASET.fingerprint)
    assert failure.spec.published["documented"] == (70.4, 89.5)
    pair = load_pair(folder)  # a folder with a failure and no predictions
    assert pair.provenance is None and pair.record == failure and len(pair.positions) == 0
