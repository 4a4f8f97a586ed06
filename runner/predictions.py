"""The one Parquet schema for predictions, and the provenance stored with every file.

Layout: OUT/predictions/framework=<fw>/model=<name>/shard-<k>.parquet (Hive-style, so
pyarrow.dataset, pandas and DuckDB add `framework` and `model` columns from the path); Keras
models on the jax or torch backend live in framework=keras/backend=<b>/model=<name>/ (the
default tensorflow backend keeps the shorter path, so earlier runs still resume).
One row per image per model. Provenance is JSON under PROVENANCE_KEY in the file metadata.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from runner.atomic import atomic_path
from runner.frameworks.keras_runtime import DEFAULT_BACKEND

SCHEMA_VERSION = 1
TOP_K = 5
PROVENANCE_KEY = b"kpbench.provenance"
STATUS_OK = "ok"
STATUS_ERROR = "error"


def _field(name: str, type_: pa.DataType, doc: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"doc": doc})


PREDICTION_SCHEMA = pa.schema(
    [
        _field("image_id", pa.string(), "path relative to the dataset root; unique", False),
        _field("position", pa.int64(), "index in the dataset's sorted order", False),
        _field("label", pa.int32(), "true class index (sorted WordNet-id order)", False),
        _field(
            "top5_class",
            pa.list_(pa.int32(), TOP_K),
            "the 5 most probable class indices, most probable first; null when status=error",
        ),
        _field(
            "top5_prob",
            pa.list_(pa.float32(), TOP_K),
            "their softmax probabilities, same order; null when status=error",
        ),
        _field("status", pa.string(), "'ok', or 'error' when the image could not be read", False),
        _field("error", pa.string(), "why the image could not be read; null when ok"),
    ]
)


def top_k(probabilities: np.ndarray, k: int = TOP_K) -> tuple[np.ndarray, np.ndarray]:
    """Classes and probabilities of the k largest entries per row, largest first
    (ties: lower class index first, so the order is deterministic)."""
    classes = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return classes.astype(np.int32), np.take_along_axis(probabilities, classes, axis=1)


def predictions_table(
    image_ids: Sequence[str],
    positions: Sequence[int],
    labels: Sequence[int],
    errors: Sequence[str | None],
    classes: np.ndarray,
    probs: np.ndarray,
    provenance: dict,
) -> pa.Table:
    """Build a predictions table, one row per image. `errors[i]` is None when image i was
    read; `classes`/`probs` hold the top-k of the readable images, in row order."""
    ok = np.array([error is None for error in errors], dtype=bool)
    if ok.sum() != len(classes) or len(classes) != len(probs):
        raise ValueError("one top-k row is needed per readable image")
    full_classes = np.zeros((len(ok), TOP_K), np.int32)
    full_probs = np.zeros((len(ok), TOP_K), np.float32)
    full_classes[ok], full_probs[ok] = classes, probs
    missing = pa.array(~ok)
    arrays = [
        pa.array(image_ids, pa.string()),
        pa.array(positions, pa.int64()),
        pa.array(labels, pa.int32()),
        _fixed_list(full_classes, pa.int32(), missing),
        _fixed_list(full_probs, pa.float32(), missing),
        pa.array(np.where(ok, STATUS_OK, STATUS_ERROR), pa.string()),
        pa.array(errors, pa.string()),
    ]
    table = pa.Table.from_arrays(arrays, schema=PREDICTION_SCHEMA)
    return table.replace_schema_metadata({PROVENANCE_KEY: json.dumps(provenance, sort_keys=True)})


def _fixed_list(values: np.ndarray, type_: pa.DataType, null_mask: pa.Array) -> pa.Array:
    flat = pa.array(values.reshape(-1), type_)
    return pa.FixedSizeListArray.from_arrays(flat, TOP_K, mask=null_mask)


def shard_path(out: str | Path, framework: str, model: str, shard_index: int,
               backend: str | None = None) -> Path:
    folder = Path(out) / "predictions" / f"framework={framework}"
    if backend not in (None, DEFAULT_BACKEND):
        folder = folder / f"backend={backend}"
    return folder / f"model={model}" / f"shard-{shard_index:05d}.parquet"


def write_shard(table: pa.Table, path: Path) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_provenance(path: str | Path) -> dict:
    metadata = pq.read_schema(path).metadata or {}
    if PROVENANCE_KEY not in metadata:
        raise ValueError(f"{path} is not a kpbench predictions file (no provenance)")
    return json.loads(metadata[PROVENANCE_KEY])


def read_pair_key(table: pa.Table) -> str:
    return json.loads(table.schema.metadata[PROVENANCE_KEY])["pair_key"]


# A (framework, model) that failed (could not load, or its actor kept dying) leaves this file in
# its folder, so the table shows it; the leading "_" keeps pyarrow.dataset and "*.parquet" globs
# from reading it. A later successful run of the pair removes it.
FAILURE_FILE = "_failed.json"


def record_failure(out: str | Path, job, reason: str) -> None:
    path = shard_path(out, job.spec.framework, job.spec.name, 0, job.backend).with_name(FAILURE_FILE)
    document = {"framework": job.spec.framework, "model": job.spec.name, "reason": reason,
                "backend": job.backend, "precision": job.precision,
                "run_id": job.run_id, "weights": job.weights, "protocol": job.protocol,
                "dataset": job.dataset, "spec": job.spec.model_dump(mode="json")}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(document, indent=1))


def clear_failure(out: str | Path, job) -> None:
    path = shard_path(out, job.spec.framework, job.spec.name, 0, job.backend)
    path.with_name(FAILURE_FILE).unlink(missing_ok=True)
