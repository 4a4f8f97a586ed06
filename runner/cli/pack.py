"""`kpbench pack`: a dataset as Parquet shards of image bytes, on a local path or a URI."""

from __future__ import annotations

import argparse

from rich.console import Console

from runner.options import run_options


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "pack", help="write a dataset as Parquet shards of image bytes (local path or URI)",
        description="Pack DATA (as `run` would read it) into URI/part-*.parquet plus a manifest; "
        "`kpbench run --data URI` then streams it from any pyarrow filesystem (s3://, gs://, ...).",
    )
    parser.add_argument("data", help="dataset folder")
    parser.add_argument("uri", help="where to write: a local path, file://, s3://, gs://, ...")
    parser.add_argument("--labels", help="labels file for a flat folder (as for run)")
    parser.add_argument("--classes", help="full class list (as for run)")
    for option in run_options():  # the dataset is read as `run` reads it
        if option.key in ("dataset", "subset_classes"):
            parser.add_argument(option.flag, **option.argparse_kwargs())
    parser.add_argument("--rows-per-file", type=int, default=1000, help="images per part file")
    return parser


def handle(args: argparse.Namespace, console: Console) -> int:
    from rich.progress import Progress

    from runner.data.index import open_dataset
    from runner.data.packed import pack_dataset

    index = open_dataset(args.data, args.labels, args.classes, args.dataset, args.subset_classes)
    with Progress(console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task("packing", total=len(index))
        parts = pack_dataset(index, args.uri, args.rows_per_file,
                             lambda n: progress.advance(task, n))
    console.print(f"packed {len(index)} images into {parts} part file(s) at {args.uri}")
    return 0
