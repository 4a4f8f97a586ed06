"""Numeric precision as a setting: the switches each framework needs, and what it reports back.

    fp32  strict float32 everywhere (the default; PyTorch's own default, not TensorFlow's or
          JAX's on Ampere/Hopper GPUs, which use TF32 for matrix products unless told not to)
    tf32  float32 storage, TF32 matrix products and convolutions on GPUs that have them
    bf16  bfloat16 compute (PyTorch autocast, Keras' mixed_bfloat16 policy), float32 weights

Each `set_*` function sets every switch both ways (a later call undoes an earlier one, so one
process can compare settings in turn) and returns what the framework reports as in effect,
for the provenance. Frameworks are imported inside the functions: importing this module loads
none.
"""

from __future__ import annotations

from typing import Literal, get_args

Precision = Literal["fp32", "tf32", "bf16"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
DEFAULT_PRECISION: Precision = "fp32"

# torch.set_float32_matmul_precision and jax_default_matmul_precision names for each setting
# (under bf16 the products run in bfloat16 anyway; float32 leftovers stay strict).
_TORCH_MATMUL = {"fp32": "highest", "tf32": "high", "bf16": "highest"}
_JAX_MATMUL = {"fp32": "highest", "tf32": "tensorfloat32", "bf16": "bfloat16"}
_KERAS_POLICY = {"fp32": "float32", "tf32": "float32", "bf16": "mixed_bfloat16"}


def set_torch(precision: Precision) -> dict:
    import torch

    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision(_TORCH_MATMUL[precision])
    return {
        "torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "torch.backends.cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
        "torch.get_float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


def torch_autocast(precision: Precision, device_type: str):
    """The context a PyTorch forward pass runs in: bfloat16 autocast for bf16, else a no-op."""
    import torch

    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16")


def set_tensorflow(precision: Precision) -> dict:
    import tensorflow as tf

    tf.config.experimental.enable_tensor_float_32_execution(precision == "tf32")
    return {"tf.config.experimental.tensor_float_32_execution_enabled":
            tf.config.experimental.tensor_float_32_execution_enabled()}


def set_jax(precision: Precision) -> dict:
    import jax

    jax.config.update("jax_default_matmul_precision", _JAX_MATMUL[precision])
    # the flag has a context manager: jax.config.read refuses it, the attribute reads it
    return {"jax_default_matmul_precision": jax.config.jax_default_matmul_precision}  # type: ignore[attr-defined]


_BACKEND_SWITCHES = {"tensorflow": set_tensorflow, "jax": set_jax, "torch": set_torch}


def set_keras(precision: Precision) -> dict:
    """The switches of Keras' current backend, and Keras' dtype policy (before a model is built:
    layers take the global policy when they are created)."""
    import keras

    reported = _BACKEND_SWITCHES[keras.backend.backend()](precision)
    keras.mixed_precision.set_global_policy(_KERAS_POLICY[precision])
    policy = keras.mixed_precision.global_policy()
    return {**reported, "keras.mixed_precision.global_policy": policy.name,
            "compute_dtype": policy.compute_dtype}
