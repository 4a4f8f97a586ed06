"""`kpbench report`: charts of a scored run, and an index page embedding them.

Input is the table `kpbench score` wrote (OUT/results/accuracy.json, with any cleaned or
ReaL figures it computed, the label-set tables accuracy-<set>.json and the wide table
accuracy-wide.json when it wrote them); output is PNG files and OUT/results/report.md beside it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import LogitFormatter  # noqa: E402
from scipy.special import expit, logit  # noqa: E402

from runner.frameworks.keras_runtime import backend_suffix  # noqa: E402
from runner.outputs import Location, LocationLike  # noqa: E402
from runner.report.charts import COLORS, OTHER_COLOR, mark_random, scatter_against  # noqa: E402
from runner.report.tables import RANDOM_NOTE, read_table  # noqa: E402
from runner.score.columns import row_key  # noqa: E402
from runner.score.rows import ScoreRow  # noqa: E402


def write_report(out: LocationLike) -> list[Location]:
    """Write the charts that the table supports; returns the paths, index page last."""
    folder = Location.of(out) / "results"
    table = read_table(out)
    rows, random = table.rows, table.random_weights
    written = []
    for name, draw in _charts(folder, rows).items():
        figure = draw(rows)
        if random:
            mark_random(figure)
        png = io.BytesIO()
        figure.savefig(png, format="png", dpi=110, bbox_inches="tight")
        plt.close(figure)
        (folder / name).write_bytes(png.getvalue())
        written.append(folder / name)
    index = folder / "report.md"
    index.write_text(_index(random, [p.name for p in written], folder))
    return [*written, index]


def _charts(folder: Location, rows: list[ScoreRow]) -> dict[str, Callable]:
    """The charts the tables in `folder` support, by file name."""
    charts: dict[str, Callable] = {"acc1_by_family.png": _by_family, "acc1_tiers.png": _tiers}
    if any(row.published_acc1 is not None for row in rows):
        charts["measured_vs_published.png"] = scatter_against("published_acc1", "published Acc@1 (%)")
    if any(row.given("cacc1") for row in rows):
        charts["plain_vs_cleaned.png"] = scatter_against("cacc1", "cleaned Acc@1 (%)")
    if any(row.given("real_acc1") for row in rows):
        charts["plain_vs_real.png"] = scatter_against("real_acc1", "ImageNet-ReaL Acc@1 (%)")
    wide = folder / "accuracy-wide.json"
    shifted = json.loads(wide.read_text())["rows"] if wide.is_file() else []
    if _shift_sets(shifted) and any("imagenet_acc1" in row for row in shifted):
        charts["effective_robustness.png"] = lambda _: _effective_robustness(shifted)
    label_sets = {name: read_table(folder.parent, f"accuracy-{name}").rows
                  for name in (path.name.removesuffix(".json").removeprefix("accuracy-")
                               for path in folder.files("accuracy-*.json") if path != wide)}
    if label_sets:
        charts["rank_movement.png"] = lambda plain: _rank_movement(plain, label_sets)
    return charts


def _rank_movement(rows: list[ScoreRow], label_sets: dict[str, list[ScoreRow]]):
    """Each model's Acc@1 rank on the plain labels and its rank on each label set's corrected
    labels (its plain-label rank for removed-c, which has no corrected figures)."""
    columns = {} if any(row.given("label_set") for row in rows) else {"original labels": rows}
    columns |= label_sets
    figure, axes = plt.subplots(figsize=(2.2 * len(columns) + 3, max(4.0, 0.22 * len(rows) + 1)))
    ranks: dict[tuple, list] = {}
    for x, table in enumerate(columns.values()):
        for row in table:
            rank = row.crank1 if row.crank1 is not None else row.rank1
            ranks.setdefault(row_key(row), [None] * len(columns))[x] = rank
    for (framework, model, backend, variant), ys in ranks.items():
        points = [(x, y) for x, y in enumerate(ys) if y is not None]
        if points:
            axes.plot(*zip(*points, strict=True), marker="o", markersize=3, linewidth=0.8,
                      color=COLORS.get(framework, "black"))
            label = model + backend_suffix(backend) + (f" ({variant})" if variant else "")
            axes.annotate(label, points[-1], fontsize=6, xytext=(4, 0), textcoords="offset points",
                          va="center")
    axes.invert_yaxis()
    axes.set_xticks(range(len(columns)), list(columns), rotation=20, ha="right", fontsize=8)
    axes.set_ylabel("rank (Acc@1; corrected labels: cAcc@1)")
    axes.set_title("Rank movement between label sets", fontsize=9)
    return figure


def _by_family(rows: list[ScoreRow]):
    """Acc@1 per model, grouped by architecture family, the frameworks side by side."""
    families: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows:
        family = row.family or row.model
        # Keras on another backend is a bar of its own (model@jax), not drawn over TensorFlow's
        model = row.model + backend_suffix(row.backend) + (f" ({row.variant})" if row.variant else "")
        families.setdefault(family, {}).setdefault(model, {})[row.framework] = row.acc1
    models = [(family, model) for family in sorted(families) for model in sorted(families[family])]
    figure, axes = plt.subplots(figsize=(max(6.0, 0.45 * len(models) + 2), 4.5))
    frameworks = sorted({row.framework for row in rows}, key=lambda name: (name not in COLORS, name))
    width = 0.8 / len(frameworks)
    for index, framework in enumerate(frameworks):
        offset = (index - (len(frameworks) - 1) / 2) * width
        points = [(i + offset, families[f][m][framework])
                  for i, (f, m) in enumerate(models) if framework in families[f][m]]
        xs, ys = zip(*points, strict=True)
        axes.bar(xs, ys, width, label=framework, color=COLORS.get(framework, OTHER_COLOR))
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


def _tiers(rows: list[ScoreRow]):
    """Acc@1 with its 95% interval, best first; shading changes where a tier ends."""
    # a tier comes with its interval (runner.score.stats)
    ranked = [(row, row.tier, row.acc1_ci_low, row.acc1_ci_high) for row in rows
              if row.tier is not None and row.acc1_ci_low is not None and row.acc1_ci_high is not None]
    figure, axes = plt.subplots(figsize=(max(6.0, 0.32 * len(ranked) + 2), 4.5))
    for i, (row, tier, low, high) in enumerate(ranked):
        if tier % 2 == 0:
            axes.axvspan(i - 0.5, i + 0.5, color="grey", alpha=0.12, linewidth=0)
        error = [[row.acc1 - low], [high - row.acc1]]
        axes.errorbar(i, row.acc1, yerr=error, fmt="o", markersize=3, capsize=2,
                      color=COLORS.get(row.framework, "black"))
        axes.text(i, 1.0, str(tier), transform=axes.get_xaxis_transform(), ha="center",
                  va="bottom", fontsize=6, color="dimgrey")
    axes.set_xticks(range(len(ranked)), [row.pair_name for row, *_ in ranked],
                    rotation=70, ha="right", fontsize=6)
    axes.set_ylabel("Acc@1 (%), 95% Clopper-Pearson interval")
    axes.set_title("Tiers (numbers on top): neighbours not separable by an exact McNemar test "
                   "(alpha 0.05, adjacent pairs)", fontsize=9, pad=14)
    return figure


def _effective_robustness(rows: list[dict]):
    """Per shift set: its Acc@1 against ImageNet Acc@1 on logit axes, with the linear fit (in
    logit space) over the models; each point's label carries its tier on the shift set."""
    names = _shift_sets(rows)
    figure, panels = plt.subplots(1, len(names), figsize=(4.6 * len(names), 4.6), squeeze=False)
    for axes, name in zip(panels[0], names, strict=True):
        points = [(row["imagenet_acc1"] / 100, row[f"{name}_acc1"] / 100, row)
                  for row in rows if 0 < (row.get("imagenet_acc1") or 0) < 100
                  and 0 < (row.get(f"{name}_acc1") or 0) < 100]
        for x, y, row in points:
            axes.scatter(x, y, s=14, color=COLORS.get(row["framework"], "black"))
            axes.annotate(f"{row['model']} (tier {row.get(f'{name}_tier')})", (x, y), fontsize=5,
                          xytext=(2, 2), textcoords="offset points")
        if len(points) >= 2:
            xs, ys = np.array([p[0] for p in points]), np.array([p[1] for p in points])
            slope, intercept = np.polyfit(logit(xs), logit(ys), 1)
            grid = np.linspace(xs.min(), xs.max(), 50)
            axes.plot(grid, expit(slope * logit(grid) + intercept), color="black",
                      linewidth=0.8, label=f"fit: logit y = {slope:.2f} logit x {intercept:+.2f}")
            axes.legend(fontsize=6)
        axes.set_xscale("logit")
        axes.set_yscale("logit")
        for axis in (axes.xaxis, axes.yaxis):
            axis.set_major_formatter(LogitFormatter(one_half="0.5"))
        axes.set_xlabel("ImageNet Acc@1")
        axes.set_ylabel(f"{name} Acc@1")
        axes.set_title(f"Effective robustness: {name}", fontsize=9)
    return figure


def _shift_sets(rows: list[dict]) -> list[str]:
    """The shift sets in a wide table (not ImageNet, its ReaL labels or a -clean baseline)."""
    groups = dict.fromkeys(key.removesuffix("_acc1") for row in rows for key in row if key.endswith("_acc1"))
    return [name for name in groups
            if name not in ("imagenet", "imagenet-real") and not name.endswith("-clean")]


def _index(random: bool, charts: list[str], folder: Location) -> str:
    lines = ["# kpbench report", ""]
    if random:
        lines += [f"> **{RANDOM_NOTE}**", ""]
    lines += [f"![{name}]({name})" for name in charts]
    lines += ["", "## Table", "", (folder / "accuracy.md").read_text()]
    return "\n".join(lines)
