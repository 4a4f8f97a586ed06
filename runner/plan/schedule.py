"""Which (model, framework) a free device slot should work on next.

Pure logic, shared by the driver and by bench/plan.py's simulation of large runs:
- while some pair has not started, a free slot starts the one with the most estimated work
  left (longest processing time first);
- once every pair has started, a free slot adds a replica to the pair that would finish last,
  if the replica finishes it sooner even after paying its model-load time.
A replica takes one shard at a time from its pair's queue, so replicas of one pair share its
shards dynamically, and the slowest model no longer sets the run's wall time alone.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass


@dataclass
class PairState:
    key: str
    shards_left: int  # not yet handed to a replica
    shard_seconds: float  # estimated seconds per shard on one slot (refined as shards finish)
    load_seconds: float  # estimated seconds to start a replica (process, framework, weights)
    max_replicas: int
    replicas: int = 0  # running now

    def finish_estimate(self, replicas: int) -> float:
        return self.shards_left * self.shard_seconds / replicas


class Scheduler:
    def __init__(self, pairs: list[PairState]):
        self.pairs = {pair.key: pair for pair in pairs}

    def choose(self) -> str | None:
        """The pair a free slot should start a replica for, or None: nothing worth starting."""
        pending = [p for p in self.pairs.values() if p.shards_left > 0]
        unstarted = [p for p in pending if p.replicas == 0]
        if unstarted:
            return max(unstarted, key=lambda p: (p.shards_left * p.shard_seconds, p.key)).key
        growable = [p for p in pending if p.replicas < p.max_replicas]
        if not growable:
            return None
        slowest = max(growable, key=lambda p: (p.finish_estimate(p.replicas), p.key))
        with_one_more = slowest.load_seconds + slowest.finish_estimate(slowest.replicas + 1)
        return slowest.key if with_one_more < slowest.finish_estimate(slowest.replicas) else None

    def started(self, key: str) -> None:
        self.pairs[key].replicas += 1

    def stopped(self, key: str) -> None:
        self.pairs[key].replicas -= 1

    def take_shard(self, key: str) -> bool:
        pair = self.pairs[key]
        if pair.shards_left == 0:
            return False
        pair.shards_left -= 1
        return True

    def give_back(self, key: str, shards: int) -> None:
        """Shards a replica took but did not finish (its device failed) are to do again."""
        self.pairs[key].shards_left += shards

    def cancel(self, key: str) -> None:
        """A failed pair: hand out none of its shards and start no replica for it again."""
        self.pairs[key].shards_left = 0

    def measured(self, key: str, seconds: float, weight: float = 0.3) -> None:
        """Blend a measured shard time into the estimate (recent shards count more)."""
        pair = self.pairs[key]
        pair.shard_seconds = (1 - weight) * pair.shard_seconds + weight * seconds


@dataclass(frozen=True)
class Simulation:
    makespan: float
    replicas: dict[str, int]  # replicas each pair ever had


def simulate(pairs: list[PairState], slots: int) -> Simulation:
    """Run the scheduler on estimates (taken as exact) with `slots` devices."""
    scheduler = Scheduler([PairState(**vars(p)) for p in pairs])
    started: dict[str, int] = {p.key: 0 for p in pairs}
    events: list[tuple[float, int, str | None]] = []  # (time a slot is free, slot, its pair)
    for slot in range(slots):
        heapq.heappush(events, (0.0, slot, None))
    makespan = 0.0
    while events:
        now, slot, key = heapq.heappop(events)
        makespan = max(makespan, now)
        if key is not None and scheduler.take_shard(key):
            heapq.heappush(events, (now + scheduler.pairs[key].shard_seconds, slot, key))
            continue
        if key is not None:
            scheduler.stopped(key)
        choice = scheduler.choose()
        if choice is None:
            continue  # idle from now on: work only shrinks, so nothing new becomes worth it
        scheduler.started(choice)
        started[choice] += 1
        heapq.heappush(events, (now + scheduler.pairs[choice].load_seconds, slot, choice))
    return Simulation(makespan, started)


def lower_bound(pairs: list[PairState], slots: int) -> tuple[float, float]:
    """(total work / slots, the longest indivisible piece: one replica's load plus one shard)."""
    total = sum(p.shards_left * p.shard_seconds + p.load_seconds for p in pairs)
    longest = max(p.load_seconds + p.shard_seconds for p in pairs)
    return total / slots, longest
