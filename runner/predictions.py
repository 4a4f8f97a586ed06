"""The one Parquet schema for predictions, the provenance stored with every file, and the
reading of a run's files back: everything about a predictions file in one place.

Layout: OUT/predictions/framework=<fw>/model=<name>/shard-<k>.parquet (Hive-style, so
pyarrow.dataset, pandas and DuckDB add `framework` and `model` columns from the path); Keras
models on the jax or torch backend live in framework=keras/backend=<b>/model=<name>/ (the
default tensorflow backend keeps the shorter path, so earlier runs still resume); a variant
(runner/plan/variants.py) one level below its model, in model=<name>/variant=<variant>/. OUT is a
local folder or an object-store URI (runner/outputs.py: every file is written whole, once).
One row per image per model. Provenance is JSON under PROVENANCE_KEY in the file metadata.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Never, Self, TypeVar, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runner.data.records import DatasetSummary
from runner.errors import UserError
from runner.frameworks.keras_runtime import DEFAULT_BACKEND
from runner.frameworks.precision import DEFAULT_PRECISION
from runner.outputs import Location, LocationLike, check_bucket

SCHEMA_VERSION = 1  # of the rows and the provenance; part of every pair_key
TOP_K = 5
PROVENANCE_KEY = b"kpbench.provenance"
STATUS_OK = "ok"
STATUS_ERROR = "error"
# A (framework, model) that failed (could not load, or its actor kept dying) leaves this file in
# its folder, so the table shows it; the leading "_" keeps pyarrow.dataset and "*.parquet" globs
# from reading it. A later successful run of the pair removes it.
FAILURE_FILE = "_failed.json"
READ_THREADS = 16  # files whose provenance is read at once (on object storage, a request or two each)


class Record(BaseModel):
    """A typed record of a file. Optional columns and provenance entries are left out of the
    files when they were not given: `given(field)` says whether this one was."""

    def given(self, field: str) -> bool:
        if field not in type(self).model_fields:
            raise AttributeError(f"{type(self).__name__} has no field {field!r}")
        return field in self.model_fields_set

    def __contains__(self, field: Never) -> bool:
        # not a mapping: without this, `"acc1" in row` would search pydantic's (name, value)
        # pairs and be False. `Never`: mypy flags every use.
        raise TypeError(f"{type(self).__name__} is not a mapping: use .given({field!r})")


class PairIdentity(BaseModel):
    """Everything that determines a (framework, model)'s predictions; `key` (the pair_key in
    every file) is its hash. A run resumes only from shards with its own key, and the reducer
    refuses a folder that mixes keys.

    A new setting that changes predictions (backend, precision, dataset variant, a library
    version...) becomes a field here, with a default meaning what runs did before the field
    existed: fields at their default are left out of the hash, so earlier runs keep their keys
    (and resume), while any other value gives a new key. The fields below have no default, so
    they are always hashed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int
    dataset: str  # the dataset's fingerprint
    spec: dict[str, Any]  # the whole catalog entry, as JSON
    weights: str
    protocol: str
    seed: int
    forward_batch: int | str  # the configured batch: a number, or "auto"
    timm_version: str | None = None  # timm entries: the installed timm (it builds and loads them)
    # the test set, when not ImageNet (runner.data.shift), and the classes it is scored over
    dataset_name: str = "imagenet"
    subset: tuple[int, ...] | None = None
    # Keras on a backend other than tensorflow (what Keras ran on before backends were a setting)
    keras_backend: str | None = None
    precision: str = DEFAULT_PRECISION  # runs before the setting were strict fp32
    variant: str | None = None  # a variant's canonical name (runner/plan/variants.py)

    @property
    def key(self) -> str:
        hashed = self.model_dump(mode="json", exclude_defaults=True)
        return hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:16]


class RecordedSpec(Record):
    """The catalog entry a file was made with, as recorded. Lenient (every entry kept, little
    required) so that files made with an older or newer catalog still score."""

    model_config = ConfigDict(extra="allow")

    family: str | None = None
    arch: str | None = None
    model_set: str | None = None
    num_params: int | None = None
    gflops: float | None = None
    recipes: dict[str, dict[str, Any]] = Field(default_factory=dict)  # protocol -> Recipe fields
    published: dict[str, tuple[float, float | None] | None] = Field(default_factory=dict)
    documented_source: str | None = None


