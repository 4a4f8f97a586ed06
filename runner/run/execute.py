"""The run's event loop: it dispatches Ray events to the policies and submits the calls they ask for.

- Slots: as many actors run at once as the cluster fits (one per GPU, or per GPU share, or per
  CPU share without GPUs). `Scheduler` decides which pair a free slot works on: first every pair
  (largest first), then extra replicas for the pair that would finish last; `Fleet` keeps the
  replicas, their slots and their shards.
- Shared decoding: the crops of shard k for recipe R are decoded once, by some live actor whose
  model uses R, into the object store; every pair with recipe R that is running near shard k
  infers from that one object, and so do pairs that start later while the cache budget
  (`decode_cache_gb`) holds them (`CropCache`). Decoding runs in each actor's `decode` group,
  beside `infer`, and a replica keeps WINDOW shards assigned, so the next shard decodes while
  one infers.
- Failures: a pair whose model cannot load, or whose actor keeps dying, fails alone; a decode
  lost with its actor is redone elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray

from runner.config import RunConfig
from runner.data.records import DatasetIndex, Shard
from runner.plan.pairs import PairJob, PairPlan
from runner.plan.schedule import Scheduler
from runner.predictions import clear_failure, record_failure
from runner.run.actors import PairActor
from runner.run.crops import CropCache, CropEntry, CropKey
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
                 progress: RunProgress):
        self.cfg, self.actor_options = cfg, actor_options  # Ray's options, per pair key
        self.scheduler, self.progress = scheduler, progress
        self.fleet, self.slots = Fleet(plans, slots.slots, cfg.share_decoding), slots
        self.crops = CropCache(int((cfg.decode_cache_gb or 0) * 2**30), dataset.shard_records)
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
        if error := _get_error(ref):
            self._fail(replica.key, error)
            return
        if self.fleet.mark_ready(replica_id):
            self.progress.started(replica.key)
        self._top_up(replica_id)

    def _on_decoded(self, crop_key: CropKey, decoder_id: int, ref) -> None:
        if self.fleet.decode_finished(decoder_id):
            self._retire(decoder_id)
        if _get_error(ref):  # the decoding actor died or was stopped: decode elsewhere
            for replica_id, shard in self.crops.lost(crop_key):
                if replica_id in self.fleet.replicas:
                    self._need_crops(replica_id, shard)
            return
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
            self._decode(crop_key, replica_id, shard)
        if (entry := self.crops.want(crop_key, key, (replica_id, shard))) is not None:
            self._submit_infer(replica_id, shard, entry)

    def _decode(self, crop_key: CropKey, requester: int, shard: Shard) -> None:
        recipe = self.fleet.pairs[self.fleet.replicas[requester].key].recipe
        decoder_id = self.fleet.start_decode(crop_key[0], requester)
        records = self.crops.records(shard)
        images, report = self.fleet.replicas[decoder_id].actor.decode.remote(recipe, records)
        size = len(records) * recipe.output_size ** 2 * 3
        self.crops.add(crop_key, images, report, size, *self.fleet.sharers(*crop_key))
        self.calls[report] = Call(self._on_decoded, (crop_key, decoder_id))

    def _submit_infer(self, replica_id: int, shard: Shard, entry: CropEntry) -> None:
        actor = self.fleet.replicas[replica_id].actor
        ref = actor.infer.remote(shard, self.crops.records(shard), entry.images, entry.report)
        self.calls[ref] = Call(self._on_inferred, (replica_id, shard), replica_id)

    def _retire(self, replica_id: int) -> None:
        """Stop a replica with nothing left to do, once it has no decodes out for others."""
        replica = self.fleet.retire(replica_id)
        if replica is None:
            return
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


def _get_error(ref) -> str | None:
    """ready() returns an error or None; a decode's small return is a DecodeReport. Either may raise."""
    try:
        value = ray.get(ref)
    except ray.exceptions.RayError as exc:
        return _last_line(exc)
    return value if isinstance(value, str) else None


def _last_line(exc: Exception) -> str:
    """A Ray error's message ends with the error raised in the actor (after its traceback)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
