"""The report page's charts, drawn with matplotlib as inline SVG (text kept as text, ids and
metadata fixed so that the same tables give the same page). A chart whose figures the page
lacks is left out; with random weights every chart carries the watermark."""

from __future__ import annotations

import io
import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402
from matplotlib.typing import RcKeyType  # noqa: E402

from runner.report.charts import COLORS, OTHER_COLOR, mark_random, scatter_against  # noqa: E402
from runner.report.html_rows import (  # noqa: E402
    Page,
    PageRow,
    effective_robustness_fit,
    expected_accuracy,
    robustness_point,
)
from runner.score.rows import ScoreRow  # noqa: E402

MARKERS = {"pytorch": "o", "keras": "s"}
SVG_STYLE: dict[RcKeyType, Any] = {"svg.fonttype": "none", "svg.hashsalt": "kpbench", "font.size": 9}


def charts(page: Page) -> list[tuple[str, str]]:
    """(title, svg) of each chart the page's figures support."""
    drawn: list[tuple[str, str]] = []
    for title, draw in CHARTS:
        with plt.rc_context(SVG_STYLE):
            figure = draw(page)
            if figure is None:
                continue
            if page.random_weights:
                mark_random(figure)
            drawn.append((title, inline_svg(figure, f"chart{len(drawn)}-")))
    return drawn


def inline_svg(figure, prefix: str) -> str:
    """Inline SVG: without the XML declaration and doctype, and with its element ids (which
    matplotlib derives from content, so charts repeat them) prefixed to be unique in the page."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    return re.sub(r'(\bid="|href="#|url\(#)', rf"\g<1>{prefix}", text[text.index("<svg"):])


def _color(row: PageRow) -> str:
    return COLORS.get(row.cells["framework"], OTHER_COLOR)


def _points(axes, points: list[tuple[float, float, PageRow]], labels: bool = True) -> None:
    """Scatter (x, y, row), one colour and marker per framework, each point labelled."""
    by_framework = defaultdict(list)
    for x, y, row in points:
        by_framework[row.cells["framework"]].append((x, y))
    for framework, xy in sorted(by_framework.items()):
        axes.scatter(*zip(*xy, strict=True), s=18, label=framework, zorder=3,
                     color=COLORS.get(framework, OTHER_COLOR), marker=MARKERS.get(framework, "^"))
    if labels:
        for x, y, row in points:
            axes.annotate(row.cells["label"], (x, y), fontsize=6, xytext=(3, 2),
                          textcoords="offset points", color="#333333")
    axes.legend(fontsize=8)


def _against_cost(column: str, label: str, scale: float) -> Callable[[Page], Figure | None]:
    def draw(page: Page) -> Figure | None:
        points = [(row.value(None, column) * scale, row.value(None), row) for row in page.rows
                  if row.value(None, column) and row.value(None) is not None]
        if not points:
            return None
        figure, axes = plt.subplots(figsize=(7.5, 5))
        _points(axes, points)
        axes.set_xscale("log")
        axes.set_xlabel(f"{label} (log scale)")
        axes.set_ylabel("Acc@1 (%)")
        axes.set_title(f"Acc@1 against {label}")
        axes.grid(alpha=0.3)
        return figure

    return draw


def _frameworks_per_arch(page: Page):
    """Acc@1 of each architecture that more than one framework ran (ModelSpec.arch)."""
    archs: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in page.rows:
        if row.cells.get("arch") and row.value(None) is not None:
            archs[row.cells["arch"]][row.cells["framework"]].append(row.value(None))
    shared = sorted((arch for arch, frameworks in archs.items() if len(frameworks) > 1),
                    key=lambda arch: np.mean([v for vs in archs[arch].values() for v in vs]))
    if not shared:
        return None
    figure, axes = plt.subplots(figsize=(7.5, 0.32 * len(shared) + 1.4))
    seen = set()
    for y, arch in enumerate(shared):
        values = [v for vs in archs[arch].values() for v in vs]
        axes.plot([min(values), max(values)], [y, y], color="#cccccc", linewidth=2, zorder=1)
        for framework, accuracies in sorted(archs[arch].items()):
            axes.scatter(accuracies, [y] * len(accuracies), s=28, zorder=2,
                         color=COLORS.get(framework, OTHER_COLOR), marker=MARKERS.get(framework, "^"),
                         label=None if framework in seen else framework)
            seen.add(framework)
    axes.set_yticks(range(len(shared)), shared)
    axes.set_xlabel("Acc@1 (%)")
    axes.set_title("Acc@1 per architecture, framework against framework")
    axes.grid(axis="x", alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    return figure


def _measured_vs_published(page: Page):
    rows = [ScoreRow.model_validate(row.cells) for row in page.rows
            if row.value(None) is not None and row.value(None, "published_acc1") is not None]
    return scatter_against("published_acc1", "published Acc@1 (%)")(rows) if rows else None


def _rank_movement(page: Page):
    """Each model's rank by Acc@1 on ImageNet and on every other label set and dataset."""
    views = [None, *page.views]
    rows = [row for row in page.rows if sum(row.value(view) is not None for view in views) > 1]
    if not rows:
        return None
    figure, axes = plt.subplots(figsize=(2.4 * len(views) + 3.5, 0.2 * len(rows) + 1.6))
    lowest = 1
    for row in rows:
        ranks = [(i, (row.cells if view is None else row.views[view])["rank"])
                 for i, view in enumerate(views) if row.value(view) is not None]
        xs, ys = zip(*ranks, strict=True)
        lowest = max(lowest, *ys)
        axes.plot(xs, ys, marker="o", markersize=3, linewidth=1, color=_color(row), alpha=0.8)
        for x, y, side in ((xs[0], ys[0], "right"), (xs[-1], ys[-1], "left")):
            axes.annotate(row.cells["label"], (x, y), xytext=(-5 if side == "right" else 5, 0),
                          textcoords="offset points", ha=side, va="center", fontsize=6)
    axes.set_ylim(lowest + 0.5, 0.5)  # rank 1 at the top
    axes.set_xticks(range(len(views)), ["ImageNet", *page.views])
    axes.set_xlim(-0.8, len(views) - 0.2)
    axes.set_ylabel("rank by Acc@1 (1 = best)")
    axes.set_title("Rank movement between label sets and datasets")
    for side in ("top", "right", "bottom"):
        axes.spines[side].set_visible(False)
    return figure


