"""Which settings change the answer: every variant of a model against its base pair, per image.

For each model run with variants (runner/plan/variants.py), one row for the base pair and one
per variant: Acc@1/Acc@5 with 95% Clopper-Pearson intervals, the change against the base on the
images both read (variant minus base, with Newcombe's paired interval), the exact McNemar
p-value of the top-1 change, the number of images whose top-1 class changed (either way:
right to wrong, wrong to right, or one wrong class to another) and images/s; per model the
spread (max - min Acc@1 over the base and its variants) and which row's Acc@1 lies nearest the
model's documented figure. Models with the largest spread come first. Pure: no Ray, no framework.
"""

from __future__ import annotations

import math

import numpy as np

from runner.errors import UserError
from runner.outputs import Location, LocationLike
from runner.predictions import PairPredictions, Record, load_pair, pair_folders
from runner.score.columns import RowKey, record_key, row_key
from runner.score.reduce import score
from runner.score.rows import ScoreRow
from runner.score.stats import Hits, clopper_pearson, mcnemar, paired_difference

BASE = ""  # the variant column of a base pair


class SensitivityRow(Record):
    """One pair of a model run with variants; differences are this pair minus the base pair."""

    framework: str
    backend: str | None = None  # Keras' backend; None for PyTorch
    model: str
    variant: str  # canonical name; empty for the base pair
    spread1: float | None  # the model's max - min Acc@1 over its base and variants (points)
    images: int  # readable by this pair and the base (the base row: by the base)
    acc1: float
    acc1_ci_low: float
    acc1_ci_high: float
    acc5: float
    acc5_ci_low: float
    acc5_ci_high: float
    acc1_diff: float | None = None  # points, with its paired 95% interval (Newcombe)
    acc1_diff_low: float | None = None
    acc1_diff_high: float | None = None
    acc5_diff: float | None = None
    acc5_diff_low: float | None = None
    acc5_diff_high: float | None = None
    mcnemar_p: float | None = None  # exact, two-sided, of the top-1 correctness change
    flips: int | None = None  # images whose top-1 class changed
    images_per_s: float | None
    documented_acc1: float | None  # the figure the run's protocol is compared with
    documented_source: str | None
    nearest_documented: bool  # this row's Acc@1 is the model's nearest to documented_acc1
    documented_in_ci: bool | None  # documented_acc1 lies inside this row's Acc@1 interval
    weights: str
    status: str  # ok, incomplete, failed
    failure: str | None = None


def sensitivity(out: LocationLike, rows: list[ScoreRow] | None = None) -> list[SensitivityRow]:
    """The rows of every model with variants under OUT/predictions (`rows`: its score table, when
    already computed); UserError when none has."""
    scored = {row_key(row): row for row in (rows if rows is not None else score(out))}
    pairs: dict[RowKey, PairPredictions] = {}
    for folder in pair_folders(out):
        pair = load_pair(folder)
        if pair.record is not None:
            pairs[record_key(pair.record)] = pair
    models: dict[tuple, list[RowKey]] = {}
    for key in scored:
        models.setdefault(key[:3], []).append(key)
    grouped = []
    for (framework, model, backend), keys in models.items():
        base_key = (framework, model, backend, None)
        if len(keys) == 1 or base_key not in pairs:
            continue  # no variant, or no base pair to compare with
        variants = sorted(key for key in keys if key[3] is not None)
        grouped.append([_row(scored[key], pairs.get(key), pairs[base_key], key[3] or BASE)
                        for key in [base_key, *variants]])
    if not grouped:
        raise UserError(f"no model under {Location.of(out) / 'predictions'} has variants next to its "
                        "base pair: run it with --variants (docs/sensitivity.md)")
    for model_rows in grouped:
        _per_model(model_rows)
    grouped.sort(key=lambda model_rows: (-_or(model_rows[0].spread1, -1.0), model_rows[0].model))
    return [row for model_rows in grouped for row in model_rows]


def _row(scored: ScoreRow, pair: PairPredictions | None, base: PairPredictions,
         variant: str) -> SensitivityRow:
    figures: dict = {"images": 0, **dict.fromkeys(
        ("acc1", "acc1_ci_low", "acc1_ci_high", "acc5", "acc5_ci_low", "acc5_ci_high"), math.nan)}
    if pair is not None and pair.provenance is not None:
        figures = _figures(pair, base, compare=variant != BASE)
    return SensitivityRow(
        framework=scored.framework, backend=scored.backend, model=scored.model, variant=variant,
        spread1=None, **figures, images_per_s=scored.images_per_s,
        documented_acc1=scored.published_acc1, documented_source=scored.published_source,
        nearest_documented=False, documented_in_ci=None, weights=scored.weights,
        status=scored.status, failure=scored.failure,
    )


def _figures(pair: PairPredictions, base: PairPredictions, compare: bool) -> dict:
    """The pair's figures over the images it and the base read, and, when `compare`, its change
    against the base on them."""
    right, right_base, changed = _paired(pair, base)
    figures: dict = {"images": len(right[1])}
    for k in (1, 5):
        low, high = clopper_pearson(int(right[k].sum()), len(right[k]))
        share = 100.0 * right[k].mean() if len(right[k]) else math.nan
        figures |= {f"acc{k}": float(share), f"acc{k}_ci_low": low, f"acc{k}_ci_high": high}
        if compare:
            difference, low, high = paired_difference(right[k], right_base[k])
            figures |= {f"acc{k}_diff": difference, f"acc{k}_diff_low": low, f"acc{k}_diff_high": high}
    if compare:
        hits = [Hits(np.arange(len(r[1])), r[1], r[5]) for r in (right_base, right)]
        figures |= {"mcnemar_p": mcnemar(hits[0], hits[1]).pvalue, "flips": int(changed.sum())}
    return figures


def _paired(pair: PairPredictions, base: PairPredictions):
    """Per k in (1, 5): top-k right of the pair and of the base on the images both read, and
    whether the top-1 class changed, image by image (matched by dataset position)."""
    _, mine, theirs = np.intersect1d(pair.positions, base.positions, assume_unique=True,
                                     return_indices=True)
    both = pair.ok[mine] & base.ok[theirs]
    mine, theirs = mine[both], theirs[both]

    def right(p: PairPredictions, rows: np.ndarray) -> dict[int, np.ndarray]:
        hits = p.top[rows] == p.labels[rows, None]
        return {1: hits[:, 0], 5: hits.any(axis=1)}

    return right(pair, mine), right(base, theirs), pair.top[mine, 0] != base.top[theirs, 0]


def _per_model(rows: list[SensitivityRow]) -> None:
    """Spread, and the row nearest the documented figure, over a model's rows."""
    measured = [row for row in rows if not math.isnan(row.acc1)]
    spread = max(r.acc1 for r in measured) - min(r.acc1 for r in measured) if measured else None
    documented = rows[0].documented_acc1
    for row in rows:
        row.spread1 = spread
        if documented is not None and not math.isnan(row.acc1):
            row.documented_in_ci = row.acc1_ci_low <= documented <= row.acc1_ci_high
    if documented is not None and measured:
        min(measured, key=lambda row: abs(row.acc1 - documented)).nearest_documented = True


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
