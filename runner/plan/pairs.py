"""Plan a run before Ray starts: select the models, index the data, and find each pair's
shards still to do (resume), keyed on a hash of everything that determines its predictions."""

from __future__ import annotations

import importlib.metadata
import uuid
from dataclasses import dataclass
from typing import Literal

from runner.catalog import ModelSpec, Protocol, Weights, load_catalog
from runner.config import RunConfig
from runner.data.index import open_dataset
from runner.data.recipes import Recipe
from runner.data.records import DatasetIndex, DatasetSummary, Shard
from runner.errors import UserError
from runner.frameworks.keras_runtime import DEFAULT_BACKEND, KerasBackend, backend_suffix
from runner.frameworks.precision import DEFAULT_PRECISION, Precision
from runner.outputs import Location, check_writable
from runner.plan.variants import Variant
from runner.predictions import SCHEMA_VERSION, PairIdentity, read_provenances, shard_path
from runner.sanity import Mode as SanityMode

BatchMode = Literal["batched", "reproducible (one image per forward pass)"]


@dataclass(frozen=True)
class PairJob:
    """What an actor needs to know; also the provenance it records (pair_key names the config
    that determines the predictions, so a resumed run can tell its own files apart)."""

    spec: ModelSpec
    weights: Weights
    protocol: Protocol
    seed: int
    forward_batch: int | str  # images per forward pass: 1 for reproducible Keras; or "auto"
    # one-image forward passes in flight at once (results do not change); None: sized to the
    # actor's GPU share (runner.run.packing.passes_in_flight)
    forward_threads: int | None
    batch_mode: BatchMode
    threads: int
    out: Location  # the run folder (the actor opens it with its own node's credentials)
    run_id: str
    pair_key: str  # the hash of the pair's PairIdentity
    dataset: DatasetSummary
    sanity: SanityMode = "check"  # the weights sanity check (runner/sanity.py)
    backend: KerasBackend | None = None  # Keras; None for PyTorch
    precision: Precision = DEFAULT_PRECISION
    variant: Variant | None = None  # None: the model's base pair

    @property
    def name(self) -> str:
        """The pair's name in plans, progress and messages: framework/model, with the Keras
        backend when it is not the default (keras/resnet50@jax) and the variant's name
        (pytorch/resnet50 (crop_pct=1.0))."""
        variant = f" ({self.variant.name})" if self.variant else ""
        return self.spec.key + backend_suffix(self.backend) + variant

    @property
    def recipe(self) -> Recipe:
        """The protocol's recipe of the entry, with the variant's changes."""
        base = self.spec.recipe(self.protocol)
        return self.variant.recipe(base) if self.variant else base

    def shard_file(self, index: int) -> Location:
        """Where this pair's shard `index` is written (runner.predictions.shard_path)."""
        return shard_path(self.out, self.spec.framework, self.spec.name, index, self.backend,
                          self.variant.folder if self.variant else None)

    @property
    def folder(self) -> Location:
        return self.shard_file(0).parent


@dataclass
class PairPlan:
    job: PairJob
    todo: list[Shard]
    done: int  # shards already on disk from an earlier run of the same config


def plan_run(cfg: RunConfig) -> tuple[DatasetIndex, list[PairPlan]]:
    """Everything that can be checked before Ray starts; raises UserError."""
    specs = load_catalog().with_user_catalogs(cfg.catalog).select(cfg.models, cfg.frameworks)
    dataset = open_dataset(cfg.data, cfg.labels, cfg.classes, cfg.dataset, cfg.subset_classes)
    check_writable(Location.of(cfg.out, cfg.s3_endpoint))
    shards = dataset.shards(cfg.shard_size)
    run_id = uuid.uuid4().hex[:12]
    variants = cfg.variant_grid
    _check_variants_apply(variants, specs)
    plans = []
    for spec in specs:
        for backend in cfg.keras_backends if spec.framework == "keras" else [None]:
            for variant in [None, *variants]:
                job = _job(cfg, spec, backend, dataset, run_id, variant)
                done = _finished_shards(cfg, job, shards)
                plans.append(PairPlan(job, [s for s in shards if s.index not in done], len(done)))
    return dataset, plans


def _check_variants_apply(variants: list[Variant], specs: list[ModelSpec]) -> None:
    """Execution settings and tensor resizers run PyTorch code: refused for other models, rather
    than left out of the run unasked."""
    torch_only = sorted({change for variant in variants for change in variant.torch_only()})
    others = [spec.key for spec in specs if spec.framework != "pytorch"]
    if torch_only and others:
        raise UserError(f"--variants {' '.join(torch_only)} run PyTorch models only, but "
                        f"{others[0]} is selected{f' (and {len(others) - 1} more)' if others[1:] else ''}"
                        "; add --frameworks pytorch, or leave those out")


def _job(cfg: RunConfig, spec: ModelSpec, backend: KerasBackend | None, dataset: DatasetIndex,
         run_id: str, variant: Variant | None = None) -> PairJob:
    reproducible = spec.framework == "keras" and cfg.keras_mode == "reproducible"
    forward_batch = 1 if reproducible else cfg.batch_size
    batch_mode: BatchMode = "reproducible (one image per forward pass)" if reproducible else "batched"
    precision: Precision = (variant and variant.precision) or cfg.precision
    identity = PairIdentity(
        schema_version=SCHEMA_VERSION,
        dataset=dataset.fingerprint,
        # arch only names the network for reports: left out, so that runs from before it
        # existed keep their keys and resume
        spec=spec.model_dump(mode="json", exclude={"arch"}),
        weights=cfg.weights,
        protocol=cfg.protocol,
        seed=cfg.seed,
        forward_batch=forward_batch,
        # timm's code builds and loads timm entries: its version matters for them only
        timm_version=importlib.metadata.version("timm") if spec.source == "timm" else None,
        dataset_name=dataset.name,
        subset=dataset.subset,
        # only when not the default, so that earlier runs' keys (and their resume) still hold
        keras_backend=backend if backend != DEFAULT_BACKEND else None,
        precision=precision,
        variant=variant.name if variant else None,
    )
    return PairJob(
        spec=spec,
        weights=cfg.weights,
        protocol=cfg.protocol,
        seed=cfg.seed,
        forward_batch=forward_batch,
        forward_threads=cfg.forward_threads,
        batch_mode=batch_mode,
        threads=max(1, int(cfg.cpus_per_actor)),
        out=Location.of(cfg.out, cfg.s3_endpoint),
        run_id=run_id,
        pair_key=identity.key,
        dataset=dataset.summary(),
        sanity="skip" if not cfg.sanity else "strict" if cfg.strict_sanity else "check",
        backend=backend,
        precision=precision,
        variant=variant,
    )


def _finished_shards(cfg: RunConfig, job: PairJob, shards: list[Shard]) -> set[int]:
    """Shards already written by a run of this same config; a different config is refused."""
    folder = job.folder
    if folder.local:
        for stale in folder.files(".*.tmp"):  # left by a killed run; never read
            stale.delete()
    files = folder.files("*.parquet")  # on object storage: one listing
    existing = {path: p.pair_key for path, p in zip(files, read_provenances(files), strict=True)}
    foreign = [path for path, key in existing.items() if key != job.pair_key]
    if foreign and not cfg.overwrite:
        raise UserError(
            f"{cfg.out} already holds {job.name} predictions made with a different dataset or "
            f"config ({foreign[0].name}); use --overwrite to replace them, or a new --out"
        )
    for path in foreign:
        path.delete()
    expected = {job.shard_file(s.index): s.index for s in shards}
    return {expected[path] for path, key in existing.items() if key == job.pair_key}
