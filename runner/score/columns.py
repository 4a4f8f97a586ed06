"""Columns computed beside the score rows (intervals, tiers, label sets), and the one place
they are joined onto the rows: by (framework, model) within one table."""

from __future__ import annotations

# Every table: Clopper-Pearson intervals of acc1/acc5, the tier of the Acc@1 ranking and the
# McNemar p-value against the model ranked just above (runner.score.stats).
SIGNIFICANCE = ("acc1_ci_low", "acc1_ci_high", "acc5_ci_low", "acc5_ci_high", "tier", "tier_p_above")
# Label-set tables add the images behind the corrected figures, their intervals and tier.
LABEL_SET = ("label_set", "cimages", "cacc1_ci_low", "cacc1_ci_high", "cacc5_ci_low",
             "cacc5_ci_high", "ctier", "ctier_p_above")


def row_key(row) -> tuple[str, str]:
    return row["framework"], row["model"]


def join_columns(rows: list, columns: dict[tuple[str, str], dict]) -> None:
    """Add each row's extra columns (keyed by row_key) to it."""
    for row in rows:
        row.update(columns.get(row_key(row), {}))
