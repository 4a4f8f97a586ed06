"""`kpbench import-npy`: the 2019 benchmark's top-5 .npy files as kpbench predictions."""

from __future__ import annotations

import argparse

from rich.console import Console

from runner.catalog import FRAMEWORKS
from runner.options import add_shared_flag
from runner.outputs import Location


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "import-npy", help="convert the 2019 benchmark's top-5 .npy files into kpbench Parquet",
        description="Convert <model>_<framework>_imagenet_top5preds.npy / _top5probs.npy files "
        "into OUT/predictions (rows in class-folder order).",
    )
    parser.add_argument("dir", help="folder with the .npy files")
    parser.add_argument("--out", required=True, help="run folder to write: a path or a URI")
    add_shared_flag(parser, "s3_endpoint")
    parser.add_argument("--framework", choices=FRAMEWORKS, help="import only this framework")
    parser.add_argument("--ground-truth", metavar="CSV", help="file,wnid[,label] CSV of the "
                        "validation set: rows get file names (needed for ReaL)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace other predictions of the same models in OUT")
    return parser


def handle(args: argparse.Namespace, console: Console) -> int:
    from runner.import_npy import import_npy

    out = Location.of(args.out, args.s3_endpoint)
    imported = import_npy(args.dir, out, args.framework, args.ground_truth, args.overwrite)
    console.print(f"imported {len(imported)} model(s) into {args.out}: {', '.join(imported)}")
    return 0
