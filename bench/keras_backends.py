"""Keras backends compared: the same keras.applications weights on TensorFlow, JAX and PyTorch.

    .venv/bin/python bench/keras_backends.py --models mobilenet resnet50 nasnetmobile [--images 16]

For each model (random weights, generated images): one child process per backend runs kpbench's
Keras adapter (reproducible mode: one image per forward pass, two in flight, one thread, as in an
actor) on the same images. Random initialisers differ between backends, weight files do not, so
the first backend saves its weights (.weights.h5) and the others load that file. Printed per
model: images/s per backend, for each pair of backends the top-1 agreement (%) and the largest
probability difference, and the largest probability any backend gave (random weights leave some
models' outputs flat, about 1/1000 for every class: agreement then says little); --json FILE also
writes them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("tensorflow", "jax", "torch")


def child(backend: str, model: str, weights: str, images: str, probs_out: str) -> dict:
    """In a process of its own: the adapter on `backend`, with the weights in `weights` (saved
    there first when the file does not exist yet)."""
    from runner.catalog import load_catalog
    from runner.frameworks import forward, load_adapter

    spec = load_catalog().get(f"keras/{model}")
    started = time.perf_counter()
    adapter = load_adapter(spec, "random", seed=0, threads=1, backend=backend)
    load = time.perf_counter() - started
    if Path(weights).exists():
        adapter.model.load_weights(weights)
    else:
        adapter.model.save_weights(weights)
    batch = np.load(images)
    forward(adapter, batch[:1], 1, 1)  # compile
    started = time.perf_counter()
    probs = forward(adapter, batch, forward_batch=1, forward_threads=2)
    seconds = time.perf_counter() - started
    np.save(probs_out, probs)
    return {"images_per_s": len(batch) / seconds, "load_seconds": load,
            "device": adapter.provenance().device}


def compare(model: str, count: int, work: Path) -> dict:
    from runner.catalog import load_catalog
    from runner.data.sample import synthetic_crops

    spec = load_catalog().get(f"keras/{model}")
    images = work / f"{model}-images.npy"
    np.save(images, synthetic_crops(count, spec.recipe("reference").output_size, seed=3))
    weights = work / f"{model}.weights.h5"
    speeds, probs = {}, {}
    for backend in BACKENDS:
        out = work / f"{model}-{backend}.npy"
        done = subprocess.run(
            [sys.executable, __file__, "--child", backend, model, str(weights), str(images), str(out)],
            cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            speeds[backend] = {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
            continue
        speeds[backend] = json.loads(done.stdout.strip().splitlines()[-1])
        probs[backend] = np.load(out)
    pairs = {}
    for a, b in itertools.combinations(BACKENDS, 2):
        if a in probs and b in probs:
            pairs[f"{a}-{b}"] = {
                "top1_agreement": float((probs[a].argmax(1) == probs[b].argmax(1)).mean() * 100),
                "max_prob_diff": float(np.abs(probs[a] - probs[b]).max()),
            }
    peak = max((float(p.max()) for p in probs.values()), default=float("nan"))
    return {"model": model, "images": count, "backends": speeds, "pairs": pairs, "max_prob": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mobilenet", "resnet50", "nasnetmobile"],
                        help="Keras catalog names (keras/<name>)")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    results = []
    header = (f"{'model':<20}" + "".join(f"{b + ' im/s':>16}" for b in BACKENDS)
              + "".join(f"{a[:2] + '-' + b[:2] + ' top1 / max|dp|':>26}"
                        for a, b in itertools.combinations(BACKENDS, 2)) + f"{'max prob':>10}")
    print(header, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            result = compare(model, args.images, Path(tmp))
            results.append(result)
            speeds = "".join(f"{result['backends'][b].get('images_per_s', float('nan')):>16.2f}"
                             for b in BACKENDS)
            agreement = "".join(
                f"{p['top1_agreement']:>14.1f}% / {p['max_prob_diff']:<8.2g}" if (p := result["pairs"].get(
                    f"{a}-{b}")) else f"{'-':>26}" for a, b in itertools.combinations(BACKENDS, 2))
            print(f"{model:<20}{speeds}{agreement}{result['max_prob']:>10.3f}", flush=True)
            for backend, speed in result["backends"].items():
                if "error" in speed:
                    print(f"  {backend}: {speed['error']}", flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