class ShardRecord(Record):
    index: int
    start: int  # first position, inclusive
    stop: int  # last position, exclusive


class DecodeRecord(Record):
    decode_id: str  # the same in every model's file that shared the decoding
    decoded_by: str  # host:pid
    decode_seconds: float


class PairRecord(Record):
    """What every file of a (framework, model) folder says about the pair (and the failure
    file too). Strict when written: a field it does not declare is an error (a misspelt entry
    is refused, not kept). Lenient when read (`read_json`): files of another kpbench version
    still load, and entries this one does not name are kept as they are."""

    model_config = ConfigDict(extra="forbid")

    framework: str
    model: str
    run_id: str
    weights: str  # "pretrained" or "random"
    protocol: str
    dataset: DatasetSummary
    spec: RecordedSpec | None = None  # None: imported files of a model not in the catalog
    # Keras: tensorflow, jax or torch (None: PyTorch); the numeric precision setting. Files
    # from before both were settings leave them out (see `backend_setting`, `precision_setting`)
    backend: str | None = None
    precision: str | None = None
    variant: str | None = None  # the variant's canonical name; None for the base pair

    @property
    def backend_setting(self) -> str | None:
        """The Keras backend (files from before the setting ran on TensorFlow); None for PyTorch."""
        return self.backend or (DEFAULT_BACKEND if self.framework == "keras" else None)

    @property
    def precision_setting(self) -> str:
        return self.precision or DEFAULT_PRECISION

    def to_dict(self) -> dict[str, Any]:
        """The JSON document, with exactly the entries the writer gave."""
        return self.model_dump(mode="json", exclude_unset=True)

    @classmethod
    def read_json(cls, document: bytes | str) -> Self:
        """A record as a file holds it: entries this model does not declare are kept."""
        return cls._as_read().model_validate_json(document)

    @classmethod
    def _as_read(cls) -> type[Self]:
        return cls  # the subclasses written to files override it


class Provenance(PairRecord):
    """The JSON in every predictions file: how its rows were made. Writers: the actors
    (runner/run/actors.py) and `import-npy`; readers: resume, the reducer, compare."""

    schema_version: int
    kpbench_version: str
    pair_key: str  # PairIdentity.key (imports: a hash of the imported files)
    batch_mode: str  # "batched", "reproducible (one image per forward pass)" or "imported"
    forward_batch: int | None = None  # images per forward pass, as used (batch_size auto: found;
    # out-of-memory retries halve it; the pair key keeps the configured batch)
    oom_retries: int | None = None  # out-of-memory retries of this shard's forward passes
    device_retries: int | None = None  # restarts of the pair away from a faulty device before it
    forward_threads: int | None = None
    recipe: dict[str, Any] | None = None
    shard: ShardRecord
    shard_seconds: float | None = None  # model time for the shard
    # of shard_seconds, the forward passes alone; and the time the actor waited for the shard's
    # crops since its previous shard (or since it loaded): input-bound when waiting dominates
    forward_seconds: float | None = None
    wait_seconds: float | None = None
    images_per_s: float | None = None
    written_at: float | None = None  # Unix time
    decode: DecodeRecord | None = None
    source: dict[str, Any] | None = None  # imports: the files they came from
    # where it ran (actors): host, process, Ray node, GPUs, when the actor started
    hostname: str | None = None
    pid: int | None = None
    node_id: str | None = None
    gpu_ids: list[str] | None = None
    # on a GPU: the NVIDIA driver and the CUDA version it provides (None: ran on CPU)
    nvidia_driver: str | None = None
    cuda: str | None = None
    actor_started: float | None = None
    load_seconds: float | None = None  # the actor's framework import and model build
    # the actor's GPU share and the memory settings made for it (runner/frameworks/memory.py)
    memory_policy: dict[str, Any] | None = None
    # what ran it (the framework adapter)
    device: str | None = None
    determinism: dict[str, Any] | None = None  # the framework settings that make runs repeat
    inference: str | None = None  # how the forward pass is compiled, where that varies
    memory_format: str | None = None  # PyTorch's, when not the default (channels_last)
    precision_in_effect: dict[str, Any] | None = None  # the switches the framework reports
    libraries: dict[str, str] | None = None
    weights_file: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True).encode()

    @classmethod
    def _as_read(cls) -> type[Self]:
        return cast("type[Self]", _ReadProvenance)


