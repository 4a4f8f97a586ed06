"""The run's event loop: it dispatches Ray events to the policies and submits the calls they ask for.

- Slots: as many actors run at once as the cluster fits (one per GPU, or per GPU share, or per
  CPU share without GPUs). `Scheduler` decides which pair a free slot works on: first every pair
  (largest first), then extra replicas for the pair that would finish last; `Fleet` keeps the
  replicas, their slots and their shards.
- Decoding once per node: each node that runs models has one `NodeDecoder` (threads sized by
  `FeedPolicy`); when a replica needs shard k and its node has no crops of it, that node's
  decoder decodes each image of k once and cuts, into the node's object store, the recipe of
  every pair that will infer from it there: those running near shard k, and those that start
  later or run behind while the cache budget (`decode_cache_gb`) holds them (`CropCache`;
  beyond it they decode again). A replica keeps `Fleet.window` shards assigned, so decoding
  runs ahead of inference.
- Failures: a pair whose model cannot load, or whose actor keeps dying, fails alone; a decode
  lost with its decoder is asked for again (a new decoder on that node, or elsewhere when the
  node is gone).
"""

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
from runner.run.actors import Loaded, NodeDecoder, PairActor
from runner.run.crops import CropCache, CropEntry, CropKey
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


class Execution:
    def __init__(self, cfg: RunConfig, dataset: DatasetIndex, plans: list[PairPlan],
                 actor_options: dict[str, dict], slots: SlotWatch, scheduler: Scheduler,
                 progress: RunProgress, feed: Feed):
        self.cfg, self.actor_options = cfg, actor_options  # Ray's options, per pair key
        self.scheduler, self.progress = scheduler, progress
        self.fleet, self.slots = Fleet(plans, slots.slots, cfg.share_decoding, feed.window), slots
        self.crops = CropCache(int((cfg.decode_cache_gb or 0) * 2**30), dataset.shard_records)
        self.feed = feed
        self.decoders: dict[str | None, Any] = {}  # Ray node -> its NodeDecoder
        self.calls: dict[object, Call] = {}  # object reference -> its call
        self.failed: dict[str, str] = {}

    def run(self) -> dict[str, str]:
        """Run every pair to its end; the pairs that failed, with the reason."""
        self._fill_slots()
        while self.calls:
            ready, _ = ray.wait(list(self.calls), num_returns=1, timeout=1.0)
            for ref in ready:
                if (call := self.calls.pop(ref, None)) is not None:
                    call.on_done(*call.args, ref)
            if change := self.slots.change():  # nodes joined (or left)
                self.fleet.free_slots += change
                self._fill_slots()
        return self.failed

    def _fill_slots(self) -> None:
        while self.fleet.free_slots > 0 and (key := self.scheduler.choose()) is not None:
            actor = _start_actor(self.actor_options[key], self.fleet.pairs[key].job)
            replica_id = self.fleet.add(key, actor)
            self.scheduler.started(key)
            self.calls[actor.ready.remote()] = Call(self._on_ready, (replica_id,), replica_id)

    # ---- events ----
    def _on_ready(self, replica_id: int, ref) -> None:
        if (replica := self.fleet.replicas.get(replica_id)) is None:
            return
        try:
            loaded: Loaded = ray.get(ref)
        except ray.exceptions.RayError as exc:
            loaded = Loaded(None, _last_line(exc))
        if loaded.error:
            self._fail(replica.key, loaded.error)
            return
        if self.fleet.mark_ready(replica_id, loaded.node_id):
            self.progress.started(replica.key)
        self._top_up(replica_id)

    def _on_decoded(self, crop_keys: list[CropKey], ref) -> None:
        try:
            ray.get(ref)
        except ray.exceptions.RayError:  # the decoder died or its node went: ask again
            self.decoders.pop(crop_keys[0][0], None)
            for crop_key in crop_keys:
                for replica_id, shard in self.crops.lost(crop_key):
                    if replica_id in self.fleet.replicas:
                        self._need_crops(replica_id, shard)
            return
        for crop_key in crop_keys:
            entry, waiters = self.crops.decoded(crop_key)
            for replica_id, shard in waiters:
                if replica_id in self.fleet.replicas:
                    self._submit_infer(replica_id, shard, entry)

    def _on_inferred(self, replica_id: int, shard: Shard, ref) -> None:
        if (replica := self.fleet.replicas.get(replica_id)) is None:
            return
        try:
            result = ray.get(ref)
        except ray.exceptions.RayError as exc:
            self._fail(replica.key, _last_line(exc))
            return
        replica.assigned.remove(shard)
        self.crops.release(self.fleet.crop_key(replica_id, shard), replica.key)
        self.scheduler.measured(replica.key, result.seconds)
        self.progress.advance(replica.key, result.images)
        self._top_up(replica_id)

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

    def _decoder(self, node: str | None):
        """The node's decoder, started when first needed (on that node while it is alive)."""
        if node not in self.decoders:
            self.decoders[node] = _start_decoder(node, self.feed.threads(node))
        return self.decoders[node]

    def _submit_infer(self, replica_id: int, shard: Shard, entry: CropEntry) -> None:
        actor = self.fleet.replicas[replica_id].actor
        ref = actor.infer.remote(shard, self.crops.records(shard), entry.images, entry.report)
        self.calls[ref] = Call(self._on_inferred, (replica_id, shard), replica_id)

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

    def _fail(self, key: str, reason: str) -> None:
        if self.fleet.pairs[key].failed:
            return
        self.failed[key] = reason
        job = self.fleet.pairs[key].job
        record_failure(job.out, job, reason)
        self.scheduler.cancel(key)
        replicas = self.fleet.fail(key)
        self.calls = {ref: call for ref, call in self.calls.items() if call.replica not in replicas}
        self.crops.drop_pair(key, replicas)
        for replica_id in replicas:
            self._retire(replica_id)
        self.progress.finished(key, "[red]failed[/]")


def _start_actor(options: dict, job: PairJob) -> Any:
    # mypy leaves class decorators out: PairActor is the ActorClass that @ray.remote made
    return PairActor.options(**options).remote(job)  # type: ignore[attr-defined]


def _start_decoder(node: str | None, threads: int) -> Any:
    """A node's decoder, on that node while it is alive (anywhere for a node not known)."""
    here = {"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=True)} if node else {}
    # as _start_actor: NodeDecoder is the ActorClass that @ray.remote made
    return NodeDecoder.options(max_concurrency=CALLS_PER_DECODER, **here).remote(threads)  # type: ignore[attr-defined]


def _last_line(exc: Exception) -> str:
    """A Ray error's message ends with the error raised in the actor (after its traceback)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
