"""A two-node Ray cluster on one machine (`ray start`), fed from packed shards.

The head declares 1 fake GPU and the second node 2, so three actors need both nodes. Both
nodes are stopped at the end with `ray stop`, also on failure (this stops every Ray process of
the user on the machine: do not run it beside another Ray job).
"""

import os
import secrets
import socket
import subprocess
import sys

import pytest

from runner.cli import main
from runner.predictions import read_provenance
from runner.score.compare import compare_runs
from runner.score.reduce import score

from .helpers import run_cli

MODELS = ["pytorch/squeezenet1_1", "pytorch/resnet18", "keras/mobilenet"]
RAY = os.path.join(os.path.dirname(sys.executable), "ray")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _plain_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}


@pytest.fixture
def two_node_cluster(tmp_path):
    token = tmp_path / "ray-token"
    token.write_text(secrets.token_hex(32))
    # Ray 2.60's `ray start --head` turns on token authentication; every process shares the token.
    env = {**_plain_env(), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--disable-usage-stats"]
    try:
        subprocess.run([RAY, "start", "--head", f"--port={port}", "--num-cpus=1", "--num-gpus=1",
                        "--include-dashboard=false", *common], env=env, check=True,
                       capture_output=True, timeout=180)
        subprocess.run([RAY, "start", f"--address={address}", "--num-cpus=2", "--num-gpus=2",
                        *common], env=env, check=True, capture_output=True, timeout=180)
        yield {**env, "RAY_ADDRESS": address}
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=180)


def _run(env, *args):
    done = run_cli("run", "--models", *MODELS, "--weights", "random", "--shard-size", "4", *args,
                   env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_packed_shards_on_two_nodes_equal_a_local_run(two_node_cluster, sample_dir, tmp_path):
    pack = tmp_path / "pack"
    assert main(["pack", str(sample_dir / "val"), f"file://{pack}", "--classes",
                 str(sample_dir / "classes.txt"), "--rows-per-file", "6"]) == 0
    cluster_out, local_out = tmp_path / "cluster", tmp_path / "local"
    printed = _run(two_node_cluster, "--data", f"file://{pack}", "--out", str(cluster_out))
    assert "3 GPUs" in printed and "3 actor slot(s)" in printed

    nodes = {read_provenance(p)["node_id"] for p in (cluster_out / "predictions").rglob("*.parquet")}
    assert len(nodes) == 2, "actors ran on one node only"
    rows = score(cluster_out)
    assert [(r["images"], r["errors"], r["missing"]) for r in rows] == [(15, 0, 0)] * len(MODELS)

    _run(_plain_env(), "--data", str(sample_dir / "val"), "--classes",
         str(sample_dir / "classes.txt"), "--out", str(local_out))
    comparison = compare_runs(local_out, cluster_out)
    assert len(comparison) == len(MODELS)
    assert all(row["identical"] for row in comparison), comparison
