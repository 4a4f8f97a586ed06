"""Scoring speed: kpbench's reducer against a per-row Python loop over the same Parquet rows.

    .venv/bin/python bench/score.py [--reference ../shared/reference/northcutt2019]

Imports the 34 models of the 2019 benchmark (34 x 50,000 = 1.7 million rows) into a temporary
run folder (or, when the reference files are absent, writes random predictions of the same
shape), then measures, in this one process:
- kpbench: `runner.score.reduce.score` (read Parquet, Acc@1/Acc@5, ranks), best of 3;
- baseline: the same files read row by row into Python objects, then a loop per row.
It prints process CPU seconds for both, the ratio, and checks that both give the same figures.

Then the rank intervals alone (`runner.score.stats.rank_intervals`, the paired bootstrap inside
`score`: 1,000 resamples of the 50,000 images, 34 models), wall-clock and CPU seconds, best of
3, against the target of 5 s, and against drawing the same resamples as image indices and
gathering each model's correctness per resample (100 resamples timed, scaled to 1,000).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from runner.import_npy import import_npy
from runner.predictions import load_pair, pair_folders
from runner.score.reduce import score
from runner.score.stats import RESAMPLES, SEED, Hits, rank_intervals

ROOT = Path(__file__).resolve().parents[1]


def prepare(out: Path, reference: Path) -> str:
    if (reference / "keras_imagenet").is_dir():
        for framework in ("keras", "pytorch"):
            import_npy(str(reference / f"{framework}_imagenet"), str(out))
        return f"the 2019 files in {reference}"
    rng = np.random.default_rng(0)
    npy = out / "npy"
    npy.mkdir()
    for k in range(34):
        preds = np.stack([rng.permutation(1000)[:5] for _ in range(50_000)])
        np.save(npy / f"model{k}_pytorch_imagenet_top5preds.npy", preds)
        np.save(npy / f"model{k}_pytorch_imagenet_top5probs.npy", rng.random((50_000, 5)).astype("f4"))
    import_npy(str(npy), str(out))
    return "random predictions (reference files not found)"


def per_row_loop(out: Path) -> dict:
    """What a straightforward scorer does: Python objects and a loop per row."""
    figures = {}
    for folder in sorted((out / "predictions").glob("framework=*/model=*")):
        rows = pq.read_table(sorted(folder.glob("*.parquet"))).to_pylist()
        top1 = top5 = scored = 0
        for row in rows:
            if row["status"] != "ok":
                continue
            scored += 1
            top1 += row["top5_class"][0] == row["label"]
            top5 += row["label"] in row["top5_class"]
        key = (folder.parent.name.split("=")[1], folder.name.split("=")[1])
        figures[key] = (100 * top1 / scored, 100 * top5 / scored)
    return figures


def timed(function, *args, repeat: int = 1, clock=time.process_time):
    best = None
    for _ in range(repeat):
        started = clock()
        result = function(*args)
        spent = clock() - started
        best = spent if best is None else min(best, spent)
    return result, best


def top1_hits(out: Path) -> dict:
    """Each pair's per-image top-1 correctness, as the reducer hands it to rank_intervals."""
    hits = {}
    for folder in pair_folders(out):
        pair = load_pair(folder)
        ok = pair.ok
        hits[str(folder)] = Hits.of(pair.positions[ok], pair.top[ok], pair.labels[ok])
    return hits


def gathered_accuracies(hits: dict, resamples: int) -> np.ndarray:
    """The baseline: the resamples as image indices, each model's correctness gathered per resample."""
    right = np.stack([model.top1 for model in hits.values()])  # every model scored on every image
    rng = np.random.default_rng(SEED)
    return np.stack([right[:, rng.integers(0, right.shape[1], right.shape[1])].mean(axis=1)
                     for _ in range(resamples)])


def bench_rank_intervals(out: Path) -> None:
    hits = top1_hits(out)
    accuracy = {key: 100 * model.top1.mean() for key, model in hits.items()}
    _, wall = timed(rank_intervals, hits, accuracy, repeat=3, clock=time.perf_counter)
    _, cpu = timed(rank_intervals, hits, accuracy, repeat=3)
    _, gather = timed(gathered_accuracies, hits, RESAMPLES // 10)
    images = len(next(iter(hits.values())).positions)
    print(f"rank intervals ({RESAMPLES:,} paired resamples, {len(hits)} models x {images:,} images): "
          f"{wall:.2f} s wall, {cpu:.2f} s CPU (best of 3; target: under 5 s)")
    print(f"  the same resamples as gathered image indices: {10 * gather:.2f} s CPU "
          f"(100 timed, x10): counts are {10 * gather / cpu:.1f}x faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path,
                        default=ROOT.parent / "shared" / "reference" / "northcutt2019")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        source = prepare(out, args.reference)
        rows, ours = timed(score, out, repeat=3)
        baseline, loop = timed(per_row_loop, out)
        bench_rank_intervals(out)
    total = sum(row["images"] + row["errors"] for row in rows)
    for row in rows:
        acc1, acc5 = baseline[(row["framework"], row["model"])]
        assert abs(acc1 - row["acc1"]) < 1e-9 and abs(acc5 - row["acc5"]) < 1e-9, row["model"]
    print(f"data: {source}: {len(rows)} models, {total:,} rows")
    print(f"kpbench score:      {ours:6.3f} s CPU (best of 3)")
    print(f"per-row Python loop: {loop:6.3f} s CPU")
    print(f"speed-up: {loop / ours:.1f}x (same Acc@1/Acc@5 for every model; kpbench score "
          "includes the rank intervals)")


if __name__ == "__main__":
    main()