def _effective_robustness(page: Page):
    fits = {dataset: fit for dataset in page.shifts
            if (fit := effective_robustness_fit(page.rows, dataset)) is not None}
    if not fits:
        return None
    figure, grid = plt.subplots(1, len(fits), figsize=(5.5 * len(fits), 5), squeeze=False)
    for axes, (dataset, fit) in zip(grid[0], fits.items(), strict=True):
        known = [(robustness_point(row, dataset), row) for row in page.rows]
        points = [(point[0] / 100, point[1] / 100, row) for point, row in known if point]
        _points(axes, points)
        xs = np.linspace(min(p[0] for p in points), max(p[0] for p in points), 100)
        axes.plot(xs, expected_accuracy(xs * 100, fit) / 100, "--", color="grey", linewidth=1,
                  label="fit over these models (logit)")
        axes.set_xscale("logit")
        axes.set_yscale("logit")
        for axis in (axes.xaxis, axes.yaxis):
            axis.set_major_formatter(PercentFormatter(1.0, decimals=0))
            axis.set_minor_formatter(PercentFormatter(1.0, decimals=0))
        axes.set_xlabel("ImageNet Acc@1")
        axes.set_ylabel(f"{dataset} Acc@1")
        axes.set_title(f"Effective robustness on {dataset}: height above the fit")
        axes.legend(fontsize=7)
    return figure


def _tiers(page: Page):
    """Models in order of Acc@1, coloured by tier, with their intervals where present."""
    rows = sorted((row for row in page.rows if row.cells.get("tier") is not None
                   and row.value(None) is not None), key=lambda row: -row.value(None))
    if not rows:
        return None
    tiers = sorted({str(row.cells["tier"]) for row in rows})
    palette = plt.get_cmap("tab10")
    figure, axes = plt.subplots(figsize=(7.5, 0.2 * len(rows) + 1.6))
    for y, row in enumerate(rows):
        acc, low, high = (row.value(None, c) for c in ("acc1", "acc1_ci_low", "acc1_ci_high"))
        tier = str(row.cells["tier"])
        error = [[acc - low], [high - acc]] if low is not None and high is not None else None
        axes.errorbar(acc, y, xerr=error, fmt="o", markersize=4, capsize=2,
                      color=palette(tiers.index(tier) % 10), label=f"tier {tier}")
    handles, labels = axes.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    axes.legend(unique.values(), unique.keys(), fontsize=7, loc="lower right")
    axes.set_yticks(range(len(rows)), [row.cells["label"] for row in rows], fontsize=6)
    axes.invert_yaxis()
    axes.set_xlabel("Acc@1 (%)" + (" with its interval" if any(r.value(None, "acc1_ci_low")
                                                                 is not None for r in rows) else ""))
    axes.set_title("Tiers: models whose Acc@1 the data do not tell apart")
    axes.grid(axis="x", alpha=0.3)
    return figure


CHARTS: list[tuple[str, Callable[[Page], Figure | None]]] = [
    ("Accuracy against compute", _against_cost("gflops", "GFLOPs", 1.0)),
    ("Accuracy against size", _against_cost("params", "parameters (millions)", 1e-6)),
    ("Frameworks per architecture", _frameworks_per_arch),
    ("Measured against published", _measured_vs_published),
    ("Rank movement", _rank_movement),
    ("Effective robustness", _effective_robustness),
    ("Tiers", _tiers),
]
