"""Intervals, McNemar tests and tiers against values worked out by hand."""

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from runner.score.stats import Hits, clopper_pearson, mcnemar, significance_columns, tiers


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
