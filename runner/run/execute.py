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
- Failures (runner/run/faults.py names their kinds): a pair whose model cannot load, whose
  model errs, or whose actor keeps dying, fails alone. A device fault restarts the pair's replica
  away from that device (`DeviceLog` excludes it; an actor that lands there anyway holds it
  unused), up to `device_retries` times. Out-of-memory is retried inside the actor at half the
  batch; the batch that worked goes to the pair's later shards. A decode lost with its decoder (or
  its node) is asked for again, and so are crops lost before a replica read them.
"""

from __future__ import annotations

import ray

from runner.data.records import Shard
from runner.run.actors import Placement, ShardResult
from runner.run.crops import CropKey
from runner.run.dispatch import Dispatch
from runner.run.faults import PairError


class Execution(Dispatch):
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
        for key in self.fleet.unfinished():  # every slot left holds an excluded device
            self._fail(key, f"no healthy device left to run on ({len(self.fleet.holders)} excluded)",
                       "device_fault")
        for actor in self.fleet.holders:
            ray.kill(actor)
        return self.failed

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
        if self.fleet.mark_ready(replica_id, placement.node_id):
            self.progress.started(replica.key)
        self._top_up(replica_id)

    def _on_decoded(self, crop_keys: list[CropKey], ref) -> None:
        if isinstance(_get(ref), str):  # the decoder died or its node went: decode again
            self.decoders.pop(crop_keys[0][0], None)
            for crop_key in crop_keys:
                self._decode_again(crop_key)
            return
        for crop_key in crop_keys:
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
            self._fail(replica.key, _last_line(exc), "actor_died")
            return
        if isinstance(result, PairError):
            self._on_error(replica_id, result)
            return
        assert isinstance(result, ShardResult)
        self._learn_batch(replica.key, result)
        replica.assigned.remove(shard)
        self.crops.release(crop_key, replica.key)
        self.scheduler.measured(replica.key, result.seconds)
        self.progress.advance(replica.key, result.images)
        self._top_up(replica_id)

    # ---- faults ----
    def _on_error(self, replica_id: int, error: PairError) -> None:
        """A typed failure of a replica: restart away from a faulty device while retries last,
        else fail the pair with the error's line and kind."""
        key = self.fleet.replicas[replica_id].key
        if error.kind != "device_fault" or (retry := self.devices.fault(key, error)) is None:
            self._fail(key, error.message, error.kind)
            return
        self._restart_away(replica_id, error, retry)

    def _learn_batch(self, key: str, result: ShardResult) -> None:
        """Out-of-memory retries in the actor: log each, and keep the batch that worked."""
        for line in result.retries:
            self.progress.console.print(f"[yellow]out of memory[/] {line}", highlight=False)
        pair = self.fleet.pairs[key]
        pair.forward_batch = min(pair.forward_batch or result.forward_batch, result.forward_batch)


def _get(ref) -> object:
    """A call's value, or the line of the Ray error it raised (its actor died or was stopped)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        return _last_line(exc)


def _last_line(exc: Exception) -> str:
    """A Ray error's message ends with the error raised in the actor (after its traceback)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
