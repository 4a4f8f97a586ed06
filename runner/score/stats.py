"""Is a gap real: Clopper-Pearson intervals, exact McNemar tests and tiers. Pure (numpy, scipy).

- Every accuracy gets a 95% Clopper-Pearson (exact binomial) interval, from the beta quantiles
  that define it: the same bounds as scipy's binomtest(...).proportion_ci(method="exact"),
  which finds them by root-finding, at a small fraction of the cost (a table has hundreds).
- Two models scored on the same images are compared by an exact McNemar test: of the images
  exactly one of them gets right, is the split compatible with 50/50 (two-sided binomial)?
- Tiers follow a ranking: walking down from the best model, a new tier starts at every adjacent
  pair whose McNemar p-value is below alpha = 0.05. Adjacent pairs only, no correction for
  multiple comparisons: a tier says "not separable from its neighbour", not "all equal".
- Rank intervals: a paired bootstrap over images. Each resample draws the images with
  replacement once, for every model alike (paired: a hard image is hard for all of them), and
  ranks the models' Acc@1 on it; the 2.5th and 97.5th percentiles of a model's ranks are its
  interval. Resamples are drawn as counts per image (how often each image was drawn), so a chunk
  of resamples is one matrix product of counts by correctness, never an array of drawn images
  per model.
- A claim check: a published figure against the measured interval: inside it, below or above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal, TypeVar

import numpy as np
from scipy.stats import beta, binomtest

K = TypeVar("K")  # what names a model: its row's key
CONFIDENCE = 0.95
ALPHA = 0.05
RESAMPLES = 1000
SEED = 0  # fixed: the same predictions always give the same rank intervals
CHUNK_COUNTS = 5_000_000  # counts drawn at once (20 MB): 100 resamples of 50,000 images

Claim = Literal["consistent", "below", "above"]


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


def significance_columns(hits: dict[K, Hits], accuracy: dict[K, float], prefix: str = "acc",
                         tier_column: str = "tier") -> dict[K, dict]:
    """Per key: `<prefix>1_ci_low/high`, `<prefix>5_ci_low/high` (percent), the tier and the
    p-value against the model ranked just above, following the ranking of `accuracy`
    (Acc@1 of each key; best first). A key without images gets NaN intervals and no tier."""
    columns: dict[K, dict] = {}
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


def claim(figure: float | None, low: float | None, high: float | None) -> Claim | None:
    """Where a claimed figure lies against a measured interval: inside it (`consistent`),
    `below` or `above` it; None without a figure or an interval."""
    if figure is None or low is None or high is None or math.isnan(low) or math.isnan(high):
        return None
    return "below" if figure < low else "above" if figure > high else "consistent"


def bootstrap_ranks(ranked: list[Hits], resamples: int = RESAMPLES, seed: int = SEED,
                    chunk: int | None = None) -> np.ndarray:
    """(resamples, models) Acc@1 rank of each model in each paired resample of the images any
    of them was scored on: 1 = best, ties share the better rank; NaN where a resample holds
    none of a model's images. A model scored on fewer images is judged on those it has.
    `chunk` resamples are drawn at once (the draws, so the result, do not depend on it)."""
    present = np.zeros(max(int(hits.positions.max(initial=-1)) for hits in ranked) + 1, bool)
    for hits in ranked:
        present[hits.positions] = True
    column = np.cumsum(present) - 1  # dataset position -> column of the images any model has
    images = int(present.sum())
    right = np.zeros((len(ranked), images), np.float32)
    scored = np.zeros_like(right)
    for model, hits in enumerate(ranked):
        at = column[hits.positions]
        right[model, at], scored[model, at] = hits.top1, 1.0
    rng = np.random.default_rng(seed)
    partly = not scored.all()  # else every model's denominator is the resample's size: images
    chunk = chunk or max(1, CHUNK_COUNTS // images)
    ranks = np.empty((resamples, len(ranked)))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        drawn = rng.integers(0, images, (size, images), dtype=np.int32)  # int32: faster to draw
        counts = np.empty(drawn.shape, np.float32)  # integer sums stay exact below 2**24 draws
        for resample, indices in enumerate(drawn):  # row by row: the bins stay in cache
            counts[resample] = np.bincount(indices, minlength=images)
        with np.errstate(invalid="ignore", divide="ignore"):
            accuracy = (counts @ right.T).astype(float) / (counts @ scored.T if partly else images)
        ranks[start:start + size] = _ranks(accuracy)
    return ranks


def _ranks(accuracy: np.ndarray) -> np.ndarray:
    """Rank of each column in each row (1 = highest; NaN compares below everything, and stays NaN)."""
    better = (accuracy[:, None, :] > accuracy[:, :, None]).sum(axis=2)
    return np.where(np.isnan(accuracy), np.nan, 1.0 + better)


def rank_intervals(hits: dict[K, Hits], accuracy: dict[K, float], resamples: int = RESAMPLES,
                   seed: int = SEED, confidence: float = CONFIDENCE) -> dict[K, dict]:
    """Per key: `rank1_low`, `rank1_high`, the 95% paired-bootstrap interval of its Acc@1 rank
    (`accuracy`: Acc@1 of each key) over the keys with images (None for the others)."""
    columns: dict[K, dict] = {key: {"rank1_low": None, "rank1_high": None} for key in hits}
    scored = [key for key in hits if len(hits[key].positions) and not math.isnan(accuracy[key])]
    if not scored:
        return columns
    ranks = bootstrap_ranks([hits[key] for key in scored], resamples, seed)
    tail = (1 - confidence) / 2
    for key, model_ranks in zip(scored, ranks.T, strict=True):
        model_ranks = model_ranks[~np.isnan(model_ranks)]
        if not len(model_ranks):  # none of its images drawn in any resample
            continue
        low, high = np.quantile(model_ranks, (tail, 1 - tail), method="inverted_cdf")
        columns[key] = {"rank1_low": int(low), "rank1_high": int(high)}
    return columns
