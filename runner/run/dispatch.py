"""The calls the event loop (runner/run/execute.py) submits to Ray: start actors on free slots,
hand replicas their shards, decode and infer, stop replicas, fail pairs, restart a replica away
from a faulty device. `Execution` adds the event handlers that call these."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from runner.config import RunConfig
from runner.data.records import DatasetIndex, Shard
from runner.plan.pairs import PairJob, PairPlan
from runner.plan.schedule import Scheduler
from runner.predictions import clear_failure, record_failure
from runner.run.actors import NodeDecoder, PairActor, ShardSettings
from runner.run.crops import CropCache, CropEntry, CropKey
from runner.run.devices import DeviceKey, DeviceLog
from runner.run.faults import ErrorKind, PairError
from runner.run.feed import CALLS_PER_DECODER, Feed
from runner.run.packing import SlotWatch
from runner.run.progress import RunProgress
from runner.run.replicas import Fleet


@dataclass(frozen=True)
class Call:
    """A Ray call in flight: what to do with its result."""

    on_done: Callable[..., None]  # called with *args and the reference
    args: tuple
    replica: int | None = None  # the replica whose pair's failure makes the result moot


class Dispatch:
    # the event handlers, Execution's
    _on_ready: Callable[..., None]
    _on_decoded: Callable[..., None]
    _on_inferred: Callable[..., None]

    def __init__(self, cfg: RunConfig, dataset: DatasetIndex, plans: list[PairPlan],
                 actor_options: dict[str, dict], slots: SlotWatch, scheduler: Scheduler,
                 progress: RunProgress, feed: Feed, devices: DeviceLog):
        self.cfg, self.actor_options = cfg, actor_options  # Ray's options, per pair key
        self.scheduler, self.progress, self.devices = scheduler, progress, devices
        self.fleet, self.slots = Fleet(plans, slots.slots, cfg.share_decoding, feed.window), slots
        self.crops = CropCache(int((cfg.decode_cache_gb or 0) * 2**30), dataset.shard_records)
        self.feed = feed
        self.decoders: dict[str | None, Any] = {}  # Ray node -> its NodeDecoder
        self.calls: dict[object, Call] = {}  # object reference -> its call
        self.failed: dict[str, str] = {}

    def _fill_slots(self) -> None:
        while self.fleet.free_slots > 0 and (key := self.scheduler.choose()) is not None:
            actor = _start_actor(self.actor_options[key], self.fleet.pairs[key].job, self.devices.excluded)
            replica_id = self.fleet.add(key, actor)
            self.scheduler.started(key)
            self.calls[actor.ready.remote()] = Call(self._on_ready, (replica_id,), replica_id)

    # ---- work ----
    def _top_up(self, replica_id: int) -> None:
        key = self.fleet.replicas[replica_id].key
        while self.fleet.has_room(replica_id) and self.scheduler.take_shard(key):
            self._need_crops(replica_id, self.fleet.assign(replica_id))
        if not self.fleet.replicas[replica_id].assigned:
            self._retire(replica_id)

    def _need_crops(self, replica_id: int, shard: Shard) -> None:
        key, crop_key = self.fleet.replicas[replica_id].key, self.fleet.crop_key(replica_id, shard)
        if self.crops.get(crop_key) is None:
            self._decode(crop_key, shard)
        if (entry := self.crops.want(crop_key, key, (replica_id, shard))) is not None:
            self._submit_infer(replica_id, shard, entry)

    def _decode(self, wanted: CropKey, shard: Shard) -> None:
        """Decode `shard` once on the wanted crops' node, cutting every recipe that will be
        inferred from there (the wanted one always)."""
        node, decode_key, index = wanted
        records = self.crops.records(shard)
        cuts = []
        for other_key, recipe in self.fleet.cut_together(decode_key):
            crop_key, size = (node, other_key, index), len(records) * recipe.output_size ** 2 * 3
            sharers = self.fleet.sharers(other_key, index, node)
            if self.crops.get(crop_key) is None and (
                    crop_key == wanted or self.crops.worth_cutting(size, *sharers)):
                cuts.append((crop_key, recipe, size, sharers))
        refs = self._decoder(node).decode.options(num_returns=1 + len(cuts)).remote(
            [recipe for _, recipe, _, _ in cuts], records)
        for (crop_key, _, size, sharers), images in zip(cuts, refs[1:], strict=True):
            self.crops.add(crop_key, images, refs[0], size, *sharers)
        self.calls[refs[0]] = Call(self._on_decoded, ([crop_key for crop_key, *_ in cuts],))

    def _decoder(self, node: str | None) -> Any:
        """The node's decoder, started when first needed (on that node while it is alive)."""
        if node not in self.decoders:
            self.decoders[node] = _start_decoder(node, self.feed.threads(node))
        return self.decoders[node]

    def _decode_again(self, crop_key: CropKey, also: list | None = None) -> None:
        """Crops lost (their decoder died, or their node): forget them; who waited asks again."""
        for replica_id, shard in self.crops.lost(crop_key) + (also or []):
            if replica_id in self.fleet.replicas:
                self._need_crops(replica_id, shard)

    def _submit_infer(self, replica_id: int, shard: Shard, entry: CropEntry) -> None:
        replica = self.fleet.replicas[replica_id]
        settings = ShardSettings(self.fleet.pairs[replica.key].forward_batch,
                                 self.devices.retries.get(replica.key, 0))
        ref = replica.actor.infer.remote(shard, self.crops.records(shard), entry.images,
                                         entry.report, settings)
        self.calls[ref] = Call(self._on_inferred, (replica_id, shard), replica_id)

    def _restart_away(self, replica_id: int, error: PairError, retry: int) -> None:
        """Stop a replica whose device faulted at once; its shards go back to its pair, which
        starts again on another device (the faulty one is excluded now)."""
        key = self.fleet.replicas[replica_id].key
        replica = self.fleet.remove(replica_id)
        self.scheduler.give_back(key, len(replica.assigned))
        self.scheduler.stopped(key)
        self.calls = {ref: call for ref, call in self.calls.items() if call.replica != replica_id}
        self.crops.drop_waiters({replica_id})
        ray.kill(replica.actor)
        self.progress.console.print(
            f"[yellow]device fault[/] on {error.device}: {error.message}; {key} restarts away from "
            f"it (retry {retry} of {self.devices.max_retries})", highlight=False)
        self._fill_slots()

    def _retire(self, replica_id: int) -> None:
        """Stop a replica with nothing left to do."""
        replica = self.fleet.retire(replica_id)
        ray.kill(replica.actor)
        self.scheduler.stopped(replica.key)
        if self.fleet.done(replica.key):
            job = self.fleet.pairs[replica.key].job
            clear_failure(job.out, job)
            self.progress.finished(replica.key, "[green]done[/]")
        self._fill_slots()

    def _fail(self, key: str, reason: str, kind: ErrorKind) -> None:
        if self.fleet.pairs[key].failed:
            return
        self.failed[key] = reason
        job = self.fleet.pairs[key].job
        record_failure(job.out, job, reason, kind)
        self.scheduler.cancel(key)
        replicas = self.fleet.fail(key)
        self.calls = {ref: call for ref, call in self.calls.items() if call.replica not in replicas}
        self.crops.drop_pair(key, replicas)
        for replica_id in replicas:
            self._retire(replica_id)
        self.progress.finished(key, "[red]failed[/]")


def _start_actor(options: dict, job: PairJob, excluded: frozenset[DeviceKey]) -> Any:
    # mypy leaves class decorators out: PairActor is the ActorClass that @ray.remote made
    return PairActor.options(**options).remote(job, excluded)  # type: ignore[attr-defined]


def _start_decoder(node: str | None, threads: int) -> Any:
    """A node's decoder, on that node while it is alive (anywhere for a node not known)."""
    here = {"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=True)} if node else {}
    # as _start_actor: NodeDecoder is the ActorClass that @ray.remote made
    return NodeDecoder.options(max_concurrency=CALLS_PER_DECODER, **here).remote(threads)  # type: ignore[attr-defined]
