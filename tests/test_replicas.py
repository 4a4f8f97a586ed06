"""Replica bookkeeping alone: slots, shards, nodes, what a decode cuts, retiring, failing; no Ray."""

import pytest

from runner.catalog import load_catalog
from runner.data.records import Shard
from runner.plan.pairs import PairJob, PairPlan
from runner.run.replicas import Fleet

# the first three share a recipe (shorter side 256, crop 224) under the reference protocol
SAME_RECIPE = ["pytorch/resnet18", "pytorch/squeezenet1_1", "keras/mobilenet"]
OTHER_RECIPE = "pytorch/inception_v3"
SHARDS = [Shard(k, 2 * k, 2 * k + 2) for k in range(10)]


def _plans(keys=(*SAME_RECIPE, OTHER_RECIPE)):
    specs = load_catalog().select(list(keys), ["pytorch", "keras"])
    return [PairPlan(PairJob(spec, "random", "reference", 0, 8, 1, "batched", 1, "/out", "run",
                             "pair", {}), list(SHARDS), 0) for spec in specs]


WINDOW = 3


@pytest.fixture
def fleet():
    return Fleet(_plans(), slots=4, share_decoding=True, window=WINDOW)


def test_a_replica_takes_a_window_of_its_pairs_shards_in_order(fleet):
    replica = fleet.add("pytorch/resnet18", actor=object())
    assert fleet.free_slots == 3
    taken = []
    while fleet.has_room(replica):
        taken.append(fleet.assign(replica))
    assert taken == SHARDS[:WINDOW] == fleet.replicas[replica].assigned
    assert fleet.pairs["pytorch/resnet18"].queue[0] == SHARDS[WINDOW]


def test_a_replica_infers_from_crops_of_its_own_node(fleet):
    replica = fleet.add("keras/mobilenet", object())
    fleet.mark_ready(replica, "node-a")
    assert fleet.crop_key(replica, SHARDS[2]) == ("node-a", fleet.pairs["keras/mobilenet"].decode_key, 2)


def test_only_a_pairs_first_ready_replica_starts_it(fleet):
    first, second = fleet.add("keras/mobilenet", object()), fleet.add("keras/mobilenet", object())
    assert fleet.mark_ready(first) and not fleet.mark_ready(second)


def test_pairs_share_a_decode_key_only_when_sharing_is_on(fleet):
    keys = {key: pair.decode_key for key, pair in fleet.pairs.items()}
    assert len({keys[key] for key in SAME_RECIPE}) == 1 and keys[OTHER_RECIPE] != keys[SAME_RECIPE[0]]
    separate = Fleet(_plans(SAME_RECIPE), slots=2, share_decoding=False)
    assert len({pair.decode_key for pair in separate.pairs.values()}) == len(SAME_RECIPE)


def test_one_decode_cuts_every_recipe_of_the_run_only_when_sharing(fleet):
    own = fleet.pairs[OTHER_RECIPE].decode_key
    cuts = fleet.cut_together(own)
    assert [key for key, _ in cuts] == [own, fleet.pairs["pytorch/resnet18"].decode_key]  # it first
    assert cuts[0][1] == fleet.pairs[OTHER_RECIPE].recipe
    separate = Fleet(_plans(), slots=4, share_decoding=False)
    key = separate.pairs["keras/mobilenet"].decode_key
    assert separate.cut_together(key) == [(key, separate.pairs["keras/mobilenet"].recipe)]


def test_a_retired_replica_frees_its_slot(fleet):
    replica = fleet.add("pytorch/resnet18", object())
    assert fleet.retire(replica).key == "pytorch/resnet18"
    assert fleet.free_slots == 4 and replica not in fleet.replicas
    assert not fleet.done("pytorch/resnet18")  # shards are left


def test_a_pair_is_done_when_its_queue_is_empty_and_its_replicas_stopped():
    fleet = Fleet(_plans(["keras/mobilenet"]), slots=1, share_decoding=True)
    replica = fleet.add("keras/mobilenet", object())
    fleet.pairs["keras/mobilenet"].queue.clear()
    assert not fleet.done("keras/mobilenet")
    fleet.retire(replica)
    assert fleet.done("keras/mobilenet")


def test_a_failed_pair_loses_its_work_and_is_never_done(fleet):
    replicas = {fleet.add("keras/mobilenet", object()) for _ in range(2)}
    for replica in replicas:
        fleet.assign(replica)
    assert fleet.fail("keras/mobilenet") == replicas
    assert not fleet.pairs["keras/mobilenet"].queue
    assert all(not fleet.replicas[r].assigned for r in replicas)
    for replica in replicas:
        fleet.retire(replica)
    assert not fleet.done("keras/mobilenet")


def test_sharers_running_near_the_shard_on_its_node_and_the_others(fleet):
    recipe = fleet.pairs["pytorch/resnet18"].decode_key
    fleet.mark_ready(fleet.add("pytorch/resnet18", object()), "node-a")
    fleet.mark_ready(fleet.add("keras/mobilenet", object()), "node-a")
    fleet.pairs["keras/mobilenet"].queue.popleft()  # shard 0 taken: it no longer needs it
    # squeezenet has no replica yet; inception decodes another recipe
    assert fleet.sharers(recipe, 0, "node-a") == ({"pytorch/resnet18"}, {"pytorch/squeezenet1_1"})
    assert fleet.sharers(recipe, 1 + fleet.lookahead, "node-a") == (
        {"keras/mobilenet"}, {"pytorch/resnet18", "pytorch/squeezenet1_1"})
    # node-b runs none of them: pairs running on node-a only infer from node-a's copy
    assert fleet.sharers(recipe, 1, "node-b") == (set(), {"pytorch/squeezenet1_1"})


def test_a_replica_removed_for_a_device_fault_gives_its_shards_back_in_order(fleet):
    replica = fleet.add("pytorch/resnet18", object())
    fleet.assign(replica), fleet.assign(replica)
    removed = fleet.remove(replica)
    assert removed.assigned == SHARDS[:2] and fleet.free_slots == 4
    assert list(fleet.pairs["pytorch/resnet18"].queue) == SHARDS  # to do again, first
    assert "pytorch/resnet18" in fleet.unfinished()  # shards left, no replica: it needs a new one


def test_a_replica_held_on_an_excluded_device_keeps_its_slot(fleet):
    replica = fleet.add("pytorch/resnet18", actor="on the bad GPU")
    fleet.hold(replica)
    assert fleet.free_slots == 3 and fleet.holders == ["on the bad GPU"]
    assert replica not in fleet.replicas and not fleet.pairs["pytorch/resnet18"].replicas
