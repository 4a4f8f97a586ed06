"""What `kpbench report` reads from a scored run, at a local path or a URI (s3://, gs://,
file://...): the tables `kpbench score` wrote and the provenance of every pair's files.

The main table is read typed (runner.report.tables.read_table); further label-set tables,
which other scorers may write as CSV with a few columns, are read as plain rows."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

from runner.outputs import Location, LocationLike
from runner.predictions import read_provenance
from runner.report.tables import read_table
from runner.score.rows import ScoreRow

SENSITIVITY = "results/sensitivity.json"  # kpbench sensitivity's table, where it ran
# Further label sets a scorer may write beside the main table: results/accuracy-<set>.json or .csv
LABEL_SET_PREFIX = "accuracy-"


@dataclass(frozen=True)
class RunTables:
    name: str  # how the page names the run
    location: str  # as given
    rows: list[ScoreRow]  # results/accuracy.json
    random_weights: bool
    label_sets: dict[str, list[dict]]  # label set -> its table's rows
    provenance: list[dict]  # per pair: its files' provenance, with `file_times` (Unix, per file)
    sensitivity: list[dict] = field(default_factory=list)  # results/sensitivity.json rows, if any


def read_run(location: LocationLike) -> RunTables:
    """The scored tables and the provenance of a run folder; UserError when it is not scored."""
    run = Location.of(location)
    table = read_table(run)
    return RunTables(
        name=run.name or str(run),
        location=str(run),
        rows=table.rows,
        random_weights=table.random_weights,
        label_sets=_label_sets(run / "results"),
        provenance=_provenance(run / "predictions"),
        sensitivity=json.loads((run / SENSITIVITY).read_text())["rows"]
        if (run / SENSITIVITY).is_file() else [],
    )


def _label_sets(folder: Location) -> dict[str, list[dict]]:
    """accuracy-<set>.json (its `rows`), else accuracy-<set>.csv (numbers read as numbers)."""
    files: dict[str, Location] = {}
    for file in folder.files(f"{LABEL_SET_PREFIX}*"):
        stem, _, suffix = file.name.rpartition(".")
        label_set = stem[len(LABEL_SET_PREFIX):]
        if suffix == "json" or (suffix == "csv" and label_set not in files):
            files[label_set] = file
    sets = {}
    for label_set, file in sorted(files.items()):
        text = file.read_text()
        if file.name.endswith(".json"):
            sets[label_set] = json.loads(text)["rows"]
        else:
            sets[label_set] = [{key: _number(value) for key, value in row.items()}
                               for row in csv.DictReader(io.StringIO(text))]
    return sets


def _number(text: str) -> str | int | float | None:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text else value


def _provenance(folder: Location) -> list[dict]:
    """One document per pair folder with predictions (its first file's provenance, and the
    modification time of each file); folders with only a failure file are left to the table."""
    by_folder: dict[str, list[tuple[Location, float | None]]] = {}
    for file, mtime in folder.files_below():
        if file.name.endswith(".parquet") and not file.name.startswith("_"):
            by_folder.setdefault(file.parent.relative, []).append((file, mtime))
    documents = []
    for _, files in sorted(by_folder.items()):
        provenances = [read_provenance(file) for file, _ in files]
        document = provenances[0].to_dict()
        document["written"] = [p.written_at for p in provenances if p.written_at is not None]
        document["file_times"] = [mtime for _, mtime in files if mtime]
        documents.append(document)
    return documents
