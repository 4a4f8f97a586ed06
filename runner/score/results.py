"""Write and print the accuracy table: OUT/results/accuracy.{csv,md,json}."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from runner.atomic import write_text_atomic
from runner.score.reduce import COLUMNS

RANDOM_NOTE = "weights: random - these accuracies measure the pipeline, not the models"


def write_results(out: str | Path, rows: list[dict]) -> list[Path]:
    folder = Path(out) / "results"
    random = any(row["weights"] == "random" for row in rows)
    paths = {
        folder / "accuracy.csv": _csv(rows),
        folder / "accuracy.md": _markdown(rows, random),
        folder / "accuracy.json": json.dumps(
            {"random_weights": random, "note": RANDOM_NOTE if random else None, "rows": rows},
            indent=2, allow_nan=True,
        ) + "\n",
    }
    for path, text in paths.items():
        write_text_atomic(path, text)
    return list(paths)


def columns_of(rows: list[dict]) -> list[str]:
    return [column for column in COLUMNS if any(column in row for row in rows)]


def print_table(console: Console, rows: list[dict]) -> None:
    random = any(row["weights"] == "random" for row in rows)
    table = Table(title="kpbench accuracy" + (f"  [bold yellow]({RANDOM_NOTE})[/]" if random else ""))
    optional = ("cacc1", "cacc5", "real_acc1", "acc1_delta", "acc5_delta")
    shown = ["framework", "backend", "model", "precision", "acc1", "acc5", "rank1", "rank5",
             *(c for c in optional if c in columns_of(rows)), "images", "errors", "weights",
             "protocol", "status"]
    for column in (*shown, "published", "measured - published"):
        table.add_column(column, justify="left" if column in ("framework", "model") else "right")
    for row in rows:
        published = f"{_fmt(row['published_acc1'])} / {_fmt(row['published_acc5'])}"
        delta = f"{_signed(row.get('published_delta1'))} / {_signed(row.get('published_delta5'))}"
        table.add_row(*(_fmt(row.get(column)) for column in shown), published, delta)
    console.print(table)
    for row in rows:
        if row["status"] == "failed":
            console.print(f"[red]failed[/] {row['framework']}/{row['model']}: {row['failure']}",
                          highlight=False)
    missing = [f"{r['framework']}/{r['model']} ({r['missing']})"
               for r in rows if r["missing"] and r["status"] != "failed"]
    if missing:
        console.print("[yellow]incomplete[/]: images without a prediction: " + ", ".join(missing))
    if any(row["errors"] for row in rows):
        counts = ", ".join(f"{r['framework']}/{r['model']} {r['errors']}" for r in rows if r["errors"])
        console.print(f"accuracy is over the images each model could read; unreadable: {counts}")


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.2f}"
    return str(value)


def _signed(value) -> str:
    return "-" if value is None else f"{value:+.2f}"


def _csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns_of(rows), lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(rows)  # accuracies at full precision
    return buffer.getvalue()


def _markdown(rows: list[dict], random: bool) -> str:
    lines = [f"> **{RANDOM_NOTE}**", ""] if random else []
    columns = columns_of(rows)
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    lines += ["| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"
