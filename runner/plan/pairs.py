"""Plan a run before Ray starts: select the models, index the data, and find each pair's
shards still to do (resume), keyed on a hash of everything that determines its predictions."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from runner.catalog import ModelSpec, load_catalog
from runner.config import RunConfig
from runner.data.index import open_dataset
from runner.data.records import DatasetIndex, Shard
from runner.errors import UserError
from runner.frameworks.keras_runtime import DEFAULT_BACKEND
from runner.frameworks.precision import DEFAULT_PRECISION
from runner.predictions import SCHEMA_VERSION, read_provenance, shard_path


@dataclass(frozen=True)
class PairJob:
    """What an actor needs to know; also the provenance it records (pair_key names the config
    that determines the predictions, so a resumed run can tell its own files apart)."""

    spec: ModelSpec
    weights: str
    protocol: str
    seed: int
    forward_batch: int  # images per forward pass: 1 for reproducible Keras
    forward_threads: int  # one-image forward passes in flight at once (results do not change)
    batch_mode: str  # "batched" or "reproducible (one image per forward pass)"
    threads: int
    decode_threads: int  # images decoded in parallel within one shard
    out: str
    run_id: str
    pair_key: str
    dataset: dict
    backend: str | None = None  # Keras: tensorflow, jax or torch; None for PyTorch
    precision: str = DEFAULT_PRECISION

    @property
    def key(self) -> str:
        """The pair's name in plans, progress and messages: framework/model, with the Keras
        backend when it is not the default (keras/resnet50@jax)."""
        backend = self.backend if self.backend not in (None, DEFAULT_BACKEND) else None
        return f"{self.spec.key}@{backend}" if backend else self.spec.key


@dataclass
class PairPlan:
    job: PairJob
    todo: list[Shard]
    done: int  # shards already on disk from an earlier run of the same config


def plan_run(cfg: RunConfig) -> tuple[DatasetIndex, list[PairPlan]]:
    """Everything that can be checked before Ray starts; raises UserError."""
    specs = load_catalog().select(cfg.models, cfg.frameworks)
    dataset = open_dataset(cfg.data, cfg.labels, cfg.classes)
    _check_writable(Path(cfg.out))
    shards = dataset.shards(cfg.shard_size)
    run_id = uuid.uuid4().hex[:12]
    plans = []
    for spec in specs:
        for backend in cfg.keras_backends if spec.framework == "keras" else [None]:
            job = _job(cfg, spec, backend, dataset, run_id)
            done = _finished_shards(cfg, job, shards)
            plans.append(PairPlan(job, [s for s in shards if s.index not in done], len(done)))
    return dataset, plans


def _job(cfg: RunConfig, spec: ModelSpec, backend: str | None, dataset: DatasetIndex,
         run_id: str) -> PairJob:
    reproducible = spec.framework == "keras" and cfg.keras_mode == "reproducible"
    forward_batch = 1 if reproducible else cfg.batch_size
    batch_mode = "reproducible (one image per forward pass)" if reproducible else "batched"
    determines = {
        "schema_version": SCHEMA_VERSION,
        "dataset": dataset.fingerprint,
        "spec": spec.model_dump(mode="json"),
        "weights": cfg.weights,
        "protocol": cfg.protocol,
        "seed": cfg.seed,
        "forward_batch": forward_batch,
        # only when not the default, so that earlier runs' keys (and their resume) still hold
        **({"keras_backend": backend} if backend not in (None, DEFAULT_BACKEND) else {}),
        **({"precision": cfg.precision} if cfg.precision != DEFAULT_PRECISION else {}),
    }
    pair_key = hashlib.sha256(json.dumps(determines, sort_keys=True).encode()).hexdigest()[:16]
    return PairJob(
        spec=spec,
        weights=cfg.weights,
        protocol=cfg.protocol,
        seed=cfg.seed,
        forward_batch=forward_batch,
        forward_threads=cfg.forward_threads,
        batch_mode=batch_mode,
        threads=max(1, int(cfg.cpus_per_actor)),
        decode_threads=cfg.decode_threads,
        out=str(Path(cfg.out).resolve()),
        run_id=run_id,
        pair_key=pair_key,
        dataset=dataset.summary(),
        backend=backend,
        precision=cfg.precision,
    )


def _finished_shards(cfg: RunConfig, job: PairJob, shards: list[Shard]) -> set[int]:
    """Shards already written by a run of this same config; a different config is refused."""
    spec = job.spec
    folder = shard_path(cfg.out, spec.framework, spec.name, 0, job.backend).parent
    if not folder.exists():
        return set()
    for stale in folder.glob(".*.tmp"):  # left by a killed run; never read
        stale.unlink()
    existing = {path: read_provenance(path).get("pair_key") for path in folder.glob("*.parquet")}
    foreign = [path for path, key in existing.items() if key != job.pair_key]
    if foreign and not cfg.overwrite:
        raise UserError(
            f"{cfg.out} already holds {job.key} predictions made with a different dataset or "
            f"config ({foreign[0].name}); use --overwrite to replace them, or a new --out"
        )
    for path in foreign:
        path.unlink()
    expected = {shard_path(cfg.out, spec.framework, spec.name, s.index, job.backend): s.index
                for s in shards}
    return {expected[path] for path, key in existing.items() if key == job.pair_key}


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{uuid.uuid4().hex}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to output folder {out}: {exc.strerror}") from None
