"""Intervals, McNemar tests and tiers against values worked out by hand."""

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from runner.score.stats import (
    Hits,
    bootstrap_ranks,
    claim,
    clopper_pearson,
    mcnemar,
    rank_intervals,
    significance_columns,
    tiers,
)


def _hits(top1, positions=None):
    top1 = np.array(top1, bool)
    positions = np.arange(len(top1)) if positions is None else np.array(positions)
    return Hits(positions, top1, top1 | True)


def test_clopper_pearson_known_values():
    # 0 of 10: upper bound 1 - 0.025 ** (1 / 10); 10 of 10 mirrors it
    assert clopper_pearson(0, 10) == (0.0, pytest.approx(100 * (1 - 0.025 ** 0.1)))
    assert clopper_pearson(10, 10) == (pytest.approx(100 * 0.025 ** 0.1), 100.0)
    # 5 of 10 (published tables: 0.187086, 0.812914)
    low, high = clopper_pearson(5, 10)
    assert (low, high) == (pytest.approx(18.7086, abs=1e-4), pytest.approx(81.2914, abs=1e-4))
    # the example: 80% of 50,000 is about +-0.35 points
    low, high = clopper_pearson(40_000, 50_000)
    assert 0.34 < 80 - low < 0.36 and 0.34 < high - 80 < 0.36
    assert all(math.isnan(v) for v in clopper_pearson(0, 0))


@pytest.mark.parametrize("right, images", [(1, 7), (278, 1405), (37531, 50000), (49999, 50000)])
def test_clopper_pearson_is_scipys_exact_binomial_interval(right, images):
    interval = binomtest(right, images).proportion_ci(confidence_level=0.95, method="exact")
    low, high = clopper_pearson(right, images)
    assert (low, high) == (pytest.approx(100 * interval.low, rel=1e-9),
                           pytest.approx(100 * interval.high, rel=1e-9))


def test_mcnemar_counts_discordant_pairs_only():
    # A alone right on 10 images, B alone on 2, both on 5, neither on 3
    a = [1] * 10 + [0] * 2 + [1] * 5 + [0] * 3
    b = [0] * 10 + [1] * 2 + [1] * 5 + [0] * 3
    test = mcnemar(_hits(a), _hits(b))
    assert (test.images, test.only_a, test.only_b) == (20, 10, 2)
    # two-sided exact: 2 * P(X <= 2), X ~ Bin(12, 1/2) = 2 * (1 + 12 + 66) / 4096
    assert test.pvalue == pytest.approx(158 / 4096)
    assert mcnemar(_hits(a), _hits(a)).pvalue == 1.0  # nothing separates a model from itself


def test_mcnemar_pairs_images_by_position():
    a = Hits(np.array([0, 1, 2]), np.array([True, True, False]), np.ones(3, bool))
    b = Hits(np.array([1, 2, 3]), np.array([False, True, True]), np.ones(3, bool))
    test = mcnemar(a, b)  # common images 1 and 2: A alone right on 1, B alone on 2
    assert (test.images, test.only_a, test.only_b) == (2, 1, 1)


def test_tiers_split_only_at_significant_adjacent_gaps():
    n = 200
    best = _hits([1] * 180 + [0] * 20)
    close = _hits([1] * 178 + [0] * 22)  # 2 discordant images: p = 0.5
    far = _hits([1] * 100 + [0] * 100)  # 78 discordant, all one way
    levels, pvalues = tiers([best, close, far, far])
    assert levels == [1, 1, 2, 2]
    assert pvalues[0] is None and pvalues[1] == pytest.approx(0.5) and pvalues[2] < 1e-20
    assert pvalues[3] == 1.0 and len(best.positions) == n


def test_tiers_are_adjacent_only_not_transitive():
    # each neighbour is inseparable (4 discordant images, p = 0.125) but the ends differ
    chain = [_hits([1] * (100 - 4 * i) + [0] * (4 * i)) for i in range(4)]
    assert tiers(chain)[0] == [1, 1, 1, 1]
    assert mcnemar(chain[0], chain[3]).pvalue < 0.05


