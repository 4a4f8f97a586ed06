"""Work inside one Ray actor: load one (model, framework) pair, then turn shards into Parquet.

An actor does two kinds of work, in two concurrency groups so that they overlap:
`decode` turns a shard's images into uint8 crops for a recipe (for its own model and for every
other model with the same recipe: the driver hands the crops to all of them), and `infer` runs
the model on crops and writes the shard's Parquet file.
`ShardPredictor` is plain Python (testable without Ray); `PairActor` is its Ray wrapper.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray

from runner import __version__
from runner.data.decode import DecodeReport, load_crops
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
# (load_crops): per record the reason it could not be read (None when it could), decode id, time.
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
        run_check(
            job.sanity, job.name,
            lambda images: forward(self.adapter, images, self.forward_batch, self.forward_threads),
            self.recipe, job.folder,
        )
        self.shards_done = 0  # by this process: a restarted actor counts from 0 again
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
        errors = report.errors
        if len(errors) != len(records) or len(images) != errors.count(None):
            raise ValueError(f"crops do not match shard {shard.index}")
        started = time.perf_counter()
        (classes, probs), subset_top = self._top_k(images)
        seconds = time.perf_counter() - started
        decode = DecodeRecord(decode_id=report.decode_id, decoded_by=report.decoded_by,
                              decode_seconds=report.decode_seconds)
        table = predictions_table(
            [r.image_id for r in records], [r.position for r in records],
            [r.label for r in records], errors, classes, probs,
            self._provenance(shard, seconds, decode), subset_top,
        )
        path = self.job.shard_file(shard.index)
        write_shard(table, path)
        self.shards_done += 1
        failed = len(errors) - len(images)
        return ShardResult(shard.index, len(records), failed, seconds, str(path))

    def _top_k(self, images: np.ndarray):
        """The top-5 (classes, probabilities), and the same over the dataset's class subset
        (None for a dataset without one)."""
        subset = self.job.dataset.subset
        probs = np.zeros((0, 1000), np.float32)
        if len(images):
            probs = forward(self.adapter, images, self.forward_batch, self.forward_threads)
        if probs.shape != (len(images), 1000):
            raise RuntimeError(f"model returned {probs.shape} for {len(images)} images")
        return top_k(probs), subset_top_k(probs, subset) if subset else None

    def _provenance(self, shard: Shard, seconds: float, decode: DecodeRecord) -> Provenance:
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
            # the adapters record the backend and precision they set; PyTorch has no backend
            **{"backend": job.backend, "precision": job.precision, **self.context,
               **self.adapter.provenance().entries()},
            **({"variant": job.variant.name} if job.variant else {}),
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


# Ray's type hints lack concurrency_groups (which it documents and honours)
@ray.remote(max_restarts=3, max_task_retries=3,  # type: ignore[call-overload]
            concurrency_groups={"decode": 1, "infer": 1})
class PairActor:
    """One replica of a (model, framework). A load failure is reported by ready(), not raised,
    so the driver can fail this pair alone with a clear message."""

    def __init__(self, job: PairJob):
        self.error: str | None = None
        self.decode_threads = job.decode_threads
        context = ray.get_runtime_context()
        placement = {
            "node_id": context.get_node_id(),
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

    def ready(self) -> str | None:
        return self.error

    # Two return objects: the driver checks the small one (the report) without fetching the crops.
    @ray.method(concurrency_group="decode", num_returns=2)
    def decode(self, recipe: Recipe, records: list[ImageRecord]) -> Crops:
        return load_crops(records, recipe, self.decode_threads)

    @ray.method(concurrency_group="infer")
    def infer(self, shard: Shard, records: list[ImageRecord], images: np.ndarray,
              report: DecodeReport) -> ShardResult:
        return self.predictor.run(shard, records, (images, report))
