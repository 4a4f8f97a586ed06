"""GPU check for a short lease: kpbench's decoding and its PyTorch and Keras-on-JAX adapters,
run directly with the actors' settings, without Ray or TensorFlow (docs/backends-and-precision.md,
"GPU check").

    python3 bench/gpu_check.py [--out DIR]            # on the GPU machine: under 5 minutes
    python bench/gpu_check.py --cpu --out DIR         # CPU smoke mode (the tests): tiny sizes

What an actor does, measured (one thread, as an actor with cpus_per_actor 1; each process under
the memory policy of its GPU share, runner/frameworks/memory.py):
- decode: images/s on one core per recipe, on ImageNet-sized JPEGs (500x375) written here;
- pytorch: images/s per model and batch size, determinism on (the actors') and off, with the
  overlapped loop (pinned buffers, non_blocking copies) and the plain one (pageable, a sync
  per batch);
- keras_jax: Keras on JAX in this process, one image per pass and batched;
- keras_jax_shared: 2 and 4 processes of one-image Keras on JAX sharing the GPU, each with its
  share's memory policy: images/s in total;
- repeatable: identical probabilities across two separate processes (one-image JAX, batched
  PyTorch), and across two passes in this one;
- precision: tf32 and bf16 against fp32 (top-1 agreement, largest log-probability difference:
  random weights give flat probabilities, their logarithms still differ), and what each
  framework reports in effect; a fp32 pass equal to itself but not to tf32 shows TF32 is off.
Random weights (a GPU lease has no internet). The JSON report is rewritten after every
measurement to OUT/gpu_check.json (OUT: --out, else $OUT), so a run cut short keeps what it
measured. Its `samples` calibrate kpbench's plan when copied into $KPBENCH_HOME/throughput/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THREADS = 1  # an actor's (cpus_per_actor 1)


@dataclass(frozen=True)
class Sizes:
    decode_images: int
    decode_models: tuple[str, ...]  # their reference recipes
    torch_models: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    torch_images: int  # per (model, batch size)
    keras_model: str
    keras_one_image: int  # images in reproducible mode, per process
    keras_batch: int
    keras_batched_images: int
    shared_processes: tuple[int, ...]
    precision_images: int


GPU = Sizes(64, ("pytorch/resnet50", "pytorch/inception_v3", "keras/resnet50"),
            ("pytorch/resnet50", "pytorch/vgg16", "pytorch/efficientnet_b0.IMAGENET1K_V1",
             "pytorch/vit_b_16.IMAGENET1K_V1"),
            (64, 256), 512, "keras/mobilenet", 200, 64, 256, (2, 4), 256)
CPU = Sizes(4, ("pytorch/resnet50",), ("pytorch/squeezenet1_1",), (2, 4), 8, "keras/mobilenet",
            3, 3, 6, (2,), 4)
GPU_SHARE = {"pytorch": 0.5, "keras": 0.25}  # the defaults of gpu_share (runner/run/packing.py)


class Report:
    """The report so far, rewritten (atomically) after each measurement."""

    def __init__(self, path: Path, mode: str):
        self.path, self.started = path, time.perf_counter()
        self.document: dict = {"mode": mode, "host": socket.gethostname(), "decode": [], "pytorch": [],
                               "keras_jax": [], "keras_jax_shared": [], "repeatable": {},
                               "precision": [], "samples": []}

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


def digest(probs) -> str:
    return hashlib.sha256(probs.tobytes()).hexdigest()[:16]


def timed(adapter, images, forward_batch: int, forward_threads: int = 1, overlapped: bool = True):
    """(probabilities, seconds) for one pass over `images`, after a warm-up batch; not
    `overlapped`: the plain loop, a pageable copy and a sync per batch."""
    import numpy as np

    from runner.frameworks import forward

    def run(batch):
        if overlapped or forward_batch == 1:
            return forward(adapter, batch, forward_batch, forward_threads)
        return np.concatenate([adapter.predict(batch[i : i + forward_batch])
                               for i in range(0, len(batch), forward_batch)])

    run(images[:forward_batch])  # compile, allocate
    started = time.perf_counter()
    probs = run(images)
    return probs, time.perf_counter() - started


def agreement(reference, other) -> dict:
    import numpy as np

    logs = np.log(np.maximum(reference, 1e-30)), np.log(np.maximum(other, 1e-30))
    return {"top1_agreement": float((reference.argmax(1) == other.argmax(1)).mean() * 100),
            "max_prob_diff": float(np.abs(reference - other).max()),
            "max_logprob_diff": float(np.abs(logs[0] - logs[1]).max())}


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


def load(key: str, precision: str = "fp32", backend: str | None = None, share: float = 0.0):
    """(spec, adapter, load seconds) with the actor's thread count and memory policy."""
    from runner.catalog import load_catalog
    from runner.frameworks import load_adapter
    from runner.frameworks.memory import memory_policy

    spec = load_catalog().get(key)
    policy = memory_policy(spec.framework, backend, share) if share else None
    started = time.perf_counter()
    adapter = load_adapter(spec, "random", 0, THREADS, precision, backend, policy)
    return spec, adapter, time.perf_counter() - started


