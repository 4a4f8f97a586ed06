"""`kpbench sensitivity`: which settings change the answer, per model run with variants."""

from __future__ import annotations

import argparse

from rich.console import Console

from runner.options import add_shared_flag
from runner.outputs import Location


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "sensitivity", help="each variant of a model against its base pair, on the same images",
        description="For every model run with --variants: Acc@1/Acc@5 with 95% intervals, the "
        "change against the model's base pair on the images both read (variant minus base, with a "
        "paired 95% interval), the exact McNemar p-value, the images whose top-1 class changed "
        "(flips) and images/s; per model the spread (max - min Acc@1) and the row nearest its "
        "documented figure; most sensitive models first. Writes "
        "RUN/results/sensitivity.{csv,md,json} and sensitivity.png (docs/sensitivity.md).",
    )
    parser.add_argument("run", metavar="RUN", help="run folder: a path or a URI (s3://bucket/prefix, ...)")
    add_shared_flag(parser, "s3_endpoint")
    return parser


def handle(args: argparse.Namespace, console: Console) -> int:
    from runner.report.sensitivity import print_sensitivity, write_sensitivity
    from runner.score.sensitivity import sensitivity

    out = Location.of(args.run, args.s3_endpoint)
    rows = sensitivity(out)
    print_sensitivity(console, rows)
    console.print("wrote " + ", ".join(str(path) for path in write_sensitivity(out, rows)))
    return 0
