"""The printed accuracy table: narrow enough for a terminal, every model name whole.

The files (runner.report.tables) keep every column; the printout shows the pair, Acc@1 and
Acc@5 with their 95% intervals as `80.83±0.35` (half the interval's width), the tier, the
difference to the published figure and the status, then only what tells rows apart: the figures
an option added (cleaned, ReaL, reference) and the settings and counts whose values differ
between rows (the others, one value for every row, go in the caption). Where the console is
narrower than that, columns are dropped, the last first, before a name is cut. `wide` prints
every column of the files instead."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.table import Table

from runner.frameworks.precision import DEFAULT_PRECISION
from runner.report.tables import RANDOM_NOTE, columns_of, format_cell, signed
from runner.sanity import MIN_FRACTION
from runner.score.columns import default_settings
from runner.score.rows import ScoreRow

# shown when they differ between rows; else the caption gives their one value
SETTINGS = ("weights", "protocol", "dataset", "label_set", "images", "cimages", "errors", "missing",
            "sanity")
NATURAL = 10_000  # a width no table reaches: measures a table's natural width


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[ScoreRow], str]
    left: bool = False  # justified left (names), else right (figures)
    keep: int = 0  # where the console is too narrow, the lowest goes first (the last of equals)


def with_interval(value: float | None, low: float | None, high: float | None) -> str:
    """An accuracy to two decimals, with ± half its interval's width when it has one."""
    if value is None or low is None or high is None or math.isnan(value):
        return format_cell(value)
    return f"{value:.2f}±{(high - low) / 2:.2f}"


def _figure(name: str, column: str, keep: int = 0) -> Column:
    return Column(name, lambda row: with_interval(getattr(row, column), getattr(row, f"{column}_ci_low"),
                                                   getattr(row, f"{column}_ci_high")), keep=keep)


def _plain(column: str, header: str | None = None, keep: int = 0) -> Column:
    return Column(header or column, lambda row: format_cell(getattr(row, column)), keep=keep)


# the figures an option adds, shown whenever a row has them
FIGURES = {"cacc1": _figure("cAcc@1", "cacc1"), "cacc5": _figure("cAcc@5", "cacc5"),
           "ctier": _plain("ctier"), "real_acc1": _plain("real_acc1", "ReaL@1"),
           "real_acc5": _plain("real_acc5", "ReaL@5"),
           "acc1_delta": Column("Δ reference",
                                lambda row: f"{signed(row.acc1_delta)} / {signed(row.acc5_delta)}")}


def compact_columns(rows: list[ScoreRow]) -> list[Column]:
    """The columns of the default printout."""
    present = columns_of(rows)
    columns = [Column("model", lambda row: row.pair_name, left=True, keep=9), _figure("Acc@1", "acc1", 8),
               _figure("Acc@5", "acc5", 6), _plain("tier", keep=5)]
    if "published_acc1" in present:  # label-set tables have no published figure to compare with
        columns.append(Column("Δ published", lambda row: f"{signed(row.published_delta1)} / "
                                                         f"{signed(row.published_delta5)}", keep=4))
    columns.append(_plain("status", keep=7))
    columns += [figure for column, figure in FIGURES.items() if column in present]
    if "precision" not in default_settings(rows, getattr):  # at the default, the title says it
        columns.append(_plain("precision"))
    differing = _differing(rows, present)
    return columns + [_plain(column) for column in SETTINGS if column in differing]


def _differing(rows: list[ScoreRow], present: list[str]) -> set[str]:
    return {column for column in SETTINGS if column in present
            and len({format_cell(getattr(row, column)) for row in rows}) > 1}


def _caption(rows: list[ScoreRow]) -> str | None:
    """The settings and counts with one value on every row (the printout has no column for them)."""
    present = columns_of(rows)
    same = [column for column in SETTINGS if column in present and column not in _differing(rows, present)
            and rows and getattr(rows[0], column) is not None]
    if not same:
        return None
    return "every row: " + ", ".join(f"{column} {format_cell(getattr(rows[0], column))}" for column in same)


