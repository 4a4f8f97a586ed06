"""One run folder on a cluster: a local --out or --data must be the same folder on every node.

Actors write shards and read images where they run. On a cluster of several nodes, a local path
that is not one shared filesystem would scatter the shards over the nodes' own disks (the run
looks complete nowhere), or leave a node without the images. Before any actor starts, a probe on
every node reads a marker the driver wrote in --out and writes one of its own back, and reads the
dataset's first and last image; object-store URIs need no check.
"""

from __future__ import annotations

import uuid

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from runner.config import RunConfig
from runner.data.records import DatasetIndex
from runner.errors import UserError
from runner.outputs import Location

MARKER = ".kpbench-shared-check-"
PROBE_SECONDS = 120


@ray.remote(num_cpus=0, max_retries=0)
def _probe(marker: Location | None, answer: Location | None, token: str,
           images: list[Location]) -> str | None:
    """On one node: what it does not see, or None."""
    try:
        if marker is not None and answer is not None:
            if not marker.is_file() or marker.read_text() != token:
                return f"does not see the run folder {marker.parent}"
            answer.write_text(token)
        for image in images:
            if not image.is_file():
                return f"does not see {image}"
    except UserError as exc:
        return str(exc)
    return None


def require_shared_folders(cfg: RunConfig, dataset: DatasetIndex) -> None:
    """One line (UserError) when a node of a multi-node cluster does not see the local --out or
    --data folder the driver sees."""
    nodes = {node["NodeID"]: node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]}
    out = Location.of(cfg.out, cfg.s3_endpoint)
    images = [Location.of(record.path) for record in (dataset.records[0], dataset.records[-1])]
    images = [image for image in images if image.local]
    if len(nodes) < 2 or (not out.local and not images):
        return
    token = uuid.uuid4().hex
    marker = out / f"{MARKER}{token}" if out.local else None
    answers = {node_id: out / f"{MARKER}{token}-{node_id}" if marker else None for node_id in nodes}
    if marker is not None:
        marker.write_text(token)
    try:
        probes = {node_id: _probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            node_id, soft=False)).remote(marker, answer, token, images)
            for node_id, answer in answers.items()}
        for node_id, probe in probes.items():
            problem = ray.get(probe, timeout=PROBE_SECONDS)
            if problem is None and (answer := answers[node_id]) is not None and not answer.is_file():
                problem = f"writes into a run folder {out} that the driver does not see"
            if problem is not None:
                raise UserError(
                    f"node {nodes[node_id]} ({node_id[:12]}) {problem}: on a cluster of {len(nodes)} "
                    "nodes --out and --data must be one folder every node sees at the same path (a "
                    "shared filesystem), or an object-store URI such as s3://bucket/run")
    finally:
        for leftover in [marker, *answers.values()]:
            if leftover is not None:
                leftover.delete()
