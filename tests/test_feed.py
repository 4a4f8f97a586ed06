"""The feeding policy alone: decode threads from the CPUs model actors leave, prefetch within the budget."""

from runner.run.feed import MAX_WINDOW, MIN_WINDOW, FeedPolicy, NodeCpus

SHARD = 1000 * 224 * 224 * 3  # one shard's crops of one 224 recipe: 150 MB


def test_threads_are_the_cpus_no_model_actor_holds():
    policy = FeedPolicy(budget_bytes=4 * 2**30)
    assert policy.threads(node_cpus=96, reserved_cpus=8) == 88  # 8 GPUs, one CPU per actor
    assert policy.threads(node_cpus=8, reserved_cpus=8) == 1  # CPU actors hold them all: one still
    assert policy.threads(node_cpus=4.5, reserved_cpus=1) == 3
    assert FeedPolicy(0, threads_setting=5).threads(96, 8) == 5  # decode_threads given


def test_prefetch_runs_deeper_while_the_budget_holds_every_slots_crops():
    assert FeedPolicy(budget_bytes=0).window(SHARD, slots=8) == MIN_WINDOW
    assert FeedPolicy(budget_bytes=2 * 8 * SHARD).window(SHARD, slots=8) == 3  # two shards ahead
    assert FeedPolicy(budget_bytes=2**40).window(SHARD, slots=8) == MAX_WINDOW


def test_a_feed_per_node_and_a_default_for_nodes_that_join_later():
    nodes = {"a": NodeCpus(96, 8), "b": NodeCpus(48, 8)}
    feed = FeedPolicy(budget_bytes=4 * 2**30).feed(nodes, SHARD * 4, slots=16)
    assert feed.threads("a") == 88 and feed.threads("b") == 40
    assert feed.threads("new") == feed.threads(None) == 40
    assert feed.window == MIN_WINDOW  # 4 GB hold less than one more shard of 4 recipes per slot


def test_a_pair_that_waited_longer_than_it_computed_is_input_bound():
    import numpy as np

    from runner.predictions import PairPredictions
    from runner.score.reduce import _bound

    def pair(wait, forward):
        empty = np.zeros(0)
        return PairPredictions(None, None, empty, empty, empty, empty, None, None, 1.0,
                               forward_seconds=forward, wait_seconds=wait)

    assert _bound(pair(wait=3.0, forward=1.0)) == "input"
    assert _bound(pair(wait=0.2, forward=1.0)) == "compute"
    assert _bound(pair(wait=None, forward=1.0)) is None  # files from before, or imported