def _table(rows: list[ScoreRow], columns: list[Column], title: str, caption: str | None) -> Table:
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, pad_edge=False)
    names = [row.pair_name for row in rows]
    for column in columns:
        table.add_column(column.header, justify="left" if column.left else "right", no_wrap=True,
                         min_width=max(map(len, names), default=0) if column.header == "model" else None)
    for row in rows:
        table.add_row(*(column.cell(row) for column in columns))
    return table


def _natural_width(console: Console, table: Table) -> int:
    return console.measure(table, options=console.options.update(width=NATURAL)).maximum


def print_table(console: Console, rows: list[ScoreRow], title: str = "kpbench accuracy",
                wide: bool = False) -> None:
    """The table, then a line per failed pair and one per kind of problem."""
    if "precision" in default_settings(rows, getattr):  # no column: the title says it
        title += f"  (precision {DEFAULT_PRECISION})"
    if any(row.weights == "random" for row in rows):
        title += f"  [bold yellow]({RANDOM_NOTE})[/]"
    if wide:
        columns = [_plain(column) for column in columns_of(rows)]
        table = _table(rows, columns, title, None)
        width = console.width
        console.width = max(width, _natural_width(console, table))  # lines as long as they need
        try:
            console.print(table, crop=False)
        finally:
            console.width = width
    else:
        columns = compact_columns(rows)
        table = _table(rows, columns, title, _caption(rows))
        while len(columns) > 1 and _natural_width(console, table) > console.width:
            # drop a column before a name is cut
            dropped = min(reversed(range(len(columns))), key=lambda i: columns[i].keep)
            columns = columns[:dropped] + columns[dropped + 1:]
            table = _table(rows, columns, title, _caption(rows))
        console.print(table)
    print_problems(console, rows)


def print_problems(console: Console, rows: list[ScoreRow]) -> None:
    for row in rows:
        if row.status == "failed":
            console.print(f"[red]failed[/] {row.pair_name}: {row.failure}", highlight=False)
    insane = [row for row in rows if row.sanity == "failed" and row.status != "failed"]
    random = [row.pair_name for row in insane if row.weights == "random"]
    if random:  # what random weights do: one line for them all
        console.print(f"[yellow]warning[/]: random weights failed the weights sanity check, as "
                      f"expected: {', '.join(random)}", highlight=False)
    for row in insane:
        if row.weights != "random":
            console.print(f"[yellow]warning[/]: {row.pair_name} failed the weights sanity check (under "
                          f"{MIN_FRACTION:.0%} of the sanity photos have an accepted class in its "
                          "top-5): broken weights?", highlight=False)
    missing = [f"{r.pair_name} ({r.missing})" for r in rows if r.missing and r.status != "failed"]
    if missing:
        console.print("[yellow]incomplete[/]: images without a prediction: " + ", ".join(missing))
    if any(row.errors for row in rows):
        counts = ", ".join(f"{r.pair_name} {r.errors}" for r in rows if r.errors)
        console.print(f"accuracy is over the images each model could read; unreadable: {counts}")


def print_wide_table(console: Console, rows: list[dict], columns: list[str]) -> None:
    """Acc@1 per dataset, with the difference to its baseline and the rank change."""
    datasets = [column.removesuffix("_acc1") for column in columns if column.endswith("_acc1")]
    table = Table(title="kpbench accuracy by dataset: Acc@1 (difference to baseline, rank change)")
    for column in ("framework", "model", *datasets):
        table.add_column(column, justify="left" if column in ("framework", "model") else "right")
    for row in rows:
        cells = []
        for name in datasets:
            diff, rank = row.get(f"{name}_top1_diff"), row.get(f"{name}_rank_diff")
            extra = f" ({signed(diff)}, {rank:+d})" if diff is not None and rank is not None else ""
            cells.append(format_cell(row.get(f"{name}_acc1")) + extra)
        table.add_row(row["framework"], row["model"], *cells)
    console.print(table)
