"""Work inside Ray actors: decode shards on each node, and turn crops into Parquet per pair.

`NodeDecoder`, one per node that runs models, decodes each of a shard's images once and cuts
every recipe asked for from it (runner/data/decode.py), with threads sized to the node's CPUs
that model actors do not hold (runner/run/feed.py); its crops stay in that node's object store.
`PairActor`, one per replica of a (model, framework) pair, runs the model on crops and writes the
shard's Parquet file. `ShardPredictor` is plain Python (testable without Ray); `PairActor` is its
Ray wrapper.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import ray

from runner import __version__
from runner.data.decode import DecodeReport, cut_crops
from runner.data.recipes import Recipe
from runner.data.records import ImageRecord, Shard
from runner.errors import UserError
from runner.frameworks import forward, release_device_memory
from runner.frameworks.memory import MemoryPolicy, memory_policy
from runner.plan.pairs import PairJob
from runner.predictions import (
    SCHEMA_VERSION,
    DecodeRecord,
    Provenance,
    ShardRecord,
    predictions_table,
    subset_top_k,
    top_k,
    write_shard,
)
from runner.run.devices import DeviceKey
from runner.run.faults import ErrorKind, PairError, classify_error, error_line
from runner.run.nvidia import nvidia_versions, require_gpu_in_use
from runner.run.packing import passes_in_flight
from runner.sanity import run_check

# A shard's model inputs: uint8 crops of its readable images (in order), and the decode report
# (cut_crops): per recipe key and record the reason it could not be read (None when it could),
# decode id, time.
Crops = tuple[np.ndarray, DecodeReport]


@dataclass(frozen=True)
class ShardResult:
    shard: int
    images: int
    errors: int
    seconds: float
    path: str
    forward_batch: int  # images per forward pass that worked (less than asked after out-of-memory)
    retries: tuple[str, ...] = ()  # one line per out-of-memory retry, for the driver's log


@dataclass(frozen=True)
class ShardSettings:
    """What the driver has learnt about the pair so far, for the shard's forward passes and its
    provenance."""

    forward_batch: int | None  # the largest batch known to fit (None: the actor's own, until one
    # of the pair's shards reported it)
    device_retries: int = 0  # times the pair restarted away from a faulty device before this shard


@dataclass
class _Forward:
    """The forward passes of one shard: the batch that worked and the retries that found it."""

    batch: int
    retries: list[str] = field(default_factory=list)


class ShardPredictor:
    def __init__(self, job: PairJob, placement: dict, memory: MemoryPolicy | None = None):
        from runner.frameworks import load_adapter, resolve_batch  # imports exactly one framework

        self.job = job
        self.recipe = job.recipe
        started = time.perf_counter()
        variant = job.variant
        self.adapter = load_adapter(job.spec, job.weights, job.seed, job.threads, job.precision,
                                    job.backend, memory,
                                    channels_last=bool(variant and variant.channels_last),
                                    torch_compile=bool(variant and variant.torch_compile))
        # the batch used: the configured one, or auto's (the pair key keeps the configured one)
        self.forward_batch = resolve_batch(self.adapter, job.forward_batch)
        self.forward_threads = job.forward_threads or passes_in_flight(memory.gpu_share if memory else 0)
        load_seconds = round(time.perf_counter() - started, 3)  # framework import + build
        versions = nvidia_versions(placement["gpu_ids"])
        require_gpu_in_use(job.name, placement["gpu_ids"], versions, self.adapter.provenance().device)
        run_check(job.sanity, job.name, lambda images: self._forward(images, _Forward(self.forward_batch)),
                  self.recipe, job.folder)
        self.shards_done = 0  # by this process: a restarted actor counts from 0 again
        self.idle_since = time.perf_counter()  # the end of the last shard: waiting for crops since
        self.context = {
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            **placement,  # Ray node id and GPU ids
            **versions,
            "actor_started": time.time(),
            "load_seconds": load_seconds,
            "memory_policy": memory.record() if memory is not None else None,
        }

    def run(self, shard: Shard, records: list[ImageRecord], crops: Crops,
            settings: ShardSettings) -> ShardResult:
        """Predict the readable images of a shard and write its file, one row per record."""
        _maybe_inject_fault(self.job, self.shards_done)
        images, report = crops
        errors = report.errors_of(self.recipe)
        if len(errors) != len(records) or len(images) != errors.count(None):
            raise ValueError(f"crops do not match shard {shard.index}")
        known = settings.forward_batch  # what the pair's replicas learnt; None: nothing yet
        passes = _Forward(self.forward_batch if known is None else min(self.forward_batch, known))
        started = time.perf_counter()
        timing = {"wait_seconds": round(started - self.idle_since, 4)}
        (classes, probs), subset_top = self._top_k(images, passes, timing)
        seconds = time.perf_counter() - started
        decode = DecodeRecord(decode_id=report.decode_id, decoded_by=report.decoded_by,
                              decode_seconds=report.decode_seconds)
        table = predictions_table(
            [r.image_id for r in records], [r.position for r in records],
            [r.label for r in records], errors, classes, probs,
            self._provenance(shard, seconds, decode, passes, settings, timing), subset_top,
        )
        path = self.job.shard_file(shard.index)
        write_shard(table, path)
        self.shards_done += 1
        self.idle_since = time.perf_counter()
        failed = len(errors) - len(images)
        return ShardResult(shard.index, len(records), failed, seconds, str(path), passes.batch,
                           tuple(passes.retries))

    def _top_k(self, images: np.ndarray, passes: _Forward, timing: dict):
        """The top-5 (classes, probabilities), and the same over the dataset's class subset
        (None for a dataset without one); the seconds in forward passes go into `timing`."""
        subset = self.job.dataset.subset
        probs = np.zeros((0, 1000), np.float32)
        started = time.perf_counter()
        if len(images):
            probs = self._forward(images, passes)
        timing["forward_seconds"] = round(time.perf_counter() - started, 4)
        if probs.shape != (len(images), 1000):
            raise RuntimeError(f"model returned {probs.shape} for {len(images)} images")
        return top_k(probs), subset_top_k(probs, subset) if subset else None

    def _forward(self, images: np.ndarray, passes: _Forward) -> np.ndarray:
        probs = forward_halving_on_oom(self.adapter, images, passes, self.forward_threads, self.job.name)
        self.forward_batch = passes.batch  # the batch that worked stays for this actor's later shards
        return probs

    def _provenance(self, shard: Shard, seconds: float, decode: DecodeRecord, passes: _Forward,
                    settings: ShardSettings, timing: dict) -> Provenance:
        job = self.job
        return Provenance(
            schema_version=SCHEMA_VERSION,
            kpbench_version=__version__,
            run_id=job.run_id,
            pair_key=job.pair_key,
            framework=job.spec.framework,
            model=job.spec.name,
            spec=job.spec.model_dump(mode="json"),
            weights=job.weights,
            protocol=job.protocol,
            recipe=self.recipe.model_dump(mode="json"),
            batch_mode=job.batch_mode,
            forward_batch=passes.batch,  # the pair key keeps the configured one
            oom_retries=len(passes.retries),
            device_retries=settings.device_retries,
            forward_threads=self.forward_threads,
            dataset=job.dataset,
            shard=ShardRecord(index=shard.index, start=shard.start, stop=shard.stop),
            shard_seconds=round(seconds, 4),
            written_at=time.time(),
            images_per_s=round(shard.size / seconds, 3) if seconds > 0 else None,
            decode=decode,
            **timing,
            # the adapters record the backend and precision they set; PyTorch has no backend
            **{"backend": job.backend, "precision": job.precision, **self.context,
               **self.adapter.provenance().entries()},
            **({"variant": job.variant.name} if job.variant else {}),
        )


def forward_halving_on_oom(adapter, images: np.ndarray, passes: _Forward, threads: int,
                           name: str) -> np.ndarray:
    """forward(), retried with half the batch while the device runs out of memory; at one
    image, device memory is first freed and the pass retried once. `passes` ends with the batch
    that worked (the driver passes it to the pair's other replicas) and a line per retry."""
    freed = False
    while True:
        try:
            return forward(adapter, images, passes.batch, threads)
        except Exception as exc:
            if classify_error(exc) != "out_of_memory" or freed:
                raise
            if passes.batch == 1:
                freed = True
                release_device_memory()
            smaller = max(1, passes.batch // 2)
            passes.retries.append(f"{name}: out of device memory at batch {passes.batch} "
                                  f"({error_line(exc)}); retrying at batch {smaller}"
                                  + (" after freeing device memory" if freed else ""))
            passes.batch = smaller


# Test hook for fault injection (docs/failures-and-resume.md): with KPBENCH_FAULT_AFTER_SHARDS=k and
# KPBENCH_FAULT_DIR=<folder>, an actor process dies abruptly (os._exit) when it starts its
# (k+1)-th shard, once per (framework, model): a marker file in the folder records the crash so
# the restarted actor carries on. The driver forwards these variables to its actors.
FAULT_VARIABLES = ("KPBENCH_FAULT_AFTER_SHARDS", "KPBENCH_FAULT_DIR")


def _maybe_inject_fault(job: PairJob, shards_done: int) -> None:
    after, folder = (os.environ.get(name) for name in FAULT_VARIABLES)
    if after is None or folder is None or shards_done != int(after):
        return
    marker = Path(folder) / f"{job.name.replace('/', '-')}.crashed"
    if marker.exists():
        return
    marker.write_text(f"pid {os.getpid()} died in shard {shards_done + 1}\n")
    os._exit(17)


@dataclass(frozen=True)
class Placement:
    """Where an actor landed, and whether it can work there: ready()'s answer."""

    node_id: str
    hostname: str
    gpu_ids: tuple[str, ...]
    excluded: bool = False  # on a device excluded after a fault: it loaded nothing
    error: PairError | None = None  # the load failed

    def on(self, excluded: frozenset[DeviceKey]) -> bool:
        """On one of these devices (or on a node excluded whole)."""
        devices = [(self.node_id, None), *((self.node_id, gpu) for gpu in self.gpu_ids)]
        return any(device in excluded for device in devices)

    def error_of(self, kind: ErrorKind, message: str) -> PairError:
        return PairError(kind, message, self.node_id, self.hostname, self.gpu_ids)


# Calls are retried until their actor is back (-1), not a fixed number of times: while a lost
# node is not yet declared dead, every retry meets an unavailable actor, and a fixed count ran
# out before Ray restarted the actor elsewhere. Calls are idempotent (a shard's file is written
# whole or not at all), and max_restarts still bounds the whole.
@ray.remote(max_restarts=3, max_task_retries=-1)
class PairActor:
    """One replica of a (model, framework). Failures cross Ray as typed values (`PairError`),
    not exceptions: ready() reports a load failure, and infer() returns the error of a shard
    (classified: out of memory, device fault, model error), or the stored load failure when Ray
    restarted this actor and the load failed that time, so the driver acts on the kind."""

    def __init__(self, job: PairJob, excluded: frozenset[DeviceKey] = frozenset()):
        context = ray.get_runtime_context()
        gpu_ids = tuple(str(i) for i in context.get_accelerator_ids().get("GPU", []))
        self.placement = Placement(context.get_node_id(), socket.gethostname(), gpu_ids)
        if self.placement.on(excluded):
            self.placement = replace(self.placement, excluded=True)
            return
        # the share Ray granted this actor; the policy's variables are set before any framework loads
        share = context.get_assigned_resources().get("GPU", 0.0)
        memory = memory_policy(job.spec.framework, job.backend, share)
        try:
            self.predictor = ShardPredictor(job, {"node_id": self.placement.node_id,
                                                  "gpu_ids": list(gpu_ids)}, memory)
        except UserError as exc:
            self.placement = replace(self.placement, error=self.placement.error_of("load_error", str(exc)))
        except Exception as exc:
            traceback.print_exc()
            kind = classify_error(exc)
            error = self.placement.error_of("load_error" if kind == "model_error" else kind,
                                            f"{job.name} failed to load: {error_line(exc)}")
            self.placement = replace(self.placement, error=error)

    def ready(self) -> Placement:
        return self.placement

    def infer(self, shard: Shard, records: list[ImageRecord], images: np.ndarray,
              report: DecodeReport, settings: ShardSettings) -> ShardResult | PairError:
        if self.placement.error is not None or self.placement.excluded:
            return self.placement.error or self.placement.error_of("device_fault", "on an excluded device")
        try:
            return self.predictor.run(shard, records, (images, report), settings)
        except Exception as exc:
            traceback.print_exc()
            return self.placement.error_of(classify_error(exc), error_line(exc))


@ray.remote(num_cpus=0, max_restarts=3, max_task_retries=-1)  # as PairActor's
class NodeDecoder:
    """A node's decoder: shard decodes run side by side (the actor's max_concurrency), their
    images on one pool of threads. It holds no CPU of Ray's: its threads are the CPUs model
    actors leave free (FeedPolicy.threads)."""

    def __init__(self, threads: int):
        self.pool = ThreadPoolExecutor(threads)

    def decode(self, recipes: list[Recipe], records: list[ImageRecord]) -> tuple:
        """The report, then one array of crops per recipe (called with num_returns = 1 + the
        recipes, so that each model fetches only its recipe's crops)."""
        report, crops = cut_crops(records, recipes, self.pool)
        return (report, *crops)
