"""The run's event loop: replicas on device slots, shared decoding, progress, failures.

- Slots: as many actors run at once as the cluster fits (one per GPU, or per GPU share, or per
  CPU share without GPUs). `Scheduler` decides which pair a free slot works on: first every pair
  (largest first), then extra replicas for the pair that would finish last.
- Shared decoding: the crops of shard k for recipe R are decoded once, by some live actor whose
  model uses R, into the object store; every pair with recipe R that is running near shard k
  infers from that one object, and so do pairs that start later while the cache budget
  (`decode_cache_gb`) holds them. Decoding runs in each actor's `decode` group, beside `infer`,
  and a replica keeps WINDOW shards assigned, so the next shard decodes while one infers.
- Failures: a pair whose model cannot load, or whose actor keeps dying, fails alone; a decode
  lost with its actor is redone elsewhere.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

import ray

from runner.data.records import DatasetIndex, ImageRecord, Shard
from runner.plan.pairs import PairJob
from runner.plan.schedule import Scheduler
from runner.predictions import clear_failure, record_failure
from runner.run.actors import PairActor
from runner.run.progress import RunProgress

WINDOW = 2  # shards assigned to a replica at once: one inferring, the next decoding
LOOKAHEAD = 2 * WINDOW  # a pair shares crops decoded this many shards ahead of its queue


@dataclass
class Replica:
    key: str  # its pair
    actor: object
    ready: bool = False
    assigned: list[Shard] = field(default_factory=list)
    decodes: int = 0  # decodes in flight on this actor (for any pair)
    retiring: bool = False


@dataclass
class CropEntry:
    images: object  # object ref: uint8 crops of the readable images
    report: object  # object ref: per record why it could not be read (or None), decode id, time
    decoder: int  # replica id doing the decode
    ready: bool = False
    consumers: set[str] = field(default_factory=set)  # pairs that will infer from it
    waiters: list[tuple[int, Shard]] = field(default_factory=list)  # (replica, shard) to start
    cached_bytes: int = 0  # counted against the cache budget: kept for pairs not running yet


@dataclass
class PairRun:
    job: PairJob
    queue: deque[Shard]  # shards not yet assigned to a replica
    replicas: set[int] = field(default_factory=set)
    started: bool = False
    failed: bool = False


class Execution:
    def __init__(self, cfg, dataset: DatasetIndex, plans, actor_options: dict, slots: int,
                 scheduler: Scheduler, progress: RunProgress):
        self.cfg, self.dataset, self.actor_options = cfg, dataset, actor_options
        self.scheduler, self.progress = scheduler, progress
        self.free_slots = slots
        self.pairs = {p.job.key: PairRun(p.job, deque(p.todo)) for p in plans}
        self.recipes = {key: pair.job.spec.recipe(pair.job.protocol) for key, pair in self.pairs.items()}
        # Pairs with equal decode keys share decoded crops: the recipe, or (sharing off, to
        # measure or compare) the recipe and the pair.
        self.decode_keys = {
            key: recipe.key if cfg.share_decoding else f"{key}:{recipe.key}"
            for key, recipe in self.recipes.items()
        }
        self.records: dict[int, list[ImageRecord]] = {}
        self.replicas: dict[int, Replica] = {}
        self.ids = itertools.count()
        self.crops: dict[tuple[str, int], CropEntry] = {}
        self.cached_bytes, self.cache_budget = 0, int(cfg.decode_cache_gb * 2**30)
        self.waiting_ready: dict = {}  # ready ref -> replica id
        self.decoding: dict = {}  # decode ref -> crops key
        self.inferring: dict = {}  # infer ref -> (replica id, shard)
        self.failed: dict[str, str] = {}

    # ---- the loop ----
    def run(self) -> dict[str, str]:
        self._fill_slots()
        while self.waiting_ready or self.decoding or self.inferring:
            refs = [*self.waiting_ready, *self.decoding, *self.inferring]
            ready, _ = ray.wait(refs, num_returns=1, timeout=1.0)
            for ref in ready:
                if ref in self.waiting_ready:
                    self._on_ready(self.waiting_ready.pop(ref), ref)
                elif ref in self.decoding:
                    self._on_decoded(self.decoding.pop(ref), ref)
                elif ref in self.inferring:
                    self._on_inferred(*self.inferring.pop(ref), ref)
        return self.failed

    def _fill_slots(self) -> None:
        while self.free_slots > 0 and (key := self.scheduler.choose()) is not None:
            replica_id = next(self.ids)
            actor = PairActor.options(**self.actor_options).remote(self.pairs[key].job)
            self.replicas[replica_id] = Replica(key, actor)
            self.pairs[key].replicas.add(replica_id)
            self.scheduler.started(key)
            self.free_slots -= 1
            self.waiting_ready[actor.ready.remote()] = replica_id

    # ---- events ----
    def _on_ready(self, replica_id: int, ref) -> None:
        replica = self.replicas.get(replica_id)
        if replica is None:
            return
        error = _get_error(ref)
        if error:
            self._fail(replica.key, error)
            return
        replica.ready = True
        pair = self.pairs[replica.key]
        if not pair.started:
            pair.started = True
            self.progress.started(replica.key)
        self._top_up(replica_id)

    def _on_decoded(self, crop_key: tuple[str, int], ref) -> None:
        entry = self.crops.get(crop_key)
        decoder = self.replicas.get(entry.decoder) if entry else None
        if decoder is not None:
            decoder.decodes -= 1
            if decoder.retiring:
                self._retire(entry.decoder)
        if entry is None:
            return
        if _get_error(ref):  # the decoding actor died or was stopped: decode elsewhere
            waiters = entry.waiters
            del self.crops[crop_key]
            self.cached_bytes -= entry.cached_bytes
            for replica_id, shard in waiters:
                if replica_id in self.replicas:
                    self._need_crops(replica_id, shard)
            return
        entry.ready = True
        for replica_id, shard in entry.waiters:
            if replica_id in self.replicas:
                self._submit_infer(replica_id, shard, entry)
        entry.waiters.clear()

    def _on_inferred(self, replica_id: int, shard: Shard, ref) -> None:
        replica = self.replicas.get(replica_id)
        if replica is None:
            return
        try:
            result = ray.get(ref)
        except ray.exceptions.RayError as exc:
            self._fail(replica.key, _first_line(exc))
            return
        replica.assigned.remove(shard)
        self._release_crops(replica.key, shard)
        self.scheduler.measured(replica.key, result.seconds)
        self.progress.advance(replica.key, result.images)
        self._top_up(replica_id)

    # ---- work ----
    def _top_up(self, replica_id: int) -> None:
        replica = self.replicas[replica_id]
        pair = self.pairs[replica.key]
        while len(replica.assigned) < WINDOW and pair.queue and self.scheduler.take_shard(replica.key):
            shard = pair.queue.popleft()
            replica.assigned.append(shard)
            self._need_crops(replica_id, shard)
        if not replica.assigned:
            self._retire(replica_id)

    def _need_crops(self, replica_id: int, shard: Shard) -> None:
        key = self.replicas[replica_id].key
        crop_key = (self.decode_keys[key], shard.index)
        entry = self.crops.get(crop_key)
        if entry is None:
            decoder_id = self._choose_decoder(crop_key[0], replica_id)
            decoder = self.replicas[decoder_id]
            records = self.records.setdefault(shard.index, self.dataset.shard_records(shard))
            images, report = decoder.actor.decode.remote(self.recipes[key], records)
            decoder.decodes += 1
            entry = CropEntry(images, report, decoder_id)
            self._add_sharers(entry, crop_key, len(records) * self.recipes[key].output_size ** 2 * 3)
            self.crops[crop_key] = entry
            self.decoding[report] = crop_key
        entry.consumers.add(key)
        if entry.ready:
            self._submit_infer(replica_id, shard, entry)
        else:
            entry.waiters.append((replica_id, shard))

    def _add_sharers(self, entry: CropEntry, crop_key: tuple[str, int], size: int) -> None:
        """Make the pairs that will infer from these crops its consumers: running pairs whose
        queue reaches the shard soon and, while the cache budget allows, pairs that have not
        started yet (Ray spills what does not fit in memory to disk, still cheaper than decoding
        again)."""
        decode_key, index = crop_key
        pending = {
            key: pair for key, pair in self.pairs.items()
            if self.decode_keys[key] == decode_key and any(s.index == index for s in pair.queue)
        }
        soon = {
            key for key, pair in pending.items()
            if pair.replicas and pair.queue[0].index <= index <= pair.queue[0].index + LOOKAHEAD
        }
        entry.consumers |= soon
        if set(pending) - soon and self.cached_bytes + size <= self.cache_budget:
            entry.consumers |= set(pending)
            entry.cached_bytes = size
            self.cached_bytes += size

    def _choose_decoder(self, decode_key: str, requester: int) -> int:
        """The live actor with this recipe and the fewest decodes in flight (the asker on ties)."""
        candidates = [
            rid for rid, r in self.replicas.items()
            if self.decode_keys[r.key] == decode_key and not r.retiring
        ]
        # a replica still loading its model would hold the decode up: prefer ready ones
        return min(candidates, key=lambda rid: (not self.replicas[rid].ready,
                                                self.replicas[rid].decodes, rid != requester))

    def _submit_infer(self, replica_id: int, shard: Shard, entry: CropEntry) -> None:
        replica = self.replicas[replica_id]
        ref = replica.actor.infer.remote(shard, self.records[shard.index], entry.images, entry.report)
        self.inferring[ref] = (replica_id, shard)

    def _release_crops(self, key: str, shard: Shard) -> None:
        crop_key = (self.decode_keys[key], shard.index)
        entry = self.crops.get(crop_key)
        if entry is None:
            return
        entry.consumers.discard(key)
        self._drop_if_unused(crop_key)

    def _drop_if_unused(self, crop_key: tuple[str, int]) -> None:
        entry = self.crops[crop_key]
        if entry.consumers or entry.waiters:
            return
        del self.crops[crop_key]  # the last reference: the object store frees it
        self.cached_bytes -= entry.cached_bytes
        if not any(k[1] == crop_key[1] for k in self.crops):
            self.records.pop(crop_key[1], None)

    def _retire(self, replica_id: int) -> None:
        """Stop a replica with nothing left to do, once it has no decodes out for others."""
        replica = self.replicas[replica_id]
        if replica.decodes:
            replica.retiring = True
            return
        del self.replicas[replica_id]
        ray.kill(replica.actor)
        pair = self.pairs[replica.key]
        pair.replicas.discard(replica_id)
        self.scheduler.stopped(replica.key)
        self.free_slots += 1
        if not pair.replicas and not pair.queue and not pair.failed:
            clear_failure(self.cfg.out, pair.job)
            self.progress.finished(replica.key, "[green]done[/]")
        self._fill_slots()

    def _fail(self, key: str, reason: str) -> None:
        pair = self.pairs[key]
        if pair.failed:
            return
        pair.failed = True
        self.failed[key] = reason
        record_failure(self.cfg.out, pair.job, reason)
        pair.queue.clear()
        self.scheduler.pairs[key].shards_left = 0
        for ref, (replica_id, _) in list(self.inferring.items()):
            if replica_id in pair.replicas:
                del self.inferring[ref]
        for ref, replica_id in list(self.waiting_ready.items()):
            if replica_id in pair.replicas:
                del self.waiting_ready[ref]
        for crop_key, entry in list(self.crops.items()):
            entry.consumers.discard(key)
            entry.waiters = [(r, s) for r, s in entry.waiters if r not in pair.replicas]
            if entry.ready:
                self._drop_if_unused(crop_key)
        for replica_id in list(pair.replicas):
            self.replicas[replica_id].assigned.clear()
            self._retire(replica_id)
        self.progress.finished(key, "[red]failed[/]")


def _get_error(ref) -> str | None:
    """ready() returns an error or None; a decode's small return is a dict. Either may raise."""
    try:
        value = ray.get(ref)
    except ray.exceptions.RayError as exc:
        return _first_line(exc)
    return value if isinstance(value, str) else None


def _first_line(exc: Exception) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
