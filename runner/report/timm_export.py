"""`kpbench score --format timm`: the accuracy table as timm's `results-*.csv` files, so that
timm's tools and users read kpbench's figures beside timm's own
(huggingface/pytorch-image-models, results/; the header, number formats, row order and diff
columns below are those of its files and of its results/generate_csv_results.py).

- One file per dataset, named as timm names it: `results-imagenet.csv` for the ImageNet
  validation set, `results-imagenet-real.csv` for its ReaL labels (the real_acc1/real_acc5
  columns), `results-<dataset>.csv` for a row's `dataset` (timm's names for ImageNetV2 and
  Sketch: `imagenetv2-matched-frequency`, `sketch`).
- Test-set files (all but ImageNet and the `-clean` runs) add top1_diff, top5_diff, rank_diff:
  against ImageNet, and for ImageNet-A and -R against their `-clean` run. Ranks are positions
  in timm's order (Acc@1, then Acc@5, best first, then the name), so rank_diff = base rank -
  rank; diffs are between the figures as written (3 decimals), as timm computes them from its
  files. A model the base file lacks gets empty diff cells.
- `model` is the catalog name, `framework/name` where the name occurs in two frameworks, with
  `@backend` for Keras rows on a non-default backend and ` (weights: random)` for random weights.
- Only complete rows go in (status ok); the others are returned, to be listed.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass

from runner.errors import UserError
from runner.frameworks.keras_runtime import backend_suffix
from runner.outputs import Location, LocationLike

COLUMNS = ("model", "img_size", "top1", "top1_err", "top5", "top5_err", "param_count", "crop_pct",
           "interpolation")
DIFF_COLUMNS = ("top1_diff", "top5_diff", "rank_diff")
IMAGENET = "imagenet"  # rows without a `dataset` are on the ImageNet validation set
REAL = "imagenet-real"
# kpbench dataset names whose timm file has another name
TIMM_NAMES = {"imagenetv2": "imagenetv2-matched-frequency", "imagenet-sketch": "sketch"}
CLEAN_BASED = ("imagenet-a", "imagenet-r")  # compared with their `-clean` run, not ImageNet
RANDOM_SUFFIX = " (weights: random)"
FOLDER = "results/timm"  # under the run folder


@dataclass(frozen=True)
class TimmRow:
    """One line of a timm results file; None where kpbench does not know the value."""

    model: str
    img_size: int | None
    top1: float
    top5: float
    param_count: float | None  # millions
    crop_pct: float | None
    interpolation: str | None

    @property
    def order(self) -> tuple:
        """timm's row order: figures as written, best first, then the name."""
        return -round(self.top1, 3), -round(self.top5, 3), self.model


def write_timm(out: LocationLike, rows: list[dict]) -> tuple[list[Location], list[str]]:
    """Write OUT/results/timm/results-*.csv (replacing earlier ones) in a local run folder or
    at a URI; returns the paths and a line for each row left out."""
    files, left_out = timm_files(rows)
    folder = Location.of(out) / FOLDER
    for stale in folder.files("results-*.csv"):
        if stale.name not in files:
            stale.delete()
    paths = []
    for name, text in files.items():
        (folder / name).write_text(text)
        paths.append(folder / name)
    return paths, left_out


