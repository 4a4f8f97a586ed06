"""Keras adapter: keras.applications builders, weights cached under $KERAS_HOME/models.

Keras runs on the backend named by KERAS_BACKEND when it is imported: load through
runner.frameworks.load_adapter, which sets it (keras_runtime.select_backend). The same weight
files serve every backend.
"""

from __future__ import annotations

import os

# Before TensorFlow loads: quiet C++ logs, and oneDNN's CPU-specific kernels off so a
# CPU result does not depend on the host's instruction set (a user's setting wins).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import threading  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras.applications import imagenet_utils  # noqa: E402

from runner.catalog import ModelSpec  # noqa: E402
from runner.errors import WeightsUnavailable  # noqa: E402
from runner.frameworks import AdapterProvenance, keras_runtime  # noqa: E402
from runner.frameworks.precision import Precision, set_keras  # noqa: E402


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


def preprocess(batch: np.ndarray, mode: str, into: np.ndarray | None = None) -> np.ndarray:
    """uint8 NHWC crops -> float32 model input: keras.applications.imagenet_utils'
    preprocess_input in the given mode, or the raw 0..255 floats for mode "none" (models that
    normalise inside the network, whose preprocess_input is the identity). `into`: a float32
    buffer of the batch's shape to convert into, instead of a new array."""
    if into is None or into.shape != batch.shape:
        x = batch.astype(np.float32)
    else:
        x = into
        np.copyto(x, batch, casting="unsafe")
    return x if mode == "none" else imagenet_utils.preprocess_input(x, mode=mode)


class KerasAdapter:
    """Inference through the backend's compiled `predict_step` (keras_runtime.compiled_step):
    a batch of one gives bit-identical probabilities to `model.predict` on that image alone."""

    def __init__(self, spec: ModelSpec, weights: str, seed: int, threads: int, precision: Precision):
        self.determinism = keras_runtime.configure_determinism(seed, threads)
        self.precision, self.numerics = precision, set_keras(precision)  # before the build
        self.spec, self.weights = spec, weights
        self.model = build(spec, pretrained=weights == "pretrained")
        self._forward, self.inference = keras_runtime.compiled_step(self.model)
        self._buffers = threading.local()  # per forward thread: its one-image input buffer

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) != 1:
            return self._forward(preprocess(batch, self.spec.preprocess))
        # one image per pass: convert into this thread's buffer rather than a new array (the
        # pass has finished, and its input is no longer read, when _forward returns)
        buffer = getattr(self._buffers, "image", None)
        if buffer is None or buffer.shape != batch.shape:
            buffer = self._buffers.image = np.empty(batch.shape, np.float32)
        return self._forward(preprocess(batch, self.spec.preprocess, into=buffer))

    def provenance(self) -> AdapterProvenance:
        return AdapterProvenance(
            backend=keras_runtime.current_backend(),
            device=keras_runtime.device(),
            determinism=self.determinism,
            inference=self.inference,
            precision=self.precision,
            precision_in_effect=self.numerics,
            libraries=keras_runtime.libraries(),
            weights_file=str(cached_weights_path(self.spec)) if self.weights == "pretrained" else None,
        )


def load(spec: ModelSpec, weights: str, seed: int, threads: int, precision: Precision) -> KerasAdapter:
    return KerasAdapter(spec, weights, seed, threads, precision)
