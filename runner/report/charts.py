"""What the PNG charts (runner.report.png) and the HTML page's charts (runner.report.html_charts)
draw alike: the frameworks' colours, the random-weights mark, Acc@1 against another figure."""

from __future__ import annotations

import math
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from runner.report.tables import RANDOM_NOTE  # noqa: E402
from runner.score.rows import ScoreRow  # noqa: E402

COLORS = {"pytorch": "#ee4c2c", "keras": "#3b7dd8"}
OTHER_COLOR = "#6b6b6b"  # timm and users' own catalogs


def scatter_against(column: str, label: str) -> Callable[[list[ScoreRow]], Figure]:
    """Acc@1 against another figure per model, with the diagonal where the two agree."""

    def draw(rows: list[ScoreRow]) -> Figure:
        figure, axes = plt.subplots(figsize=(5.5, 5.5))
        points = [(getattr(row, column), row) for row in rows]
        points = [(x, row) for x, row in points if x is not None and not math.isnan(x)]
        for framework, color in COLORS.items():
            chosen = [(x, row.acc1) for x, row in points if row.framework == framework]
            if chosen:
                xs, ys = zip(*chosen, strict=True)
                axes.scatter(xs, ys, s=18, color=color, label=framework)
        for x, row in points:
            axes.annotate(row.model, (x, row.acc1), fontsize=6, xytext=(2, 2),
                          textcoords="offset points")
        values = [v for x, row in points for v in (x, row.acc1)] or [0, 100]
        low, high = min(values) - 2, max(values) + 2
        axes.plot([low, high], [low, high], color="grey", linewidth=0.8, linestyle="--")
        axes.set_xlim(low, high)
        axes.set_ylim(low, high)
        axes.set_xlabel(label)
        axes.set_ylabel("measured Acc@1 (%)")
        axes.set_title(f"Acc@1 against {label}")
        axes.legend(fontsize=8)
        return figure

    return draw


def mark_random(figure: Figure) -> None:
    figure.text(0.5, 0.5, "weights: random", fontsize=28, color="red", alpha=0.25,
                ha="center", va="center", rotation=25)
    figure.suptitle(RANDOM_NOTE, color="red", fontsize=9, y=1.0, va="bottom")  # above the title
