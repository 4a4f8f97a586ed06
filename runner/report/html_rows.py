"""The report's rows: one per (framework, backend, model) and setting, from one or more runs.

A row's main figures are on the ImageNet validation set (rows without a `dataset` column);
its other figures become views: other label sets (ReaL, the cleaned labels, any
accuracy-<set> table a scorer wrote) and other datasets (rows whose `dataset` differs). Ranks
are recomputed over the page; effective robustness (Taori et al. 2020) is each model's
accuracy on a shift dataset above the line fitted, in logit space, to all rows' accuracy on
that dataset against their ImageNet accuracy."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from runner.frameworks.keras_runtime import DEFAULT_BACKEND
from runner.report.runs import RunTables

IMAGENET = "imagenet"
# row columns that tell settings apart; a row with different values is a different row
SETTINGS = ("framework", "backend", "model", "variant", "protocol", "precision", "weights")
# label sets the main table carries in its own columns: view -> (Acc@1 column, Acc@5 column)
TABLE_VIEWS = {"ReaL": ("real_acc1", "real_acc5"), "cleaned": ("cacc1", "cacc5")}
FROM_PROVENANCE = ("backend", "precision")  # columns a row takes from its files when it lacks them


@dataclass
class PageRow:
    cells: dict  # the main table's columns (and `run`)
    views: dict[str, dict] = field(default_factory=dict)  # view -> acc1, acc5, rank, er

    def value(self, view: str | None, column: str = "acc1"):
        figures = self.cells if view is None else self.views.get(view, {})
        value = figures.get(column)
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


@dataclass
class Page:
    rows: list[PageRow]
    label_sets: list[str]  # views that relabel the ImageNet images
    datasets: list[str]  # views on other datasets
    random_weights: bool

    @property
    def views(self) -> list[str]:
        return self.label_sets + self.datasets

    @property
    def shifts(self) -> list[str]:
        """Datasets whose effective robustness means something (not an A/R `-clean` control)."""
        return [name for name in self.datasets if not name.endswith("-clean")]


def build_page(runs: list[RunTables]) -> Page:
    rows: dict[tuple, PageRow] = {}
    datasets: list[str] = []
    for run in runs:
        provenance = {_pair(p): p for p in run.provenance}
        for row in run.rows:
            document = row.cells()
            cells = _with_provenance(document, provenance.get(_pair(document), {}))
            cells["run"] = run.name
            dataset = row.dataset or IMAGENET
            if dataset == IMAGENET:
                key = _settings(cells)
                key += (run.name,) if key in rows else ()  # the same settings in two runs
                rows[key] = PageRow(cells)
            else:
                datasets += [dataset] if dataset not in datasets else []
                rows.setdefault(_settings(cells), PageRow({**cells, "acc1": None, "acc5": None}))
                rows[_settings(cells)].views[dataset] = document
    label_sets = _label_set_views(rows.values(), runs)
    _label(list(rows.values()))
    page = Page(list(rows.values()), label_sets, datasets, any(run.random_weights for run in runs))
    for view in (None, *page.views):
        _rank(page.rows, view)
    for dataset in page.shifts:
        _effective_robustness(page.rows, dataset)
    return page


def _with_provenance(row: dict, provenance: dict) -> dict:
    cells = dict(row)
    for column in FROM_PROVENANCE:
        if cells.get(column) is None and provenance.get(column) is not None:
            cells[column] = provenance[column]
    return cells


def _label(rows: list[PageRow]) -> None:
    """`label`: the model's name, with as much of framework, backend and run as tells it apart."""
    namings = (lambda c: c["model"], lambda c: f"{c['framework']}/{c['model']}",
               lambda c: f"{c['framework']}/{c['model']}" + (f"@{c['backend']}" if c.get("backend") else "")
               + (f" ({c['variant']})" if c.get("variant") else ""),
               lambda c: f"{c['framework']}/{c['model']} {' '.join(str(c.get(s)) for s in SETTINGS[3:])}",
               lambda c: f"{c['framework']}/{c['model']} [{c['run']}]")
    pending = rows
    for naming in namings:
        names = [naming(row.cells) for row in pending]
        for row, name in zip(pending, names, strict=True):
            row.cells["label"] = name
        pending = [row for row, name in zip(pending, names, strict=True) if names.count(name) > 1]
    for number, row in enumerate(pending, 1):  # identical in every respect: number them
        row.cells["label"] += f" #{number}"