R = TypeVar("R", bound=PairRecord)


class Failure(PairRecord):
    """OUT/predictions/framework=<fw>/model=<name>/_failed.json: why the pair has no (or not
    all of its) predictions."""

    reason: str
    # what failed (runner/run/faults.py): load_error, model_error, out_of_memory, device_fault
    # or actor_died; files from before the field leave it out
    kind: str | None = None

    def to_json(self) -> str:
        document = self.to_dict()
        # framework, model, reason and kind first, so that the file reads well
        head = {key: document.pop(key) for key in ("framework", "model", "reason", "kind") if key in document}
        return json.dumps(head | document, indent=1)

    @classmethod
    def _as_read(cls) -> type[Self]:
        return cast("type[Self]", _ReadFailure)


class _ReadProvenance(Provenance):
    model_config = ConfigDict(extra="allow")


class _ReadFailure(Failure):
    model_config = ConfigDict(extra="allow")


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
# Sets scored over a class subset (ImageNet-A/-R and their -clean baselines) add these: the
# argmax over the subset can differ from the 1000-class one, so it is stored, not derived.
SUBSET_FIELDS = [
    _field("subset_top5_class", pa.list_(pa.int32(), TOP_K),
           "the 5 most probable classes of the dataset's class subset (1000-class indices), most "
           "probable first; null when status=error"),
    _field("subset_top5_prob", pa.list_(pa.float32(), TOP_K),
           "their probabilities in the 1000-class softmax, same order; null when status=error"),
]


def top_k(probabilities: np.ndarray, k: int = TOP_K) -> tuple[np.ndarray, np.ndarray]:
    """Classes and probabilities of the k largest entries per row, largest first
    (ties: lower class index first, so the order is deterministic)."""
    classes = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return classes.astype(np.int32), np.take_along_axis(probabilities, classes, axis=1)


def subset_top_k(probabilities: np.ndarray, subset, k: int = TOP_K) -> tuple[np.ndarray, np.ndarray]:
    """top_k over the classes in `subset` only, as 1000-class indices: the prediction of a
    model scored over a class subset (the argmax over those classes)."""
    subset = np.asarray(subset)
    classes, probs = top_k(probabilities[:, subset], k)
    return subset[classes].astype(np.int32), probs


def predictions_table(
    image_ids: Sequence[str],
    positions: Sequence[int],
    labels: Sequence[int],
    errors: Sequence[str | None],
    classes: np.ndarray,
    probs: np.ndarray,
    provenance: Provenance,
    subset_top: tuple[np.ndarray, np.ndarray] | None = None,
) -> pa.Table:
    """Build a predictions table, one row per image. `errors[i]` is None when image i was
    read; `classes`/`probs` hold the top-k of the readable images, in row order, and
    `subset_top` the same over the dataset's class subset (SUBSET_FIELDS), if it has one."""
    ok = np.array([error is None for error in errors], dtype=bool)
    if ok.sum() != len(classes) or len(classes) != len(probs):
        raise ValueError("one top-k row is needed per readable image")
    missing = pa.array(~ok)
    arrays: list[pa.Array] = [
        pa.array(image_ids, pa.string()),
        pa.array(positions, pa.int64()),
        pa.array(labels, pa.int32()),
        *_top_columns(classes, probs, ok, missing),
        pa.array(np.where(ok, STATUS_OK, STATUS_ERROR), pa.string()),
        pa.array(errors, pa.string()),
    ]
    schema = PREDICTION_SCHEMA
    if subset_top is not None:
        arrays += _top_columns(*subset_top, ok, missing)
        schema = pa.schema([*schema, *SUBSET_FIELDS])
    table = pa.Table.from_arrays(arrays, schema=schema)
    return table.replace_schema_metadata({PROVENANCE_KEY: provenance.to_json()})


