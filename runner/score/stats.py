"""Is a gap real: Clopper-Pearson intervals, exact McNemar tests and tiers. Pure (numpy, scipy).

- Every accuracy gets a 95% Clopper-Pearson (exact binomial) interval, from the beta quantiles
  that define it: the same bounds as scipy's binomtest(...).proportion_ci(method="exact"),
  which finds them by root-finding, at a small fraction of the cost (a table has hundreds).
- Two models scored on the same images are compared by an exact McNemar test: of the images
  exactly one of them gets right, is the split compatible with 50/50 (two-sided binomial)?
- Tiers follow a ranking: walking down from the best model, a new tier starts at every adjacent
  pair whose McNemar p-value is below alpha = 0.05. Adjacent pairs only, no correction for
  multiple comparisons: a tier says "not separable from its neighbour", not "all equal".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from scipy.stats import beta, binomtest

CONFIDENCE = 0.95
ALPHA = 0.05


@dataclass(frozen=True)
class Hits:
    """Per-image correctness of one model over the images behind a figure."""

    positions: np.ndarray  # dataset positions, sorted, unique
    top1: np.ndarray  # bool: top-1 right
    top5: np.ndarray  # bool: the label is among the top 5

    @classmethod
    def of(cls, positions: np.ndarray, top: np.ndarray, true: np.ndarray) -> Hits:
        order = np.argsort(positions, kind="stable")
        hits = top[order] == np.asarray(true)[order, None]
        return cls(np.asarray(positions)[order], hits[:, 0], hits.any(axis=1))

    def correct(self, k: int) -> np.ndarray:
        return self.top1 if k == 1 else self.top5


@dataclass(frozen=True)
class McNemar:
    images: int  # images both were scored on
    only_a: int  # right by A alone
    only_b: int  # right by B alone
    pvalue: float  # exact, two-sided; 1.0 when no image separates them


def clopper_pearson(right: int, images: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact binomial interval of an accuracy, in percent; NaN for no images."""
    if images == 0:
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    low = beta.ppf(tail, right, images - right + 1) if right > 0 else 0.0
    high = beta.ppf(1 - tail, right + 1, images - right) if right < images else 1.0
    return 100.0 * float(low), 100.0 * float(high)


def mcnemar(a: Hits, b: Hits, k: int = 1) -> McNemar:
    """Exact McNemar test on the images both were scored on (matched by position)."""
    _, in_a, in_b = np.intersect1d(a.positions, b.positions, assume_unique=True, return_indices=True)
    right_a, right_b = a.correct(k)[in_a], b.correct(k)[in_b]
    only_a, only_b = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    discordant = only_a + only_b
    pvalue = binomtest(only_a, discordant, 0.5).pvalue if discordant else 1.0
    return McNemar(len(in_a), only_a, only_b, float(pvalue))


def tiers(ranked: list[Hits], k: int = 1,
          alpha: float = ALPHA) -> tuple[list[int], list[float | None]]:
    """Tier of each model (1 = best) in ranking order, and each model's McNemar p-value against
    the one ranked just above it (None for the first)."""
    levels: list[int] = [1] if ranked else []
    pvalues: list[float | None] = [None] if ranked else []
    for above, hits in pairwise(ranked):
        pvalue = mcnemar(above, hits, k).pvalue
        levels.append(levels[-1] + (pvalue < alpha))
        pvalues.append(pvalue)
    return levels, pvalues


def significance_columns(hits: dict, accuracy: dict[object, float], prefix: str = "acc",
                         tier_column: str = "tier") -> dict[object, dict]:
    """Per key: `<prefix>1_ci_low/high`, `<prefix>5_ci_low/high` (percent), the tier and the
    p-value against the model ranked just above, following the ranking of `accuracy`
    (Acc@1 of each key; best first). A key without images gets NaN intervals and no tier."""
    columns: dict[object, dict] = {}
    for key, model_hits in hits.items():
        images = len(model_hits.positions)
        columns[key] = {}
        for k in (1, 5):
            low, high = clopper_pearson(int(model_hits.correct(k).sum()), images)
            columns[key] |= {f"{prefix}{k}_ci_low": low, f"{prefix}{k}_ci_high": high}
        columns[key] |= {tier_column: None, f"{tier_column}_p_above": None}
    scored = [key for key in hits if len(hits[key].positions) and not math.isnan(accuracy[key])]
    scored.sort(key=lambda key: -accuracy[key])  # stable: equal accuracies keep their order
    levels, pvalues = tiers([hits[key] for key in scored])
    for key, level, pvalue in zip(scored, levels, pvalues, strict=True):
        columns[key] |= {tier_column: level, f"{tier_column}_p_above": pvalue}
    return columns


def wilson(right: int, images: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a proportion (fractions, not percent); (nan, nan) for none."""
    if images == 0:
        return math.nan, math.nan
    share = right / images
    centre = (share + z * z / (2 * images)) / (1 + z * z / images)
    half = z * math.sqrt(share * (1 - share) / images + z * z / (4 * images * images)) / (1 + z * z / images)
    return centre - half, centre + half


def paired_difference(right_a: np.ndarray, right_b: np.ndarray) -> tuple[float, float, float]:
    """Accuracy of A minus B on the same images, in points, with the 95% interval of Newcombe's
    hybrid score method for paired proportions (his method 10, 1998: Wilson intervals of both
    accuracies, combined with their correlation), which stays inside [-100, 100] and keeps its
    coverage on small sets and at accuracies near 0 or 1, where the Wald interval does not."""
    images = len(right_a)
    if images == 0:
        return math.nan, math.nan, math.nan
    both = int((right_a & right_b).sum())
    only_a, only_b = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    neither = images - both - only_a - only_b
    share_a, share_b = (both + only_a) / images, (both + only_b) / images
    (low_a, high_a), (low_b, high_b) = wilson(both + only_a, images), wilson(both + only_b, images)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    phi = (both * neither - only_a * only_b) / math.sqrt(margins) if margins else 0.0
    below = math.sqrt(max(0.0, (share_a - low_a) ** 2 - 2 * phi * (share_a - low_a) * (high_b - share_b)
                          + (high_b - share_b) ** 2))
    above = math.sqrt(max(0.0, (high_a - share_a) ** 2 - 2 * phi * (high_a - share_a) * (share_b - low_b)
                          + (share_b - low_b) ** 2))
    difference = share_a - share_b
    return 100.0 * difference, 100.0 * (difference - below), 100.0 * (difference + above)
