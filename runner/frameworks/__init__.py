"""Framework adapters: one small class per framework, the same interface for both.

    adapter = load_adapter(spec, weights="pretrained" | "random", seed=0, threads=1,
                           precision="fp32", backend=None,  # backend: Keras only
                           channels_last=False, torch_compile=False)  # PyTorch only
    probabilities = adapter.predict(uint8_nhwc_batch)   # float32 (N, 1000), rows sum to 1
    adapter.provenance()                                # what the result depends on

Each adapter module also has build(spec, pretrained) and cached_weights_path(spec).

Each adapter module imports its framework when loaded; a process loads one framework (and,
for Keras, one backend) only, and the driver loads none. Nothing here imports Ray, so the
adapters run without it (bench/gpu_check.py).
"""

from __future__ import annotations

import importlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from runner.catalog import ModelSpec
from runner.frameworks.keras_runtime import DEFAULT_BACKEND, KerasBackend, select_backend
from runner.frameworks.memory import MemoryPolicy
from runner.frameworks.precision import DEFAULT_PRECISION, Precision


class AdapterProvenance(BaseModel):
    """What an adapter records in every file it predicts (fields of runner.predictions.Provenance)."""

    model_config = ConfigDict(extra="forbid")

    device: str
    determinism: dict[str, Any]  # the framework settings that make runs repeat
    precision: Precision
    precision_in_effect: dict[str, Any]  # the switches the framework reports
    libraries: dict[str, str]
    weights_file: str | None  # pretrained weights: the cached file they came from
    backend: KerasBackend | None = None  # Keras: the backend it ran on
    inference: str | None = None  # how the forward pass is compiled, where that varies
    memory_format: str | None = None  # PyTorch's, when not the default (channels_last)

    def entries(self) -> dict[str, Any]:
        """The entries the adapter gave (PyTorch gives no backend or inference)."""
        return self.model_dump(exclude_unset=True)


class Adapter(Protocol):
    def predict(self, batch: np.ndarray) -> np.ndarray: ...

    def provenance(self) -> AdapterProvenance: ...


def load_adapter(spec: ModelSpec, weights: str, seed: int, threads: int,
                 precision: Precision = DEFAULT_PRECISION,
                 backend: KerasBackend | None = None, memory: MemoryPolicy | None = None,
                 channels_last: bool = False, torch_compile: bool = False) -> Adapter:
    """`memory`: the actor's GPU memory policy (runner/frameworks/memory.py), applied around
    the framework's import; None leaves the framework's own defaults. channels_last and
    torch_compile: PyTorch's memory format and compiler (variants)."""
    if spec.framework == "keras":
        if channels_last or torch_compile:
            raise ValueError(f"{spec.key}: channels_last and torch_compile are for PyTorch models")
        select_backend(backend or DEFAULT_BACKEND, threads)  # before Keras is imported
        module = importlib.import_module("runner.frameworks.keras")
        return module.load(spec, weights=weights, seed=seed, threads=threads, precision=precision)
    if backend is not None:
        raise ValueError(f"{spec.key}: a backend is for Keras models only")
    if memory is not None:
        memory.before_import()
    module = importlib.import_module(f"runner.frameworks.{spec.framework}")
    if memory is not None:
        memory.after_import()  # before the model is built
    return module.load(spec, weights=weights, seed=seed, threads=threads, precision=precision,
                       channels_last=channels_last, torch_compile=torch_compile)


AUTO_BATCH_LIMIT = 512  # the largest batch `batch_size: auto` tries
AUTO_BATCH_FALLBACK = 64  # auto's batch for an adapter that cannot measure what fits


def resolve_batch(adapter: Adapter, configured: int | str) -> int:
    """The batch an actor uses: the configured one, or for `auto` the largest that fits the
    actor's GPU share (PyTorch measures it once per model, `largest_batch`)."""
    if configured != "auto":
        return int(configured)
    largest = getattr(adapter, "largest_batch", None)
    return largest(AUTO_BATCH_LIMIT) if largest is not None else AUTO_BATCH_FALLBACK


def forward(adapter: Adapter, images: np.ndarray, forward_batch: int, forward_threads: int) -> np.ndarray:
    """Probabilities for uint8 NHWC `images`, `forward_batch` images per forward pass.

    One-image passes leave a device (or cores) idle between calls, so `forward_threads` of
    them are kept in flight; each pass still sees one image, so the results do not change.
    An adapter with its own batched loop (PyTorch's, overlapping copies and passes) runs it."""
    batches = getattr(adapter, "predict_batches", None)
    if forward_batch > 1 and batches is not None:
        return batches(images, forward_batch)
    chunks = [images[i : i + forward_batch] for i in range(0, len(images), forward_batch)]
    with ThreadPoolExecutor(forward_threads if forward_batch == 1 else 1) as pool:
        return np.concatenate(list(pool.map(adapter.predict, chunks)))


def release_device_memory() -> None:
    """Free what can be freed of the device memory this process holds, before a last retry
    after out-of-memory: Python's garbage, and PyTorch's cached blocks (Keras on its torch
    backend too). TensorFlow and JAX keep their pools; the retry still runs at one image."""
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def fetch_weights(framework: str, specs: list[ModelSpec]) -> list[tuple[str, str]]:
    """Download pretrained weights into the framework's cache: (model key, outcome) per spec."""
    from runner.errors import WeightsUnavailable

    if framework == "keras":
        select_backend(DEFAULT_BACKEND, threads=0)  # the files are the same for every backend
    module = importlib.import_module(f"runner.frameworks.{framework}")
    results = []
    for spec in specs:
        try:
            module.build(spec, pretrained=True)  # downloads into the framework's cache
            results.append((spec.key, f"cached {module.cached_weights_path(spec)}"))
        except WeightsUnavailable as exc:
            results.append((spec.key, f"failed: {exc}"))
    return results
