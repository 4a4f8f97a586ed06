"""GPU check for a short lease: kpbench's PyTorch and Keras-on-JAX adapters, run directly,
without Ray or TensorFlow (docs/backends-and-precision.md, "GPU check").

    python3 bench/gpu_check.py [--out DIR]            # on the GPU machine: about 3 minutes
    python bench/gpu_check.py --cpu --out DIR         # CPU smoke mode (the tests): tiny sizes

On generated images, random weights:
- pytorch: images/s per model, batched, at each batch size (fp32);
- keras_jax: images/s of Keras on JAX, reproducible (one image per pass) and batched;
- repeatable: two passes give identical probabilities, per framework;
- precision: agreement of tf32 and bf16 with fp32, per framework (top-1 agreement, largest
  probability difference), with what each framework reports as in effect.
The JSON report is rewritten after every measurement to OUT/gpu_check.json (OUT: --out, else
$OUT), so a run cut short keeps what it measured; rerunning starts it afresh. Its `samples`
calibrate kpbench's plan for this GPU when the file is copied into $KPBENCH_HOME/throughput/.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Sizes:
    torch_models: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    torch_images: int  # per (model, batch size)
    keras_model: str
    keras_one_image: int  # images in reproducible mode
    keras_batch: int
    keras_batched_images: int
    precision_images: int


GPU = Sizes(("pytorch/resnet50", "pytorch/efficientnet_b0.IMAGENET1K_V1", "pytorch/vit_b_16.IMAGENET1K_V1"),
            (64, 256), 1024, "keras/resnet50", 64, 64, 256, 256)
CPU = Sizes(("pytorch/squeezenet1_1",), (2, 4), 8, "keras/mobilenet", 3, 3, 6, 4)


class Report:
    """The report so far, rewritten (atomically) after each measurement."""

    def __init__(self, path: Path, mode: str):
        self.path, self.started = path, time.perf_counter()
        self.document: dict = {"mode": mode, "host": socket.gethostname(), "pytorch": [],
                               "keras_jax": [], "repeatable": {}, "precision": [], "samples": []}

    def add(self, section: str, entry, key: str | None = None) -> None:
        if key is None:
            self.document[section].append(entry)
        else:
            self.document[section][key] = entry
        print(json.dumps({section: entry} if key is None else {section: {key: entry}}), flush=True)
        self.save()

    def save(self) -> None:
        from runner.atomic import write_text_atomic

        self.document["seconds"] = round(time.perf_counter() - self.started, 1)
        self.document["modules_loaded"] = sorted(m for m in ("ray", "tensorflow", "torch", "jax", "keras")
                                                 if m in sys.modules)
        write_text_atomic(self.path, json.dumps(self.document, indent=1) + "\n")


def timed(adapter, images, forward_batch: int, forward_threads: int = 1):
    """(probabilities, seconds) for one pass over `images`, after a warm-up batch."""
    from runner.frameworks import forward

    forward(adapter, images[:forward_batch], forward_batch, forward_threads)  # compile, allocate
    started = time.perf_counter()
    probs = forward(adapter, images, forward_batch, forward_threads)
    return probs, time.perf_counter() - started


def agreement(reference, other) -> dict:
    import numpy as np

    return {"top1_agreement": float((reference.argmax(1) == other.argmax(1)).mean() * 100),
            "max_prob_diff": float(np.abs(reference - other).max())}


def sample(report: Report, adapter, spec, images: int, seconds: float, load: float,
           one_image: bool, precision: str) -> None:
    """A throughput sample in the form kpbench's plan calibration reads."""
    from runner.plan.calibration import ThroughputSample

    device = adapter.provenance().device
    report.document["samples"].append(ThroughputSample(
        host=report.document["host"], device=device, gpu=device != "cpu", framework=spec.framework,
        backend=adapter.provenance().backend, model=spec.key, one_image=one_image,
        precision=precision, gflops=spec.gflops, images=images, seconds=seconds, load_seconds=load,
        source="gpu_check",
    ).model_dump())


