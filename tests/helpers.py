"""Helpers shared by the test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TypedDict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from scipy.stats import binomtest

from runner import __version__
from runner.catalog import load_catalog
from runner.config import RunConfig, load_config
from runner.predictions import (
    SCHEMA_VERSION,
    Provenance,
    predictions_table,
    shard_path,
    write_shard,
)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "reference"
NORTHCUTT = SHARED / "northcutt2019"
GROUND_TRUTH = SHARED / "imagenet" / "val_ground_truth.csv"

# The two heaviest 2019 Keras builds run under `make test-slow` only; every family still has a
# member in CI: NASNetMobile stands for NASNet, InceptionV3 for Inception.
KERAS_SLOW = {"nasnetlarge", "inceptionresnetv2"}
KERAS_LOADS = {"tensorflow": ["tensorflow"], "jax": [], "torch": ["torch"]}  # frameworks imported


# ---- child processes ----

class ProbeFailed(AssertionError):
    """A framework probe's child process exited with an error (stderr's tail in the message)."""


def probe(framework: str, check: str, args, env: dict | None = None, timeout: int = 900) -> dict:
    """Run a tests.framework_probe check in a child process (one framework per process)."""
    completed = subprocess.run(
        [sys.executable, "-m", "tests.framework_probe", framework, check, json.dumps(args)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if completed.returncode != 0:
        raise ProbeFailed(completed.stderr[-3000:])
    document = json.loads(completed.stdout.strip().splitlines()[-1])
    # Keras loads its backend's framework only (on jax, neither PyTorch nor TensorFlow)
    backend = args.get("backend") if isinstance(args, dict) else None
    expected = {"pytorch": ["torch"], "keras": KERAS_LOADS[backend or "tensorflow"]}[framework]
    assert document["frameworks_loaded"] == expected, "a probe must load exactly one framework"
    return document["result"]


def run_cli(*args: str, cwd: Path = ROOT, env: dict | None = None,
            timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m runner ARGS` in a child process (env: the whole environment, when given)."""
    return subprocess.run(
        [sys.executable, "-m", "runner", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout,
    )


def offline_weight_caches(tmp_path: Path) -> dict:
    """Empty weights caches under tmp_path, and a proxy nothing listens on: every download fails
    at once, as on a machine without internet."""
    unreachable = "http://127.0.0.1:9"
    return {"TORCH_HOME": str(tmp_path / "torch"), "KERAS_HOME": str(tmp_path / "keras"),
            "HTTPS_PROXY": unreachable, "https_proxy": unreachable}


# ---- runs and their files ----

def sample_config(sample_dir: Path, out: Path, models: list[str], **overrides) -> RunConfig:
    """A random-weight run over the generated sample data."""
    return load_config(None, {
        "data": str(sample_dir / "val"), "classes": str(sample_dir / "classes.txt"),
        "out": str(out), "models": models, "weights": "random", **overrides,
    })


def read_predictions(out: Path, columns: list[str] | None = None) -> pa.Table:
    """Every prediction row of a run folder, with `framework` and `model` from the paths,
    sorted by (framework, model, position)."""
    table = ds.dataset(out / "predictions", format="parquet", partitioning="hive").to_table()
    order = [(column, "ascending") for column in ("framework", "model", "position")]
    return table.sort_by(order).select(columns or table.column_names)


def pair_folder(out: Path, model: str, variant: str = "", framework: str = "pytorch") -> Path:
    """A pair's folder of shard files: the model's, or its variant's folder below it."""
    folder = out / "predictions" / f"framework={framework}" / f"model={model}"
    return folder / f"variant={variant}" if variant else folder


def read_pair(folder: Path, columns: list[str]) -> dict[str, np.ndarray]:
    """`columns` of a pair's own shard files (not its variants'), in dataset order."""
    table = pq.read_table(sorted(folder.glob("*.parquet")))
    order = np.argsort(table["position"].to_numpy())
    return {column: np.array(table[column].to_pylist())[order] for column in columns}


class PairFigures(TypedDict):
    """A pair's row of the sensitivity table, recomputed from its Parquet files."""

    images: int  # read by this pair and the model's base pair (the base row: by the base pair)
    acc1: float  # percent, over those images
    acc1_diff: float | None  # points, this pair minus the base pair on those images; None: base
    flips: int | None  # images whose top-1 class changed, either way; None for the base row
    mcnemar_p: float | None  # exact two-sided McNemar p of the top-1 change; None for the base row
    spread1: float  # the model's max - min Acc@1 over its base pair and variants


def sensitivity_from_parquet(out: Path) -> dict[tuple[str, str], PairFigures]:
    """(model, variant) -> its figures, for every model with a base pair (variant "" below, null
    in the files) and at least one variant, recomputed from OUT/predictions with pyarrow, numpy
    and scipy alone (independent of runner.score): each variant against the base pair on the
    images both read, matched by dataset position. A model name must belong to one framework
    (and backend)."""
    table = ds.dataset(out / "predictions", format="parquet", partitioning="hive").to_table()

    def column(name: str) -> list:
        return table[name].to_pylist() if name in table.column_names else [None] * table.num_rows

    top1 = pc.list_element(table["top5_class"], 0).fill_null(-1).to_numpy()
    ok = np.array([status == "ok" for status in column("status")], dtype=bool)
    positions, labels = table["position"].to_numpy(), table["label"].to_numpy()
    models = np.array(column("model"), dtype=object)
    variant_of = np.array([variant or "" for variant in column("variant")], dtype=object)
    homes = np.array([f"{framework}/{backend}" for framework, backend
                      in zip(column("framework"), column("backend"), strict=True)], dtype=object)
    figures: dict[tuple[str, str], PairFigures] = {}
    for model in sorted(set(models)):
        of_model = models == model
        assert len(set(homes[of_model])) == 1, f"{model} is in several frameworks or backends"
        names = sorted(set(variant_of[of_model]))
        if "" not in names or len(names) == 1:
            continue
        pairs = {}
        for name in names:
            rows = np.flatnonzero(of_model & (variant_of == name))
            assert len(set(positions[rows])) == len(rows), f"{model} {name!r}: a position twice"
            pairs[name] = {int(positions[i]): (bool(ok[i]), int(top1[i]), int(labels[i])) for i in rows}
        base = pairs[""]
        mine: dict[str, PairFigures] = {}
        for name, pair in pairs.items():
            both = sorted(p for p, (read, _, _) in pair.items() if read and base.get(p, (False,))[0])
            right = np.array([pair[p][1] == pair[p][2] for p in both], dtype=bool)
            before = np.array([base[p][1] == base[p][2] for p in both], dtype=bool)
            acc1 = 100.0 * float(right.mean()) if both else float("nan")
            row = PairFigures(images=len(both), acc1=acc1, acc1_diff=None, flips=None, mcnemar_p=None,
                              spread1=float("nan"))
            if name != "":
                gained, lost = int((right & ~before).sum()), int((before & ~right).sum())
                row["acc1_diff"] = acc1 - 100.0 * float(before.mean()) if both else float("nan")
                row["flips"] = sum(pair[p][1] != base[p][1] for p in both)
                row["mcnemar_p"] = (float(binomtest(gained, gained + lost, 0.5).pvalue)
                                    if gained + lost else 1.0)
            mine[name] = row
        measured = [row["acc1"] for row in mine.values() if not np.isnan(row["acc1"])]
        for name, row in mine.items():
            row["spread1"] = max(measured) - min(measured) if measured else float("nan")
            figures[(str(model), name)] = row
    return figures


def sensitivity_mismatches(rows: list[dict], expected: dict[tuple[str, str], PairFigures]) -> list[str]:
    """What differs between results/sensitivity.json's rows and sensitivity_from_parquet's figures
    (every row, every figure; floats to 1e-9 relative): one line per difference, [] when none."""
    problems = []
    keys = [(row["model"], row["variant"]) for row in rows]
    if sorted(keys) != sorted(expected):
        problems.append(f"rows {sorted(keys)} != pairs in the files {sorted(expected)}")
    for row, key in zip(rows, keys, strict=True):
        for name, value in expected.get(key, {}).items():
            got = row.get(name)
            same = (got is None and value is None) if got is None or value is None else (
                got == value if isinstance(value, int) and not isinstance(value, bool)
                else got == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True))
            if not same:
                problems.append(f"{key} {name}: table {got!r}, files {value!r}")
    return problems


