"""How hard each node decodes: threads from the CPUs that model actors leave free, and how far
decoding runs ahead of the models, within the crop budget.

Pure policy, no Ray (bench/feed.py's simulation uses it too). Each node has one decoder whose
threads serve every shard decode of that node, so its cores stay busy whichever models wait.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MIN_WINDOW = 2  # shards a replica holds: one inferring, the next decoding
MAX_WINDOW = 6  # deeper prefetch gains nothing once the decoder's threads are always busy
CALLS_PER_DECODER = 8  # shard decodes a node's decoder runs at once (their images share its threads)


@dataclass(frozen=True)
class NodeCpus:
    cpus: float  # the node's CPUs
    reserved_cpus: float  # held by the model actors that fit on it


@dataclass(frozen=True)
class Feed:
    """What the run's event loop follows: shards per replica, decode threads per node."""

    window: int
    threads_by_node: dict[str, int] = field(default_factory=dict)

    def threads(self, node: str | None) -> int:
        """A node's decode threads; a node not known at the start gets the fewest of any."""
        return self.threads_by_node.get(node or "", min(self.threads_by_node.values(), default=1))


@dataclass(frozen=True)
class FeedPolicy:
    budget_bytes: int  # decode_cache_gb: crops held ahead of or behind the models
    threads_setting: int | None = None  # decode_threads when set; None: sized to the node

    def threads(self, node_cpus: float, reserved_cpus: float) -> int:
        """Images a node decodes at once: its CPUs that no model actor holds (at least one)."""
        if self.threads_setting is not None:
            return self.threads_setting
        return max(1, int(node_cpus - reserved_cpus + 1e-9))

    def window(self, shard_bytes: int, slots: int) -> int:
        """Shards a replica holds at once: one inferring and the rest decoded ahead, as deep as
        the budget holds every slot's crops decoded ahead (`shard_bytes`: one shard's crops of
        every recipe of the run)."""
        ahead = self.budget_bytes // max(1, shard_bytes * slots)
        return max(MIN_WINDOW, min(MAX_WINDOW, 1 + ahead))

    def feed(self, nodes: dict[str, NodeCpus], shard_bytes: int, slots: int) -> Feed:
        return Feed(self.window(shard_bytes, slots),
                    {node: self.threads(c.cpus, c.reserved_cpus) for node, c in nodes.items()})