def timm_files(rows: list[dict]) -> tuple[dict[str, str], list[str]]:
    """File name -> CSV text, and a line for each row left out (not complete)."""
    complete, left_out = [], []
    for row in rows:
        if row["status"] == "ok" and not math.isnan(row["acc1"]):
            complete.append(row)
        else:
            why = "no readable image" if row["status"] == "ok" else row["status"]
            missing = f" ({row['missing']} images without a prediction)" if row["missing"] else ""
            left_out.append(f"{row['framework']}/{row['model']}: {why}{missing}")
    names = _model_names(complete)
    tables: dict[str, list[TimmRow]] = defaultdict(list)
    for row, name in zip(complete, names, strict=True):
        dataset = _timm_dataset(row.get("dataset") or IMAGENET)
        tables[dataset].append(_timm_row(row, name, row["acc1"], row["acc5"]))
        real = row.get("real_acc1")
        if dataset == IMAGENET and real is not None and not math.isnan(real):  # NaN: no ReaL image
            tables[REAL].append(_timm_row(row, name, row["real_acc1"], row["real_acc5"]))
    for dataset, table in tables.items():
        duplicated = [name for name, count in Counter(row.model for row in table).items() if count > 1]
        if duplicated:
            raise UserError(f"timm export: more than one row named {', '.join(sorted(duplicated))} "
                            f"in results-{dataset}.csv")
    files = {f"results-{dataset}.csv": render(table, tables.get(_base(dataset)), _is_test_set(dataset))
             for dataset, table in sorted(tables.items())}
    return files, left_out


def _model_names(rows: list[dict]) -> list[str]:
    frameworks = defaultdict(set)
    for row in rows:
        frameworks[row["model"]].add(row["framework"])
    names = []
    for row in rows:
        name = row["model"] if len(frameworks[row["model"]]) == 1 else f"{row['framework']}/{row['model']}"
        name += backend_suffix(row.get("backend"))
        names.append(name + (RANDOM_SUFFIX if row["weights"] == "random" else ""))
    return names


def _timm_dataset(dataset: str) -> str:
    name = re.sub(r"[^a-z0-9.]+", "-", dataset.lower()).strip("-")
    return TIMM_NAMES.get(name, name)


def _is_test_set(dataset: str) -> bool:
    return dataset != IMAGENET and not dataset.endswith("-clean")


def _base(dataset: str) -> str:
    return f"{dataset}-clean" if dataset in CLEAN_BASED else IMAGENET


def _timm_row(row: dict, name: str, top1: float, top5: float) -> TimmRow:
    params = row.get("params")
    return TimmRow(model=name, img_size=row.get("img_size"), top1=top1, top5=top5,
                   param_count=params / 1e6 if params else None, crop_pct=row.get("crop_pct"),
                   interpolation=row.get("interpolation"))


def render(rows: list[TimmRow], base: list[TimmRow] | None = None, diffs: bool = False) -> str:
    """A results file: timm's header (with the diff columns when `diffs`), rows in timm's order."""
    rows = sorted(rows, key=lambda row: row.order)
    base_rows = sorted(base or [], key=lambda row: row.order)
    base_by_name = {row.model: (rank, row) for rank, row in enumerate(base_rows)}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS + (DIFF_COLUMNS if diffs else ()))
    for rank, row in enumerate(rows):
        cells = [row.model, _blank(row.img_size, "{}"), f"{row.top1:.3f}", f"{100 - row.top1:.3f}",
                 f"{row.top5:.3f}", f"{100 - row.top5:.3f}", _blank(row.param_count, "{:,.2f}"),
                 _blank(row.crop_pct, "{:.3f}"), _blank(row.interpolation, "{}")]
        if diffs:
            cells += _diff_cells(rank, row, base_by_name.get(row.model))
        writer.writerow(cells)
    return buffer.getvalue()


def _diff_cells(rank: int, row: TimmRow, base: tuple[int, TimmRow] | None) -> list[str]:
    if base is None:
        return ["", "", ""]
    base_rank, base_row = base
    top1 = round(row.top1, 3) - round(base_row.top1, 3)
    top5 = round(row.top5, 3) - round(base_row.top5, 3)
    return [_signed(top1), _signed(top5), f"{base_rank - rank:+d}" if base_rank != rank else "0"]


def _signed(difference: float) -> str:
    return f"+{difference:.3f}" if difference >= 0 else f"-{abs(difference):.3f}"


def _blank(value, form: str) -> str:
    return "" if value is None else form.format(value)
