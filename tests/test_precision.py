"""--precision: each framework's switches are set, recorded as the framework reports them, and
bf16 runs (on the CPU here)."""

import pytest

from .helpers import probe

TORCH_FLAGS = {"fp32": ([False, False], "highest"), "tf32": ([True, True], "high"),
               "bf16": ([False, False], "highest")}
KERAS_POLICY = {"fp32": "float32", "tf32": "float32", "bf16": "mixed_bfloat16"}


def _check_bf16_ran(result, autocast_or_policy):
    bf16 = result["bf16_run"]
    assert bf16["shape"] == [2, 1000]
    assert all(abs(total - 1) < 1e-2 for total in bf16["row_sums"])
    assert autocast_or_policy in bf16["provenance"].values()


def test_pytorch_switches():
    result = probe("pytorch", "precision_switches", {"model": "squeezenet1_1"})
    _check_bf16_ran(result, "bfloat16")  # autocast
    for setting, (allow_tf32, matmul) in TORCH_FLAGS.items():
        assert result[setting]["framework"] == {"allow_tf32": allow_tf32, "matmul": matmul}
        assert result[setting]["reported"]["torch.get_float32_matmul_precision"] == matmul


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_keras_switches(backend):
    result = probe("keras", "precision_switches", {"model": "mobilenet", "backend": backend})
    _check_bf16_ran(result, "mixed_bfloat16")
    for setting, policy in KERAS_POLICY.items():
        state = result[setting]["framework"]
        assert state["policy"] == policy
        if backend == "tensorflow":
            assert state["tf32"] is (setting == "tf32")
        elif backend == "jax":
            assert state["jax_matmul"] == {"fp32": "highest", "tf32": "tensorfloat32",
                                           "bf16": "bfloat16"}[setting]
        else:
            assert state["allow_tf32"] == TORCH_FLAGS[setting][0]
        assert result[setting]["reported"]["keras.mixed_precision.global_policy"] == policy
