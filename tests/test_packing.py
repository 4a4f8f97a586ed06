"""The packing policy (runner/run/packing.py) and the per-actor GPU memory policy
(runner/frameworks/memory.py), without Ray: slots per node, shares per kind, the device choice."""

from __future__ import annotations

import os

import pytest

from runner.config import load_config
from runner.errors import UserError
from runner.frameworks.memory import CONTEXT_HEADROOM, memory_policy
from runner.run.packing import (
    ActorRequest,
    GpuShares,
    NodeCapacity,
    actor_request,
    choose_device,
    cluster_slots,
    node_slots,
    per_gpu,
    planning_request,
    planning_share,
)

MANY_CPUS = 1000.0


@pytest.mark.parametrize(("gpus", "share", "slots"), [
    (8, 0.3, 24),  # floor(1/0.3) = 3 per GPU, not 8 / 0.3 = 26
    (2, 0.4, 4),  # 2 per GPU, not 2 / 0.4 = 5
    (8, 0.25, 32),
    (8, 1.0, 8),
    (2, 0.5, 4),
    (1, 0.34, 2),
])
def test_slots_are_counted_per_gpu(gpus, share, slots):
    assert node_slots(NodeCapacity(cpus=MANY_CPUS, gpus=gpus), share, 0.5) == slots


def test_a_node_holds_no_more_actors_than_its_cpus_allow():
    assert node_slots(NodeCapacity(cpus=2, gpus=8), 0.3, 1.0) == 2  # 24 by GPUs, 2 by CPUs
    assert node_slots(NodeCapacity(cpus=2, gpus=8), 0.3, 0.5) == 4
    assert node_slots(NodeCapacity(cpus=8, gpus=2), 0.4, 1.0) == 4  # by GPUs
    assert node_slots(NodeCapacity(cpus=3, gpus=2), 0.4, 1.0) == 3  # by CPUs


def test_cpu_only_nodes_and_clusters():
    assert node_slots(NodeCapacity(cpus=16), 0.0, 1.0) == 16  # no GPU asked: CPUs decide
    assert node_slots(NodeCapacity(cpus=16), 0.5, 0.5) == 0  # a GPU actor has no room here
    head, worker = NodeCapacity(cpus=4), NodeCapacity(cpus=32, gpus=8)
    assert cluster_slots([head, worker], 0.3, 0.5) == 24  # the CPU head adds no GPU slot
    assert cluster_slots([head, worker, worker], 0.3, 0.5) == 48  # a node joining adds its slots
    assert cluster_slots([NodeCapacity(cpus=0.5)], 0.0, 1.0) == 1  # a run always progresses


def test_fractional_gpus_and_float_rounding():
    assert per_gpu(0.1) == 10 and per_gpu(1 / 3) == 3 and per_gpu(0.2) == 5
    assert node_slots(NodeCapacity(cpus=MANY_CPUS, gpus=1.5), 0.5, 1.0) == 3


def test_shares_per_framework_and_mode():
    shares = GpuShares.of({"keras_reproducible": 0.2})
    assert shares.for_pair("keras", one_image=True) == 0.2
    assert shares.for_pair("keras", one_image=False) == GpuShares().keras_batched
    assert shares.for_pair("pytorch", one_image=False) == GpuShares().pytorch
    assert GpuShares.of(0.4) == GpuShares(pytorch=0.4, keras_reproducible=0.4, keras_batched=0.4)
    assert GpuShares().keras_reproducible < 1 / 2, "several one-image Keras actors per GPU by default"
    # mixed shares: slots counted at the largest, so that whichever pair takes a slot fits
    assert planning_share([0.25, 0.5, 0.25]) == 0.5
    # and a CPU-hungry pair's CPUs, even where its share is not the largest
    asks = [ActorRequest(0.25, 1.0), ActorRequest(0.5, 0.5)]
    assert planning_request(asks) == ActorRequest(0.5, 1.0)


def test_config_resolves_shares(tmp_path):
    base = {"data": str(tmp_path)}
    assert load_config(None, base).gpu_shares == GpuShares()
    assert load_config(None, {**base, "gpus_per_actor": 0.3}).gpu_shares == GpuShares.of(0.3)
    assert load_config(None, {**base, "gpu_share": {"pytorch": 1.0}}).gpu_shares.pytorch == 1.0
    for bad, message in (({"gpu_share": {"pytorh": 0.3}}, "did you mean 'pytorch'"),
                         ({"gpu_share": {"pytorch": 1.5}}, "less than or equal to 1"),
                         ({"gpu_share": 0.3, "gpus_per_actor": 0.3}, "not both")):
        with pytest.raises(UserError, match=message):
            load_config(None, {**base, **bad})


