"""Write and print accuracy tables: OUT/results/accuracy.{csv,md,json}, a label set's
accuracy-<set>.*, and the wide table of several datasets, accuracy-wide.*."""

from __future__ import annotations

import csv
import io
import json
import math

from rich.console import Console
from rich.table import Table

from runner.frameworks.precision import DEFAULT_PRECISION
from runner.outputs import Location, LocationLike
from runner.sanity import MIN_FRACTION
from runner.score.columns import default_settings
from runner.score.rows import COLUMNS, ScoreRow

RANDOM_NOTE = "weights: random - these accuracies measure the pipeline, not the models"


def write_results(out: LocationLike, rows: list[ScoreRow], name: str = "accuracy",
                  notes: list[str] = ()) -> list[Location]:
    """NAME.{csv,md,json} under OUT/results; `notes` (what a table leaves out) go into the
    Markdown and JSON files."""
    return write_table(out, name, [row.cells() for row in rows], columns_of(rows), _random(rows),
                       notes)


def write_table(out: LocationLike, name: str, cells: list[dict], columns: list[str], random: bool,
                notes: list[str] = ()) -> list[Location]:
    """Rows given as {column: value} (`columns` in order) as NAME.{csv,md,json}."""
    folder = Location.of(out) / "results"
    paths = {
        folder / f"{name}.csv": _csv(cells, columns),
        folder / f"{name}.md": _markdown(cells, columns, random, notes),
        folder / f"{name}.json": json.dumps(
            {"random_weights": random, "note": RANDOM_NOTE if random else None,
             "notes": list(notes), "rows": cells},
            indent=2, allow_nan=True,
        ) + "\n",
    }
    for path, text in paths.items():
        path.write_text(text)
    return list(paths)


def columns_of(rows: list[ScoreRow]) -> list[str]:
    return [column for column in COLUMNS if any(column in row for row in rows)]


def _random(rows: list[ScoreRow]) -> bool:
    return any(row.weights == "random" for row in rows)


def print_table(console: Console, rows: list[ScoreRow], title: str = "kpbench accuracy") -> None:
    random = _random(rows)
    uniform = default_settings(rows, getattr)
    if "precision" in uniform:  # no column: the title says it
        title += f"  (precision {DEFAULT_PRECISION})"
    table = Table(title=title + (f"  [bold yellow]({RANDOM_NOTE})[/]" if random else ""))
    columns = columns_of(rows)
    optional = ("cacc1", "cacc5", "ctier", "real_acc1", "real_acc5", "acc1_delta", "acc5_delta")
    shown = ["framework", "backend", "model", "variant", "precision", "acc1", "acc5", "rank1", "rank5",
             "tier",
             *(c for c in optional if c in columns), "images",
             *(["cimages"] if "cimages" in columns else []), "errors", "weights", "sanity",
             "protocol", "status"]
    shown = [column for column in shown if column not in uniform]
    # label-set tables have no published figure to compare with
    published = ("published", "measured - published") if "published_acc1" in columns else ()
    for column in (*shown, *published):
        table.add_column(column, justify="left" if column in ("framework", "model") else "right")
    for row in rows:
        figures = (f"{_fmt(row.published_acc1)} / {_fmt(row.published_acc5)}",
                   f"{_signed(row.published_delta1)} / {_signed(row.published_delta5)}")
        table.add_row(*(_fmt(getattr(row, column)) for column in shown), *figures[: len(published)])
    console.print(table)
    for row in rows:
        if row.status == "failed":
            console.print(f"[red]failed[/] {row.pair_name}: {row.failure}",
                          highlight=False)
    for row in rows:
        if row.sanity == "failed" and row.status != "failed":
            console.print(f"[yellow]warning[/]: {row.pair_name} failed the weights "
                          f"sanity check (under {MIN_FRACTION:.0%} of the sanity photos have an "
                          "accepted class in its top-5): broken or random weights? "
                          f"(weights: {row.weights})", highlight=False)
    missing = [f"{r.pair_name} ({r.missing})"
               for r in rows if r.missing and r.status != "failed"]
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
            extra = f" ({_signed(diff)}, {rank:+d})" if diff is not None and rank is not None else ""
            cells.append(_fmt(row.get(f"{name}_acc1")) + extra)
        table.add_row(row["framework"], row["model"], *cells)
    console.print(table)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.2f}"
    return str(value)


def _signed(value) -> str:
    return "-" if value is None else f"{value:+.2f}"


def _csv(cells: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(cells)  # accuracies at full precision
    return buffer.getvalue()


def _markdown(cells: list[dict], columns: list[str], random: bool, notes: list[str]) -> str:
    lines = [f"> **{RANDOM_NOTE}**", ""] if random else []
    lines += [*(f"- {note}" for note in notes), ""] if notes else []
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    lines += ["| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |" for row in cells]
    return "\n".join(lines) + "\n"
