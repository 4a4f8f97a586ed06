"""`kpbench report`: the HTML page of scored runs (and, for one run, PNG charts)."""

from __future__ import annotations

import argparse

from rich.console import Console

from runner.errors import UserError
from runner.options import add_shared_flag
from runner.outputs import Location


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "report", help="a browsable HTML page of scored runs (and PNG charts)",
        description="Write report/index.html, one self-contained page (it opens from file:// with "
        "no network): the accuracy table, sortable and filterable, charts and provenance, from the "
        "tables `kpbench score` wrote (a run not scored yet is scored first). One run: "
        "RUN/report/index.html, and PNG charts with RUN/results/report.md; several runs: "
        "--out DIR (docs/report.md).",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="run folder, or URI of one (s3://..., gs://..., file://...)")
    parser.add_argument("--out", metavar="DIR", help="folder for index.html (needed for several "
                        "runs; default RUN/report)")
    add_shared_flag(parser, "s3_endpoint")
    return parser


def handle(args: argparse.Namespace, console: Console) -> int:
    from runner.report.html import write_html_report
    from runner.report.png import write_report
    from runner.report.runs import read_run
    from runner.report.scoring import print_scored, score_run

    runs = [Location.of(run, args.s3_endpoint) for run in args.runs]
    if args.out is None and len(runs) > 1:
        raise UserError("give --out DIR for several runs (there is no one run folder to write into)")
    for run in runs:
        if not (run / "results" / "accuracy.json").is_file():
            print_scored(console, score_run(run))
    written = write_report(runs[0]) if len(runs) == 1 else []
    written.append(write_html_report([read_run(run) for run in runs], args.out or runs[0] / "report"))
    for path in written:
        console.print(f"wrote {path}")
    return 0
