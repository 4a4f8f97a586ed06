"""Can decoding feed the GPUs? Measured on this machine, and simulated for large ones.

    .venv/bin/python bench/feed.py [--images 3000] [--data DIR]   # feed efficiency here
    .venv/bin/python bench/feed.py --decodes [--images 40] [--run DIR]  # decodes per image, 34 models
    .venv/bin/python bench/feed.py --simulate [NODESx]GPUSxCORES [--before] [--start-seconds 5]

Feed efficiency: `kpbench run` with 4 fake GPUs (`--local-gpus`) and 4 stand-in user-catalog
models sharing one recipe whose forward pass only sleeps (a GPU at 3000 images/s), on
ImageNet-sized JPEGs; its steady-state images/s (per model, from the files' `written_at`, the
first shard left out) against this machine's capacity for the same CPU work measured in the same
script (twice before and twice after the run, averaged: this machine's speed drifts by a
third within a minute): every core decoding each image once, cutting the recipe and converting
it to each model's input tensor as the actors do (a process pool). The ratio is the feed
efficiency; run it a few times and take the median.

--decodes: the 2019 set's 34 models (random weights) on `--images` generated images, shards of
10, run by `kpbench run` (into `--run`, kept, or resumed there): distinct decodes per image, from
the files' provenance. Before it, on the same images, one thread, the best of 3: the seconds of
decoding once per recipe (as before) against decoding once and cutting every recipe.

--simulate: no Ray, a fake clock: the driver's policies (Scheduler, Fleet, CropCache,
FeedPolicy) on the 34-model 2019 set over 50,000 images in shards of 1000, with decode costs
measured here (one core) and GPUs at 3000 images/s (PyTorch, batched) and 300 one-image
passes/s (Keras). Each node's decoder is a queue served by its threads; each replica's GPU
takes its shards in turn; a replica takes --start-seconds to load its model. Prints predicted
wall time per model set (beside the GPU-bound time, total GPU work over the GPUs, and the busy
fraction the same run would reach with unlimited CPUs: what is lost to model loads and the
schedule's tail, not to feeding), then `busy <fraction>`: the GPUs' compute time over GPUs x
wall time of the 34-model run. --before: the previous feeder (each recipe decoded by a model
actor with 2 threads, 2 shards per replica, crops from any node).
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
GPU_SPEED = {"pytorch": 3000.0, "keras": 300.0}  # images/s: batched PyTorch; one-image Keras passes
STANDIN_SPEED = 3000.0
STANDINS = 4
SHARD = 100  # on this machine: 30 shards of 3000 images
STANDIN_CODE = '''
import time
import torch


class Sleeper(torch.nn.Module):
    """A GPU that computes nothing: sleeps as long as {speed:g} images/s take."""

    def forward(self, x):
        time.sleep(x.shape[0] / {speed:g})
        return torch.zeros(x.shape[0], 1000)


def sleeper():
    return Sleeper()
'''
RECIPE = {"resize": "shorter_side", "size": 256, "crop": 224, "interpolation": "bilinear"}


# ---- on this machine ----
def write_standins(folder: Path) -> Path:
    (folder / "standin.py").write_text(STANDIN_CODE.format(speed=STANDIN_SPEED))
    models = [{"framework": "pytorch", "name": f"sleeper{i}", "builder": "standin.py:sleeper",
               "input_size": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
               "recipes": {"reference": RECIPE}} for i in range(STANDINS)]
    path = folder / "standins.yaml"
    path.write_text(json.dumps({"set": "standins", "models": models}))  # JSON is YAML
    return path


def _cpu_work(paths: list[str]) -> int:
    """What kpbench's CPUs do per image: decode once, cut the recipe, and each model's tensor,
    converted as the model actors do it (batches of 64 into a reused buffer)."""
    import torch

    from runner.data.recipes import Recipe, decode_rgb
    from runner.frameworks.pytorch import DEFAULT_BATCH, to_input

    torch.set_num_threads(1)
    recipe = Recipe(**RECIPE)
    buffer = torch.empty((DEFAULT_BATCH, recipe.output_size, recipe.output_size, 3))
    with torch.inference_mode():
        for start in range(0, len(paths), DEFAULT_BATCH):
            batch = paths[start : start + DEFAULT_BATCH]
            crops = np.stack([recipe.apply(decode_rgb(path)) for path in batch])
            for _ in range(STANDINS):
                to_input(crops, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], buffer=buffer)
    return len(paths)


def capacity(paths: list[str]) -> float:
    """Images/s of the same CPU work on every core, without kpbench."""
    cores = os.cpu_count() or 1
    chunks = [paths[i::cores * 4] for i in range(cores * 4)]
    with ProcessPoolExecutor(cores) as pool:
        list(pool.map(_cpu_work, [paths[:cores]] * cores))  # imports, warm-up
        started = time.perf_counter()
        done = sum(pool.map(_cpu_work, chunks))
    return done / (time.perf_counter() - started)


def provenances(out: Path) -> list:
    from runner.predictions import read_provenance

    return [read_provenance(path) for path in (out / "predictions").rglob("*.parquet")]


def steady_rate(out: Path) -> float:
    """Per model, images/s between its first and last file; the mean over the models."""
    by_model = defaultdict(list)
    for provenance in provenances(out):
        shard = provenance.shard
        by_model[provenance.model].append((provenance.written_at, shard.stop - shard.start))
    rates = []
    for files in by_model.values():
        files.sort()
        rates.append(sum(size for _, size in files[1:]) / (files[-1][0] - files[0][0]))
    return float(np.mean(rates))


def kpbench(args: list[str]) -> str:
    done = subprocess.run([sys.executable, "-m", "runner", "run", *args], cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"kpbench run failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def feed_efficiency(images: int, data: Path | None) -> None:
    from pipeline import write_images

    with tempfile.TemporaryDirectory() as tmp:
        if data is None or not (data / "val").is_dir():
            data = write_images(data or Path(tmp) / "data", images)
        paths = sorted(str(p) for p in (data / "val").rglob("*.JPEG"))[:images]
        catalog = write_standins(Path(tmp))
        cores = os.cpu_count() or 1
        print(f"load before: {os.getloadavg()[0]:.2f} on {cores} cores; {len(paths)} JPEGs")
        machine = [capacity(paths), capacity(paths)]  # before and after kpbench: the machine may be shared
        ours = Path(tmp) / "run"
        kpbench(["--data", str(data / "val"), "--classes", str(data / "classes.txt"),
                 "--catalog", str(catalog), "--models", "standins", "--weights", "random",
                 "--no-sanity", "--local-gpus", str(STANDINS), "--local-cpus", str(STANDINS + cores),
                 "--shard-size", str(SHARD), "--out", str(ours)])
        rate = steady_rate(ours)
        files = provenances(ours)
        waited = sum(p.wait_seconds for p in files) / len(files)
        forward = sum(p.forward_seconds for p in files) / len(files)
        machine += [capacity(paths), capacity(paths)]
        print(f"load after: {os.getloadavg()[0]:.2f}; capacity twice before and twice after kpbench: "
              f"{', '.join(f'{rate:.1f}' for rate in machine)} images/s; their mean counts")
        machine = float(np.mean(machine))
    print(f"kpbench steady state: {rate:.1f} images/s per model ({STANDINS} models, one recipe)")
    print(f"this machine's capacity for the same CPU work: {machine:.1f} images/s ({cores} cores)")
    print(f"per shard of {SHARD}: waited {waited:.3f} s for crops, {forward:.3f} s in forward passes")
    print(f"feed efficiency {rate / machine:.2f}")


def decodes(images: int, run: Path | None) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from runner.catalog import load_catalog
    from runner.data.decode import cut_crops, load_crops
    from runner.data.index import open_dataset
    from runner.data.sample import write_sample_dataset

    specs = load_catalog().select(["northcutt2019"], ["pytorch", "keras"])
    recipes = sorted({spec.recipe("reference") for spec in specs}, key=lambda r: r.key)
    with tempfile.TemporaryDirectory() as tmp:
        data = write_sample_dataset(Path(tmp) / "data", num_classes=10, per_class=images // 10)
        records = open_dataset(str(data / "val"), classes=str(data / "classes.txt")).records
        per_recipe = best_of(3, lambda: [load_crops(records, recipe, 1) for recipe in recipes])
        with ThreadPoolExecutor(1) as pool:
            once = best_of(3, lambda: cut_crops(records, recipes, pool))
        print(f"{len(recipes)} recipes, {len(records)} images, one thread: decoding once per recipe "
              f"{per_recipe:.2f} s, once for all recipes {once:.2f} s ({per_recipe / once:.2f}x)")
        run = run or Path(tmp) / "run"
        kpbench(["--data", str(data / "val"), "--classes", str(data / "classes.txt"),
                 "--models", "northcutt2019", "--weights", "random", "--shard-size", "10",
                 "--out", str(run)])  # a finished run resumes with nothing to do
        files = provenances(run)
    shards = {p.shard.index for p in files}
    decode_ids = {p.decode.decode_id for p in files}
    hosts = {p.decode.decoded_by.split(":")[0] for p in files}
    print(f"{len({(p.framework, p.model) for p in files})} models, {len(files)} files, "
          f"{len({str(p.recipe) for p in files})} recipes: {len(decode_ids) / len(shards):.2f} "
          f"decodes per image ({len(decode_ids)} decodes of {len(shards)} shards, {len(hosts)} host(s))")


def best_of(rounds: int, work: Callable[[], object]) -> float:
    """The fastest of a few rounds, in seconds (the machine may be shared)."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


