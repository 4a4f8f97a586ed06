"""`kpbench compare`: how much two runs' predictions differ, per (framework, model) in both; or,
with two Keras backends, each Keras model on one backend against itself on the other.

Works across Keras modes, protocols, precisions, backends and reruns: rows are matched by
dataset position.
Probabilities are compared for classes in both top-5 lists (the files keep only the top 5).
An exact McNemar test on top-1 correctness (runner.score.stats) says whether the accuracy
difference is more than chance: over the images both read, how many only A and only B got right.
"""

from __future__ import annotations

import numpy as np
from rich.console import Console
from rich.table import Table

from runner.errors import UserError
from runner.frameworks.keras_runtime import backend_suffix
from runner.outputs import LocationLike
from runner.predictions import (
    PairPredictions,
    Provenance,
    Record,
    keras_backend_of,
    load_pair,
    model_folder,
    pair_folder_key,
    pair_folders,
)
from runner.score.columns import default_settings
from runner.score.reduce import accuracy
from runner.score.stats import Hits, mcnemar


class CompareRow(Record):
    """One (framework, backend, model) in both runs, A and B; differences are B minus A."""

    framework: str
    # Keras: tensorflow, jax or torch ("tensorflow -> jax" across backends); None for PyTorch
    backend: str | None
    model: str
    variant: str | None = None  # the variant (runner/plan/variants.py); None: the base pair
    # "fp32 -> bf16" when the runs differ in it (compare then shows bf16's agreement with fp32)
    precision: str
    images: int  # readable in both runs
    only_in_one: int  # positions with a row in one run only
    status_changed: int  # readable in one run, unreadable in the other
    top1_agreement: float  # percent of `images` with the same top-1
    top5_set_agreement: float  # percent of `images` with the same top-5 set
    top1_changed: int
    max_prob_diff: float  # largest probability change of a class in both top-5 lists
    acc1_diff: float
    acc5_diff: float
    # exact McNemar test of the top-1 difference, over the images both read
    only_a_right: int  # right in A only
    only_b_right: int  # right in B only
    mcnemar_p: float  # two-sided; 1.0 when no image separates the runs
    identical: bool  # the same rows, statuses, classes and probabilities


SHOWN = ("framework", "backend", "model", "variant", "precision", "images", "top1_agreement",
         "top5_set_agreement", "top1_changed",
         "max_prob_diff", "acc1_diff", "acc5_diff", "only_a_right", "only_b_right", "mcnemar_p",
         "identical")


def compare_runs(run_a: LocationLike, run_b: LocationLike,
                 backends: tuple[str, str] | None = None) -> list[CompareRow]:
    """One row per (framework, model) with predictions in both runs, in name order; with
    `backends` (A's, B's), the Keras models on A's backend in run A against the same models on
    B's backend in run B (which may be the same run)."""
    folders_a, folders_b = (_pairs(run, backends[i] if backends else None)
                            for i, run in enumerate((run_a, run_b)))
    common = sorted(set(folders_a) & set(folders_b))
    if not common:
        raise UserError(f"{run_a} and {run_b} have no (framework, model) in common" if not backends
                        else f"no Keras model on {backends[0]} in {run_a} and on {backends[1]} in {run_b}")
    rows = []
    for key in common:
        a = load_pair(folders_a[key], probabilities=True)
        b = load_pair(folders_b[key], probabilities=True)
        if a.provenance is not None and b.provenance is not None:
            rows.append(compare_pair(a, b))
    return rows


def _pairs(run: LocationLike, keras_backend: str | None) -> dict:
    """A run's pair folders by their place; with a backend, its Keras pairs on it, by model."""
    folders = pair_folders(run)
    if keras_backend is None:
        return {pair_folder_key(folder): folder for folder in folders}
    # by model and variant (a base pair's folder is its model's)
    return {(model_folder(folder).name, folder.name): folder for folder in folders
            if keras_backend_of(folder) == keras_backend}


def _loaded(pair: PairPredictions) -> tuple[Provenance, np.ndarray]:
    """What compare_pair reads: the files' provenance and the probabilities (load_pair's)."""
    if pair.provenance is None or pair.probs is None:
        raise ValueError("compare_pair needs predictions loaded with their probabilities")
    return pair.provenance, pair.probs