# ---- catalog builds ----

def prediction_problems(framework: str, results: dict) -> list[str]:
    """What is wrong with each built model's prediction (a framework_probe build_and_predict
    result): it must be a (1, 1000) probability row from an architecture of the catalog's
    parameter count (and, for Keras, input size and in-model preprocessing). Every model is
    checked, so a failure names all the models that fail, not only the first."""
    catalog = load_catalog()
    problems = []
    for name, result in results.items():
        if "error" in result:
            problems.append(f"{framework}/{name}: {result['error']}")
            continue
        spec = catalog.get(f"{framework}/{name}")
        expected = {"shape": [1, 1000], "params": spec.num_params}
        if framework == "keras":
            expected["in_model_preprocessing"] = spec.preprocess == "none"
            if result["input_size"] is not None:  # None: the application accepts any size
                expected["input_size"] = spec.input_size
        wrong = {key: (result[key], value) for key, value in expected.items() if result[key] != value}
        if abs(result["sum"] - 1.0) > 1e-4 or result["min"] < 0:
            wrong["probabilities"] = (f"sum {result['sum']}, min {result['min']}", "sum 1, min >= 0")
        problems += [f"{framework}/{name}: {key} is {got}, expected {want}"
                     for key, (got, want) in wrong.items()]
    return problems


