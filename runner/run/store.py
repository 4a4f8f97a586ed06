"""Sizing Ray's object store, which holds the decoded crops in flight: a pure policy (no Ray).

Ray puts a local instance's store in /dev/shm; asked for more than /dev/shm holds (a container's
default is 64 MB, `docker run --shm-size` sets it), it moves the whole store to /tmp, on disk.
So a local Ray gets an explicit size that fits /dev/shm with headroom, and a run whose crops in
flight would not fit in it gets one warning naming the fix. The decode cache (crops kept for
models that start later) defaults to a share of the store.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

GB = 2**30
MEMORY_FRACTION = 0.3  # of the machine's memory, as Ray's own default
SHM_HEADROOM = 0.8  # of /dev/shm: the rest for other users of it (NCCL, PyTorch workers)
CACHE_FRACTION = 0.5  # of the store: decode_cache_gb's default; the rest for crops in flight
RAY_MINIMUM = 80 * 2**20  # Ray refuses a store under 75 MiB


@dataclass(frozen=True)
class StoreSize:
    bytes: int
    warning: str | None  # one line, when the crops in flight would spill to disk


def size_object_store(shm_free: int, memory: int, in_flight: int) -> StoreSize:
    """The store for a local Ray: Ray's default share of memory, at most SHM_HEADROOM of
    /dev/shm's free space; a warning when `in_flight` bytes of crops do not fit beside the
    decode cache (Ray then spills them to disk, at disk speed)."""
    size = max(RAY_MINIMUM, int(min(memory * MEMORY_FRACTION, shm_free * SHM_HEADROOM)))
    warning = None
    if in_flight > size * (1 - CACHE_FRACTION):
        wanted = in_flight / (1 - CACHE_FRACTION) / SHM_HEADROOM
        warning = (f"Ray's object store fits {size / GB:.1f} GB in /dev/shm ({shm_free / GB:.1f} GB "
                   f"free); the {in_flight / GB:.1f} GB of crops in flight would spill to disk: give "
                   f"the container --shm-size={max(1, round(wanted / GB + 0.5))}g (make run SHM_SIZE=...)")
    return StoreSize(size, warning)


def in_flight_bytes(slots: int, window: int, shard_size: int, crop: int) -> int:
    """Crops in the store at once: `window` shards per actor slot, of the largest crop side."""
    return slots * window * shard_size * crop * crop * 3


def decode_cache_bytes(configured_gb: float | None, store_bytes: float) -> int:
    """decode_cache_gb when given, else CACHE_FRACTION of the (smallest node's) object store."""
    return int(configured_gb * GB if configured_gb is not None else store_bytes * CACHE_FRACTION)


def machine_shm_and_memory(shm: str = "/dev/shm") -> tuple[int, int]:
    """(/dev/shm's free bytes, the machine's memory in bytes)."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        free = shutil.disk_usage(shm).free
    except OSError:  # no /dev/shm (not Linux): Ray's store then lives in memory anyway
        free = memory
    return free, memory
