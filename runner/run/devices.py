"""Devices that failed during a run: excluded from placement, written down, summed up at the end.

Pure bookkeeping plus one file: OUT/predictions/_devices.json lists each device that faulted (and
each node lost) in this and earlier runs of the folder, one entry each: device, node, error, time.
The leading `_` keeps Parquet readers away, as for `_failed.json`.
"""

from __future__ import annotations

import json
import time

from pydantic import BaseModel

from runner.outputs import Location
from runner.run.faults import PairError

DEVICES_FILE = "_devices.json"

# A device excluded from placement: (node id, GPU id), or (node id, None) for a whole node.
DeviceKey = tuple[str, str | None]


class DeviceRecord(BaseModel):
    """One entry of _devices.json."""

    device: str  # in words: "GPU 1 of host-a", or the host for a node
    node_id: str | None
    hostname: str | None
    gpu_ids: list[str]
    error: str  # the fault's one line, or "node lost"
    pair: str | None  # the pair that met it
    run_id: str
    time: float  # Unix time


class DeviceLog:
    def __init__(self, out: Location, run_id: str, max_retries: int):
        self.path = Location.of(out) / "predictions" / DEVICES_FILE
        self.run_id, self.max_retries = run_id, max_retries
        self.excluded: frozenset[DeviceKey] = frozenset()
        self.records: list[DeviceRecord] = []  # this run's
        self.retries: dict[str, int] = {}  # pair key -> restarts away from a faulty device

    def fault(self, pair: str, error: PairError) -> int | None:
        """A device fault met by `pair`: exclude the device (its GPUs, or the whole node when it
        has none) and write it down; the pair's retry number, or None when it has used them all."""
        if error.node_id is not None:
            gpus: list[str | None] = list(error.gpu_ids) or [None]
            self.excluded |= {(error.node_id, gpu) for gpu in gpus}
        self._add(DeviceRecord(device=error.device, node_id=error.node_id, hostname=error.hostname,
                               gpu_ids=list(error.gpu_ids), error=error.message, pair=pair,
                               run_id=self.run_id, time=time.time()))
        retries = self.retries.get(pair, 0)
        if retries >= self.max_retries:
            return None
        self.retries[pair] = retries + 1
        return retries + 1

    def node_lost(self, node_id: str, hostname: str | None) -> None:
        where = f"node {hostname or node_id[:12]} ({node_id[:12]})"
        self._add(DeviceRecord(device=where, node_id=node_id, hostname=hostname, gpu_ids=[],
                               error="node lost", pair=None, run_id=self.run_id, time=time.time()))

    def summary(self) -> list[str]:
        """One line per device this run excluded or lost, for the end of the run."""
        return [f"{'lost' if r.error == 'node lost' else 'excluded'} {r.device}"
                + (f" (node {r.node_id[:12]})" if r.node_id and r.error != "node lost" else "")
                + (f": {r.error}; {r.pair} restarted away from it" if r.pair else
                   ": its pairs resumed on the remaining nodes")
                for r in self.records]

    def _add(self, record: DeviceRecord) -> None:
        self.records.append(record)
        earlier = json.loads(self.path.read_text()) if self.path.is_file() else []
        self.path.write_text(json.dumps([*earlier, record.model_dump(mode="json")], indent=1))


def read_devices(out: Location | str) -> list[DeviceRecord]:
    """The entries of a run folder's _devices.json (none when no device failed)."""
    path = Location.of(out) / "predictions" / DEVICES_FILE
    return [DeviceRecord(**entry) for entry in json.loads(path.read_text())] if path.is_file() else []