def _top_columns(classes: np.ndarray, probs: np.ndarray, ok: np.ndarray,
                 missing: pa.Array) -> list[pa.Array]:
    """Top-k classes and probabilities of the readable rows as two list columns (null lists
    on the rows that could not be read)."""
    full_classes = np.zeros((len(ok), TOP_K), np.int32)
    full_probs = np.zeros((len(ok), TOP_K), np.float32)
    full_classes[ok], full_probs[ok] = classes, probs
    return [_fixed_list(full_classes, pa.int32(), missing), _fixed_list(full_probs, pa.float32(), missing)]


def _fixed_list(values: np.ndarray, type_: pa.DataType, null_mask: pa.Array) -> pa.Array:
    flat = pa.array(values.reshape(-1), type_)
    return pa.FixedSizeListArray.from_arrays(flat, TOP_K, mask=null_mask)


def shard_path(out: LocationLike, framework: str, model: str, shard_index: int,
               backend: str | None = None, variant_folder: str | None = None) -> Location:
    folder = Location.of(out) / "predictions" / f"framework={framework}"
    if backend not in (None, DEFAULT_BACKEND):
        folder = folder / f"backend={backend}"
    folder = folder / f"model={model}"
    if variant_folder is not None:
        folder = folder / variant_folder
    return folder / f"shard-{shard_index:05d}.parquet"


def write_shard(table: pa.Table, path: LocationLike) -> None:
    """The finished file, written whole in one step (made in memory first)."""
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer, compression="zstd")
    Location.of(path).write_bytes(buffer.getvalue())


def read_provenance(path: LocationLike) -> Provenance:
    location = Location.of(path)
    with location.io("read"):
        metadata = pq.read_schema(location.path, filesystem=location.filesystem).metadata or {}
    if PROVENANCE_KEY not in metadata:
        raise ValueError(f"{location} is not a kpbench predictions file (no provenance)")
    return _validated(Provenance, metadata[PROVENANCE_KEY], location)


def read_provenances(paths: Sequence[Location]) -> list[Provenance]:
    """The provenance of each file, in order, read side by side."""
    with ThreadPoolExecutor(READ_THREADS) as pool:
        return list(pool.map(read_provenance, paths))


def _validated(model: type[R], document: bytes | str, path: Location) -> R:
    try:
        return model.read_json(document)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise UserError(f"{path}: unreadable kpbench {model.__name__.lower()} "
                        f"({where}: {problem['msg']})") from None


def record_failure(out: LocationLike, job, reason: str, kind: str | None = None) -> None:
    variant = {"variant": job.variant.name} if job.variant else {}
    failure = Failure(framework=job.spec.framework, model=job.spec.name, reason=reason, kind=kind,
                      backend=job.backend, precision=job.precision, run_id=job.run_id,
                      weights=job.weights, protocol=job.protocol,
                      dataset=job.dataset, spec=job.spec.model_dump(mode="json"), **variant)
    _failure_path(out, job).write_text(failure.to_json())


def clear_failure(out: LocationLike, job) -> None:
    _failure_path(out, job).delete()


def _failure_path(out: LocationLike, job) -> Location:
    variant_folder = job.variant.folder if job.variant else None
    return shard_path(out, job.spec.framework, job.spec.name, 0, job.backend,
                      variant_folder).parent / FAILURE_FILE


def read_failure(folder: LocationLike) -> Failure | None:
    path = Location.of(folder) / FAILURE_FILE
    return _validated(Failure, path.read_text(), path) if path.is_file() else None


def pair_folders(out: LocationLike) -> list[Location]:
    """OUT/predictions/framework=*/model=*, framework=keras/backend=*/model=* for Keras on
    a backend other than the default, and the variants' model=*/variant=* below them, in name
    order."""
    predictions = Location.of(out) / "predictions"
    check_bucket(predictions)  # a listing of a missing bucket is only empty
    frameworks = predictions.folders("framework=*")
    parents = [*frameworks, *(backend for f in frameworks for backend in f.folders("backend=*"))]
    models = [model for parent in parents for model in parent.folders("model=*")]
    variants = [variant for model in models for variant in model.folders("variant=*")]
    return sorted([*models, *variants], key=str)


def model_folder(folder: Location) -> Location:
    """The model's folder of a pair folder: itself, or a variant's parent."""
    return folder.parent if folder.name.startswith("variant=") else folder


