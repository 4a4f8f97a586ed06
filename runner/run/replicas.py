"""The run's pairs and their replicas on device slots: who works on what, on which node, who stops.

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
from runner.run.feed import MIN_WINDOW


@dataclass
class Replica:
    key: str  # its pair
    actor: Any  # a Ray actor handle in a run; tests give stand-ins
    ready: bool = False
    node: str | None = None  # its Ray node, once ready: its crops are decoded there
    assigned: list[Shard] = field(default_factory=list)


@dataclass
class PairRun:
    job: PairJob
    queue: deque[Shard]  # shards not yet assigned to a replica
    recipe: Recipe
    decode_key: str  # pairs with equal decode keys share decoded crops
    replicas: set[int] = field(default_factory=set)
    started: bool = False
    failed: bool = False
    forward_batch: int | None = None  # the largest batch its shards reported to fit (None: none yet)


class Fleet:
    def __init__(self, plans: list[PairPlan], slots: int, share_decoding: bool,
                 window: int = MIN_WINDOW):
        self.free_slots = slots
        self.share_decoding = share_decoding
        self.window = window  # shards assigned to a replica at once (FeedPolicy.window)
        self.lookahead = 2 * window  # a pair shares crops decoded this many shards ahead of its queue
        self.replicas: dict[int, Replica] = {}
        self.pairs: dict[str, PairRun] = {}
        for plan in plans:
            key, recipe = plan.job.name, plan.job.recipe
            # sharing off (to measure or compare): one decode key per pair
            decode_key = recipe.key if share_decoding else f"{key}:{recipe.key}"
            self.pairs[key] = PairRun(plan.job, deque(plan.todo), recipe, decode_key)
        self._ids = itertools.count()
        self.holders: list[Any] = []  # actors kept on excluded devices, so nobody gets them

    def add(self, key: str, actor: object) -> int:
        """A replica of `key` on a free slot; its id."""
        replica_id = next(self._ids)
        self.replicas[replica_id] = Replica(key, actor)
        self.pairs[key].replicas.add(replica_id)
        self.free_slots -= 1
        return replica_id

    def mark_ready(self, replica_id: int, node: str | None = None) -> bool:
        """The replica has loaded its model on `node`; True when it is its pair's first."""
        replica = self.replicas[replica_id]
        replica.ready, replica.node = True, node
        pair = self.pairs[replica.key]
        first, pair.started = not pair.started, True
        return first

    def crop_key(self, replica_id: int, shard: Shard) -> CropKey:
        """What the replica infers `shard` from: crops decoded on its node."""
        replica = self.replicas[replica_id]
        return replica.node, self.pairs[replica.key].decode_key, shard.index

    def has_room(self, replica_id: int) -> bool:
        """The replica could take another shard of its pair's queue."""
        replica = self.replicas[replica_id]
        return len(replica.assigned) < self.window and bool(self.pairs[replica.key].queue)

    def assign(self, replica_id: int) -> Shard:
        replica = self.replicas[replica_id]
        shard = self.pairs[replica.key].queue.popleft()
        replica.assigned.append(shard)
        return shard

    def retire(self, replica_id: int) -> Replica:
        """Free the slot of a replica with nothing left to do and return it to be stopped."""
        replica = self.replicas.pop(replica_id)
        self.pairs[replica.key].replicas.discard(replica_id)
        self.free_slots += 1
        return replica

    def remove(self, replica_id: int) -> Replica:
        """Take a replica away at once (its device failed): its shards go back to the front of
        its pair's queue, its slot is free again."""
        replica = self.replicas.pop(replica_id)
        pair = self.pairs[replica.key]
        pair.replicas.discard(replica_id)
        pair.queue.extendleft(reversed(replica.assigned))
        self.free_slots += 1
        return replica

    def hold(self, replica_id: int) -> None:
        """A replica that landed on an excluded device and loaded nothing: it keeps that device
        (and its slot) for the rest of the run, so that no other actor is placed there."""
        replica = self.replicas.pop(replica_id)
        self.pairs[replica.key].replicas.discard(replica_id)
        self.holders.append(replica.actor)

    def unfinished(self) -> list[str]:
        """Pairs neither done nor failed, with no replica left to finish them."""
        return [key for key, pair in self.pairs.items()
                if pair.queue and not pair.replicas and not pair.failed]

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

    def cut_together(self, decode_key: str) -> list[tuple[str, Recipe]]:
        """The decode keys (and recipes) one decode for `decode_key` may cut, it first: with
        sharing, every recipe of the run (each image decoded once); without, its own alone."""
        keys = {decode_key: self._recipe(decode_key)}
        if self.share_decoding:
            keys.update((pair.decode_key, pair.recipe) for pair in self.pairs.values())
        return list(keys.items())

    def _recipe(self, decode_key: str) -> Recipe:
        return next(pair.recipe for pair in self.pairs.values() if pair.decode_key == decode_key)

    def sharers(self, decode_key: str, index: int, node: str | None) -> tuple[set[str], set[str]]:
        """The pairs that may infer from shard `index` decoded under `decode_key` on `node`:
        (those with replicas there whose queue reaches it soon, the others that are not running
        elsewhere only). A pair running on other nodes only decodes its own copy there."""
        pending = {
            key: pair for key, pair in self.pairs.items()
            if pair.decode_key == decode_key and any(s.index == index for s in pair.queue)
        }
        here = {key for key, pair in pending.items()
                if any(self.replicas[r].node in (node, None) for r in pair.replicas)}
        soon = {
            key for key in here
            if pending[key].queue[0].index <= index <= pending[key].queue[0].index + self.lookahead
        }
        elsewhere = {key for key, pair in pending.items() if pair.replicas and key not in here}
        return soon, set(pending) - soon - elsewhere
