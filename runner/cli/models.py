"""`kpbench models`: list the model catalog."""

from __future__ import annotations

import argparse

from rich import box
from rich.console import Console
from rich.table import Table

from runner.catalog import FRAMEWORKS, SET_NAMES, load_catalog
from runner.options import comma_list


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "models", help="list the model catalog",
        description="List catalog entries: set, weights, input size, parameters, the framework's "
        "documented Acc@1/Acc@5 (and the 2019 table's), the reference recipe and normalisation.",
    )
    parser.add_argument("patterns", nargs="*", help="names, framework/name, globs or sets "
                        f"({', '.join(SET_NAMES)}); default all")
    parser.add_argument("--all", action="store_true", help="every entry, the opt-in timm set too "
                        "(without patterns: every entry but timm's)")
    parser.add_argument("--frameworks", type=comma_list, default=list(FRAMEWORKS))
    parser.add_argument("--catalog", action="append", default=[], metavar="FILE.yaml",
                        help="add your own models' catalog file (repeatable)")
    return parser


def handle(args: argparse.Namespace, console: Console) -> int:
    patterns = [*SET_NAMES] if args.all else args.patterns or ["all"]
    specs = load_catalog().with_user_catalogs(args.catalog).select(patterns, args.frameworks)
    table = Table(title=f"kpbench catalog ({len(specs)} models)", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("framework", "model", "set", "input", "params", "acc1/acc5 (docs)",
                   "acc1/acc5 (2019)", "reference recipe", "normalisation"):
        table.add_column(column, justify="right" if column in ("input", "params") else "left",
                         no_wrap=True)
    for spec in specs:
        table.add_row(
            spec.framework, spec.name, spec.model_set, str(spec.input_size),
            f"{spec.num_params / 1e6:.1f}M" if spec.num_params else "-", _figures(spec.published.documented),
            _figures(spec.published.northcutt2019), spec.recipe("reference").description,
            spec.normalisation,
        )
    # Not a terminal (a pipe, a log): as wide as the table needs, so no name is cut.
    natural = console.measure(table, options=console.options.update(width=1000)).maximum
    if not console.is_terminal and natural > console.width:
        console = Console(width=natural)
    console.print(table)
    console.print("docs: the framework's documented Acc@1/Acc@5; 2019: the 2019 table's. "
                  "recipe: shorter side / center crop (or squash), interpolation. Weights: torchvision "
                  "entries are <builder>.<weights>, the 2019 PyTorch names use IMAGENET1K_V1, Keras "
                  "weights='imagenet', timm entries are timm's tags (docs: timm's results table).",
                  highlight=False)
    return 0


def _figures(figures: tuple[float | None, float | None] | None) -> str:
    if not figures:
        return "-"
    return " / ".join("-" if value is None else f"{value:.2f}" for value in figures)
