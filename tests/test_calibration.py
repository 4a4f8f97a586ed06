"""The plan's estimate: images actually in the shards, speeds from the machine's record."""

import pytest

from runner.plan.calibration import (
    ASSUMED_GFLOPS_PER_S,
    Calibration,
    Setting,
    ThroughputSample,
    load_samples,
    pair_states,
    save_samples,
)
from runner.plan.pairs import plan_run

from .helpers import sample_config


def _sample(model="pytorch/resnet18", gflops=2.0, images=100, seconds=10.0, gpu=False, load=3.0,
            host="here", **setting):
    framework = model.split("/")[0]
    return ThroughputSample(framework=framework, model=model, one_image=False, gflops=gflops,
                            host=host, device="cuda:0 (H200)" if gpu else "cpu", gpu=gpu,
                            images=images, seconds=seconds, load_seconds=load, source="test", **setting)


def _wanted(model="pytorch/resnet18", gflops=2.0, **setting):
    return Setting(framework=model.split("/")[0], model=model, one_image=False, gflops=gflops, **setting)


def test_same_model_and_setting_uses_its_measured_speed():
    calibration = Calibration([_sample(), _sample(images=300, seconds=20.0)], gpu=False)
    assert calibration.image_seconds(_wanted()) == (30.0 / 400, "measured")
    assert calibration.load_seconds(_wanted()) == 3.0


def test_other_models_give_the_device_speed_scaled_by_gflops():
    # resnet18: 2 GFLOPs x 100 images in 10 s = 20 GFLOP/s on this device
    calibration = Calibration([_sample()], gpu=False)
    seconds, source = calibration.image_seconds(_wanted("pytorch/resnet50", gflops=4.0))
    assert (seconds, source) == (pytest.approx(4.0 / 20.0), "device speed")
    # a different precision is a different setting: not "measured"
    assert calibration.image_seconds(_wanted(precision="bf16"))[1] == "device speed"


def test_two_or_more_models_give_a_cost_per_image_plus_a_cost_per_gflop():
    # 0.2 s per image plus 0.1 s per GFLOP: small models are dominated by the fixed part
    samples = [_sample("pytorch/a", gflops=1.0, images=10, seconds=3.0),
               _sample("pytorch/b", gflops=3.0, images=10, seconds=5.0)]
    seconds, source = Calibration(samples, gpu=False).image_seconds(_wanted("pytorch/c", gflops=20.0))
    assert (seconds, source) == (pytest.approx(0.2 + 0.1 * 20.0), "device speed")


def test_nothing_measured_on_this_kind_of_device_is_assumed():
    calibration = Calibration([_sample(gpu=True)], gpu=False)
    assert calibration.image_seconds(_wanted()) == (2.0 / ASSUMED_GFLOPS_PER_S[False], "assumed")
    assert calibration.load_seconds(_wanted()) is None


def test_the_clusters_own_hosts_are_preferred():
    samples = [_sample(seconds=10.0, host="elsewhere"), _sample(seconds=50.0, host="here")]
    assert Calibration(samples, gpu=False, hosts={"here"}).image_seconds(_wanted())[0] == 0.5
    assert Calibration(samples, gpu=False, hosts={"new"}).image_seconds(_wanted())[0] == 60.0 / 200


def test_the_record_round_trips_and_skips_broken_files(tmp_path):
    save_samples([_sample()], "run-a", tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    assert load_samples(tmp_path) == [_sample()]


def test_shards_are_estimated_from_the_images_in_them(sample_dir, tmp_path):
    # 15 images and shard_size 1000: one shard of 15 images, not of 1000
    _, plans = plan_run(sample_config(sample_dir, tmp_path, models=["pytorch/resnet18"]))
    measured = Calibration([_sample(images=100, seconds=10.0)], gpu=False)
    states, sources = pair_states(plans, measured, max_replicas=2, assumed_load_seconds=20.0)
    assert (states[0].shards_left, states[0].shard_seconds) == (1, pytest.approx(15 * 0.1))
    assert states[0].load_seconds == 3.0 and sources == {"pytorch/resnet18": "measured"}
    states, _ = pair_states(plans, measured, 2, 20.0, measured_load=False)
    assert states[0].load_seconds == 20.0  # the user's replica_start_seconds wins
