"""Crop bytes moved between Ray nodes: a two-node cluster on this machine (`ray start` twice).

    .venv/bin/python bench/crop_traffic.py [--images 60]

Starts a head and a second node (2 fake GPUs and 3 CPUs each, their own temp folders), runs
4 random-weight models of one recipe on `--images` generated images (shards of 5), so that each
node runs models of the recipe, and asks Ray's object directory, whenever a shard's inference
finishes, on which nodes that shard's crops are: every node beyond the first holds a copy that
crossed between nodes. Prints the crop bytes moved and the crop bytes decoded. Run it with
PYTHONPATH at another checkout to measure that one (before and after). Only this script's own
nodes are stopped (their process groups), never other Ray instances on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

RAY = os.path.join(os.path.dirname(sys.executable), "ray")
MODELS = ["pytorch/squeezenet1_1", "pytorch/resnet18", "pytorch/squeezenet1_0", "pytorch/alexnet"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_nodes(tmp: Path) -> tuple[str, list[int]]:
    token = tmp / "token"
    token.write_text(secrets.token_hex(32))
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)})
    port = free_port()
    groups: list[int] = []
    common = ["--disable-usage-stats", "--num-cpus=3", "--num-gpus=2"]
    for args in ([ "--head", f"--port={port}", "--include-dashboard=false",
                  f"--ray-client-server-port={free_port()}", f"--temp-dir={tmp / 'head'}"],
                 [f"--address=127.0.0.1:{port}", f"--temp-dir={tmp / 'second'}"]):
        starter = subprocess.Popen([RAY, "start", *args, *common], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
        groups.append(starter.pid)
        _, err = starter.communicate(timeout=180)
        if starter.returncode:
            stop_nodes(groups)
            raise SystemExit(f"ray start failed:\n{err[-2000:]}")
    return f"127.0.0.1:{port}", groups


def stop_nodes(groups: list[int]) -> None:
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


def measure(address: str, data: Path, out: Path) -> tuple[int, int, int]:
    """(crop bytes moved between nodes, crop bytes decoded, nodes that ran models)."""
    import ray
    from rich.console import Console

    from runner.config import load_config
    from runner.predictions import read_provenance
    from runner.run import execute
    from runner.run.driver import run_benchmark

    copies: dict[object, tuple[int, int]] = {}  # crops' reference -> (size, most nodes holding it)
    on_inferred = execute.Execution._on_inferred

    def observed(self, replica_id, shard, ref):
        if replica_id in self.fleet.replicas:
            entry = self.crops.get(self.fleet.crop_key(replica_id, shard))
            if entry is not None:
                where = ray.experimental.get_object_locations([entry.images])[entry.images]
                size, most = copies.get(entry.images, (0, 0))
                copies[entry.images] = (where["object_size"] or size, max(most, len(where["node_ids"])))
        on_inferred(self, replica_id, shard, ref)

    execute.Execution._on_inferred = observed
    ray.init(address=address, logging_level="ERROR")
    cfg = load_config(None, {"data": str(data / "val"), "classes": str(data / "classes.txt"),
                             "out": str(out), "models": MODELS, "weights": "random",
                             "shard_size": 5, "sanity": False})
    assert run_benchmark(cfg, Console(quiet=True)).failed == {}
    ray.shutdown()
    nodes = {read_provenance(path).node_id for path in (out / "predictions").rglob("*.parquet")}
    moved = sum(size * (most - 1) for size, most in copies.values() if most > 1)
    return moved, sum(size for size, _ in copies.values()), len(nodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60)
    args = parser.parse_args()
    from runner.data.sample import write_sample_dataset

    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        tmp = Path(folder)
        data = write_sample_dataset(tmp / "data", num_classes=10, per_class=args.images // 10)
        address, groups = start_nodes(tmp)
        try:
            moved, decoded, nodes = measure(address, data, tmp / "run")
        finally:
            stop_nodes(groups)
    print(f"{len(MODELS)} models of one recipe on {nodes} nodes, {args.images} images")
    print(f"crop bytes decoded: {decoded / 1e6:.1f} MB; moved between nodes: {moved / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
