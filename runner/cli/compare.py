"""`kpbench compare`: how much two runs' predictions differ, per model in both."""

from __future__ import annotations

import argparse

from rich.console import Console

from runner.errors import UserError
from runner.options import add_shared_flag, comma_list
from runner.outputs import Location


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "compare", help="how much two runs' predictions differ, per model in both",
        description="Per (framework, model) in both runs: images compared, top-1 and top-5 set "
        "agreement, changed top-1 predictions, largest probability difference (over classes in "
        "both top-5 lists), accuracy difference (B - A), and an exact McNemar test of the top-1 "
        "difference (images only A / only B got right, p-value).",
    )
    parser.add_argument("run_a", help="run folder: a path or a URI (s3://bucket/prefix, ...)")
    parser.add_argument("run_b", nargs="?",
                        help="the other run folder (with --backends: default RUN_A itself)")
    parser.add_argument("--backends", metavar="A,B", type=_backend_pair,
                        help="compare each Keras model on backend A (in RUN_A) with itself on "
                        "backend B (in RUN_B), e.g. tensorflow,jax")
    add_shared_flag(parser, "s3_endpoint")
    parser.add_argument("--require-identical", action="store_true",
                        help="exit 1 when any prediction differs, naming the models")
    return parser


def _backend_pair(value: str) -> tuple[str, str]:
    from runner.frameworks.keras_runtime import KERAS_BACKENDS

    backends = comma_list(value)
    if len(backends) != 2 or not set(backends) <= set(KERAS_BACKENDS):
        raise argparse.ArgumentTypeError(f"two of {', '.join(KERAS_BACKENDS)}, as A,B: not {value!r}")
    return backends[0], backends[1]


def handle(args: argparse.Namespace, console: Console) -> int:
    from runner.score.compare import compare_runs, print_comparison

    if args.run_b is None and args.backends is None:
        raise UserError("compare needs RUN_B, or --backends A,B to compare two backends of one run")
    run_b = args.run_b or args.run_a
    rows = compare_runs(Location.of(args.run_a, args.s3_endpoint),
                        Location.of(run_b, args.s3_endpoint), args.backends)
    sides = [f"{run} ({side}{f', {backend}' if args.backends else ''})"
             for run, side, backend in zip((args.run_a, run_b), "AB", args.backends or "  ", strict=True)]
    different = print_comparison(console, rows, " vs ".join(sides))
    return 1 if args.require_identical and different else 0
