"""The plan's time estimate, calibrated from measured throughput.

Every run adds what it measured to a record kept per machine: one JSON file per run under
$KPBENCH_HOME/throughput/ (default ~/.cache/kpbench/throughput/), one `ThroughputSample` per
pair, read back from the provenance of the files the run wrote (images, inference seconds,
model-load seconds, host and device). bench/gpu_check.py writes its figures in the same form;
copying its report into that folder calibrates estimates for that GPU.

A pair's seconds per image come, in order of preference, from
1. earlier runs of the same model and setting (framework, backend, one image per pass or not,
   precision) on the same kind of device;
2. the device's measured speed: a fixed cost per image plus a cost per GFLOP, fitted to the
   other models measured on it (same framework and batch mode where there are any);
3. an assumed speed (ASSUMED_GFLOPS_PER_S): nothing has been measured on this kind of device.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from pathlib import Path

from pydantic import BaseModel, ValidationError

from runner.atomic import write_text_atomic
from runner.plan.pairs import PairJob, PairPlan
from runner.plan.schedule import PairState
from runner.predictions import read_provenances

# Used only where nothing has been measured on this kind of device.
ASSUMED_GFLOPS_PER_S = {True: 4000.0, False: 60.0}  # per GPU slot / per CPU slot, batched
ONE_IMAGE_SLOWDOWN = 4.0  # one image per forward pass uses a device much less fully
UNKNOWN_GFLOPS = 5.0


class Setting(BaseModel):
    """A model and the settings its speed depends on."""

    framework: str
    backend: str | None = None  # Keras' backend; None for PyTorch
    model: str  # catalog key, framework/name
    one_image: bool  # one image per forward pass (reproducible Keras)
    precision: str = "fp32"
    gflops: float | None = None

    @classmethod
    def of(cls, job: PairJob) -> Setting:
        return cls(framework=job.spec.framework, backend=job.backend, model=job.spec.key,
                   one_image=job.forward_batch == 1, precision=job.precision, gflops=job.spec.gflops)

    def same(self, other: Setting) -> bool:
        """The same model and setting, so that seconds per image carry over."""
        fields = ("framework", "backend", "model", "one_image", "precision")
        return all(getattr(self, name) == getattr(other, name) for name in fields)


class ThroughputSample(Setting):
    """What one (model, setting) did on one machine."""

    host: str
    device: str  # "cpu", or the GPU as the framework names it
    gpu: bool
    images: int
    seconds: float  # inference seconds for `images`
    load_seconds: float | None = None  # framework import and model build
    source: str  # "run <id>" or "gpu_check"

    @property
    def gflops_per_s(self) -> float | None:
        return self.gflops * self.images / self.seconds if self.gflops and self.seconds > 0 else None


def record_folder() -> Path:
    home = os.environ.get("KPBENCH_HOME") or Path.home() / ".cache" / "kpbench"
    return Path(home) / "throughput"


def load_samples(folder: Path | None = None) -> list[ThroughputSample]:
    """Every sample in the record; a file that does not parse is skipped (it is only a hint)."""
    samples = []
    for path in sorted((folder or record_folder()).glob("*.json")):
        try:
            samples += [ThroughputSample(**entry) for entry in json.loads(path.read_text())["samples"]]
        except (OSError, ValueError, KeyError, TypeError, ValidationError):
            continue
    return samples


def save_samples(samples: list[ThroughputSample], name: str, folder: Path | None = None) -> Path:
    path = (folder or record_folder()) / f"{name}.json"
    document = {"written_at": time.time(), "samples": [s.model_dump() for s in samples]}
    write_text_atomic(path, json.dumps(document, indent=1) + "\n")
    return path


def samples_from_run(run_id: str, plans: list[PairPlan]) -> list[ThroughputSample]:
    """One sample per pair, from the provenance of the shard files this run wrote."""
    samples = []
    for plan in plans:
        job = plan.job
        provenances = [p for p in read_provenances(job.folder.files("*.parquet"))
                       if p.run_id == run_id and p.shard_seconds]
        if not provenances:
            continue
        first = provenances[0]
        loads = [p.load_seconds for p in provenances if p.load_seconds is not None]
        samples.append(ThroughputSample(
            **Setting.of(job).model_dump(),
            host=first.hostname, device=first.device, gpu=first.device != "cpu",
            images=sum(p.shard.stop - p.shard.start for p in provenances),
            seconds=sum(p.shard_seconds for p in provenances),
            load_seconds=statistics.median(loads) if loads else None,
            source=f"run {run_id}",
        ))
    return samples


class Calibration:
    """Estimates for one run: on GPUs or CPUs, preferring samples from the given hosts."""

    def __init__(self, samples: list[ThroughputSample], gpu: bool, hosts: AbstractSet[str] = frozenset()):
        kind = [s for s in samples if s.gpu == gpu]
        local = [s for s in kind if s.host in hosts]
        self.samples = local or kind
        self.gpu = gpu

    def image_seconds(self, wanted: Setting) -> tuple[float, str]:
        """Seconds per image for the model and setting `wanted` describes, and where the
        figure comes from: "measured", "device speed" or "assumed"."""
        same = [s for s in self.samples if wanted.same(s)]
        if same:
            return sum(s.seconds for s in same) / sum(s.images for s in same), "measured"
        gflops = wanted.gflops or UNKNOWN_GFLOPS
        same_mode = [s for s in self.samples if s.one_image == wanted.one_image]
        for related in ([s for s in same_mode if s.framework == wanted.framework], same_mode):
            device = _device_speed([s for s in related if s.gflops_per_s])
            if device:
                return device(gflops), "device speed"
        seconds = gflops / ASSUMED_GFLOPS_PER_S[self.gpu]
        return seconds * (ONE_IMAGE_SLOWDOWN if wanted.one_image else 1.0), "assumed"

    def load_seconds(self, wanted: Setting) -> float | None:
        """Measured start-up of this model (else of its framework and backend); None: unknown."""
        same_backend = [s for s in self.samples
                        if (s.framework, s.backend) == (wanted.framework, wanted.backend)]
        for related in ([s for s in same_backend if wanted.same(s)], same_backend):
            loads = [s.load_seconds for s in related if s.load_seconds is not None]
            if loads:
                return statistics.median(loads)
        return None


def _device_speed(samples: list[ThroughputSample]) -> Callable[[float], float] | None:
    """Seconds per image as a function of GFLOPs on the measured device: a fixed cost per image
    plus a cost per GFLOP, fitted to the samples (small models are dominated by the fixed part,
    so a single GFLOP/s figure from them would overestimate large ones); one model, or a fit
    that does not rise with GFLOPs: the median GFLOP/s. None without samples."""
    if not samples:
        return None
    points = [(s.gflops, s.seconds / s.images) for s in samples]
    if len({x for x, _ in points}) > 1:
        slope, intercept = statistics.linear_regression(*zip(*points, strict=True))
        if slope > 0 and intercept >= 0:
            return lambda gflops: intercept + slope * gflops
    rate = statistics.median(speed for s in samples if (speed := s.gflops_per_s) is not None)
    return lambda gflops: gflops / rate


def pair_states(plans: list[PairPlan], calibration: Calibration, max_replicas: int,
                assumed_load_seconds: float, measured_load: bool = True,
                ) -> tuple[list[PairState], dict[str, str]]:
    """The scheduler's starting estimates for `plans` (images actually in the shards to do),
    and per pair where its speed figure comes from."""
    states, sources = [], {}
    for plan in plans:
        setting = Setting.of(plan.job)
        image_seconds, sources[plan.job.name] = calibration.image_seconds(setting)
        load = calibration.load_seconds(setting) if measured_load else None
        images = sum(shard.size for shard in plan.todo)
        states.append(PairState(
            key=plan.job.name,
            shards_left=len(plan.todo),
            shard_seconds=image_seconds * images / max(1, len(plan.todo)),
            load_seconds=assumed_load_seconds if load is None else load,
            max_replicas=max_replicas,
        ))
    return states, sources
