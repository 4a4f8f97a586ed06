"""Write and print accuracy tables: OUT/results/accuracy.{csv,md,json}, a label set's
accuracy-<set>.*, and the wide table of several datasets, accuracy-wide.*."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from runner.errors import UserError
from runner.outputs import Location, LocationLike
from runner.score.rows import COLUMNS, ScoreRow

RANDOM_NOTE = "weights: random - these accuracies measure the pipeline, not the models"


def write_results(out: LocationLike, rows: list[ScoreRow], name: str = "accuracy",
                  notes: Sequence[str] = ()) -> list[Location]:
    """NAME.{csv,md,json} under OUT/results; `notes` (what a table leaves out) go into the
    Markdown and JSON files."""
    return write_table(out, name, [row.cells() for row in rows], columns_of(rows), _random(rows),
                       notes)


def write_table(out: LocationLike, name: str, cells: list[dict], columns: list[str], random: bool,
                notes: Sequence[str] = ()) -> list[Location]:
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


@dataclass(frozen=True)
class ScoreTable:
    """A table file as read back: its typed rows, and whether any row had random weights."""

    rows: list[ScoreRow]
    random_weights: bool


def read_table(out: LocationLike, name: str = "accuracy") -> ScoreTable:
    """OUT/results/NAME.json as write_results wrote it; UserError when the run has none."""
    run = Location.of(out)
    path = run / "results" / f"{name}.json"
    if not path.is_file():
        raise UserError(f"{run} has no results/{name}.json: score it first (kpbench score)")
    document = json.loads(path.read_text())
    return ScoreTable([ScoreRow.model_validate(row) for row in document["rows"]],
                      bool(document.get("random_weights")))


def columns_of(rows: list[ScoreRow]) -> list[str]:
    return [column for column in COLUMNS if any(row.given(column) for row in rows)]


def _random(rows: list[ScoreRow]) -> bool:
    return any(row.weights == "random" for row in rows)


def format_cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.2f}"
    return str(value)


def signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def _csv(cells: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(cells)  # accuracies at full precision
    return buffer.getvalue()


def _markdown(cells: list[dict], columns: list[str], random: bool, notes: Sequence[str]) -> str:
    lines = [f"> **{RANDOM_NOTE}**", ""] if random else []
    lines += [*(f"- {note}" for note in notes), ""] if notes else []
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    lines += ["| " + " | ".join(format_cell(row.get(c)) for c in columns) + " |" for row in cells]
    return "\n".join(lines) + "\n"
