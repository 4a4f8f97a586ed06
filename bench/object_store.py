"""A run written to object storage against the same run written to local disk.

    .venv/bin/python bench/object_store.py [--images 200] [--shard-size 10] [--repeat 2]

Starts a real S3 server (moto, tests/s3server.py) on 127.0.0.1 and one local Ray, then times, in
this one process, the same random-weight run of pytorch/squeezenet1_1 over generated images into
a local folder and into the bucket (best of --repeat each, after a warm-up run), and prints:
- the run's wall time both ways and their ratio, and the difference per shard written;
- one shard file's write (a PUT against an atomic local write) and the resume check of a
  finished run folder (list it, read each file's provenance) both ways.
Informational: the server is on this machine, so this is the per-request cost of the S3 protocol
(signing, HTTP, the server) without a network; a real store adds its latency per request.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/s3server.py: the same server the tests start

import pyarrow.parquet as pq  # noqa: E402
import ray  # noqa: E402
from rich.console import Console  # noqa: E402

from runner.config import RunConfig, load_config  # noqa: E402
from runner.data.sample import write_sample_dataset  # noqa: E402
from runner.outputs import Location  # noqa: E402
from runner.plan.pairs import plan_run  # noqa: E402
from runner.predictions import pair_folders, read_provenances, write_shard  # noqa: E402
from runner.run.driver import run_benchmark  # noqa: E402
from tests.s3server import BUCKET, running_s3_server  # noqa: E402

MODEL = "pytorch/squeezenet1_1"


def best_of(repeat: int, function) -> float:
    """The shortest wall time of `repeat` calls of function(k), k = 0, 1, ..."""
    times = []
    for k in range(repeat):
        started = time.perf_counter()
        function(k)
        times.append(time.perf_counter() - started)
    return min(times)


def measure(data: Path, shard_size: int, repeat: int, local: Path) -> dict[str, float]:
    def config(out: str) -> RunConfig:
        return load_config(None, {"data": str(data / "val"), "classes": str(data / "classes.txt"),
                                  "out": out, "models": [MODEL], "weights": "random",
                                  "shard_size": shard_size})

    def run(out: str) -> None:
        assert run_benchmark(config(out), Console(quiet=True)).failed == {}

    places = {"local": str(local), "s3": f"s3://{BUCKET}"}
    run(f"{places['local']}/warm-up")
    figures = {}
    for name, base in places.items():
        figures[f"run_{name}"] = best_of(repeat, lambda k, base=base: run(f"{base}/run{k}"))
    files = {name: pair_folders(f"{base}/run0")[0].files("*.parquet") for name, base in places.items()}
    table = pq.read_table(files["local"][0].path)
    for name, base in places.items():
        writes = Location.of(f"{base}/writes")
        figures[f"write_{name}"] = best_of(20, lambda k, w=writes: write_shard(table, w / f"{k}.parquet"))
        figures[f"resume_{name}"] = best_of(repeat, lambda k, b=base: plan_run(config(f"{b}/run0")))
        figures[f"provenance_{name}"] = best_of(repeat, lambda k, f=files[name]: read_provenances(f))
    figures["shards"] = len(files["local"])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="images (5 classes)")
    parser.add_argument("--shard-size", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_s3_server(Path(tmp)) as server:
        os.environ.update(server.environment())  # before Ray starts: its workers inherit them
        data = write_sample_dataset(Path(tmp) / "data", 5, max(1, args.images // 5))
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
        try:
            f = measure(data, args.shard_size, args.repeat, Path(tmp))
        finally:
            ray.shutdown()
    shards = f["shards"]
    print(f"run of {MODEL}, {shards} shards of {args.shard_size} images (best of {args.repeat}):")
    print(f"  local disk {f['run_local']:7.2f} s   local S3 {f['run_s3']:7.2f} s   "
          f"ratio S3/local {f['run_s3'] / f['run_local']:.2f}   "
          f"difference per shard {1000 * (f['run_s3'] - f['run_local']) / shards:+.1f} ms")
    print(f"one shard file written:   local {1000 * f['write_local']:6.2f} ms   "
          f"S3 {1000 * f['write_s3']:6.2f} ms   ratio {f['write_s3'] / f['write_local']:.1f}")
    print(f"resume check (plan_run):  local {f['resume_local']:6.2f} s    "
          f"S3 {f['resume_s3']:6.2f} s    ratio {f['resume_s3'] / f['resume_local']:.2f}")
    print(f"provenance of {shards} files: local {1000 * f['provenance_local']:6.1f} ms   "
          f"S3 {1000 * f['provenance_s3']:6.1f} ms")


if __name__ == "__main__":
    main()
