"""The scheduler alone: which pair a free slot works on, on estimates taken as exact."""

import pytest

from runner.plan.schedule import PairState, Scheduler, lower_bound, simulate


def _pairs(costs, shards=10, load=1.0, max_replicas=8):
    return [PairState(f"p{i}", shards, cost, load, max_replicas) for i, cost in enumerate(costs)]


def test_scheduler_starts_the_biggest_pair_first_then_replicates_the_slowest():
    scheduler = Scheduler(_pairs([1.0, 5.0, 2.0]))
    assert scheduler.choose() == "p1"
    for key in ("p1", "p2", "p0"):
        scheduler.started(key)
    assert scheduler.choose() == "p1"  # all started: the one that would finish last
    scheduler.pairs["p1"].shards_left = 0
    assert scheduler.choose() == "p2"


def test_scheduler_does_not_replicate_when_starting_costs_more_than_it_saves():
    scheduler = Scheduler(_pairs([1.0], shards=2, load=5.0))
    scheduler.started("p0")
    assert scheduler.choose() is None


def test_simulated_makespan_approaches_the_bound():
    pairs = _pairs([1.0] * 5 + [20.0], shards=50)  # one model 20x slower than the others
    one_actor_per_model = 50 * 20.0 + 1.0
    result = simulate(pairs, slots=8)
    assert result.makespan < one_actor_per_model / 2
    assert result.makespan <= 1.2 * max(lower_bound(pairs, 8))
    assert result.replicas["p5"] >= 3


def test_a_cancelled_pair_gets_no_shard_and_no_replica():
    scheduler = Scheduler(_pairs([1.0, 5.0], shards=3))
    scheduler.started("p1")
    assert scheduler.take_shard("p1")
    scheduler.cancel("p1")
    assert not scheduler.take_shard("p1")
    assert scheduler.choose() == "p0"  # the biggest pair, but cancelled: never chosen again
    scheduler.started("p0")
    assert scheduler.choose() == "p0"
    scheduler.stopped("p1")  # its replicas still stop as usual
    assert scheduler.pairs["p1"].replicas == 0
    scheduler.cancel("p0")
    assert scheduler.choose() is None


def test_measured_shard_times_refine_the_estimate():
    scheduler = Scheduler(_pairs([10.0]))
    scheduler.measured("p0", 20.0)
    assert scheduler.pairs["p0"].shard_seconds == pytest.approx(13.0)  # recent shards count 0.3
