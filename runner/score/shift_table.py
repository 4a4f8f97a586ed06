"""Several runs, one per test set: the wide table, and timm's published figures per set.

The wide table has one row per (framework, backend, model, variant) and a column group per dataset:
`<set>_acc1`, `<set>_acc5`, `<set>_tier`, and, where the set's baseline was scored too,
`<set>_top1_diff`, `<set>_top5_diff` (set minus baseline, points) and `<set>_rank_diff`
(baseline rank minus rank on the set: positive = moved up), as timm's results files compute
them: against ImageNet for ReaL, V2 and Sketch, against the -clean runs for A and R.
"""

from __future__ import annotations

import csv
from pathlib import Path

from runner.data.shift import DATASETS
from runner.errors import UserError
from runner.score.columns import RowKey, default_settings, row_key
from runner.score.rows import ScoreRow
from runner.score.stats import claim

REAL = "imagenet-real"  # ImageNet-ReaL labels on the ImageNet run (score --real)
# column groups in this order: ImageNet, ReaL, then the shift sets
ORDER = ("imagenet", REAL, *list(DATASETS)[1:])


def wide_table(rows: list[ScoreRow]) -> tuple[list[dict], list[str]]:
    """The wide rows (sorted by framework, model, backend) and their columns, from the plain
    tables of several runs (each row has its `dataset`). Keras on another backend is a row of its
    own; the `backend` column is shown when some row is not on the default backend."""
    figures: dict[str, dict[RowKey, dict]] = {}
    for row in rows:
        by_model = figures.setdefault(row.dataset, {})
        key = row_key(row)
        if key in by_model:
            raise UserError(f"two runs hold {row.dataset} predictions of {row.pair_name}: "
                            "score one run per dataset")
        by_model[key] = {"acc1": row.acc1, "acc5": row.acc5, "rank": row.rank1, "tier": row.tier,
                         "weights": row.weights}
        if row.real_acc1 is not None and row.dataset == "imagenet":
            figures.setdefault(REAL, {})[key] = {"acc1": row.real_acc1, "rank": row.real_rank1}
    order = [name for name in ORDER if name in figures]
    uniform = default_settings(rows, getattr)
    show_backend, show_variant = "backend" not in uniform, "variant" not in uniform
    columns = ["framework", *(["backend"] if show_backend else []), "model",
               *(["variant"] if show_variant else []), "weights"]
    keys = sorted({key for by_model in figures.values() for key in by_model},
                  key=lambda key: (key[0], key[1], key[2] or "", key[3] or ""))
    wide = [{"framework": fw, **({"backend": backend} if show_backend else {}), "model": model,
             **({"variant": variant or ""} if show_variant else {})}
            for fw, model, backend, variant in keys]
    for name in order:
        baseline = _baseline(name)
        group = [f"{name}_acc1", f"{name}_acc5", f"{name}_tier"]
        if baseline in figures:
            group += [f"{name}_top1_diff", f"{name}_top5_diff", f"{name}_rank_diff"]
        columns += group
        for cells, key in zip(wide, keys, strict=True):
            base = figures.get(baseline, {}) if baseline else {}
            cells.update(_group(name, figures[name].get(key), base.get(key)))
            cells["weights"] = cells.get("weights") or figures[name].get(key, {}).get("weights")
    return wide, columns


def _baseline(name: str) -> str | None:
    return "imagenet" if name == REAL else DATASETS[name].baseline


def _group(name: str, figures: dict | None, base: dict | None) -> dict:
    if figures is None:
        return {}
    group = {f"{name}_acc1": figures["acc1"], f"{name}_acc5": figures.get("acc5"),
             f"{name}_tier": figures.get("tier")}
    if base is not None:
        group[f"{name}_top1_diff"] = figures["acc1"] - base["acc1"]
        if figures.get("acc5") is not None:
            group[f"{name}_top5_diff"] = figures["acc5"] - base["acc5"]
        if figures["rank"] is not None and base["rank"] is not None:
            group[f"{name}_rank_diff"] = base["rank"] - figures["rank"]
    return group


def apply_published(rows: list[ScoreRow], directory: str | Path) -> list[str]:
    """For timm models, measured against timm's own figure for the row's dataset, from a copy of
    timm's results/ folder: published_acc1/5, published_delta1/5, published_source and the
    claim check against that figure. timm lists some tags at two input sizes; such a row is left
    without a figure, and a returned note says so."""
    folder = Path(directory)
    if not folder.is_dir():
        raise UserError(f"--published: folder not found: {directory}")
    tables: dict[str, dict[str, list[dict]]] = {}
    notes = []
    for row in rows:
        file = DATASETS[row.dataset].timm_results
        if row.framework != "timm" or file is None:
            continue
        if file not in tables:
            tables[file] = _read_timm_results(folder / file)
        entries = tables[file].get(row.model, [])
        if len(entries) > 1:
            notes.append(f"{file} lists {row.model} at several input sizes: no published figure")
        elif entries:
            top1, top5 = float(entries[0]["top1"]), float(entries[0]["top5"])
            row.published_acc1, row.published_acc5 = top1, top5
            row.published_delta1, row.published_delta5 = row.acc1 - top1, row.acc5 - top5
            row.published_source = f"timm {file}"
            row.claim = claim(top1, row.acc1_ci_low, row.acc1_ci_high)
    return notes


def _read_timm_results(path: Path) -> dict[str, list[dict]]:
    """model tag -> its rows in one of timm's results-*.csv files; {} when the file is absent."""
    if not path.is_file():
        return {}
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    if rows and not {"model", "img_size", "top1", "top5"} <= set(rows[0]):
        raise UserError(f"--published: {path} is not a timm results file (model, img_size, top1, top5)")
    by_tag: dict[str, list[dict]] = {}
    for row in rows:
        by_tag.setdefault(row["model"], []).append(row)
    return by_tag