def check_decode(report: Report, sizes: Sizes) -> None:
    """Images/s on one core per recipe, on generated ImageNet-sized JPEGs."""
    import numpy as np

    from runner.catalog import load_catalog
    from runner.data.decode import load_crops
    from runner.data.records import ImageRecord
    from runner.data.sample import _synthetic_image

    folder = Path(tempfile.mkdtemp(prefix="gpu-check-jpegs-"))
    rng = np.random.default_rng(0)
    records = []
    for i in range(sizes.decode_images):
        path = folder / f"{i}.JPEG"
        _synthetic_image(rng, 500, 375).save(path, quality=90)
        records.append(ImageRecord(i, path.name, str(path), 0))
    for key in sizes.decode_models:
        recipe = load_catalog().get(key).recipe("reference")
        started = time.perf_counter()
        crops, _ = load_crops(records, recipe, threads=1)
        seconds = time.perf_counter() - started
        report.add("decode", {"recipe": recipe.key, "model": key, "images": len(crops),
                              "images_per_s_per_core": round(len(crops) / seconds, 1)})


def check_pytorch(report: Report, sizes: Sizes) -> None:
    import torch

    from runner.data.sample import synthetic_crops

    for key in sizes.torch_models:
        spec, adapter, load_seconds = load(key, share=GPU_SHARE["pytorch"])
        images = synthetic_crops(sizes.torch_images, spec.recipe("reference").output_size)
        for deterministic in (True, False):
            torch.use_deterministic_algorithms(deterministic)
            torch.backends.cudnn.benchmark = not deterministic
            for batch in sizes.batch_sizes:
                for overlapped in (True, False):
                    probs, seconds = timed(adapter, images, batch, overlapped=overlapped)
                    report.add("pytorch", {"model": key, "batch": batch, "images": len(images),
                                           "deterministic": deterministic, "overlapped": overlapped,
                                           "images_per_s": round(len(images) / seconds, 1),
                                           "device": adapter.provenance().device})
                    if deterministic and overlapped:
                        sample(report, adapter, spec, len(images), seconds, load_seconds, False, "fp32")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        first, _ = timed(adapter, images, sizes.batch_sizes[0])
        again, _ = timed(adapter, images, sizes.batch_sizes[0])
        report.add("repeatable", bool((first == again).all()), key)
        del adapter
    compare_precisions(report, sizes.torch_models[0], sizes.precision_images, sizes.batch_sizes[0])


def check_keras_jax(report: Report, sizes: Sizes) -> None:
    from runner.data.sample import synthetic_crops
    from runner.run.packing import passes_in_flight

    spec, adapter, load_seconds = load(sizes.keras_model, backend="jax", share=GPU_SHARE["keras"])
    images = synthetic_crops(max(sizes.keras_one_image, sizes.keras_batched_images),
                             spec.recipe("reference").output_size)
    in_flight = passes_in_flight(GPU_SHARE["keras"])
    for mode, batch, count, threads in (("reproducible", 1, sizes.keras_one_image, in_flight),
                                        ("batched", sizes.keras_batch, sizes.keras_batched_images, 1)):
        probs, seconds = timed(adapter, images[:count], batch, threads)
        report.add("keras_jax", {"model": spec.key, "mode": mode, "batch": batch, "images": count,
                                 "forward_threads": threads, "images_per_s": round(count / seconds, 1),
                                 "load_seconds": round(load_seconds, 1),
                                 "device": adapter.provenance().device})
        sample(report, adapter, spec, count, seconds, load_seconds, batch == 1, "fp32")
        if mode == "reproducible":
            again, _ = timed(adapter, images[:count], 1, threads)
            report.add("repeatable", bool((probs == again).all()), f"{spec.key}@jax")
    del adapter
    compare_precisions(report, spec.key, sizes.precision_images, sizes.keras_batch, "jax")


