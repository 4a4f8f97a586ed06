"""The report's provenance summary: per run, what made its predictions, from the provenance
of every pair's files (runner/predictions.py, Provenance)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from runner.report.runs import RunTables

MOST_SHOWN = 6  # distinct values listed per entry; the rest are counted


def _one(key: str) -> Callable[[dict], Iterable]:
    return lambda provenance: [provenance.get(key)]


def _libraries(provenance: dict) -> Iterable[str]:
    return [f"{name} {version}" for name, version in sorted((provenance.get("libraries") or {}).items())]


def _dataset(provenance: dict) -> Iterable[str]:
    dataset = provenance.get("dataset") or {}
    parts = [dataset.get("fingerprint") or "no fingerprint", f"{dataset.get('images')} images",
             dataset.get("layout"), dataset.get("root")]
    return [" · ".join(str(part) for part in parts if part)]


def _gpu(key: str) -> Callable[[dict], Iterable]:
    """None recorded means the pair ran on CPU; no entry means its files predate the field."""
    return lambda provenance: [provenance.get(key, "not recorded") or "none (CPU)"]


# (what, how to read it from one pair's provenance); None values are "not recorded"
FACETS: list[tuple[str, Callable[[dict], Iterable]]] = [
    ("kpbench", _one("kpbench_version")),
    ("frameworks", _libraries),
    ("backend", _one("backend")),
    ("device", _one("device")),
    ("NVIDIA driver", _gpu("nvidia_driver")),
    ("CUDA", _gpu("cuda")),
    ("dataset", _dataset),
    ("protocol", _one("protocol")),
    ("precision", _one("precision")),
    ("weights", _one("weights")),
    ("batch mode", _one("batch_mode")),
    ("hosts", _one("hostname")),
    ("run ids", _one("run_id")),
]


def summarise(run: RunTables) -> dict[str, str]:
    """What -> the distinct values over the run's pairs (with pair counts when they differ)."""
    summary = {"pairs with predictions": str(len(run.provenance))}
    for what, read in FACETS:
        counts = Counter(str(value) for p in run.provenance for value in read(p) if value is not None)
        summary[what] = _listed(counts) if counts else "not recorded"
    summary["run dates"] = _dates(run.provenance)
    return summary


def _listed(counts: Counter) -> str:
    if len(counts) == 1:
        return next(iter(counts))
    shown = [f"{value} ({count})" for value, count in counts.most_common(MOST_SHOWN)]
    more = len(counts) - MOST_SHOWN
    return ", ".join(shown) + (f", and {more} more" if more > 0 else "")


def _dates(provenance: list[dict]) -> str:
    """First and last file written: the times the files record, else the files' own times."""
    written = [t for p in provenance for t in p.get("written", [])]
    source = "" if written else " (file times: the files record none)"
    times = written or [t for p in provenance for t in p.get("file_times", [])]
    if not times:
        return "not recorded"
    first, last = (datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")
                   for t in (min(times), max(times)))
    return (first if first == last else f"{first} to {last}") + source