def test_a_gpu_actor_reserves_only_the_cpu_that_drives_its_gpu():
    gpu = actor_request("gpu", 0.25, 1.0, 0.5)
    assert (gpu.gpus, gpu.cpus) == (0.25, 0.5)
    cpu = actor_request("cpu", 0.25, 1.0, 0.5)
    assert (cpu.gpus, cpu.cpus) == (0.0, 1.0)


def test_a_cpu_run_is_refused_where_gpus_sit_unused():
    assert choose_device("auto", 2, 2) == "gpu"
    assert choose_device("auto", 0, 0) == "cpu"
    assert choose_device("cpu", 8, 8) == "cpu"  # asked for explicitly
    with pytest.raises(UserError, match="this machine has 8.*--device cpu"):
        choose_device("auto", 0, 8)
    with pytest.raises(UserError, match="declares no GPU"):
        choose_device("gpu", 0, 0)


@pytest.mark.parametrize(("framework", "backend", "env", "torch_fraction"), [
    ("keras", "tensorflow", {"TF_FORCE_GPU_ALLOW_GROWTH": "true"}, None),
    ("keras", "jax", {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.225"},
     None),
    ("keras", "torch", {}, 0.225),
    ("pytorch", None, {}, 0.225),
])
def test_memory_policy_per_framework_and_backend(framework, backend, env, torch_fraction):
    policy = memory_policy(framework, backend, 0.25)
    assert policy.env == env and policy.torch_fraction == torch_fraction
    assert policy.record()["gpu_share"] == 0.25
    if torch_fraction:
        assert torch_fraction == pytest.approx(0.25 * (1 - CONTEXT_HEADROOM))
        assert policy.record()["torch_memory_fraction"] == torch_fraction


@pytest.mark.parametrize(("framework", "backend"), [("pytorch", None), ("keras", "tensorflow"),
                                                    ("keras", "jax"), ("keras", "torch")])
def test_an_actor_without_a_gpu_sees_none(framework, backend, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    policy = memory_policy(framework, backend, 0.0)
    assert policy.env == {"CUDA_VISIBLE_DEVICES": ""} and policy.torch_fraction is None
    policy.before_import()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""


def test_the_object_store_fits_dev_shm_with_headroom():
    from runner.run.store import GB, decode_cache_bytes, in_flight_bytes, size_object_store

    in_flight = in_flight_bytes(slots=32, window=2, shard_size=1000, crop=331)  # 8 GPUs x 4
    assert in_flight / GB == pytest.approx(19.6, abs=0.1)
    roomy = size_object_store(shm_free=64 * GB, memory=512 * GB, in_flight=in_flight)
    assert roomy.bytes == int(64 * GB * 0.8) and roomy.warning is None
    docker_default = size_object_store(shm_free=4 * GB, memory=512 * GB, in_flight=in_flight)
    assert docker_default.bytes <= 4 * GB  # never more than /dev/shm: Ray would move it to disk
    assert "spill to disk" in docker_default.warning and "--shm-size=49g" in docker_default.warning
    assert size_object_store(64 * GB, 16 * GB, 0).bytes == int(16 * GB * 0.3)  # memory bounds it
    assert decode_cache_bytes(None, 8 * GB) == 4 * GB and decode_cache_bytes(1.5, 8 * GB) == 1.5 * GB


def test_one_image_passes_in_flight_follow_the_share():
    from runner.run.packing import passes_in_flight

    assert [passes_in_flight(share) for share in (0.0, 0.25, 0.5, 1.0)] == [2, 2, 4, 8]


def test_batch_size_auto_keeps_the_configured_value_in_the_key():
    from runner.frameworks import AUTO_BATCH_FALLBACK, resolve_batch
    from runner.predictions import PairIdentity

    identity = {"schema_version": 1, "dataset": "d", "spec": {}, "weights": "random",
                "protocol": "reference", "seed": 0}
    fixed, auto = PairIdentity(**identity, forward_batch=64), PairIdentity(**identity, forward_batch="auto")
    assert fixed.key != auto.key  # the key names the configured batch, not the one found

    class NoMeasure:
        pass

    class Measures:
        def largest_batch(self, limit: int) -> int:
            return limit // 4

    assert resolve_batch(NoMeasure(), "auto") == AUTO_BATCH_FALLBACK
    assert resolve_batch(Measures(), "auto") == 128 and resolve_batch(Measures(), 32) == 32


def test_nodes_joining_during_a_run_add_slots():
    from runner.run.packing import SlotWatch

    counts, now = iter([2, 6, 6, 2]), [0.0]
    watch = SlotWatch(lambda: next(counts), period=10.0, clock=lambda: now[0])
    changes = []
    for _ in range(4):
        changes.append(watch.change())
        now[0] += 10.0
    assert watch.slots == 2 and changes == [0, 4, 0, -4]  # a node joins, stays, leaves
