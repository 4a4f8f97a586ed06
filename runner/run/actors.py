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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray

from runner import __version__
from runner.data.decode import DecodeReport, cut_crops
from runner.data.recipes import Recipe
from runner.data.records import ImageRecord, Shard
from runner.errors import UserError
from runner.frameworks import forward
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


class ShardPredictor:
    def __init__(self, job: PairJob, placement: dict, memory: MemoryPolicy | None = None):
        from runner.frameworks import load_adapter, resolve_batch  # imports exactly one framework

        self.job = job
        self.recipe = job.spec.recipe(job.protocol)
        started = time.perf_counter()
        self.adapter = load_adapter(job.spec, job.weights, job.seed, job.threads, job.precision,
                                    job.backend, memory)
        # the batch used: the configured one, or auto's (the pair key keeps the configured one)
        self.forward_batch = resolve_batch(self.adapter, job.forward_batch)
        self.forward_threads = job.forward_threads or passes_in_flight(memory.gpu_share if memory else 0)
        load_seconds = round(time.perf_counter() - started, 3)  # framework import + build
        versions = nvidia_versions(placement["gpu_ids"])
        require_gpu_in_use(job.name, placement["gpu_ids"], versions, self.adapter.provenance().device)
        run_check(
            job.sanity, job.name,
            lambda images: forward(self.adapter, images, self.forward_batch, self.forward_threads),
            self.recipe, job.folder,
        )
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

    def run(self, shard: Shard, records: list[ImageRecord], crops: Crops) -> ShardResult:
        """Predict the readable images of a shard and write its file, one row per record."""
        _maybe_inject_fault(self.job, self.shards_done)
        images, report = crops
        errors = report.errors_of(self.recipe)
        if len(errors) != len(records) or len(images) != errors.count(None):
            raise ValueError(f"crops do not match shard {shard.index}")
        started = time.perf_counter()
        timing = {"wait_seconds": round(started - self.idle_since, 4)}
        (classes, probs), subset_top = self._top_k(images, timing)
        seconds = time.perf_counter() - started
        decode = DecodeRecord(decode_id=report.decode_id, decoded_by=report.decoded_by,
                              decode_seconds=report.decode_seconds)
        table = predictions_table(
            [r.image_id for r in records], [r.position for r in records],
            [r.label for r in records], errors, classes, probs,
            self._provenance(shard, seconds, decode, timing), subset_top,
        )
        path = self.job.shard_file(shard.index)
        write_shard(table, path)
        self.shards_done += 1
        self.idle_since = time.perf_counter()
        failed = len(errors) - len(images)
        return ShardResult(shard.index, len(records), failed, seconds, str(path))

    def _top_k(self, images: np.ndarray, timing: dict):
        """The top-5 (classes, probabilities), and the same over the dataset's class subset
        (None for a dataset without one); the seconds in forward passes go into `timing`."""
        subset = self.job.dataset.subset
        probs = np.zeros((0, 1000), np.float32)
        started = time.perf_counter()
        if len(images):
            probs = forward(self.adapter, images, self.forward_batch, self.forward_threads)
        timing["forward_seconds"] = round(time.perf_counter() - started, 4)
        if probs.shape != (len(images), 1000):
            raise RuntimeError(f"model returned {probs.shape} for {len(images)} images")
        return top_k(probs), subset_top_k(probs, subset) if subset else None

    def _provenance(self, shard: Shard, seconds: float, decode: DecodeRecord, timing: dict) -> Provenance:
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
            forward_batch=self.forward_batch,
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
        )


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
class Loaded:
    """What PairActor.ready() says: its node, and why the model failed to load (None: it did not)."""

    node_id: str | None
    error: str | None


@ray.remote(max_restarts=3, max_task_retries=3)
class PairActor:
    """One replica of a (model, framework). A load failure is reported by ready(), not raised,
    so the driver can fail this pair alone with a clear message."""

    def __init__(self, job: PairJob):
        self.error: str | None = None
        context = ray.get_runtime_context()
        self.node_id = context.get_node_id()
        placement = {
            "node_id": self.node_id,
            "gpu_ids": [str(i) for i in context.get_accelerator_ids().get("GPU", [])],
        }
        # the share Ray granted this actor; the policy's variables are set before any framework loads
        share = context.get_assigned_resources().get("GPU", 0.0)
        memory = memory_policy(job.spec.framework, job.backend, share)
        try:
            self.predictor = ShardPredictor(job, placement, memory)
        except UserError as exc:
            self.error = str(exc)
        except Exception as exc:
            traceback.print_exc()
            self.error = f"{job.name} failed to load: {type(exc).__name__}: {exc}"

    def ready(self) -> Loaded:
        return Loaded(self.node_id, self.error)

    def infer(self, shard: Shard, records: list[ImageRecord], images: np.ndarray,
              report: DecodeReport) -> ShardResult:
        return self.predictor.run(shard, records, (images, report))


@ray.remote(num_cpus=0, max_restarts=3, max_task_retries=3)
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
