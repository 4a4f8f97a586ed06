"""The sensitivity table (runner/score/sensitivity.py) as files, a printout, a chart and a section
of the HTML page: OUT/results/sensitivity.{csv,md,json} and sensitivity.png."""

from __future__ import annotations

import html
import io
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.table import Table  # noqa: E402

from runner.frameworks.keras_runtime import backend_suffix  # noqa: E402
from runner.outputs import Location, LocationLike  # noqa: E402
from runner.report.html_charts import SVG_STYLE, inline_svg  # noqa: E402
from runner.report.png import mark_random  # noqa: E402
from runner.report.runs import RunTables  # noqa: E402
from runner.report.tables import RANDOM_NOTE, write_table  # noqa: E402
from runner.score.sensitivity import SensitivityRow  # noqa: E402

NAME = "sensitivity"
COLUMNS = tuple(SensitivityRow.model_fields)
CHART = f"{NAME}.png"


def write_sensitivity(out: LocationLike, rows: list[SensitivityRow]) -> list[Location]:
    """sensitivity.{csv,md,json} and the chart, under OUT/results."""
    random = any(row.weights == "random" for row in rows)
    notes = ["differences: variant minus base pair on the images both read, with Newcombe's paired "
             "95% interval; flips: images whose top-1 class changed; spread1: the model's "
             "max - min Acc@1 (docs/sensitivity.md)"]
    cells = [row.model_dump(exclude_unset=True) for row in rows]
    written = write_table(out, NAME, cells, [c for c in COLUMNS if any(c in cell for cell in cells)],
                          random, notes)
    figure = chart(rows)
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    path = Location.of(out) / "results" / CHART
    path.write_bytes(png.getvalue())
    return [*written, path]


def _model(row: SensitivityRow) -> str:
    return f"{row.framework}/{row.model}{backend_suffix(row.backend)}"


def _interval(value: float | None, low: float | None, high: float | None, signed: bool = False) -> str:
    if value is None or math.isnan(value):
        return "-"
    sign = "+" if signed else ""
    return f"{value:{sign}.2f} [{low:{sign}.2f}, {high:{sign}.2f}]"


def print_sensitivity(console: Console, rows: list[SensitivityRow]) -> None:
    """A table per model, most sensitive first; then the lines on documented figures and failures."""
    random = any(row.weights == "random" for row in rows)
    console.print("kpbench sensitivity: each variant against its model's base pair, on the same images"
                  + (f"  [bold yellow]({RANDOM_NOTE})[/]" if random else ""))
    for model in dict.fromkeys(_model(row) for row in rows):
        mine = [row for row in rows if _model(row) == model]
        table = Table(title=f"{model}: spread of Acc@1 {_number(mine[0].spread1)} points",
                      title_justify="left")
        table.add_column("variant", no_wrap=True)  # the name is what tells the rows apart: never cut
        for column in ("images", "Acc@1 [95%]", "Acc@5", "Δ Acc@1 [paired 95%]", "McNemar p", "flips",
                       "images/s"):
            table.add_column(escape(column), justify="right", no_wrap=True)  # [..] is not markup
        for row in mine:
            table.add_row(
                row.variant or "(base)", str(row.images),
                _interval(row.acc1, row.acc1_ci_low, row.acc1_ci_high), _number(row.acc5),
                _interval(row.acc1_diff, row.acc1_diff_low, row.acc1_diff_high, signed=True),
                "-" if row.mcnemar_p is None else f"{row.mcnemar_p:.3g}",
                "-" if row.flips is None else str(row.flips), _number(row.images_per_s, 1))
        console.print(table, highlight=False)
    for line in documented_lines(rows):
        console.print(line, highlight=False)
    for row in rows:
        if row.status == "failed":
            console.print(f"[red]failed[/] {_model(row)} ({row.variant}): {row.failure}", highlight=False)


