"""Write and print the accuracy table: OUT/results/accuracy.{csv,md,json}."""

from __future__ import annotations

import csv
import io
import json
import math

from rich.console import Console
from rich.table import Table

from runner.outputs import Location, LocationLike
from runner.sanity import MIN_FRACTION
from runner.score.rows import COLUMNS, ScoreRow

RANDOM_NOTE = "weights: random - these accuracies measure the pipeline, not the models"


def write_results(out: LocationLike, rows: list[ScoreRow]) -> list[Location]:
    folder = Location.of(out) / "results"
    random = _random(rows)
    paths = {
        folder / "accuracy.csv": _csv(rows),
        folder / "accuracy.md": _markdown(rows, random),
        folder / "accuracy.json": json.dumps(
            {"random_weights": random, "note": RANDOM_NOTE if random else None,
             "rows": [row.cells() for row in rows]},
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


def print_table(console: Console, rows: list[ScoreRow]) -> None:
    random = _random(rows)
    table = Table(title="kpbench accuracy" + (f"  [bold yellow]({RANDOM_NOTE})[/]" if random else ""))
    optional = ("cacc1", "cacc5", "real_acc1", "real_acc5", "acc1_delta", "acc5_delta")
    shown = ["framework", "model", "acc1", "acc5", "rank1", "rank5",
             *(c for c in optional if c in columns_of(rows)), "images", "errors", "weights",
             "sanity", "protocol", "status"]
    for column in (*shown, "published", "measured - published"):
        table.add_column(column, justify="left" if column in ("framework", "model") else "right")
    for row in rows:
        published = f"{_fmt(row.published_acc1)} / {_fmt(row.published_acc5)}"
        delta = f"{_signed(row.published_delta1)} / {_signed(row.published_delta5)}"
        table.add_row(*(_fmt(getattr(row, column)) for column in shown), published, delta)
    console.print(table)
    for row in rows:
        if row.status == "failed":
            console.print(f"[red]failed[/] {row.framework}/{row.model}: {row.failure}",
                          highlight=False)
    for row in rows:
        if row.sanity == "failed" and row.status != "failed":
            console.print(f"[yellow]warning[/]: {row.framework}/{row.model} failed the weights "
                          f"sanity check (under {MIN_FRACTION:.0%} of the sanity photos have an "
                          "accepted class in its top-5): broken or random weights? "
                          f"(weights: {row.weights})", highlight=False)
    missing = [f"{r.framework}/{r.model} ({r.missing})"
               for r in rows if r.missing and r.status != "failed"]
    if missing:
        console.print("[yellow]incomplete[/]: images without a prediction: " + ", ".join(missing))
    if any(row.errors for row in rows):
        counts = ", ".join(f"{r.framework}/{r.model} {r.errors}" for r in rows if r.errors)
        console.print(f"accuracy is over the images each model could read; unreadable: {counts}")


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.2f}"
    return str(value)


def _signed(value) -> str:
    return "-" if value is None else f"{value:+.2f}"


def _csv(rows: list[ScoreRow]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns_of(rows), lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(row.cells() for row in rows)  # accuracies at full precision
    return buffer.getvalue()


def _markdown(rows: list[ScoreRow], random: bool) -> str:
    lines = [f"> **{RANDOM_NOTE}**", ""] if random else []
    columns = columns_of(rows)
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    lines += ["| " + " | ".join(_fmt(getattr(row, c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"
