"""End to end: `kpbench run` against the 2019 method, same images, models and machine.

    .venv/bin/python bench/pipeline.py [--images 480] [--models ...]

1. Writes ImageNet-sized JPEGs (500x375 and 375x500) in class folders.
2. Baseline, as the 2019 scripts ran: one model after another, each with its own loader that
   decodes and resizes every image for that model; PyTorch in batches; Keras `model.predict`
   on one image at a time; each framework with its default threads (every core). PyTorch and
   Keras models run in two child processes, one after the other (the 2019 scripts were
   separate programs); the wall time is their sum.
3. `kpbench run` on the same folder and models (local Ray, every core), as a user runs it.
4. Checks the predictions are identical (the top-5 classes of every image and model; the
   probabilities can differ in the last bits where a framework's kernels split work by thread
   count, which differs: kpbench gives each actor one core) and prints the speed-up, the
   largest probability difference and the share of time spent decoding.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["pytorch/squeezenet1_0", "pytorch/squeezenet1_1", "pytorch/resnet18", "pytorch/alexnet",
          "keras/mobilenet", "keras/mobilenetV2"]
BATCH = 32
DEFAULT_THREADS = {"pytorch": os.cpu_count(), "keras": 0}  # 0: TensorFlow's own choice


def write_images(root: Path, count: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    classes = [f"n{i:08d}" for i in range(1000)]
    root.mkdir(parents=True)
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    for i in range(count):
        folder = root / "val" / classes[(i * 37) % 1000]
        folder.mkdir(parents=True, exist_ok=True)
        size = (500, 375) if i % 3 else (375, 500)
        y, x = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
        pixels = np.stack([np.sin(x * rng.uniform(0.005, 0.05) + y * rng.uniform(0.005, 0.05))
                           for _ in range(3)], axis=-1) * 100 + 128
        pixels += rng.normal(0, 15, pixels.shape)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
            folder / f"ILSVRC2012_val_{i + 1:08d}.JPEG", quality=90)
    return root


def baseline(framework: str, data: str, classes: str, models: list[str]) -> dict:
    """The 2019 method for one framework's models, in this (child) process."""
    from runner.catalog import load_catalog
    from runner.data.index import open_dataset
    from runner.data.recipes import decode_rgb
    from runner.frameworks import load_adapter
    from runner.predictions import top_k

    records = open_dataset(data, classes=classes).records
    out = {"decode_seconds": 0.0, "models": {}}
    for key in models:
        spec = load_catalog().get(key)
        adapter = load_adapter(spec, weights="random", seed=0, threads=DEFAULT_THREADS[framework])
        recipe = spec.recipe("reference")
        started = time.perf_counter()
        images = np.stack([recipe.apply(decode_rgb(r.path)) for r in records])  # per model
        out["decode_seconds"] += time.perf_counter() - started
        if framework == "pytorch":
            probs = np.concatenate([adapter.predict(images[i : i + BATCH])
                                    for i in range(0, len(images), BATCH)])
        else:
            from keras.applications import imagenet_utils

            probs = np.concatenate([
                adapter.model.predict(imagenet_utils.preprocess_input(
                    image[None].astype(np.float32), mode=spec.preprocess), verbose=0)
                for image in images
            ])
        classes_, probs_ = top_k(probs)
        out["models"][key] = {"classes": classes_.tolist(), "probs": probs_.tolist()}
    return out


def timed_child(args: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(args[:3])} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started, done


def kpbench_predictions(out: Path) -> tuple[dict, float, float]:
    import pyarrow.dataset as ds

    from runner.predictions import read_provenance

    table = ds.dataset(out / "predictions", format="parquet", partitioning="hive").to_table()
    frame = table.to_pandas().sort_values("position")
    predictions = {}
    for (framework, model), group in frame.groupby(["framework", "model"]):
        predictions[f"{framework}/{model}"] = (np.stack(group.top5_class), np.stack(group.top5_prob))
    decodes, infer = {}, 0.0
    for path in (out / "predictions").rglob("*.parquet"):
        provenance = read_provenance(path)
        decodes[provenance.decode.decode_id] = provenance.decode.decode_seconds
        infer += provenance.shard_seconds
    return predictions, sum(decodes.values()), infer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=480)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--baseline", help=argparse.SUPPRESS)  # child mode: framework
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        data = Path(args.data)
        chosen = [m for m in args.models if m.startswith(args.baseline + "/")]
        result = baseline(args.baseline, str(data / "val"), str(data / "classes.txt"), chosen)
        (data / f"baseline-{args.baseline}.json").write_text(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = write_images(Path(tmp) / "data", args.images)
        base_seconds, base_decode = 0.0, 0.0
        expected = {}
        for framework in ("pytorch", "keras"):
            seconds, _ = timed_child([__file__, "--baseline", framework, "--data", str(data),
                                      "--models", *args.models])
            result = json.loads((data / f"baseline-{framework}.json").read_text())
            base_seconds += seconds
            base_decode += result["decode_seconds"]
            expected.update(result["models"])
        out = Path(tmp) / "run"
        ours, _ = timed_child(["-m", "runner", "run", "--data", str(data / "val"),
                               "--classes", str(data / "classes.txt"), "--out", str(out),
                               "--models", *args.models, "--weights", "random",
                               "--batch-size", str(BATCH), "--shard-size", str(3 * BATCH)])
        predictions, decode_seconds, infer_seconds = kpbench_predictions(out)
    identical = all(np.array_equal(predictions[key][0], np.array(value["classes"]))
                    for key, value in expected.items())
    largest = max(float(np.abs(predictions[key][1] - np.array(value["probs"], np.float32)).max())
                  for key, value in expected.items())
    print(f"{args.images} images (500x375), {len(args.models)} models: {', '.join(args.models)}")
    print(f"2019 method: {base_seconds:7.1f} s wall; decoding {base_decode:.1f} s "
          f"({100 * base_decode / base_seconds:.0f}% of it: every image decoded once per model)")
    print(f"kpbench run: {ours:7.1f} s wall, start-up included; decoding {decode_seconds:.1f} s "
          f"(once per recipe) against {infer_seconds:.1f} s of inference "
          f"({100 * decode_seconds / (decode_seconds + infer_seconds):.0f}% of actor time)")
    print(f"speed-up: {base_seconds / ours:.2f}x; top-5 predictions identical: {identical}; "
          f"largest probability difference {largest:.2g}")
    if not identical:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
