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
- Failures (runner/run/faults.py names their kinds): a pair whose model cannot load, whose
  model errs, or whose actor keeps dying, fails alone. A device fault restarts the pair's replica
  away from that device (`DeviceLog` excludes it; an actor that lands there anyway holds it
  unused), up to `device_retries` times. Out-of-memory is retried inside the actor at half the
  batch; the batch that worked goes to the pair's later shards. A decode lost with its actor (or
  its node) is redone elsewhere, and so are crops lost before a replica read them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import ray

from runner.config import RunConfig
from runner.data.records import DatasetIndex, Shard
from runner.plan.pairs import PairPlan
from runner.plan.schedule import Scheduler
from runner.predictions import clear_failure, record_failure
from runner.run.actors import PairActor, Placement, ShardResult, ShardSettings
from runner.run.crops import CropCache, CropEntry, CropKey
from runner.run.devices import DeviceLog
from runner.run.faults import ErrorKind, PairError
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
                 actor_options: dict, slots: int, scheduler: Scheduler, progress: RunProgress,
                 devices: DeviceLog):
        self.cfg, self.actor_options = cfg, actor_options
        self.scheduler, self.progress, self.devices = scheduler, progress, devices
        self.fleet = Fleet(plans, slots, cfg.share_decoding)
        self.crops = CropCache(int(cfg.decode_cache_gb * 2**30), dataset.shard_records)
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
        for key in self.fleet.unfinished():  # every slot left holds an excluded device
            self._fail(key, f"no healthy device left to run on ({len(self.fleet.holders)} excluded)",
                       "device_fault")
        return self.failed

    def _fill_slots(self) -> None:
        while self.fleet.free_slots > 0 and (key := self.scheduler.choose()) is not None:
            job = self.fleet.pairs[key].job
            actor = PairActor.options(**self.actor_options).remote(job, self.devices.excluded)
            replica_id = self.fleet.add(key, actor)
            self.scheduler.started(key)
            self.calls[actor.ready.remote()] = Call(self._on_ready, (replica_id,), replica_id)

    # ---- events ----
    def _on_ready(self, replica_id: int, ref) -> None:
        if (replica := self.fleet.replicas.get(replica_id)) is None:
            return
        placement = _get(ref)
        if isinstance(placement, str):
            self._fail(replica.key, placement, "actor_died")
            return
        assert isinstance(placement, Placement)
        if placement.excluded:
            self.fleet.hold(replica_id)
            self.scheduler.stopped(replica.key)
            self._fill_slots()
            return
        if placement.error is not None:
            self._on_error(replica_id, placement.error)
            return
        if self.fleet.mark_ready(replica_id):
            self.progress.started(replica.key)
        self._top_up(replica_id)

    def _on_decoded(self, crop_key: CropKey, decoder_id: int, ref) -> None:
        if decoder_id in self.fleet.replicas and self.fleet.decode_finished(decoder_id):
            self._retire(decoder_id)
        if isinstance(_get(ref), str):  # the decoding actor died or was stopped: decode elsewhere
            self._decode_again(crop_key)
            return
        entry, waiters = self.crops.decoded(crop_key)
        for replica_id, shard in waiters:
            if replica_id in self.fleet.replicas:
                self._submit_infer(replica_id, shard, entry)

    def _on_inferred(self, replica_id: int, shard: Shard, ref) -> None:
        if (replica := self.fleet.replicas.get(replica_id)) is None:
            return
        crop_key = self.fleet.crop_key(replica_id, shard)
        try:
            result = ray.get(ref)
        except ray.exceptions.ObjectLostError:  # the crops went with their node: decode again
            if (entry := self.crops.get(crop_key)) is not None and entry.ready:
                self._decode_again(crop_key, [(replica_id, shard)])
            else:  # already being decoded again for another replica
                self._need_crops(replica_id, shard)
            return
        except ray.exceptions.RayError as exc:
            self._fail(replica.key, _first_line(exc), "actor_died")
            return
        if isinstance(result, PairError):
            self._on_error(replica_id, result)
            return
        assert isinstance(result, ShardResult)
        self._learn_batch(replica.key, result)
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

    # ---- faults ----
    def _on_error(self, replica_id: int, error: PairError) -> None:
        """A typed failure of a replica: restart away from a faulty device while retries last,
        else fail the pair with the error's line and kind."""
        key = self.fleet.replicas[replica_id].key
        if error.kind != "device_fault" or (retry := self.devices.fault(key, error)) is None:
            self._fail(key, error.message, error.kind)
            return
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

    def _learn_batch(self, key: str, result: ShardResult) -> None:
        """Out-of-memory retries in the actor: log each, and keep the batch that worked."""
        for line in result.retries:
            self.progress.console.print(f"[yellow]out of memory[/] {line}", highlight=False)
        pair = self.fleet.pairs[key]
        pair.forward_batch = min(pair.forward_batch, result.forward_batch)

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


def _get(ref) -> object:
    """A call's value, or the line of the Ray error it raised (its actor died or was stopped)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        return _first_line(exc)


def _first_line(exc: Exception) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
