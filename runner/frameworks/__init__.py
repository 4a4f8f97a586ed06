"""Framework adapters: one small class per framework, the same interface for both.

    adapter = load_adapter(spec, weights="pretrained" | "random", seed=0, threads=1)
    probabilities = adapter.predict(uint8_nhwc_batch)   # float32 (N, 1000), rows sum to 1
    adapter.provenance()                                # what the result depends on

Each module also has build(spec, pretrained) and cached_weights_path(spec).

Each adapter module imports its framework when loaded; a process loads one framework
only, and the driver loads none.
"""

from __future__ import annotations

import importlib
from typing import Protocol

import numpy as np

from runner.catalog import ModelSpec


class Adapter(Protocol):
    def predict(self, batch: np.ndarray) -> np.ndarray: ...

    def provenance(self) -> dict: ...


def load_adapter(spec: ModelSpec, weights: str, seed: int, threads: int) -> Adapter:
    module = importlib.import_module(f"runner.frameworks.{spec.framework}")
    return module.load(spec, weights=weights, seed=seed, threads=threads)


def fetch_weights(framework: str, specs: list[ModelSpec]) -> list[tuple[str, str]]:
    """Download pretrained weights into the framework's cache: (model key, outcome) per spec."""
    from runner.errors import WeightsUnavailable

    module = importlib.import_module(f"runner.frameworks.{framework}")
    results = []
    for spec in specs:
        try:
            module.build(spec, pretrained=True)  # downloads into the framework's cache
            results.append((spec.key, f"cached {module.cached_weights_path(spec)}"))
        except WeightsUnavailable as exc:
            results.append((spec.key, f"failed: {exc}"))
    return results