def keras_backend_of(folder: Location) -> str | None:
    """The Keras backend of a pair folder, from its place (shard_path's layout); None: not Keras."""
    parent = model_folder(folder).parent
    if parent.name.startswith("backend="):
        return parent.name.removeprefix("backend=")
    return DEFAULT_BACKEND if parent.name == "framework=keras" else None


def pair_folder_key(folder: Location) -> tuple[str, ...]:
    """A pair folder's place under OUT/predictions, the same in every run folder."""
    names = []
    while folder.name != "predictions":
        names.append(folder.name)
        folder = folder.parent
    return tuple(reversed(names))


@dataclass(frozen=True)
class PairPredictions:
    """What one (framework, model) folder holds: its rows sorted by position, their provenance
    (None when the folder has no predictions file) and its failure file (None when none)."""

    provenance: Provenance | None
    failure: Failure | None
    positions: np.ndarray
    labels: np.ndarray
    top: np.ndarray  # (rows, 5) class indices, most probable first; -1 on unreadable rows
    ok: np.ndarray  # readable
    image_ids: pa.ChunkedArray | None  # when asked for
    probs: np.ndarray | None  # (rows, 5) probabilities of `top`, when asked for
    seconds: float | None  # model time over all shards, when every file records it
    # over all shards, when every file records them (Provenance.forward_seconds, wait_seconds)
    forward_seconds: float | None = None
    wait_seconds: float | None = None

    @property
    def record(self) -> PairRecord | None:
        """What the folder says about the pair: its files' provenance, else its failure file."""
        return self.provenance if self.provenance is not None else self.failure


def load_pair(folder: LocationLike, image_ids: bool = False,
              probabilities: bool = False) -> PairPredictions:
    """A (framework, model) folder's rows (sorted by position), provenance and failure file."""
    folder = Location.of(folder)
    files = folder.files("*.parquet")
    provenances = read_provenances(files)
    if len({p.pair_key for p in provenances}) > 1:
        raise UserError(f"{folder} mixes predictions from different configs; rerun with --overwrite")
    # a set scored over a class subset (ImageNet-A/-R) is scored on its subset top-5
    prefix = "subset_" if provenances and provenances[0].dataset.subset else ""
    columns = ["position", "label", f"{prefix}top5_class", "status"]
    columns += (["image_id"] if image_ids else []) + ([f"{prefix}top5_prob"] if probabilities else [])
    with folder.io("read"):
        table = (pq.read_table([f.path for f in files], columns=columns, filesystem=folder.filesystem)
                 if files else PREDICTION_SCHEMA.empty_table())
    positions = table["position"].to_numpy()
    order = np.argsort(positions, kind="stable")
    positions = positions[order]
    if len(positions) and (np.diff(positions) == 0).any():
        raise UserError(f"{folder} holds more than one row for some images")
    return PairPredictions(
        provenance=provenances[0] if provenances else None,
        failure=read_failure(folder),
        positions=positions,
        labels=table["label"].to_numpy()[order],
        top=_matrix(table[f"{prefix}top5_class"], -1)[order],
        ok=pc.equal(table["status"], pa.scalar(STATUS_OK)).to_numpy(zero_copy_only=False)[order],
        image_ids=table["image_id"].take(order) if image_ids else None,
        probs=_matrix(table[f"{prefix}top5_prob"], np.nan)[order] if probabilities else None,
        seconds=_total([p.shard_seconds for p in provenances]),
        forward_seconds=_total([p.forward_seconds for p in provenances]),
        wait_seconds=_total([p.wait_seconds for p in provenances]),
    )


def _total(values: list[float | None]) -> float | None:
    """The sum, when there are values and every file recorded one."""
    return sum(v for v in values if v is not None) if values and None not in values else None


def _matrix(column: pa.ChunkedArray, fill) -> np.ndarray:
    """A fixed-size-list column as a (rows, 5) array; error rows (null lists) hold `fill`,
    which matches no label."""
    no_prediction = pa.scalar([fill] * TOP_K, type=column.type)
    return pc.list_flatten(pc.fill_null(column, no_prediction)).to_numpy().reshape(-1, TOP_K)