def compare_precisions(report: Report, key: str, count: int, batch: int, backend: str | None = None) -> None:
    """fp32 twice, tf32 and bf16, on the same images and (same seed) the same weights."""
    from runner.data.sample import synthetic_crops

    results, images = {}, None
    for precision in ("fp32", "tf32", "bf16"):
        share = GPU_SHARE["keras" if backend else "pytorch"]
        spec, adapter, _ = load(key, precision, backend, share)
        if images is None:
            images = synthetic_crops(count, spec.recipe("reference").output_size, seed=1)
        results[precision], _ = timed(adapter, images, batch)
        if precision == "fp32":
            again, _ = timed(adapter, images, batch)
            name = key + (f"@{backend}" if backend else "")
            report.add("repeatable", bool((again == results["fp32"]).all()), f"{name} fp32, two passes")
        else:
            report.add("precision", {"model": key, "backend": backend, "precision": precision,
                                     "images": count, **agreement(results["fp32"], results[precision]),
                                     "in_effect": adapter.provenance().precision_in_effect})
        del adapter


def run_workers(job: dict, processes: int) -> list[dict]:
    """`processes` copies of this script's worker at once (each its own framework and memory
    policy); their reports."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)]
    running = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
               for _ in range(processes)]
    outputs = [process.communicate(timeout=600)[0] for process in running]
    if any(process.returncode for process in running):
        raise RuntimeError(f"a worker failed: {job}")
    return [json.loads(output.strip().splitlines()[-1]) for output in outputs]


def check_separate_processes(report: Report, sizes: Sizes) -> None:
    """One-image Keras on JAX in 2 and 4 processes sharing the GPU; batched PyTorch in 2."""
    for processes in sizes.shared_processes:
        job = {"model": sizes.keras_model, "backend": "jax", "batch": 1, "images": sizes.keras_one_image,
               "share": GPU_SHARE["keras"]}
        workers = run_workers(job, processes)
        wall = max(w["stopped"] for w in workers) - min(w["started"] for w in workers)
        report.add("keras_jax_shared", {
            "model": sizes.keras_model, "processes": processes, "gpu_share": GPU_SHARE["keras"],
            "images_per_s_total": round(sum(w["images"] for w in workers) / wall, 1),
            "images_per_s_each": [w["images_per_s"] for w in workers],
            "memory_policy": workers[0]["memory_policy"]})
        report.add("repeatable", len({w["digest"] for w in workers}) == 1,
                   f"{sizes.keras_model}@jax in {processes} processes")
    job = {"model": sizes.torch_models[0], "backend": None, "batch": sizes.batch_sizes[0],
           "images": sizes.torch_images, "share": GPU_SHARE["pytorch"]}
    workers = run_workers(job, 2)
    report.add("repeatable", len({w["digest"] for w in workers}) == 1,
               f"{sizes.torch_models[0]} in 2 processes")


def worker(job: dict) -> None:
    """One process of check_separate_processes: a JSON line with its speed and result digest."""
    from runner.data.sample import synthetic_crops
    from runner.frameworks.memory import memory_policy
    from runner.run.packing import passes_in_flight

    spec, adapter, _ = load(job["model"], backend=job["backend"], share=job["share"])
    images = synthetic_crops(job["images"], spec.recipe("reference").output_size)
    threads = passes_in_flight(job["share"]) if job["batch"] == 1 else 1
    started = time.time()
    probs, seconds = timed(adapter, images, job["batch"], threads)
    print(json.dumps({"images": len(images), "images_per_s": round(len(images) / seconds, 1),
                      "started": started, "stopped": time.time(), "digest": digest(probs),
                      "memory_policy": memory_policy(spec.framework, job["backend"], job["share"]).record()}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="folder for gpu_check.json (default: $OUT, else .)")
    parser.add_argument("--cpu", action="store_true", help="smoke mode on the CPU: tiny models and batches")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # a JSON job: one worker process
    args = parser.parse_args(argv)
    if args.cpu:  # before any framework loads; workers inherit it
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        os.environ["JAX_PLATFORMS"] = "cpu"
    sys.path.insert(0, str(ROOT))
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    out = Path(args.out or os.environ.get("OUT") or ".")
    sizes = CPU if args.cpu else GPU
    report = Report(out / "gpu_check.json", "cpu" if args.cpu else "gpu")
    check_decode(report, sizes)
    check_pytorch(report, sizes)
    check_keras_jax(report, sizes)
    check_separate_processes(report, sizes)
    report.save()
    print(json.dumps(report.document, indent=1))
    return 0 if all(report.document["repeatable"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