def compare_pair(a: PairPredictions, b: PairPredictions) -> CompareRow:
    _, in_a, in_b = np.intersect1d(a.positions, b.positions, assume_unique=True, return_indices=True)
    status_changed = int((a.ok[in_a] != b.ok[in_b]).sum())
    both = a.ok[in_a] & b.ok[in_b]
    (run_a, all_probs_a), (run_b, all_probs_b) = _loaded(a), _loaded(b)
    top_a, top_b = a.top[in_a][both], b.top[in_b][both]
    probs_a, probs_b = all_probs_a[in_a][both], all_probs_b[in_b][both]
    same_class = top_a[:, :, None] == top_b[:, None, :]  # (images, 5, 5)
    gaps = np.abs(probs_a[:, :, None] - probs_b[:, None, :])[same_class]
    changed = int((top_a[:, 0] != top_b[:, 0]).sum())
    set_agree = (np.sort(top_a, axis=1) == np.sort(top_b, axis=1)).all(axis=1)
    (acc1_a, acc5_a), (acc1_b, acc5_b) = (
        accuracy(p.top[p.ok], p.labels[p.ok]) for p in (a, b)
    )
    identical = (
        len(a.positions) == len(b.positions) == len(in_a)
        and status_changed == 0
        and np.array_equal(top_a, top_b)
        and np.array_equal(probs_a, probs_b)
    )
    images = int(both.sum())
    hits_a, hits_b = (Hits.of(p.positions[p.ok], p.top[p.ok], p.labels[p.ok]) for p in (a, b))
    test = mcnemar(hits_a, hits_b)
    return CompareRow(
        framework=run_a.framework,
        backend=_either(run.backend_setting for run in (run_a, run_b)),
        model=run_a.model,
        variant=run_a.variant,
        precision=_either(run.precision_setting for run in (run_a, run_b)),
        images=images,
        only_in_one=int(len(a.positions) + len(b.positions) - 2 * len(in_a)),
        status_changed=status_changed,
        top1_agreement=100.0 * (images - changed) / images if images else float("nan"),
        top5_set_agreement=float(100.0 * set_agree.mean()) if images else float("nan"),
        top1_changed=changed,
        max_prob_diff=float(gaps.max()) if gaps.size else 0.0,
        acc1_diff=acc1_b - acc1_a,
        acc5_diff=acc5_b - acc5_a,
        only_a_right=test.only_a,
        only_b_right=test.only_b,
        mcnemar_p=test.pvalue,
        identical=bool(identical),
    )


def _either(settings) -> str | None:
    """A setting both runs share, or "A's -> B's"."""
    settings = list(dict.fromkeys(settings))
    return settings[0] if len(settings) == 1 else " -> ".join(map(str, settings))


def print_comparison(console: Console, rows: list[CompareRow], title: str) -> list[CompareRow]:
    """Print the table and a line per differing model; returns the differing rows."""
    table = Table(title=title)
    shown = [column for column in SHOWN if column not in default_settings(rows, getattr)]
    for column in shown:
        table.add_column(column, justify="left" if column in ("framework", "model") else "right")
    for row in rows:
        table.add_row(*(_fmt(column, getattr(row, column)) for column in shown))
    console.print(table)
    for column in ("backend", "precision"):  # also where the table is too narrow to show them
        changes = [getattr(row, column) for row in rows if "->" in (getattr(row, column) or "")]
        for change in dict.fromkeys(changes):
            console.print(f"{column}: {change} (A -> B)")
    different = [row for row in rows if not row.identical]
    for row in different:
        extra = [f"{count} {name.replace('_', ' ')}" for name, count in
                 (("only_in_one", row.only_in_one), ("status_changed", row.status_changed)) if count]
        backend = f" ({row.backend})" if "->" in (row.backend or "") else backend_suffix(row.backend)
        variant = f" ({row.variant})" if row.variant else ""
        console.print(f"differs: {row.framework}/{row.model}{backend}{variant}: "
                      f"{row.top1_changed} changed top-1, "
                      f"max |dp| {row.max_prob_diff:.3g}" + "".join(f", {e}" for e in extra),
                      highlight=False)
    if not different:
        console.print(f"identical: all {len(rows)} model(s) in both runs")
    return different


def _fmt(column: str, value) -> str:
    if value is None:  # PyTorch's backend
        return ""
    if column in ("max_prob_diff", "mcnemar_p"):
        return f"{value:.3g}"
    if isinstance(value, float):
        return f"{value:+.2f}" if column.endswith("_diff") else f"{value:.2f}"
    return str(value)
