"""The run's pairs and their replicas on device slots: who works on what, who decodes, who stops.

Pure bookkeeping, no Ray: `actor` is whatever the caller starts (an actor handle in a run).
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from runner.data.recipes import Recipe
from runner.data.records import Shard
from runner.plan.pairs import PairJob, PairPlan
from runner.run.crops import CropKey

WINDOW = 2  # shards assigned to a replica at once: one inferring, the next decoding
LOOKAHEAD = 2 * WINDOW  # a pair shares crops decoded this many shards ahead of its queue


@dataclass
class Replica:
    key: str  # its pair
    actor: Any  # a Ray actor handle in a run; tests give stand-ins
    ready: bool = False
    assigned: list[Shard] = field(default_factory=list)
    decodes: int = 0  # decodes in flight on this actor (for any pair)
    retiring: bool = False


@dataclass
class PairRun:
    job: PairJob
    queue: deque[Shard]  # shards not yet assigned to a replica
    recipe: Recipe
    decode_key: str  # pairs with equal decode keys share decoded crops
    replicas: set[int] = field(default_factory=set)
    started: bool = False
    failed: bool = False


class Fleet:
    def __init__(self, plans: list[PairPlan], slots: int, share_decoding: bool):
        self.free_slots = slots
        self.replicas: dict[int, Replica] = {}
        self.pairs: dict[str, PairRun] = {}
        for plan in plans:
            key, recipe = plan.job.name, plan.job.recipe
            # sharing off (to measure or compare): one decode key per pair
            decode_key = recipe.key if share_decoding else f"{key}:{recipe.key}"
            self.pairs[key] = PairRun(plan.job, deque(plan.todo), recipe, decode_key)
        self._ids = itertools.count()

    def add(self, key: str, actor: object) -> int:
        """A replica of `key` on a free slot; its id."""
        replica_id = next(self._ids)
        self.replicas[replica_id] = Replica(key, actor)
        self.pairs[key].replicas.add(replica_id)
        self.free_slots -= 1
        return replica_id

    def mark_ready(self, replica_id: int) -> bool:
        """The replica has loaded its model; True when it is its pair's first."""
        replica = self.replicas[replica_id]
        replica.ready = True
        pair = self.pairs[replica.key]
        first, pair.started = not pair.started, True
        return first

    def crop_key(self, replica_id: int, shard: Shard) -> CropKey:
        """What the replica infers `shard` from."""
        return self.pairs[self.replicas[replica_id].key].decode_key, shard.index

    def has_room(self, replica_id: int) -> bool:
        """The replica could take another shard of its pair's queue."""
        replica = self.replicas[replica_id]
        return len(replica.assigned) < WINDOW and bool(self.pairs[replica.key].queue)

    def assign(self, replica_id: int) -> Shard:
        replica = self.replicas[replica_id]
        shard = self.pairs[replica.key].queue.popleft()
        replica.assigned.append(shard)
        return shard

    def retire(self, replica_id: int) -> Replica | None:
        """Free the slot of a replica with nothing left to do and return it to be stopped; None
        while it still decodes for others (it retires when those decodes are done)."""
        replica = self.replicas[replica_id]
        if replica.decodes:
            replica.retiring = True
            return None
        del self.replicas[replica_id]
        self.pairs[replica.key].replicas.discard(replica_id)
        self.free_slots += 1
        return replica

    def done(self, key: str) -> bool:
        """The pair finished all its shards (and did not fail)."""
        pair = self.pairs[key]
        return not pair.replicas and not pair.queue and not pair.failed

    def fail(self, key: str) -> set[int]:
        """Take all work from a failed pair; its replicas' ids, to be retired."""
        pair = self.pairs[key]
        pair.failed = True
        pair.queue.clear()
        for replica_id in pair.replicas:
            self.replicas[replica_id].assigned.clear()
        return set(pair.replicas)

    def start_decode(self, decode_key: str, requester: int) -> int:
        """The replica to decode for `requester`, counted busy: the live one with this decode
        key and the fewest decodes in flight (the asker on ties); a replica still loading its
        model would hold the decode up, so ready ones first."""
        candidates = [
            rid for rid, r in self.replicas.items()
            if self.pairs[r.key].decode_key == decode_key and not r.retiring
        ]
        decoder = min(candidates, key=lambda rid: (not self.replicas[rid].ready,
                                                   self.replicas[rid].decodes, rid != requester))
        self.replicas[decoder].decodes += 1
        return decoder

    def decode_finished(self, decoder: int) -> bool:
        """True when the decoder was only waiting for its decodes to retire, and now can."""
        replica = self.replicas[decoder]
        replica.decodes -= 1
        return replica.retiring

    def sharers(self, decode_key: str, index: int) -> tuple[set[str], set[str]]:
        """The pairs still to infer from shard `index` decoded under `decode_key`: (those with
        replicas whose queue reaches it soon, the others)."""
        pending = {
            key: pair for key, pair in self.pairs.items()
            if pair.decode_key == decode_key and any(s.index == index for s in pair.queue)
        }
        soon = {
            key for key, pair in pending.items()
            if pair.replicas and pair.queue[0].index <= index <= pair.queue[0].index + LOOKAHEAD
        }
        return soon, set(pending) - soon