# ---- simulated ----
def measured_costs() -> dict[str, float]:
    """Seconds per image on one core (the best of 3 rounds: the machine may be shared): decode,
    one recipe's cut, and an actor's CPU work per image on a GPU machine, where to_input copies
    the uint8 crops into a tensor and to the device (twice the copy here) and converts them there."""
    import torch
    from pipeline import write_images

    from runner.data.recipes import Recipe, decode_rgb

    with tempfile.TemporaryDirectory() as tmp:
        paths = sorted(str(p) for p in write_images(Path(tmp) / "d", 30).rglob("*.JPEG"))
        recipe = Recipe(**RECIPE)
        decoded = [decode_rgb(path) for path in paths]
        crops = np.stack([recipe.apply(image) for image in decoded])
        count = len(paths)
        return {"decode": best_of(3, lambda: [decode_rgb(path) for path in paths]) / count,
                "cut": best_of(3, lambda: [recipe.apply(image) for image in decoded]) / count,
                "tensor": 2 * best_of(3, lambda: torch.tensor(crops)) / count}


class FakeCluster:
    """The event loop of runner/run/execute.py on a fake clock: the same policy calls, with a
    node decoder (or, --before, the decoding replica) as a queue served at `threads` images at
    once, and each replica's shards run one after another on its GPU."""

    def __init__(self, specs, nodes: int, gpus: int, cores: int, costs: dict, before: bool,
                 start_seconds: float, images: int = 50_000, shard_size: int = 1000):
        from runner.data.records import Shard
        from runner.plan.pairs import PairJob, PairPlan
        from runner.plan.schedule import PairState, Scheduler
        from runner.run.crops import CropCache
        from runner.run.feed import MIN_WINDOW, FeedPolicy
        from runner.run.replicas import Fleet

        self.costs, self.before, self.shard_size = costs, before, shard_size
        shards = [Shard(k, k * shard_size, min(images, (k + 1) * shard_size))
                  for k in range((images + shard_size - 1) // shard_size)]
        plans = [PairPlan(PairJob(spec, "random", "reference", 0, 1, 1, "sim", 1, "/out", "sim",
                                  spec.key, {}), list(shards), 0) for spec in specs]
        self.speed = {spec.key: GPU_SPEED[spec.framework] for spec in specs}
        budget = 4 * 2**30
        recipes = {spec.recipe("reference") for spec in specs}
        policy = FeedPolicy(budget, 2 if before else None)
        window = MIN_WINDOW if before else policy.window(
            shard_size * sum(r.output_size ** 2 * 3 for r in recipes), nodes * gpus)
        self.threads = policy.threads(cores, gpus)  # one CPU per actor
        self.fleet = Fleet(plans, nodes * gpus, share_decoding=True, window=window)
        self.crops = CropCache(budget, lambda shard: list(range(shard.start, shard.stop)))
        self.scheduler = Scheduler([
            PairState(spec.key, len(shards), shard_size * (1 / self.speed[spec.key] + costs["tensor"]),
                      start_seconds, nodes * gpus) for spec in specs])
        self.node_slots = {f"node{n}": gpus for n in range(nodes)}
        self.start_seconds = start_seconds
        self.now, self.events, self.order = 0.0, [], itertools.count()
        self.server_free: dict[object, float] = defaultdict(float)  # decoder -> when it is idle
        self.gpu_free: dict[int, float] = defaultdict(float)
        self.busy = 0.0

    def at(self, when: float, action: Callable, *args) -> None:
        heapq.heappush(self.events, (when, next(self.order), action, args))

    def run(self) -> tuple[float, float]:
        """(wall seconds, the GPUs' busy fraction)."""
        self._fill()
        while self.events:
            self.now, _, action, args = heapq.heappop(self.events)
            action(*args)
        return self.now, self.busy / (sum(self.node_slots.values()) * self.now)

    def _fill(self) -> None:
        while self.fleet.free_slots and (key := self.scheduler.choose()) is not None:
            node = max(self.node_slots, key=self.node_slots.get)
            self.node_slots[node] -= 1
            replica = self.fleet.add(key, node)
            self.scheduler.started(key)
            self.at(self.now + self.start_seconds, self._ready, replica, node)

    def _ready(self, replica: int, node: str) -> None:
        # before: crops went to any node; the decoding replica's own node is the one that counts
        self.fleet.mark_ready(replica, None if self.before else node)
        self._top_up(replica)

    def _top_up(self, replica: int) -> None:
        key = self.fleet.replicas[replica].key
        while self.fleet.has_room(replica) and self.scheduler.take_shard(key):
            self._need(replica, self.fleet.assign(replica))
        if not self.fleet.replicas[replica].assigned:
            gone = self.fleet.retire(replica)
            self.node_slots[gone.actor] += 1
            self.scheduler.stopped(gone.key)
            self._fill()

    def _need(self, replica: int, shard) -> None:
        crop_key = self.fleet.crop_key(replica, shard)
        if self.crops.get(crop_key) is None:
            self._decode(crop_key, replica, shard)
        if self.crops.want(crop_key, self.fleet.replicas[replica].key, (replica, shard)):
            self._infer(replica, shard)

    def _decode(self, wanted, replica: int, shard) -> None:
        node, decode_key, index = wanted
        cuts = []
        for other, recipe in (self.fleet.cut_together(decode_key)[:1] if self.before
                              else self.fleet.cut_together(decode_key)):
            crop_key, size = (node, other, index), shard.size * recipe.output_size ** 2 * 3
            sharers = self.fleet.sharers(other, index, node)
            if self.crops.get(crop_key) is None and (crop_key == wanted
                                                     or self.crops.worth_cutting(size, *sharers)):
                cuts.append((crop_key, size, sharers))
        for crop_key, size, sharers in cuts:
            self.crops.add(crop_key, None, None, size, *sharers)
        server = replica if self.before else node  # before: the replica that asked decodes
        work = shard.size * (self.costs["decode"] + len(cuts) * self.costs["cut"]) / self.threads
        start = max(self.now, self.server_free[server])
        self.server_free[server] = start + work
        self.at(start + work, self._decoded, [crop_key for crop_key, _, _ in cuts])

    def _decoded(self, crop_keys: list) -> None:
        for crop_key in crop_keys:
            _, waiters = self.crops.decoded(crop_key)
            for replica, shard in waiters:
                if replica in self.fleet.replicas:
                    self._infer(replica, shard)

    def _infer(self, replica: int, shard) -> None:
        key = self.fleet.replicas[replica].key
        compute = shard.size / self.speed[key]
        seconds = compute + shard.size * self.costs["tensor"]
        start = max(self.now, self.gpu_free[replica])
        self.gpu_free[replica] = start + seconds
        self.busy += compute
        self.at(start + seconds, self._inferred, replica, shard, seconds)

    def _inferred(self, replica: int, shard, seconds: float) -> None:
        fleet_replica = self.fleet.replicas[replica]
        fleet_replica.assigned.remove(shard)
        self.crops.release(self.fleet.crop_key(replica, shard), fleet_replica.key)
        self.scheduler.measured(fleet_replica.key, seconds)
        self._top_up(replica)


def simulate(shape: str, before: bool, start_seconds: float) -> None:
    from runner.catalog import load_catalog

    match = re.fullmatch(r"(?:(\d+)x)?(\d+)x(\d+)", shape)
    if not match:
        raise SystemExit(f"--simulate: expected [NODESx]GPUSxCORES such as 8x96 or 4x8x96, not {shape}")
    nodes, gpus, cores = int(match[1] or 1), int(match[2]), int(match[3])
    costs = measured_costs()
    print(f"measured here, per image on one core: decode {costs['decode'] * 1e3:.2f} ms, one "
          f"recipe's cut {costs['cut'] * 1e3:.2f} ms, a model actor's copy to its GPU "
          f"{costs['tensor'] * 1e3:.2f} ms; {'before' if before else 'after'}: {nodes} node(s) "
          f"x {gpus} GPUs x {cores} cores, 50,000 images, {start_seconds:g} s per model load")
    specs = load_catalog().select(["northcutt2019"], ["pytorch", "keras"])
    sets = {"northcutt2019, PyTorch (21)": [s for s in specs if s.framework == "pytorch"],
            "northcutt2019, Keras (13)": [s for s in specs if s.framework == "keras"],
            "northcutt2019 (34)": specs}
    print(f"{'model set':<30} {'wall':>8} {'GPU-bound':>10} {'busy':>6} {'busy, CPUs unlimited':>21}")
    busy = 0.0
    for name, chosen in sets.items():
        wall, busy = FakeCluster(chosen, nodes, gpus, cores, costs, before, start_seconds).run()
        _, unlimited = FakeCluster(chosen, nodes, gpus, 10**6, costs, before, start_seconds).run()
        ideal = sum(50_000 / GPU_SPEED[s.framework] for s in chosen) / (nodes * gpus)
        print(f"{name:<30} {wall:>7.0f}s {ideal:>9.0f}s {busy:>6.2f} {unlimited:>21.2f}")
    print(f"busy {busy:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulate", metavar="[NODESx]GPUSxCORES")
    parser.add_argument("--before", action="store_true", help="simulate the previous feeder")
    parser.add_argument("--start-seconds", type=float, default=5.0, help="simulated model load")
    parser.add_argument("--decodes", action="store_true", help="decodes per image, 34 models")
    parser.add_argument("--run", type=Path, help="--decodes: run into (or resume) this folder and keep it")
    parser.add_argument("--images", type=int)
    parser.add_argument("--data", type=Path, help="reuse (or keep) the generated JPEGs here")
    args = parser.parse_args()
    if args.simulate:
        simulate(args.simulate, args.before, args.start_seconds)
    elif args.decodes:
        decodes(args.images or 40, args.run)
    else:
        feed_efficiency(args.images or 3000, args.data)


if __name__ == "__main__":
    main()
