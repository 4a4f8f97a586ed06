"""Score one run folder and write its tables: the rules that `kpbench run`, `score` and `report`
share (which tables are written under which names), apart from how they are printed."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console

from runner.outputs import Location
from runner.report.printout import print_table
from runner.report.sensitivity import print_sensitivity, write_sensitivity
from runner.report.tables import write_results
from runner.score.label_tables import LabelSetRequest, LabelSetTable, score_label_sets
from runner.score.reduce import LabelOptions, compare_with_reference, score
from runner.score.rows import ScoreRow
from runner.score.sensitivity import SensitivityRow, sensitivity
from runner.score.shift_table import apply_published


@dataclass(frozen=True)
class ReferenceTable:
    """A published table to compare with (`score --reference`): its file and its rows."""

    path: str
    rows: list[dict]


@dataclass(frozen=True)
class ScoreRequest:
    labels: LabelOptions = field(default_factory=LabelOptions)
    reference: ReferenceTable | None = None
    label_sets: LabelSetRequest | None = None
    published: str | None = None  # a copy of timm's results/ folder


@dataclass(frozen=True)
class ScoredRun:
    """What scoring one run produced, in the order it is shown."""

    out: Location
    rows: list[ScoreRow]  # the run's own table (all images, the run's labels)
    notes: list[str]  # said before the tables
    main_table: bool  # whether `rows` is shown: with one label set, that set's table is the table
    reference: ReferenceTable | None
    reference_differ: list[str]  # a line per row that differs from the reference table
    label_tables: list[LabelSetTable]
    written: list[Location]
    sensitivity: list[SensitivityRow] = field(default_factory=list)  # a run with variants


def score_run(out: Location, request: ScoreRequest | None = None) -> ScoredRun:
    """Score OUT and write its tables: accuracy.* and, per label set, accuracy-<set>.*; with exactly
    one label set, that set's table is also accuracy.* (the run's own rows are not written); a run
    with variants also sensitivity.* (runner/score/sensitivity.py)."""
    request = request or ScoreRequest()
    rows = score(out, request.labels)
    notes = apply_published(rows, request.published) if request.published else []
    differ = compare_with_reference(rows, request.reference.rows) if request.reference else []
    imagenet = all(row.dataset == "imagenet" for row in rows)
    if request.label_sets and not imagenet:
        notes.append(f"label sets are of ImageNet's validation images: not applied to {out}")
    tables = score_label_sets(out, rows, request.label_sets) if request.label_sets and imagenet else []
    one_set = len(tables) == 1
    written = [] if one_set else write_results(out, rows)
    for table in tables:
        written += write_results(out, table.rows, f"accuracy-{table.name}", table.notes)
        if one_set:
            written += write_results(out, table.rows, "accuracy", table.notes)
    variants = sensitivity(out, rows) if any(row.variant for row in rows) else []
    if variants:
        written += write_sensitivity(out, variants)
    return ScoredRun(out, rows, notes, not one_set, request.reference, differ, tables, written, variants)


def print_scored(console: Console, scored: ScoredRun, wide: bool = False) -> None:
    """What score_run did; `wide`: every column of the tables, not the printout's few."""
    for note in scored.notes:
        console.print(note, highlight=False)
    if scored.main_table:
        print_table(console, scored.rows, wide=wide)
    if scored.reference is not None:
        differ = scored.reference_differ
        console.print(f"{len(differ)} row(s) differ from {scored.reference.path}" + (":" if differ else ""))
        for line in differ:
            console.print(f"  {line}", highlight=False)
    if scored.sensitivity:
        print_sensitivity(console, scored.sensitivity)
    for table in scored.label_tables:
        print_table(console, table.rows, f"kpbench accuracy, label set {table.name}", wide)
        for note in table.notes:
            console.print(note, highlight=False)
    console.print("wrote " + ", ".join(str(path) for path in scored.written))
