"""How many actors fit on the cluster at once: the packing policy, pure (no Ray).

An actor asks Ray for a share of one GPU (`gpu_share`, per framework and mode) and some CPUs.
Ray places a fractional GPU request on a single GPU, so a GPU holds floor(1 / share) actors
(0.3: 3, not 3.33), and a node holds no more actors than its CPUs over the CPUs each reserves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Literal

from annotated_types import Gt, Le
from pydantic import BaseModel, ConfigDict

from runner.errors import UserError

ShareKind = Literal["pytorch", "keras_reproducible", "keras_batched"]
Share = Annotated[float, Gt(0), Le(1)]  # of one GPU
_EPSILON = 1e-9  # 1/0.25 must count as 4 whatever the float rounding


class GpuShares(BaseModel):
    """The share of one GPU an actor asks for, per framework and mode (timm and users' PyTorch
    models are `pytorch`). One-image Keras passes use a GPU lightly: several share one."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    pytorch: Share = 0.5
    keras_reproducible: Share = 0.25
    keras_batched: Share = 0.5

    @classmethod
    def of(cls, value: float | dict[str, float] | GpuShares) -> GpuShares:
        """A single number (every kind), a partial mapping (the rest at their defaults), or shares."""
        if isinstance(value, GpuShares):
            return value
        if isinstance(value, dict):
            return cls(**value)
        return cls(pytorch=value, keras_reproducible=value, keras_batched=value)

    def for_pair(self, framework: str, one_image: bool) -> float:
        kind: ShareKind = "pytorch" if framework != "keras" else (
            "keras_reproducible" if one_image else "keras_batched")
        return getattr(self, kind)


@dataclass(frozen=True)
class NodeCapacity:
    """What a node declares to Ray: its CPUs and GPUs (a count; Ray's GPUs are whole devices)."""

    cpus: float
    gpus: float = 0.0

    @classmethod
    def from_ray(cls, resources: dict[str, float]) -> NodeCapacity:
        return cls(cpus=resources.get("CPU", 0.0), gpus=resources.get("GPU", 0.0))


def per_gpu(share: float) -> int:
    """Actors of `share` that fit on one GPU."""
    return int(1 / share + _EPSILON)


def node_slots(node: NodeCapacity, gpu_share: float, cpus_per_actor: float) -> int:
    """Actors that fit on one node at once: the smaller of what its GPUs hold (floor(1/share)
    per GPU; a share of 0 asks for no GPU) and its CPUs over each actor's CPUs."""
    by_cpu = int(node.cpus / cpus_per_actor + _EPSILON) if cpus_per_actor > 0 else math.inf
    if gpu_share <= 0:
        return int(by_cpu) if by_cpu != math.inf else 0
    whole = int(node.gpus + _EPSILON)
    by_gpu = whole * per_gpu(gpu_share) + int(max(0.0, node.gpus - whole) / gpu_share + _EPSILON)
    return int(min(by_gpu, by_cpu))


def cluster_slots(nodes: Iterable[NodeCapacity], gpu_share: float, cpus_per_actor: float) -> int:
    """Actors that fit on the cluster at once (at least 1, so that a run always progresses)."""
    return max(1, sum(node_slots(node, gpu_share, cpus_per_actor) for node in nodes))


class SlotWatch:
    """The cluster's slot count during a run, counted again every `period` seconds, so that
    nodes that join add slots (and nodes lost take theirs away)."""

    def __init__(self, count: Callable[[], int], period: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.count, self.period, self.clock = count, period, clock
        self.slots, self.checked = count(), clock()

    def change(self) -> int:
        """Slots gained (or lost, negative) since the last count; 0 between counts."""
        if self.clock() - self.checked < self.period:
            return 0
        self.checked = self.clock()
        slots = self.count()
        change, self.slots = slots - self.slots, slots
        return change


def planning_share(shares: Iterable[float]) -> float:
    """The share slots are counted with when a run's pairs ask for different ones: the largest,
    so that every slot fits whichever pair takes it (no actor waits in Ray's queue for room)."""
    return max(shares, default=0.0)


IN_FLIGHT_PER_GPU = 8  # one-image passes in flight on a GPU, over all the actors sharing it
MIN_IN_FLIGHT = 2  # and at least this many per actor (one computing, the next being dispatched)


def passes_in_flight(gpu_share: float) -> int:
    """One-image forward passes an actor keeps in flight: its share of the GPU's passes."""
    return max(MIN_IN_FLIGHT, round(IN_FLIGHT_PER_GPU * gpu_share))


Device = Literal["gpu", "cpu"]


def choose_device(setting: str, ray_gpus: float, machine_gpus: int) -> Device:
    """Where actors compute: `setting` auto, gpu or cpu, given the GPUs Ray declares and those
    this machine has. A CPU run is never chosen silently while GPUs sit unused."""
    if setting == "cpu":
        return "cpu"
    if ray_gpus > 0:
        return "gpu"
    if setting == "gpu":
        raise UserError("device: gpu, but Ray declares no GPU (check the workers' GPUs, or "
                        "--local-gpus)")
    if machine_gpus > 0:
        raise UserError(f"Ray declares no GPU but this machine has {machine_gpus}: start Ray "
                        "with its GPUs (or wait for GPU workers to join), or run on CPUs on "
                        "purpose with --device cpu")
    return "cpu"


@dataclass(frozen=True)
class ActorRequest:
    """What one actor asks Ray for: a GPU share (0: none, and it sees no GPU) and CPUs."""

    gpus: float
    cpus: float



def planning_request(requests: Iterable[ActorRequest]) -> ActorRequest:
    """The one request slots are counted with for a run whose pairs ask differently: the
    largest GPU share (planning_share) and the most CPUs, so that every slot fits any pair."""
    requests = list(requests)
    return ActorRequest(planning_share(r.gpus for r in requests), max(r.cpus for r in requests))

def actor_request(device: Device, gpu_share: float, cpus_per_actor: float,
                  cpus_per_gpu_actor: float) -> ActorRequest:
    if device == "gpu":
        return ActorRequest(gpus=gpu_share, cpus=cpus_per_gpu_actor)
    return ActorRequest(gpus=0.0, cpus=cpus_per_actor)
