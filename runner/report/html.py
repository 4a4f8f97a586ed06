"""`kpbench report`: one self-contained page, report/index.html, for one or more scored runs.

The page opens from file:// with no network: its style, script and charts (inline SVG) are
inside it (the style and script are runner/report/page/*, read at build time). The
table has one row per (framework, backend, model) and setting, sortable by any column and
filtered by framework, backend, catalog set, family, protocol and run; columns the tables
lack (intervals, tiers, backends, other label sets or datasets) are simply not shown."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Any

from runner import __version__
from runner.outputs import Location, LocationLike
from runner.report.html_charts import charts
from runner.report.html_provenance import summarise
from runner.report.html_rows import Page, PageRow, build_page
from runner.report.runs import RunTables
from runner.report.sensitivity import page_section
from runner.report.tables import RANDOM_NOTE
from runner.score.columns import default_settings

ASSETS = Path(__file__).with_name("page")
# filter -> the cell column it filters on
FILTERS = {"framework": "framework", "backend": "backend", "set": "model_set", "family": "family",
           "protocol": "protocol", "run": "run"}


@dataclass(frozen=True)
class Column:
    header: str
    read: Callable[[PageRow], Any]
    number: bool = False
    digits: int = 2
    hint: str = ""  # the header's tooltip
    signed: bool = False  # a difference: always with its sign
    upper: str | None = None  # a range: the cell column of its upper end, shown as "low–high"

    def cell(self, row: PageRow) -> str:
        value = self.read(row)
        if value is None:
            return '<td data-value=""></td>' if self.number else "<td></td>"
        if not self.number:
            return f"<td>{html.escape(str(value))}</td>"
        sign = "+" if self.signed else ""
        shown = f"{value:{sign},.{self.digits}f}" if isinstance(value, float) else f"{value:{sign},}"
        if self.upper is not None:
            shown += f"–{row.value(None, self.upper)}"
        return f'<td data-value="{value}">{shown}{_interval(row, self)}</td>'


def _cell(column: str):
    return lambda row: row.value(None, column)


def _view(view: str, column: str):
    return lambda row: row.value(view, column)


def _interval(row: PageRow, column: Column) -> str:
    """` [low, high]` after an accuracy that has an interval (acc1_ci_low, acc1_ci_high...)."""
    name = {"Acc@1": "acc1", "Acc@5": "acc5"}.get(column.header)
    low, high = (row.value(None, f"{name}_ci_{end}") for end in ("low", "high")) if name else (None, None)
    return "" if low is None or high is None else f' <span class="ci">[{low:.2f}, {high:.2f}]</span>'


def columns(page: Page) -> list[Column]:
    """Every column at least one row has a value in, in reading order."""
    text = [("framework", "framework"), ("backend", "backend"), ("model", "model"),
            ("variant", "variant"), ("arch", "arch"),
            ("family", "family"), ("set", "model_set"), ("protocol", "protocol"),
            ("precision", "precision")]
    chosen = [Column(header, _cell(key)) for header, key in text]
    chosen += [
        Column("Acc@1", _cell("acc1"), True, hint="top-1 accuracy (%), on ImageNet validation"),
        Column("Acc@5", _cell("acc5"), True),
        Column("rank", _cell("rank"), True, 0, "by Acc@1 over this page (1 = best)"),
        Column("tier", _cell("tier")),
        Column("published", _cell("published_acc1"), True, hint="published Acc@1 (see source)"),
        Column("Δ published", _cell("published_delta1"), True, hint="measured - published Acc@1",
               signed=True),
        Column("claim", _cell("claim"), hint="the published Acc@1 against the 95% interval of the "
               "measured one: consistent (inside it), below or above it"),
        Column("rank 95%", _cell("rank1_low"), True, 0, upper="rank1_high",
               hint="95% paired-bootstrap interval of the Acc@1 rank within its run's table"),
    ]
    for view in page.views:
        chosen.append(Column(f"{view} Acc@1", _view(view, "acc1"), True))
    for dataset in page.shifts:
        chosen.append(Column(f"ER {dataset}", _view(dataset, "er"), True, signed=True,
                             hint=f"effective robustness on {dataset}: Acc@1 above the logit fit"))
    chosen += [
        Column("images/s", _cell("images_per_s"), True, 1),
        Column("bound", _cell("bound"), hint="input: waited for its crops longer than it computed; "
               "compute: the other way round"),
        Column("device", _cell("device")),
        Column("params (M)", lambda row: _scaled(row.value(None, "params"), 1e-6), True),
        Column("GFLOPs", _cell("gflops"), True),
        Column("input", _cell("img_size"), True, 0),
        Column("weights", _cell("weights")),
        Column("status", _cell("status")),
        Column("source", _cell("published_source")),
        Column("run", _cell("run")),
    ]
    shown = [column for column in chosen if any(column.read(row) is not None for row in page.rows)]
    runs = {row.cells["run"] for row in page.rows}
    defaults = default_settings(page.rows, lambda row, column: row.cells.get(column))
    shown = [column for column in shown if column.header not in defaults]
    return [column for column in shown if column.header != "run" or len(runs) > 1]


def _scaled(value, factor: float):
    return None if value is None else value * factor


def render(runs: list[RunTables]) -> str:
    page = build_page(runs)
    shown = columns(page)
    assets = {name: (ASSETS / name).read_text() for name in ("page.html", "report.css", "report.js")}
    title = "kpbench report: " + ", ".join(run.name for run in runs)
    return Template(assets["page.html"]).substitute(
        title=html.escape(title + (" (weights: random)" if page.random_weights else "")),
        style=assets["report.css"],
        script=assets["report.js"],
        banner=f'<p class="random-banner" role="alert">{RANDOM_NOTE}</p>' if page.random_weights else "",
        heading=html.escape(title),
        generated=f"kpbench {__version__}, {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        provenance=_provenance_table(runs),
        filters=_filters(page),
        table=_table(page, shown),
        charts="\n".join(f'<figure class="chart"><figcaption>{html.escape(title)}</figcaption>{svg}</figure>'
                         for title, svg in charts(page)),
        sensitivity=page_section(runs),
    )



def write_html_report(runs: list[RunTables], folder: LocationLike) -> Location:
    """FOLDER/index.html, in a local folder or at a URI (written whole, as every run file)."""
    path = Location.of(folder) / "index.html"
    path.write_text(render(runs))
    return path


def _filters(page: Page) -> str:
    selects = []
    for name, column in FILTERS.items():
        values = sorted({str(row.cells[column]) for row in page.rows if row.cells.get(column) is not None})
        if values and not (name == "run" and len(values) == 1):
            options = "".join(f'<option value="{html.escape(v)}">{html.escape(v)}</option>' for v in values)
            selects.append(f'<label>{name} <select data-filter="{name}"><option value="">all</option>'
                           f"{options}</select></label>")
    return "\n".join(selects)


def _table(page: Page, shown: list[Column]) -> str:
    head = "".join(
        f'<th scope="col" data-type="{"number" if c.number else "text"}" title="{html.escape(c.hint)}">'
        f"<button type=\"button\">{html.escape(c.header)}</button></th>" for c in shown)
    body = []
    for row in page.rows:
        data = " ".join(f'data-{name}="{html.escape(str(row.cells.get(column) or ""))}"'
                        for name, column in FILTERS.items())
        label = html.escape(row.cells["label"])
        body.append(f'<tr {data} data-label="{label}">' + "".join(c.cell(row) for c in shown) + "</tr>")
    return (f'<table id="results"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _provenance_table(runs: list[RunTables]) -> str:
    summaries = [summarise(run) for run in runs]
    head = "".join(f"<th scope=\"col\">{html.escape(run.location)}</th>" for run in runs)
    rows = "".join(
        f'<tr><th scope="row">{html.escape(what)}</th>'
        + "".join(f"<td>{html.escape(summary[what])}</td>" for summary in summaries) + "</tr>"
        for what in summaries[0])
    return f'<table class="provenance"><thead><tr><th></th>{head}</tr></thead><tbody>{rows}</tbody></table>'
