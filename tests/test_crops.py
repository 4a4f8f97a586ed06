"""The crop cache alone: plain objects stand in for Ray's object references."""

from runner.data.records import ImageRecord, Shard
from runner.run.crops import CropCache

SHARD = Shard(0, 0, 2)
KEY = ("node-a", "recipe", SHARD.index)


class Ref:
    """An object reference stand-in: only its identity matters."""


class Loader:
    """Records of a shard, counting how often they are built."""

    def __init__(self):
        self.loads = 0

    def __call__(self, shard):
        self.loads += 1
        return [ImageRecord(p, f"img{p}", f"/d/img{p}", 0) for p in range(shard.start, shard.stop)]


def _cache(budget=100):
    loader = Loader()
    return CropCache(budget, loader), loader


def _decode(cache, key=KEY, size=60, soon=(), later=()):
    images, report = Ref(), Ref()
    cache.add(key, images, report, size, set(soon), set(later))
    return images


def test_pairs_with_one_decode_key_infer_from_one_decode():
    cache, _ = _cache()
    images = _decode(cache, soon={"b"})
    assert cache.want(KEY, "a", (1, SHARD)) is None  # still decoding: a waits
    entry, waiters = cache.decoded(KEY)
    assert waiters == [(1, SHARD)] and entry.images is images
    assert cache.want(KEY, "b", (2, SHARD)).images is images  # b reuses it, no second decode
    assert cache.get(KEY).consumers == {"a", "b"}


def test_release_by_the_last_consumer_frees_the_crops_and_the_records():
    cache, loader = _cache()
    _decode(cache, soon={"b"})
    assert cache.records(SHARD) is cache.records(SHARD) and loader.loads == 1
    cache.want(KEY, "a", (1, SHARD))
    cache.decoded(KEY)
    cache.release(KEY, "a")
    assert cache.get(KEY) is not None  # b has yet to infer from it
    cache.release(KEY, "b")
    assert cache.get(KEY) is None and cache.cached_bytes == 0
    cache.records(SHARD)
    assert loader.loads == 2  # built again: nothing kept for a shard no entry uses
    cache.release(KEY, "b")  # a release after the entry went is harmless


def test_late_starters_reuse_cached_crops_while_the_budget_holds():
    cache, _ = _cache(budget=100)
    images = _decode(cache, soon={"a"}, later={"late"}, size=60)
    assert cache.cached_bytes == 60
    cache.want(KEY, "a", (1, SHARD))
    cache.decoded(KEY)
    cache.release(KEY, "a")
    assert cache.want(KEY, "late", (5, SHARD)).images is images  # kept for the late starter
    cache.release(KEY, "late")
    assert cache.get(KEY) is None and cache.cached_bytes == 0


def test_the_budget_is_respected():
    cache, _ = _cache(budget=100)
    other = ("node-a", "recipe", 1)
    _decode(cache, soon={"a"}, later={"late"}, size=60)
    _decode(cache, key=other, soon={"a"}, later={"late"}, size=60)  # 120 bytes would not fit
    assert cache.cached_bytes == 60
    assert cache.get(other).consumers == {"a"} and cache.get(other).cached_bytes == 0
    # crops only for running pairs are not cached for later, so they do not count
    _decode(cache, key=("node-a", "recipe", 2), soon={"a"}, size=60)
    assert cache.cached_bytes == 60
    # a late starter the budget could not hold decodes again: the crops go with their last user
    cache.want(other, "a", (1, Shard(1, 2, 4)))
    cache.decoded(other)
    cache.release(other, "a")
    assert cache.get(other) is None


def test_a_failed_pair_stops_consuming_and_waiting():
    cache, _ = _cache()
    ready_key, decoding_key = KEY, ("node-a", "recipe", 1)
    _decode(cache, soon={"a", "failed"})
    cache.decoded(ready_key)
    _decode(cache, key=decoding_key)
    cache.want(decoding_key, "failed", (7, Shard(1, 2, 4)))
    cache.drop_pair("failed", {7})
    assert cache.get(ready_key).consumers == {"a"}
    entry = cache.get(decoding_key)
    assert entry.consumers == set() and entry.waiters == []  # kept while the decode is out
    _, waiters = cache.decoded(decoding_key)
    assert waiters == [] and cache.get(decoding_key) is None  # nobody wants it: gone
    cache.release(ready_key, "a")
    assert cache.entries == {} and cache.cached_bytes == 0


def test_a_lost_decode_is_forgotten_and_its_waiters_ask_again():
    cache, _ = _cache()
    _decode(cache, soon={"a"}, later={"late"})
    cache.want(KEY, "a", (1, SHARD))
    cache.want(KEY, "b", (2, SHARD))
    assert cache.lost(KEY) == [(1, SHARD), (2, SHARD)]
    assert cache.get(KEY) is None and cache.cached_bytes == 0
    images = _decode(cache, soon={"b"})  # the re-request decodes anew
    assert cache.want(KEY, "a", (1, SHARD)) is None
    entry, waiters = cache.decoded(KEY)
    assert entry.images is images and waiters == [(1, SHARD)]


def test_a_pair_that_inferred_on_one_node_needs_no_copy_on_another():
    cache, _ = _cache()
    there = ("node-b", "recipe", SHARD.index)
    _decode(cache, soon={"a"}, later={"late"})  # node-a: kept for late as well
    _decode(cache, key=there, soon={"late"})  # late runs on node-b: its node decodes its own copy
    cache.decoded(KEY)
    cache.decoded(there)
    cache.release(there, "late")
    assert cache.get(there) is None  # nobody else on node-b
    assert cache.get(KEY).consumers == {"a"}  # late let go of node-a's copy
    cache.release(KEY, "a")
    assert cache.entries == {} and cache.cached_bytes == 0


def test_crops_beyond_the_budget_are_not_worth_cutting_for_later_pairs_alone():
    cache, _ = _cache(budget=100)
    assert cache.worth_cutting(60, set(), {"late"})
    _decode(cache, soon={"a"}, later={"late"}, size=60)
    assert not cache.worth_cutting(60, set(), {"late"})  # decode again when late gets there
    assert cache.worth_cutting(60, {"b"}, set())  # a pair running near it is always fed
    assert not cache.worth_cutting(10, set(), set())
