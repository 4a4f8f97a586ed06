"""`kpbench sample-data`: a small generated dataset of JPEGs."""

from __future__ import annotations

import argparse

from rich.console import Console

from runner.errors import UserError


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("sample-data", help="write a small generated dataset (JPEGs)")
    parser.add_argument("dir", help="where to write val/, classes.txt and labels.csv")
    parser.add_argument("--classes", type=int, default=5, dest="num_classes")
    parser.add_argument("--per-class", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def handle(args: argparse.Namespace, console: Console) -> int:
    from runner.data.sample import write_sample_dataset

    if args.num_classes < 1 or args.per_class < 1:
        raise UserError("--classes and --per-class must be at least 1")
    out = write_sample_dataset(args.dir, args.num_classes, args.per_class, args.seed)
    console.print(f"wrote {args.num_classes * args.per_class} images to {out / 'val'} "
                  f"(class list {out / 'classes.txt'}, labels {out / 'labels.csv'})")
    return 0
