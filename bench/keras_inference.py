"""Keras inference: the 2019 per-image `predict` loop against kpbench's reproducible and
batched modes, on the same decoded images and the same model objects.

    .venv/bin/python bench/keras_inference.py [--images 32] [--models mobilenet resnet50]

For each model (random weights): images/s of (a) `model.predict(x[None])` per image, as the
2019 scripts did, (b) kpbench's reproducible mode (one image per call of a compiled
`predict_step`), (c) kpbench's batched mode; the ratios to (a) and the largest probability
difference from (a). Threads: what TensorFlow picks for this machine, the same for all three.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from runner.catalog import load_catalog
from runner.data.index import open_dataset
from runner.data.recipes import decode_rgb
from runner.data.sample import write_sample_dataset
from runner.frameworks import forward, load_adapter


def crops(count: int, size_recipe) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        root = write_sample_dataset(tmp, num_classes=4, per_class=(count + 3) // 4)
        dataset = open_dataset(str(root / "val"), classes=str(root / "classes.txt"))
        return np.stack([size_recipe.apply(decode_rgb(r.path)) for r in dataset.records[:count]])


def rate(function, images: np.ndarray) -> tuple[float, np.ndarray]:
    function(images[:1])  # build / trace outside the timing
    started = time.perf_counter()
    probs = function(images)
    return len(images) / (time.perf_counter() - started), probs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--models", nargs="+", default=["mobilenet", "resnet50"])
    args = parser.parse_args()
    from keras.applications import imagenet_utils

    catalog = load_catalog()
    print(f"{'model':<12}{'predict loop':>14}{'reproducible':>22}{'batched':>22}"
          f"{'max |dp| repr.':>16}{'max |dp| batched':>18}")
    for name in args.models:
        spec = catalog.get(f"keras/{name}")
        images = crops(args.images, spec.recipe("reference"))
        adapter = load_adapter(spec, weights="random", seed=0, threads=0)

        def predict_loop(batch, model=adapter.model, mode=spec.preprocess):
            return np.concatenate([
                model.predict(imagenet_utils.preprocess_input(im[None].astype(np.float32), mode=mode),
                              verbose=0)
                for im in batch
            ])

        def reproducible(batch, adapter=adapter):  # as the actor runs it: 2 passes in flight
            return forward(adapter, batch, forward_batch=1, forward_threads=2)

        def batched(batch, adapter=adapter):
            return forward(adapter, batch, forward_batch=args.batch_size, forward_threads=1)

        base_rate, base = rate(predict_loop, images)
        repr_rate, repr_probs = rate(reproducible, images)
        batch_rate, batch_probs = rate(batched, images)
        print(f"{name:<12}{base_rate:>9.1f} im/s{repr_rate:>9.1f} im/s ({repr_rate / base_rate:4.1f}x)"
              f"{batch_rate:>9.1f} im/s ({batch_rate / base_rate:4.1f}x)"
              f"{np.abs(repr_probs - base).max():>16.3g}{np.abs(batch_probs - base).max():>18.3g}")


if __name__ == "__main__":
    main()
