"""The `kpbench` command: one module per command, each with its parser and its handler, over the
runner library."""

from __future__ import annotations

import argparse
import os
import sys

from rich.console import Console

from runner import __version__
from runner.cli import (
    compare,
    import_npy,
    models,
    pack,
    report,
    run,
    sample_data,
    score,
    sensitivity,
    weights,
)
from runner.errors import UserError

# In the order `kpbench --help` lists them.
COMMANDS = (run, score, report, sensitivity, pack, compare, import_npy, models, sample_data, weights)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kpbench",
        description="Reproducible ImageNet accuracy of pretrained PyTorch and Keras models, on Ray.",
    )
    parser.add_argument("--version", action="version", version=f"kpbench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands).set_defaults(handle=command.handle)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()  # as wide as the terminal, or as COLUMNS says
    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console = Console(width=160)  # logs: don't squeeze tables into 80 columns
    try:
        return args.handle(args, console)
    except UserError as exc:
        print(f"kpbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kpbench: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
