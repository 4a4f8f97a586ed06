"""`kpbench weights`: download pretrained weights into the frameworks' caches."""

from __future__ import annotations

import argparse
import multiprocessing

from rich.console import Console

from runner.catalog import FRAMEWORKS, load_catalog
from runner.options import comma_list


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("weights", help="download pretrained weights into the caches "
                                 "($TORCH_HOME, $KERAS_HOME, $HF_HOME for timm); needs internet")
    parser.add_argument("--models", nargs="+", default=["all"], metavar="MODEL")
    parser.add_argument("--frameworks", type=comma_list, default=list(FRAMEWORKS))
    return parser


def handle(args: argparse.Namespace, console: Console) -> int:
    from runner.frameworks import fetch_weights

    specs = load_catalog().select(args.models, args.frameworks)
    # One process per framework: PyTorch and TensorFlow never share a process.
    context = multiprocessing.get_context("spawn")
    failed = 0
    for framework in FRAMEWORKS:
        chosen = [spec for spec in specs if spec.framework == framework]
        if chosen:
            with context.Pool(1) as pool:
                for key, outcome in pool.apply(fetch_weights, (framework, chosen)):
                    console.print(f"{key}: {outcome}", highlight=False)
                    failed += outcome.startswith("failed")
    return 1 if failed else 0