def check_predictions(framework: str, results: dict) -> None:
    problems = prediction_problems(framework, results)
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


# ---- hand-made prediction files with known answers, for reducer tests ----

def provenance_for(framework, model, images, shard=(0, 0, 1), pair_key="k", weights="random",
                   protocol="reference", documented=None, spec=None, dataset=None) -> Provenance:
    """`shard` is (index, start, stop); `spec`: catalog entry fields to add or replace;
    `dataset`: more dataset entries (name, subset)."""
    index, start, stop = shard
    return Provenance(
        schema_version=SCHEMA_VERSION, kpbench_version=__version__, run_id="test",
        framework=framework, model=model, pair_key=pair_key, weights=weights,
        protocol=protocol, batch_mode="batched", device="cpu", shard_seconds=2.0,
        dataset={"images": images, **(dataset or {})}, shard={"index": index, "start": start, "stop": stop},
        spec={"published": {"northcutt2019": [50.0, 70.0], "documented": documented},
              "documented_source": "docs", "family": model.rstrip("0123456789"), **(spec or {})},
    )


def write_pair(out, framework, model, labels, top5, errors=(), shard=0, start=0, images=None,
               image_ids=None, subset_top5=None, variant=None, **provenance):
    """One shard of `labels` rows from position `start`; `top5[i]` is row i's top-5 (None for
    the rows listed in `errors`, which are written as unreadable); `subset_top5` likewise, for
    a dataset scored over a class subset; `variant`: a variant's name (its folder below the
    model's; the files' provenance does not name it)."""
    ok = [i for i in range(len(labels)) if i not in errors]
    classes = np.array([top5[i] for i in ok], np.int32).reshape(-1, 5)
    probs = np.tile(np.array([0.5, 0.2, 0.1, 0.1, 0.1], np.float32), (len(ok), 1))
    prov = provenance_for(framework, model, images or len(labels),
                          (shard, start, start + len(labels)), **provenance)
    table = predictions_table(
        image_ids or [f"img{start + i}" for i in range(len(labels))],
        [start + i for i in range(len(labels))],
        labels,
        ["OSError: broken" if i in errors else None for i in range(len(labels))],
        classes, probs, prov,
        None if subset_top5 is None else (np.array([subset_top5[i] for i in ok], np.int32), probs),
    )
    write_shard(table, shard_path(out, framework, model, shard,
                                  variant_folder=None if variant is None else f"variant={variant}"))


# A run for report tests: (framework, model, arch, parameters, GFLOPs, images of 4 it gets right)
REPORT_MODELS = [("pytorch", "resnet50", "resnet50", 25_557_032, 4.1, 3),
                 ("keras", "ResNet50", "resnet50", 25_636_712, 3.9, 2),
                 ("pytorch", "vgg16", "vgg16", 138_357_544, 15.5, 1),
                 ("keras", "MobileNet", "mobilenet_v1", 4_253_864, 0.57, 4)]


def write_report_run(out, weights="random"):
    """Four models of two frameworks on four images (northcutt2019 protocol, so the published
    figure is the 50/70 of provenance_for)."""
    recipe = {"resize": "shorter_side", "size": 256, "crop": 224, "interpolation": "bilinear"}
    for framework, model, arch, params, gflops, right in REPORT_MODELS:
        top5 = [[label if i < right else 9, 8, 7, 6, 5] for i, label in enumerate(range(4))]
        write_pair(out, framework, model, list(range(4)), top5, weights=weights, protocol="northcutt2019",
                   image_ids=[f"ILSVRC2012_val_{n:08d}.JPEG" for n in (1, 2, 3, 4)],
                   spec={"arch": arch, "num_params": params, "gflops": gflops,
                         "model_set": "northcutt2019", "recipes": {"northcutt2019": recipe}})
    return out