def check_pytorch(report: Report, sizes: Sizes, threads: int) -> None:
    from runner.catalog import load_catalog
    from runner.data.sample import synthetic_crops
    from runner.frameworks import load_adapter

    for key in sizes.torch_models:
        spec = load_catalog().get(key)
        images = synthetic_crops(sizes.torch_images, spec.recipe("reference").output_size)
        started = time.perf_counter()
        adapter = load_adapter(spec, "random", 0, threads)
        load = time.perf_counter() - started
        for batch in sizes.batch_sizes:
            probs, seconds = timed(adapter, images, batch)
            report.add("pytorch", {"model": key, "batch": batch, "images": len(images),
                                   "images_per_s": round(len(images) / seconds, 1),
                                   "device": adapter.provenance().device})
            sample(report, adapter, spec, len(images), seconds, load, False, "fp32")
        again, _ = timed(adapter, images, sizes.batch_sizes[0])
        first, _ = timed(adapter, images, sizes.batch_sizes[0])
        report.add("repeatable", bool((first == again).all()), key)
    spec = load_catalog().get(sizes.torch_models[0])
    compare_precisions(report, spec, threads, sizes.precision_images, sizes.batch_sizes[0])


def check_keras_jax(report: Report, sizes: Sizes, threads: int) -> None:
    from runner.catalog import load_catalog
    from runner.data.sample import synthetic_crops
    from runner.frameworks import load_adapter

    spec = load_catalog().get(sizes.keras_model)
    images = synthetic_crops(max(sizes.keras_one_image, sizes.keras_batched_images),
                             spec.recipe("reference").output_size)
    started = time.perf_counter()
    adapter = load_adapter(spec, "random", 0, threads, backend="jax")
    load = time.perf_counter() - started
    for mode, batch, count, in_flight in (("reproducible", 1, sizes.keras_one_image, 2),
                                          ("batched", sizes.keras_batch, sizes.keras_batched_images, 1)):
        probs, seconds = timed(adapter, images[:count], batch, in_flight)
        report.add("keras_jax", {"model": spec.key, "mode": mode, "batch": batch, "images": count,
                                 "images_per_s": round(count / seconds, 1), "load_seconds": round(load, 1),
                                 "device": adapter.provenance().device})
        sample(report, adapter, spec, count, seconds, load, batch == 1, "fp32")
        if mode == "reproducible":
            again, _ = timed(adapter, images[:count], 1, 2)
            report.add("repeatable", bool((probs == again).all()), f"{spec.key}@jax")
    compare_precisions(report, spec, threads, sizes.precision_images, sizes.keras_batch, "jax")


def compare_precisions(report: Report, spec, threads: int, count: int, batch: int,
                       backend: str | None = None) -> None:
    """tf32 and bf16 against fp32 on the same images and (same seed) the same weights."""
    from runner.data.sample import synthetic_crops
    from runner.frameworks import load_adapter

    images = synthetic_crops(count, spec.recipe("reference").output_size, seed=1)
    results = {}
    for precision in ("fp32", "tf32", "bf16"):
        adapter = load_adapter(spec, "random", 0, threads, precision, backend)
        results[precision], _ = timed(adapter, images, batch)
        in_effect = adapter.provenance().precision_in_effect
        if precision != "fp32":
            report.add("precision", {"model": spec.key, "backend": backend, "precision": precision,
                                     "images": count, **agreement(results["fp32"], results[precision]),
                                     "in_effect": in_effect})
        del adapter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="folder for gpu_check.json (default: $OUT, else .)")
    parser.add_argument("--cpu", action="store_true", help="smoke mode on the CPU: tiny models and batches")
    args = parser.parse_args(argv)
    if args.cpu:  # before any framework loads
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        os.environ["JAX_PLATFORMS"] = "cpu"
    # JAX and PyTorch share the GPU in this process: JAX takes memory as it needs it.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    sys.path.insert(0, str(ROOT))
    out = Path(args.out or os.environ.get("OUT") or ".")
    report = Report(out / "gpu_check.json", "cpu" if args.cpu else "gpu")
    threads = 1 if args.cpu else max(1, os.cpu_count() or 1)
    check_pytorch(report, CPU if args.cpu else GPU, threads)
    check_keras_jax(report, CPU if args.cpu else GPU, threads)
    report.save()
    print(json.dumps(report.document, indent=1))
    return 0 if all(report.document["repeatable"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
