"""Planning the full benchmark: 34 models x 50,000 images on 1, 8 and 64 GPUs.

    .venv/bin/python bench/plan.py [--costs costs.json] [--gpu-speedup 30]

1. Measures, on this machine, the per-image decode cost (500x375 JPEG to a 224 crop) and, for
   each of the 34 models of the 2019 benchmark (random weights, one thread as in an actor),
   its start-up time (build) and per-image inference cost: PyTorch in batches of 32, Keras one
   image per forward pass (the reproducible mode). `--costs FILE` reuses (or saves) them.
2. Turns them into GPU estimates: inference divided by --gpu-speedup (an assumption: how much
   faster one GPU runs these models than one core here), start-up unchanged (it is CPU work).
3. Runs kpbench's scheduler (runner/plan/schedule.py, the one the driver uses) on 50 shards of
   1,000 images per model, and prints the planned makespan next to the lower bound: total
   work / GPUs, and the longest indivisible piece (one replica's start-up plus one shard).
   The baseline is one actor per model, the slowest model alone setting the wall time.
Decoding runs on the CPU cores beside the GPUs (each image once per recipe); the script
prints the cores per GPU needed for it to keep up.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
IMAGES, SHARD = 50_000, 1000
BATCH = 32


def measure(framework: str) -> dict:
    """Start-up and per-image seconds of each catalog model of one framework (child process)."""
    from runner.catalog import load_catalog
    from runner.frameworks import load_adapter

    costs = {}
    for spec in load_catalog().select(["northcutt2019"], [framework]):
        started = time.perf_counter()
        adapter = load_adapter(spec, weights="random", seed=0, threads=1)
        load = time.perf_counter() - started
        size = spec.recipe("reference").output_size
        images = np.random.default_rng(0).integers(0, 256, (BATCH, size, size, 3), np.uint8)
        count = BATCH if framework == "pytorch" else 4
        adapter.predict(images[:1])  # warm-up
        started = time.perf_counter()
        if framework == "pytorch":
            adapter.predict(images)
        else:
            for image in images[:count]:
                adapter.predict(image[None])
        costs[spec.key] = {"load": load, "image": (time.perf_counter() - started) / count}
        print(f"  {spec.key:<28} start-up {load:5.1f} s, {1000 * costs[spec.key]['image']:7.1f} ms/image",
              file=sys.stderr)
    return costs


def decode_cost() -> float:
    from PIL import Image

    from runner.data.recipes import Recipe, decode_rgb

    recipe = Recipe(resize="shorter_side", size=256, crop=224, interpolation="bilinear")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(20):
            path = Path(tmp) / f"{i}.JPEG"
            Image.fromarray(rng.integers(0, 256, (375, 500, 3), np.uint8)).save(path, quality=90)
            paths.append(path)
        started = time.perf_counter()
        for path in paths:
            recipe.apply(decode_rgb(str(path)))
        return (time.perf_counter() - started) / len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--costs", type=Path, help="JSON of measured costs: read if it exists, else written")
    parser.add_argument("--gpu-speedup", type=float, default=30.0)
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # child mode: framework
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    from runner.plan.schedule import PairState, lower_bound, simulate

    if args.costs and args.costs.exists():
        measured = json.loads(args.costs.read_text())
    else:
        print("measuring the 34 models (random weights, one thread) ...", file=sys.stderr)
        measured = {"decode": decode_cost(), "models": {}}
        for framework in ("pytorch", "keras"):
            child = subprocess.run([sys.executable, __file__, "--measure", framework], cwd=ROOT,
                                   stdout=subprocess.PIPE, text=True, check=True)
            measured["models"].update(json.loads(child.stdout.strip().splitlines()[-1]))
        if args.costs:
            args.costs.write_text(json.dumps(measured, indent=1))
    models = measured["models"]
    shards = IMAGES // SHARD

    def pairs(slots: int) -> list[PairState]:
        return [PairState(key, shards, SHARD * cost["image"] / args.gpu_speedup, cost["load"], slots)
                for key, cost in models.items()]

    cpu_total = sum(IMAGES * cost["image"] for cost in models.values())
    print(f"measured here: decode {1000 * measured['decode']:.1f} ms/image; inference of all 34 "
          f"models {cpu_total / 3600:.1f} core-hours on this CPU; on GPUs assumed "
          f"{args.gpu_speedup:g}x faster per device")
    print(f"{'GPUs':>5} {'one actor per model':>20} {'kpbench plan':>13} {'bound':>9} "
          f"{'longest piece':>14} {'plan/bound':>11} {'max replicas':>13}")
    for gpus in (1, 8, 64):
        plan = simulate(pairs(gpus), gpus)
        by_work, longest = lower_bound(pairs(gpus), gpus)
        single = simulate([PairState(**{**vars(p), "max_replicas": 1}) for p in pairs(gpus)], gpus)
        bound = max(by_work, longest)
        print(f"{gpus:>5} {_hours(single.makespan):>20} {_hours(plan.makespan):>13} "
              f"{_hours(bound):>9} {_hours(longest):>14} {plan.makespan / bound:>11.2f} "
              f"{max(plan.replicas.values()):>13}")
    from runner.catalog import load_catalog

    recipes = {spec.recipe("reference").key for spec in load_catalog().select(["northcutt2019"])}
    decode_seconds = IMAGES * len(recipes) * measured["decode"]
    gpu_seconds = cpu_total / args.gpu_speedup
    print(f"decoding: {decode_seconds / 3600:.2f} core-hours (each image once per recipe, "
          f"{len(recipes)} recipes under the reference protocol); to keep up, about "
          f"{decode_seconds / gpu_seconds:.2f} CPU cores per GPU")


def _hours(seconds: float) -> str:
    minutes = int(round(seconds / 60))
    return f"{minutes // 60}h{minutes % 60:02d}m"


if __name__ == "__main__":
    main()
