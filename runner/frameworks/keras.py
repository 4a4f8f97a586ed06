"""Keras adapter: keras.applications builders, weights cached under $KERAS_HOME/models."""

from __future__ import annotations

import os

# Before TensorFlow loads: quiet C++ logs, and oneDNN's CPU-specific kernels off so a
# CPU result does not depend on the host's instruction set (a user's setting wins).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras.applications import imagenet_utils  # noqa: E402

from runner.catalog import ModelSpec  # noqa: E402
from runner.errors import WeightsUnavailable  # noqa: E402


def configure_determinism(seed: int, threads: int) -> dict:
    tf.config.threading.set_intra_op_parallelism_threads(threads)  # 0: TensorFlow decides
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    return {
        "seed": seed,
        "intra_op_threads": threads,
        "op_determinism": True,
        "tf32": False,
        "TF_ENABLE_ONEDNN_OPTS": os.environ["TF_ENABLE_ONEDNN_OPTS"],
    }


def cached_weights_path(spec: ModelSpec) -> Path:
    if spec.source == "user":
        return Path(spec.builder.rpartition(":")[0])  # the builder loads its own weights
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return Path(home) / "models" / (spec.weights_file or "")


def build(spec: ModelSpec, pretrained: bool) -> keras.Model:
    if spec.source == "user":
        from runner.frameworks.user import call_builder

        model = call_builder(spec)
        if not isinstance(model, keras.Model):
            raise TypeError(f"the builder returned {type(model).__name__}, not a keras.Model")
        # random weights: the same layers, freshly initialised (seeded by the adapter)
        return model if pretrained else keras.models.clone_model(model)
    builder = getattr(keras.applications, spec.builder)
    if not pretrained:
        return builder(weights=None)
    path = cached_weights_path(spec)
    try:
        return builder(weights=spec.weights_id)
    except Exception as exc:  # keras wraps download failures in plain Exception
        if path.exists() or "URL fetch failure" not in str(exc):
            raise
        raise WeightsUnavailable(spec.key, path, "KERAS_HOME") from None


def preprocess(batch: np.ndarray, mode: str) -> np.ndarray:
    """uint8 NHWC crops -> float32 model input: keras.applications.imagenet_utils'
    preprocess_input in the given mode, or the raw 0..255 floats for mode "none" (models that
    normalise inside the network, whose preprocess_input is the identity)."""
    x = batch.astype(np.float32)
    return x if mode == "none" else imagenet_utils.preprocess_input(x, mode=mode)


class KerasAdapter:
    """Inference through one compiled function that runs Keras' own `predict_step`, with the
    same XLA setting `predict` resolves: a batch of one gives bit-identical probabilities to
    `model.predict` on that image alone, without predict's per-call set-up (data adapter,
    iterator, callbacks), which dominates the time of a one-image call."""

    def __init__(self, spec: ModelSpec, weights: str, seed: int, threads: int):
        self.determinism = configure_determinism(seed, threads)
        self.spec, self.weights = spec, weights
        self.model = build(spec, pretrained=weights == "pretrained")
        self.jit_compile = bool(self.model.jit_compile)
        self._forward = tf.function(
            lambda x: self.model.predict_step((x,)),
            jit_compile=self.jit_compile,
            reduce_retracing=True,
        )

    def predict(self, batch: np.ndarray) -> np.ndarray:
        x = preprocess(batch, self.spec.preprocess)
        return np.asarray(self._forward(tf.constant(x)), dtype=np.float32)

    def provenance(self) -> dict:
        gpus = tf.config.list_logical_devices("GPU")
        return {
            "device": gpus[0].name if gpus else "cpu",
            "determinism": self.determinism,
            "inference": f"tf.function(predict_step, jit_compile={self.jit_compile})",
            "libraries": {"tensorflow": tf.__version__, "keras": keras.__version__},
            "weights_file": str(cached_weights_path(self.spec))
            if self.weights == "pretrained"
            else None,
        }


def load(spec: ModelSpec, weights: str, seed: int, threads: int) -> KerasAdapter:
    return KerasAdapter(spec, weights, seed, threads)
