"""Two Ray nodes on this machine (`ray start`, as in test_cluster.py): a local run folder that the
second node cannot see is refused before any actor starts, and losing that node mid-run still
leaves a complete run.

The second node runs in its own mount namespace (`unshare -m`, this machine runs the tests as
root) with a tmpfs over one folder: what the driver writes there, that node does not see.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from runner.data.sample import write_sample_dataset

from .helpers import ROOT, read_predictions, run_cli
from .s3server import free_port
from .test_cluster import RAY, _plain_env, _stop_nodes
from .test_real_weights import USER_MODELS

SLOW = ["slow_a", "slow_b", "slow_c"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                reason="needs root and unshare(1) for a private mount namespace")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head (1 CPU) and a second node (2 CPUs) that cannot see `hidden`."""
    root = tmp_path_factory.mktemp("cluster")
    hidden = root / "hidden"
    hidden.mkdir()
    token = root / "ray-token"
    token.write_text(secrets.token_hex(32))
    env = {**_plain_env(), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    address = f"127.0.0.1:{free_port()}"
    groups: list[int] = []
    # Ray's socket paths must stay under 107 bytes: short temp dirs, not pytest's deep ones
    temp = Path(tempfile.mkdtemp(prefix="kpb-"))
    try:
        _start(groups, env, [RAY, "start", "--head", f"--port={address.split(':')[1]}", "--num-cpus=1",
                             "--include-dashboard=false", f"--ray-client-server-port={free_port()}",
                             f"--temp-dir={temp / 'h'}", "--disable-usage-stats"])
        worker = [RAY, "start", f"--address={address}", "--num-cpus=2", f"--temp-dir={temp / 'w'}",
                  "--disable-usage-stats"]
        _start(groups, env, ["unshare", "-m", "sh", "-c",
                             f"mount -t tmpfs kpbench-test {hidden} && exec {' '.join(worker)}"])
        yield {"env": {**env, "RAY_ADDRESS": address}, "root": root, "hidden": hidden, "worker": groups[1]}
    finally:
        _stop_nodes(groups)
        shutil.rmtree(temp, ignore_errors=True)


def _start(groups: list[int], env: dict, command: list[str]) -> None:
    starter = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    groups.append(starter.pid)  # the node's process group
    _, err = starter.communicate(timeout=180)
    assert starter.returncode == 0, err[-3000:]


def _args(data: Path, out: Path, models: list[str], shard_size: int) -> list[str]:
    return ["run", "--catalog", str(USER_MODELS / "faults.yaml"), "--models", *models, "--data",
            str(data / "val"), "--classes", str(data / "classes.txt"), "--out", str(out),
            "--weights", "random", "--no-sanity", "--shard-size", str(shard_size)]


def test_a_run_folder_the_second_node_cannot_see_is_refused(cluster):
    root, hidden = cluster["root"], cluster["hidden"]
    data = write_sample_dataset(root / "visible-data", num_classes=2, per_class=2)
    done = run_cli(*_args(data, hidden / "out", SLOW[:1], 4), env=cluster["env"], timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("kpbench: error: node ") and "does not see the run folder" in line
    assert "on a cluster of 2 nodes" in line
    assert not list((hidden / "out").rglob("*.parquet"))  # no actor started
    assert not list((hidden / "out").glob(".kpbench-shared-check-*"))

    hidden_data = write_sample_dataset(hidden / "data", num_classes=2, per_class=2)
    done = run_cli(*_args(hidden_data, root / "out-visible", SLOW[:1], 4), env=cluster["env"], timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    [line] = done.stderr.strip().splitlines()
    assert "does not see" in line and str(hidden / "data") in line


def _raylet(group: int) -> int:
    """The pid of the raylet in a node's process group."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)
            if "(raylet" in fields[0] and int(fields[1].split()[2]) == group:
                return int(stat.parent.name)
    raise AssertionError("no raylet in the worker node's process group")


def test_losing_a_node_mid_run_leaves_a_complete_run(cluster):
    root = cluster["root"]
    data = write_sample_dataset(root / "data", num_classes=5, per_class=6)  # 30 images
    out = root / "out"
    run = subprocess.Popen([sys.executable, "-m", "runner", *_args(data, out, SLOW, 2)], cwd=ROOT,
                           env=cluster["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 400
        while len(list(out.rglob("*.parquet"))) < 6:  # the first shards are in: the run folder is accepted
            assert run.poll() is None, run.communicate()
            assert time.time() < deadline, "no shards written"
            time.sleep(0.2)
        os.kill(_raylet(cluster["worker"]), signal.SIGKILL)
        printed, err = run.communicate(timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            run.kill()
    assert run.returncode == 0, printed[-3000:] + err[-3000:]
    assert "lost node" in printed and "its pairs resumed on the remaining nodes" in printed
    frame = read_predictions(out).to_pandas()
    for model in SLOW:  # every pair finished, one row per image, nothing twice
        rows = frame[frame.model == model]
        assert sorted(rows.position) == list(range(30)), model
        assert (rows.status == "ok").all()
    assert not list(out.rglob("_failed.json"))
