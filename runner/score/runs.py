"""What `kpbench report` reads from a scored run, at a local path or a URI (s3://, gs://,
file://...): the tables `kpbench score` wrote and the provenance of every pair's files.

Tables are read as plain rows (column -> value), so that columns a newer kpbench adds show
up in the report without this module knowing them."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import PurePosixPath

import pyarrow.fs as pafs

from runner.errors import UserError
from runner.outputs import Location, LocationLike
from runner.predictions import read_provenance

TABLE = "results/accuracy.json"
# Further label sets a scorer may write beside the main table: results/accuracy-<set>.json or .csv
LABEL_SET_PREFIX = "accuracy-"


@dataclass(frozen=True)
class RunTables:
    name: str  # how the page names the run
    location: str  # as given
    rows: list[dict]  # results/accuracy.json rows
    random_weights: bool
    label_sets: dict[str, list[dict]]  # label set -> its table's rows
    provenance: list[dict]  # per pair: its files' provenance, with `file_times` (Unix, per file)


def read_run(location: LocationLike) -> RunTables:
    """The scored tables and the provenance of a run folder; UserError when it is not scored."""
    location = Location.of(location)
    filesystem, base = location.filesystem, location.path
    table = _join(base, TABLE)
    if filesystem.get_file_info(table).type != pafs.FileType.File:
        raise UserError(f"{location} has no {TABLE}: score it first (kpbench score)")
    document = json.loads(_read_text(filesystem, table))
    return RunTables(
        name=PurePosixPath(base.rstrip("/")).name or str(location),
        location=str(location),
        rows=document["rows"],
        random_weights=bool(document.get("random_weights")),
        label_sets=_label_sets(filesystem, _join(base, "results")),
        provenance=_provenance(location, filesystem, _join(base, "predictions")),
    )


def _join(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


def _read_text(filesystem: pafs.FileSystem, path: str) -> str:
    with filesystem.open_input_stream(path) as stream:
        return stream.read().decode()


def _label_sets(filesystem: pafs.FileSystem, folder: str) -> dict[str, list[dict]]:
    """accuracy-<set>.json (its `rows`), else accuracy-<set>.csv (numbers read as numbers)."""
    files = {}
    for info in filesystem.get_file_info(pafs.FileSelector(folder, allow_not_found=True)):
        name = PurePosixPath(info.path).name
        stem, _, suffix = name.rpartition(".")
        if stem.startswith(LABEL_SET_PREFIX) and suffix in ("json", "csv"):
            label_set = stem[len(LABEL_SET_PREFIX):]
            if suffix == "json" or label_set not in files:
                files[label_set] = info.path
    sets = {}
    for label_set, path in sorted(files.items()):
        text = _read_text(filesystem, path)
        if path.endswith(".json"):
            sets[label_set] = json.loads(text)["rows"]
        else:
            sets[label_set] = [{key: _number(value) for key, value in row.items()}
                               for row in csv.DictReader(io.StringIO(text))]
    return sets


def _number(text: str):
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text else value


def _provenance(run: Location, filesystem: pafs.FileSystem, folder: str) -> list[dict]:
    """One document per pair folder with predictions (its first file's provenance, and the
    modification time of each file); folders with only a failure file are left to the table."""
    selector = pafs.FileSelector(folder, recursive=True, allow_not_found=True)
    by_folder: dict[str, list[pafs.FileInfo]] = {}
    for info in filesystem.get_file_info(selector):
        if info.path.endswith(".parquet") and not info.base_name.startswith("_"):
            by_folder.setdefault(info.path.rsplit("/", 1)[0], []).append(info)
    documents = []
    for _, files in sorted(by_folder.items()):
        files.sort(key=lambda info: info.path)
        provenances = [read_provenance(run / info.path[len(run.path) + 1:]) for info in files]
        document = provenances[0].to_dict()
        document["written"] = [p.written_at for p in provenances if p.written_at is not None]
        document["file_times"] = [info.mtime.timestamp() for info in files if info.mtime]
        documents.append(document)
    return documents
