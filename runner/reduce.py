"""The reducer: a pure function from prediction Parquet files to the accuracy table.

Accuracy is over the images a model could read (status ok); `errors` counts the rest and
`missing` counts dataset images with no row at all (an unfinished run), so nothing is hidden.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from runner.errors import UserError
from runner.schema import STATUS_OK, TOP_K, read_provenance

COLUMNS = (
    "framework", "model", "acc1", "acc5", "rank1", "rank5", "images", "errors", "missing",
    "weights", "protocol", "published_acc1", "published_acc5", "published_source",
    "batch_mode", "images_per_s", "device",
)


def score(out: str | Path) -> list[dict]:
    """One row per (framework, model) under OUT/predictions, sorted by Acc@1 (best first)."""
    folders = sorted((Path(out) / "predictions").glob("framework=*/model=*"))
    rows = [_score_pair(folder) for folder in folders]
    rows = [row for row in rows if row is not None]
    if not rows:
        raise UserError(f"no predictions under {Path(out) / 'predictions'}")
    _rank(rows, "acc1", "rank1")
    _rank(rows, "acc5", "rank5")
    rows.sort(key=lambda row: (row["rank1"] or math.inf, row["framework"], row["model"]))
    return rows


def _score_pair(folder: Path) -> dict | None:
    files = sorted(folder.glob("*.parquet"))
    if not files:
        return None
    provenances = [read_provenance(path) for path in files]
    first = provenances[0]
    if len({p["pair_key"] for p in provenances}) != 1:
        raise UserError(f"{folder} mixes predictions from different configs; rerun with --overwrite")
    table = pq.read_table(files, columns=["position", "label", "top5_class", "status"])
    positions = table["position"].to_numpy()
    if len(np.unique(positions)) != len(positions):
        raise UserError(f"{folder} holds more than one row for some images")
    ok = pc.equal(table["status"], STATUS_OK).to_numpy(zero_copy_only=False)
    labels = table["label"].to_numpy()[ok]
    top = pc.list_flatten(table["top5_class"].filter(ok)).to_numpy().reshape(-1, TOP_K)
    hits = top == labels[:, None]
    scored = int(ok.sum())
    published = _published(first)
    seconds = sum(p["shard_seconds"] for p in provenances)
    return {
        "framework": first["framework"],
        "model": first["model"],
        "acc1": float(100.0 * hits[:, 0].mean()) if scored else float("nan"),
        "acc5": float(100.0 * hits.any(axis=1).mean()) if scored else float("nan"),
        "images": scored,
        "errors": len(positions) - scored,
        "missing": int(first["dataset"]["images"] - len(positions)),
        "weights": first["weights"],
        "protocol": first["protocol"],
        "published_acc1": published[0],
        "published_acc5": published[1],
        "published_source": published[2],
        "batch_mode": first["batch_mode"],
        "images_per_s": len(positions) / seconds if seconds else None,
        "device": first["device"],
    }


def _published(provenance: dict) -> tuple[float | None, float | None, str | None]:
    """The figure to compare with: the 2019 table under its protocol, else the framework's own."""
    spec = provenance["spec"]
    if provenance["protocol"] == "northcutt2019":
        figures, source = spec["published"]["northcutt2019"], "northcutt2019 table"
    else:
        figures, source = spec["published"]["documented"], spec["documented_source"]
    return (figures[0], figures[1], source) if figures else (None, None, None)


def _rank(rows: list[dict], column: str, rank_column: str) -> None:
    """1 = best over all rows; equal accuracies share the better rank, as in the 2019 table.
    A model with no readable image (NaN) gets no rank."""
    values = [row[column] for row in rows if not math.isnan(row[column])]
    for row in rows:
        value = row[column]
        row[rank_column] = None if math.isnan(value) else 1 + sum(o > value for o in values)