def test_significance_columns_follow_the_accuracy_ranking():
    hits = {"b": _hits([1] * 50 + [0] * 50), "a": _hits([1] * 90 + [0] * 10),
            "none": Hits(np.zeros(0, int), np.zeros(0, bool), np.zeros(0, bool))}
    columns = significance_columns(hits, {"a": 90.0, "b": 50.0, "none": math.nan})
    assert columns["a"]["tier"] == 1 and columns["b"]["tier"] == 2
    assert columns["a"]["acc1_ci_low"] < 90 < columns["a"]["acc1_ci_high"]
    assert columns["a"]["acc5_ci_high"] == 100.0  # every label in the top 5
    assert columns["none"]["tier"] is None and math.isnan(columns["none"]["acc1_ci_low"])


@pytest.mark.parametrize("figure, expected", [(69.9, "below"), (70.0, "consistent"), (71.0, "consistent"),
                                              (72.0, "consistent"), (72.1, "above"), (None, None)])
def test_claim_says_where_the_figure_lies_against_the_interval(figure, expected):
    assert claim(figure, 70.0, 72.0) == expected
    assert claim(71.0, math.nan, math.nan) is None  # no readable image: no interval


def _naive_bootstrap_ranks(ranked, resamples, seed):
    """The same resamples drawn as image indices, each model's accuracy by indexing: a loop."""
    positions = np.unique(np.concatenate([h.positions for h in ranked]))
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(positions), (resamples, len(positions)), dtype=np.int32)
    ranks = np.full((resamples, len(ranked)), np.nan)
    for b in range(resamples):
        accuracy = []
        for hits in ranked:
            picked = positions[drawn[b]]
            mine = np.isin(picked, hits.positions)
            right = dict(zip(hits.positions.tolist(), hits.top1.tolist(), strict=True))
            got = [right[p] for p in picked[mine]]
            accuracy.append(np.mean(got) if got else np.nan)
        for m, value in enumerate(accuracy):
            if not np.isnan(value):
                ranks[b, m] = 1 + sum(other > value for other in accuracy if not np.isnan(other))
    return ranks


def test_bootstrap_ranks_equal_a_loop_over_the_drawn_images():
    rng = np.random.default_rng(3)
    ranked = [_hits(rng.random(40) < p) for p in (0.5, 0.55, 0.6)]
    ranked.append(_hits(rng.random(25) < 0.55, positions=np.arange(5, 30)))  # scored on fewer
    expected = _naive_bootstrap_ranks(ranked, 50, seed=11)
    assert np.array_equal(bootstrap_ranks(ranked, 50, seed=11), expected, equal_nan=True)
    # drawing in chunks gives the same resamples
    assert np.array_equal(bootstrap_ranks(ranked, 50, seed=11, chunk=7), expected, equal_nan=True)


def test_rank_intervals_separate_clear_gaps_and_cover_close_ones():
    noise = np.random.default_rng(0).random(2000)
    close = noise < 0.6
    # close_b: close_a with 10 of its right images wrong and 9 of its wrong ones right
    swapped = close.copy()
    swapped[np.flatnonzero(close)[:10]], swapped[np.flatnonzero(~close)[:9]] = False, True
    hits = {"best": _hits(noise < 0.9), "close_a": _hits(close), "close_b": _hits(swapped),
            "worst": _hits(noise < 0.2), "unread": _hits([], positions=np.zeros(0, np.int64))}
    accuracy = {key: 100 * h.top1.mean() if len(h.top1) else math.nan for key, h in hits.items()}
    columns = rank_intervals(hits, accuracy)
    intervals = {key: (c["rank1_low"], c["rank1_high"]) for key, c in columns.items()}
    assert intervals == {"best": (1, 1), "close_a": (2, 3), "close_b": (2, 3), "worst": (4, 4),
                         "unread": (None, None)}
    assert rank_intervals(hits, accuracy) == columns  # the fixed seed: the same every time
    # identical models always tie, and ties share the better rank
    same = {"a": hits["close_a"], "b": hits["close_a"]}
    assert rank_intervals(same, {"a": 60.0, "b": 60.0}) == {key: {"rank1_low": 1, "rank1_high": 1}
                                                            for key in same}
