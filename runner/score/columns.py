"""Columns computed beside the score rows (intervals, tiers), and the one place they are joined
onto the rows (runner.score.rows.ScoreRow): by (framework, model, backend, variant) within one
table."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from runner.frameworks.keras_runtime import DEFAULT_BACKEND
from runner.frameworks.precision import DEFAULT_PRECISION

# the run settings that were not settings before (a value here: what runs did then)
SETTING_DEFAULTS = {"backend": (None, DEFAULT_BACKEND), "precision": (None, DEFAULT_PRECISION),
                    "variant": (None, "")}
# A table row's pair: (framework, model, backend, variant).
RowKey = tuple[str, str, str | None, str | None]


def row_key(row) -> RowKey:
    """A row's pair: Keras on several backends is one row per backend, a variant one of its own."""
    return row.framework, row.model, row.backend, row.variant


def join_columns(rows: list, columns: dict[RowKey, dict]) -> None:
    """Set each row's extra columns (keyed by row_key) on it."""
    for row in rows:
        for column, value in columns.get(row_key(row), {}).items():
            setattr(row, column, value)


def record_key(record) -> RowKey:
    """row_key of the row a pair's provenance or failure file scores to."""
    return record.framework, record.model, record.backend_setting, record.variant


def default_settings(rows: Iterable, read: Callable) -> set[str]:
    """The setting columns (backend, precision, variant) at their default on every row: the printed
    tables and the HTML page leave them out, to stay narrow (the files keep them)."""
    rows = list(rows)
    return {column for column, defaults in SETTING_DEFAULTS.items()
            if all(read(row, column) in defaults for row in rows)}
