"""Columns computed beside the score rows (intervals, tiers), and the one place they are joined
onto the rows (runner.score.rows.ScoreRow): by (framework, model) within one table."""

from __future__ import annotations


def row_key(row) -> tuple[str, str]:
    return row.framework, row.model


def join_columns(rows: list, columns: dict[tuple[str, str], dict]) -> None:
    """Set each row's extra columns (keyed by row_key) on it."""
    for row in rows:
        for column, value in columns.get(row_key(row), {}).items():
            setattr(row, column, value)