def documented_lines(rows: list[SensitivityRow]) -> list[str]:
    """Per model with a documented figure: which row comes nearest it, and whether it lies
    inside that row's interval."""
    lines = []
    for row in rows:
        if row.nearest_documented and row.documented_acc1 is not None:
            inside = "inside" if row.documented_in_ci else "outside"
            lines.append(f"{_model(row)}: nearest the documented {row.documented_acc1:.2f} "
                         f"({row.documented_source}): {row.variant or 'the base pair'}, "
                         f"{row.acc1:.2f} ({inside} its 95% interval)")
    return lines


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def chart(rows: list[SensitivityRow]):
    """One line per model (most sensitive on top), a dot per variant at its Acc@1; the base
    pair black, the documented figure a red bar."""
    models = list(dict.fromkeys(_model(row) for row in rows))
    variants = sorted({row.variant for row in rows if row.variant})
    colours = plt.get_cmap("tab20" if len(variants) > 10 else "tab10")
    figure, axes = plt.subplots(figsize=(8.0, 0.5 * len(models) + 1.8))
    for y, model in enumerate(models):
        mine = [row for row in rows if _model(row) == model and not math.isnan(row.acc1)]
        if mine:
            axes.hlines(y, min(r.acc1 for r in mine), max(r.acc1 for r in mine), color="#cccccc", zorder=1)
        for row in mine:
            base = row.variant == ""
            colour = "black" if base else colours(variants.index(row.variant) % colours.N)
            axes.scatter(row.acc1, y, s=40 if base else 22, marker="D" if base else "o", color=colour,
                         zorder=3, label=row.variant or "base pair")
        documented = next((row.documented_acc1 for row in rows if _model(row) == model), None)
        if documented is not None:
            axes.scatter(documented, y, marker="|", s=200, color="red", zorder=2, label="documented")
    handles, labels = axes.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    axes.legend(unique.values(), unique.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    axes.set_yticks(range(len(models)), models, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("Acc@1 (%)")
    axes.set_title("Acc@1 of each variant (dots) against the base pair (black)", fontsize=9)
    axes.grid(axis="x", alpha=0.3)
    if any(row.weights == "random" for row in rows):
        mark_random(figure)
    return figure


def html_section(rows: list[SensitivityRow], svg: str) -> str:
    """The page's section: the table, the lines on documented figures, and the chart (`svg`)."""
    head = "".join(f"<th scope=\"col\">{html.escape(name)}</th>" for name in (
        "model", "variant", "images", "Acc@1 [95%]", "Acc@5", "Δ Acc@1 [paired 95%]", "McNemar p",
        "flips", "images/s", "spread"))
    body = []
    for row in rows:
        cells = (_model(row), row.variant or "(base)", str(row.images),
                 _interval(row.acc1, row.acc1_ci_low, row.acc1_ci_high), _number(row.acc5),
                 _interval(row.acc1_diff, row.acc1_diff_low, row.acc1_diff_high, signed=True),
                 "" if row.mcnemar_p is None else f"{row.mcnemar_p:.3g}",
                 "" if row.flips is None else str(row.flips), _number(row.images_per_s, 1),
                 _number(row.spread1))
        body.append("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>")
    notes = "".join(f"<li>{html.escape(line)}</li>" for line in documented_lines(rows))
    return (f'<div class="table-scroll"><table class="sensitivity"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>'
            + (f"<ul>{notes}</ul>" if notes else "")
            + f'<figure class="chart"><figcaption>Acc@1 per variant</figcaption>{svg}</figure>')


def page_section(runs: list[RunTables]) -> str:
    """The sensitivity section (`kpbench sensitivity`'s table and chart), per run that has one."""
    parts = []
    for number, run in enumerate(runs):
        if run.sensitivity:
            rows = [SensitivityRow.model_validate(row) for row in run.sensitivity]
            with plt.rc_context(SVG_STYLE):
                svg = inline_svg(chart(rows), f"sensitivity{number}-")
            parts.append((f"<h3>{html.escape(run.name)}</h3>" if len(runs) > 1 else "")
                         + html_section(rows, svg))
    if not parts:
        return ""
    return ('<section id="sensitivity">\n<h2>Which settings change the answer</h2>\n<p class="hint">'
            "Each variant against its model's base pair on the same images: differences are variant "
            "minus base with a paired 95% interval; flips: images whose top-1 class changed.</p>\n"
            + "\n".join(parts) + "\n</section>")