def _pair(document: dict) -> tuple:
    """(framework, model, Keras backend, variant) of a table row or a provenance; files and
    tables from before backends were a setting ran Keras on TensorFlow."""
    framework = document["framework"]
    default = DEFAULT_BACKEND if framework == "keras" else None
    return framework, document["model"], document.get("backend") or default, document.get("variant")


def _settings(cells: dict) -> tuple:
    return tuple(cells.get(column) for column in SETTINGS)


def _label_set_views(rows, runs: list[RunTables]) -> list[str]:
    """Copy ReaL, cleaned and accuracy-<set> figures into each row's views; the view names."""
    views = []
    for row in rows:
        for view, (acc1, acc5) in TABLE_VIEWS.items():
            if row.cells.get(acc1) is not None:
                row.views[view] = {"acc1": row.cells[acc1], "acc5": row.cells.get(acc5)}
                views += [view] if view not in views else []
    by_model: dict[tuple, list[PageRow]] = {}
    for row in rows:
        by_model.setdefault((row.cells["run"], row.cells["framework"], row.cells["model"]), []).append(row)
    for run in runs:
        for label_set, table in run.label_sets.items():
            for figures in table:
                for row in by_model.get((run.name, figures.get("framework"), figures.get("model")), []):
                    # a table with a backend column says which backend's row it is about
                    if all(column not in figures or figures[column] == row.cells.get(column)
                           for column in ("backend", "variant")):
                        row.views[label_set] = dict(figures)
                        views += [label_set] if label_set not in views else []
    return views


def _rank(rows: list[PageRow], view: str | None) -> None:
    """`rank` of each row's Acc@1 in `view` (None: ImageNet) over the page: 1 = best, equal
    figures share the better rank (as the score table's ranks)."""
    values = [row.value(view) for row in rows if row.value(view) is not None]
    for row in rows:
        figures = row.cells if view is None else row.views.get(view)
        if figures is not None:
            value = row.value(view)
            figures["rank"] = None if value is None else 1 + sum(other > value for other in values)


def _logit(percent: np.ndarray) -> np.ndarray:
    share = np.clip(percent / 100.0, 1e-6, 1 - 1e-6)  # 0 and 100 % would be infinite
    return np.log(share / (1 - share))


def robustness_point(row: PageRow, dataset: str) -> tuple[float, float] | None:
    """(ImageNet Acc@1, dataset Acc@1) where both are known and strictly between 0 and 100 %."""
    pair = (row.value(None), row.value(dataset))
    return pair if None not in pair and 0 < min(pair) <= max(pair) < 100 else None


def effective_robustness_fit(rows: list[PageRow], dataset: str) -> tuple[float, float] | None:
    """(slope, intercept) of logit(dataset Acc@1) against logit(ImageNet Acc@1), over rows with
    both strictly between 0 and 100 % (where the logit is finite); None with fewer than three."""
    pairs = np.array([robustness_point(row, dataset) for row in rows
                      if robustness_point(row, dataset)], dtype=float).reshape(-1, 2)
    if len(pairs) < 3 or np.ptp(pairs[:, 0]) == 0:
        return None
    slope, intercept = np.polyfit(_logit(pairs[:, 0]), _logit(pairs[:, 1]), 1)
    return float(slope), float(intercept)


def expected_accuracy(imagenet_acc1: np.ndarray, fit: tuple[float, float]) -> np.ndarray:
    """The fitted line, back in percent."""
    slope, intercept = fit
    return 100.0 / (1.0 + np.exp(-(slope * _logit(imagenet_acc1) + intercept)))


def _effective_robustness(rows: list[PageRow], dataset: str) -> None:
    fit = effective_robustness_fit(rows, dataset)
    if fit is None:
        return
    for row in rows:
        point = robustness_point(row, dataset)
        if point is not None:
            imagenet, shifted = point
            row.views[dataset]["er"] = shifted - float(expected_accuracy(np.array(imagenet), fit))
