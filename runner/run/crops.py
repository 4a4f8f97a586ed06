"""Decoded crops shared between pairs: who infers from each decode, and when to let it go.

Pure bookkeeping, no Ray: `images` and `report` are whatever the caller stores (object
references in a run). An entry is one shard's crops under one decode key on one node (crops stay
on the node of the models that infer from them; one decode cuts several entries, one per recipe).
Every pair that will infer from an entry is a consumer, and a replica that asked before the
decode finished waits. An entry goes (its last reference, so the object store frees it) once no
consumer and no waiter is left. Crops kept for pairs that are not running near the shard yet
count against a budget in bytes; beyond it, they are not kept: the image is decoded again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from runner.data.records import ImageRecord, Shard

CropKey = tuple[str | None, str, int]  # (Ray node, decode key, shard index)
Waiter = tuple[int, Shard]  # (replica id, shard it will infer)


@dataclass
class CropEntry:
    images: object  # uint8 crops of the shard's readable images
    report: object  # per record why it could not be read (or None), decode id, time
    ready: bool = False
    consumers: set[str] = field(default_factory=set)  # pairs that will infer from it
    waiters: list[Waiter] = field(default_factory=list)  # replicas to start once it is ready
    cached_bytes: int = 0  # counted against the budget: kept for pairs not running near it


class CropCache:
    def __init__(self, budget_bytes: int, load_records: Callable[[Shard], list[ImageRecord]]):
        self.budget_bytes = budget_bytes
        self.cached_bytes = 0
        self.entries: dict[CropKey, CropEntry] = {}
        self._load_records = load_records
        self._records: dict[int, list[ImageRecord]] = {}  # shard index -> its records, while used

    def get(self, crop_key: CropKey) -> CropEntry | None:
        return self.entries.get(crop_key)

    def records(self, shard: Shard) -> list[ImageRecord]:
        """A shard's records, kept while some entry of that shard is."""
        if shard.index not in self._records:
            self._records[shard.index] = self._load_records(shard)
        return self._records[shard.index]

    def worth_cutting(self, size: int, soon: set[str], later: set[str]) -> bool:
        """Crops of `size` bytes would have a consumer: a pair running near them, or one that
        reaches them later while the budget holds them."""
        return bool(soon) or bool(later) and self.cached_bytes + size <= self.budget_bytes

    def add(self, crop_key: CropKey, images: object, report: object, size: int,
            soon: set[str], later: set[str]) -> None:
        """A decode in flight. `soon`: pairs running near the shard, always consumers; `later`:
        the other pairs that will reach it, consumers too while the budget holds `size` more
        bytes (Ray spills what does not fit in memory to disk, still cheaper than decoding again).
        """
        entry = CropEntry(images, report, consumers=set(soon))
        if later and self.cached_bytes + size <= self.budget_bytes:
            entry.consumers |= later
            entry.cached_bytes = size
            self.cached_bytes += size
        self.entries[crop_key] = entry

    def want(self, crop_key: CropKey, pair: str, waiter: Waiter) -> CropEntry | None:
        """`pair` will infer from these crops: the entry when decoded, else None (it waits)."""
        entry = self.entries[crop_key]
        entry.consumers.add(pair)
        if entry.ready:
            return entry
        entry.waiters.append(waiter)
        return None

    def decoded(self, crop_key: CropKey) -> tuple[CropEntry, list[Waiter]]:
        """The decode finished: the entry and the replicas that waited for it."""
        entry = self.entries[crop_key]
        entry.ready = True
        waiters, entry.waiters = entry.waiters, []
        if not waiters:
            self._drop_if_unused(crop_key)
        return entry, waiters

    def lost(self, crop_key: CropKey) -> list[Waiter]:
        """The decode failed (its actor died): forget it; the waiters ask again."""
        waiters = self.entries[crop_key].waiters
        self._forget(crop_key)
        return waiters

    def release(self, crop_key: CropKey, pair: str) -> None:
        """`pair` has inferred from these crops: it needs no copy of them on any node."""
        _, decode_key, index = crop_key
        for key in [key for key in self.entries if key[1:] == (decode_key, index)]:
            self.entries[key].consumers.discard(pair)
            if self.entries[key].ready:  # one in flight goes when its decode finishes
                self._drop_if_unused(key)

    def drop_pair(self, pair: str, replicas: set[int]) -> None:
        """A failed pair: it consumes nothing and its replicas wait for nothing any more."""
        for entry in self.entries.values():
            entry.consumers.discard(pair)
        self.drop_waiters(replicas)

    def drop_waiters(self, replicas: set[int]) -> None:
        """Replicas gone (their pair failed, or their device): they wait for nothing any more;
        their pairs stay consumers."""
        for crop_key, entry in list(self.entries.items()):
            entry.waiters = [(r, s) for r, s in entry.waiters if r not in replicas]
            if entry.ready:  # one in flight goes when its decode finishes
                self._drop_if_unused(crop_key)

    def _drop_if_unused(self, crop_key: CropKey) -> None:
        entry = self.entries[crop_key]
        if not entry.consumers and not entry.waiters:
            self._forget(crop_key)

    def _forget(self, crop_key: CropKey) -> None:
        entry = self.entries.pop(crop_key)
        self.cached_bytes -= entry.cached_bytes
        if not any(index == crop_key[2] for _, _, index in self.entries):
            self._records.pop(crop_key[2], None)
