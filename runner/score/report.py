"""`kpbench report`: charts of a scored run, and an index page embedding them.

Input is the table `kpbench score` wrote (OUT/results/accuracy.json, with any cleaned or
ReaL figures it computed); output is PNG files and OUT/results/report.md beside it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted

import matplotlib.pyplot as plt  # noqa: E402

from runner.atomic import atomic_path, write_text_atomic  # noqa: E402
from runner.score.results import RANDOM_NOTE  # noqa: E402

COLORS = {"pytorch": "#ee4c2c", "keras": "#3b7dd8"}


def write_report(out: str | Path) -> list[Path]:
    """Write the charts that the table supports; returns the paths, index page last."""
    folder = Path(out) / "results"
    table = folder / "accuracy.json"
    if not table.is_file():
        raise FileNotFoundError(table)
    document = json.loads(table.read_text())
    rows, random = document["rows"], document["random_weights"]
    charts: dict[str, Callable] = {"acc1_by_family.png": _by_family}
    if any(row.get("published_acc1") is not None for row in rows):
        charts["measured_vs_published.png"] = _scatter("published_acc1", "published Acc@1 (%)")
    if any("cacc1" in row for row in rows):
        charts["plain_vs_cleaned.png"] = _scatter("cacc1", "cleaned Acc@1 (%)")
    if any("real_acc1" in row for row in rows):
        charts["plain_vs_real.png"] = _scatter("real_acc1", "ImageNet-ReaL Acc@1 (%)")
    written = []
    for name, draw in charts.items():
        figure = draw(rows)
        if random:
            _mark_random(figure)
        with atomic_path(folder / name) as tmp:
            figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        plt.close(figure)
        written.append(folder / name)
    index = folder / "report.md"
    write_text_atomic(index, _index(rows, random, [p.name for p in written], folder))
    return [*written, index]


def _by_family(rows: list[dict]):
    """Acc@1 per model, grouped by architecture family, the two frameworks side by side."""
    families: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows:
        family = row.get("family") or row["model"]
        # Keras on another backend is a bar of its own (model@jax), not drawn over TensorFlow's
        backend = row.get("backend")
        model = row["model"] + (f"@{backend}" if backend not in (None, "tensorflow") else "")
        families.setdefault(family, {}).setdefault(model, {})[row["framework"]] = row["acc1"]
    models = [(family, model) for family in sorted(families) for model in sorted(families[family])]
    figure, axes = plt.subplots(figsize=(max(6.0, 0.45 * len(models) + 2), 4.5))
    width = 0.4
    for framework, offset in (("pytorch", -width / 2), ("keras", width / 2)):
        points = [(i + offset, families[f][m][framework])
                  for i, (f, m) in enumerate(models) if framework in families[f][m]]
        if points:
            xs, ys = zip(*points, strict=True)
            axes.bar(xs, ys, width, label=framework, color=COLORS[framework])
    axes.set_xticks(range(len(models)), [m for _, m in models], rotation=60, ha="right", fontsize=8)
    boundaries = [i - 0.5 for i in range(1, len(models)) if models[i][0] != models[i - 1][0]]
    for x in boundaries:
        axes.axvline(x, color="grey", linewidth=0.6, linestyle=":")
    starts = [0] + [int(b + 0.5) for b in boundaries]
    ends = [int(b + 0.5) for b in boundaries] + [len(models)]
    for start, end in zip(starts, ends, strict=True):
        axes.text((start + end - 1) / 2, 1.0, models[start][0], transform=axes.get_xaxis_transform(),
                  ha="center", va="bottom", fontsize=8, color="dimgrey")
    axes.set_ylabel("Acc@1 (%)")
    axes.set_title("Acc@1 by architecture family", pad=16)
    axes.legend(fontsize=8)
    return figure


def _scatter(column: str, label: str):
    """Acc@1 against another figure per model, with the diagonal where the two agree."""

    def draw(rows: list[dict]):
        figure, axes = plt.subplots(figsize=(5.5, 5.5))
        points = [row for row in rows if row.get(column) is not None and not math.isnan(row[column])]
        for framework, color in COLORS.items():
            chosen = [row for row in points if row["framework"] == framework]
            if chosen:
                axes.scatter([r[column] for r in chosen], [r["acc1"] for r in chosen], s=18,
                             color=color, label=framework)
        for row in points:
            axes.annotate(row["model"], (row[column], row["acc1"]), fontsize=6,
                          xytext=(2, 2), textcoords="offset points")
        values = [v for row in points for v in (row[column], row["acc1"])] or [0, 100]
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


def _mark_random(figure) -> None:
    figure.text(0.5, 0.5, "weights: random", fontsize=28, color="red", alpha=0.25,
                ha="center", va="center", rotation=25)
    figure.suptitle(RANDOM_NOTE, color="red", fontsize=9, y=0.01, va="bottom")


def _index(rows: list[dict], random: bool, charts: list[str], folder: Path) -> str:
    lines = ["# kpbench report", ""]
    if random:
        lines += [f"> **{RANDOM_NOTE}**", ""]
    lines += [f"![{name}]({name})" for name in charts]
    lines += ["", "## Table", "", (folder / "accuracy.md").read_text()]
    return "\n".join(lines)
