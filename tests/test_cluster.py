"""A two-node Ray cluster on one machine (`ray start`), fed from packed shards and writing to an
S3 server (tests/s3server.py): no folder is shared between the driver and the actors. Each
node takes the credentials from its own environment; the run passes none to its actors.

The head declares 1 fake GPU and the second node 2, so three actors need both nodes. Each
`ray start` runs in a process group of its own, which every process of its node stays in; the
nodes are stopped at the end, also on failure, by killing those groups only (not `ray stop`,
which would stop every Ray instance of the user on the machine).
"""

import contextlib
import os
import secrets
import signal
import subprocess
import sys

import pytest

from runner.cli import main
from runner.predictions import pair_folders, read_provenance
from runner.score.compare import compare_runs
from runner.score.reduce import score

from .helpers import ROOT, run_cli
from .s3server import BUCKET, free_port

MODELS = ["pytorch/squeezenet1_1", "pytorch/resnet18", "keras/mobilenet"]
RAY = os.path.join(os.path.dirname(sys.executable), "ray")


def _plain_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}


@pytest.fixture
def two_node_cluster(s3_server, tmp_path):
    token = tmp_path / "ray-token"
    token.write_text(secrets.token_hex(32))
    # Ray 2.60's `ray start --head` turns on token authentication; every process shares the token.
    env = {**_plain_env(), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--disable-usage-stats"]
    groups: list[int] = []
    try:
        _start_node(groups, env, "--head", f"--port={port}", "--num-cpus=1", "--num-gpus=1",
                    "--include-dashboard=false", f"--ray-client-server-port={free_port()}", *common)
        _start_node(groups, env, f"--address={address}", "--num-cpus=2", "--num-gpus=2", *common)
        yield {**env, "RAY_ADDRESS": address}
    finally:
        _stop_nodes(groups)


def _start_node(groups: list[int], env: dict, *args: str) -> None:
    starter = subprocess.Popen([RAY, "start", *args], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    groups.append(starter.pid)  # the node's process group
    _, err = starter.communicate(timeout=180)
    assert starter.returncode == 0, err[-3000:]


def _stop_nodes(groups: list[int]) -> None:
    """SIGKILL, as `ray stop --force` sends, but to this cluster's process groups only."""
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


def _run(env, *args):
    # a whole GPU per actor: three actors need both nodes
    done = run_cli("run", "--models", *MODELS, "--weights", "random", "--shard-size", "4",
                   "--gpu-share", "1", *args,
                   env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_packed_shards_on_two_nodes_to_a_bucket_equal_a_local_run(two_node_cluster, s3_server,
                                                                  sample_dir, tmp_path):
    pack = tmp_path / "pack"
    assert main(["pack", str(sample_dir / "val"), f"file://{pack}", "--classes",
                 str(sample_dir / "classes.txt"), "--rows-per-file", "6"]) == 0
    cluster_out, local_out = f"s3://{BUCKET}/cluster", tmp_path / "local"
    printed = _run(two_node_cluster, "--data", f"file://{pack}", "--out", cluster_out)
    assert "3 GPUs" in printed and "3 actor slot(s)" in printed
    assert not (ROOT / "s3:").exists()  # once, such a run wrote a local folder of that name

    files = [path for folder in pair_folders(cluster_out) for path in folder.files("*.parquet")]
    shards = [key for key in s3_server.keys("cluster/predictions") if key.endswith(".parquet")]
    assert len(files) == len(shards) == len(MODELS) * 4  # beside them: each model's _sanity.json
    nodes = {read_provenance(path).node_id for path in files}
    assert len(nodes) == 2, "actors ran on one node only"
    rows = score(cluster_out)
    assert [(r.images, r.errors, r.missing) for r in rows] == [(15, 0, 0)] * len(MODELS)

    _run(_plain_env(), "--data", str(sample_dir / "val"), "--classes",
         str(sample_dir / "classes.txt"), "--out", str(local_out))
    comparison = compare_runs(local_out, cluster_out)
    assert len(comparison) == len(MODELS)
    assert all(row.identical for row in comparison), comparison
