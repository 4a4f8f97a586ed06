"""Columns computed beside the score rows (intervals, tiers), and the one place they are joined
onto the rows (runner.score.rows.ScoreRow): by (framework, model, backend) within one table."""

from __future__ import annotations


def row_key(row) -> tuple[str, str, str | None]:
    """A row's pair: Keras on several backends is one row per backend."""
    return row.framework, row.model, row.backend


def join_columns(rows: list, columns: dict[tuple[str, str], dict]) -> None:
    """Set each row's extra columns (keyed by row_key) on it."""
    for row in rows:
        for column, value in columns.get(row_key(row), {}).items():
            setattr(row, column, value)


def record_key(record) -> tuple[str, str, str | None]:
    """row_key of the row a pair's provenance or failure file scores to."""
    return record.framework, record.model, record.backend_setting
