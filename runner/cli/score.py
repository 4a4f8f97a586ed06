"""`kpbench score`: score run folders, print and write their tables."""

from __future__ import annotations

import argparse
import csv
import json

import numpy as np
from rich.console import Console

from runner.errors import UserError
from runner.options import add_shared_flag
from runner.outputs import Location


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("score", help="score a run folder: print and write the table",
                                 description="Aggregate OUT/predictions into "
                                 "OUT/results/accuracy.{csv,md,json} and print the table.")
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="run folder, a path or a URI (s3://bucket/prefix, ...); several (one per "
                        "dataset): also the wide table RUN/results/accuracy-wide.{csv,md,json} of "
                        "the first, a column group per dataset")
    parser.add_argument("--published", metavar="DIR", help="a copy of timm's results/ folder: timm "
                        "models are compared with timm's figure for the run's dataset")
    add_shared_flag(parser, "s3_endpoint")
    parser.add_argument("--reference", metavar="CSV", help="published table to compare with "
                        "(framework or 2019-style platform, model, acc1, acc5): adds delta columns "
                        "and lists the rows that differ")
    masks = parser.add_mutually_exclusive_group()
    masks.add_argument("--omit", metavar="NPY", help="positions to leave out (.npy of integers)")
    masks.add_argument("--keep", metavar="NPY", help="positions to use (.npy of integers)")
    parser.add_argument("--custom-labels", metavar="NPY",
                        help="labels for the kept images (or all images without a mask); adds "
                        "cleaned figures cacc1/cacc5 by the 2019 scorer's rules")
    parser.add_argument("--real", metavar="JSON", help="ImageNet-ReaL labels (real.json): adds "
                        "real_acc1 and real_acc5")
    parser.add_argument("--format", choices=("kpbench", "timm"), default="kpbench",
                        help="kpbench: the tables only (always written); timm: also "
                        "OUT/results/timm/results-<dataset>.csv in the format of timm's results "
                        "files (docs/report.md)")
    parser.add_argument("--wide", action="store_true", help="print every column of the table files; "
                        "by default the printout shows the figures and what differs between rows")
    _add_label_set_arguments(parser)
    return parser


def _add_label_set_arguments(parser: argparse.ArgumentParser) -> None:
    from runner.score.labelsets import CORRECT_SETS, PUBLISHED_SETS

    group = parser.add_argument_group(
        "label-error sets", "Score with the labels of cleanlab's Mechanical Turk study of the "
        "ImageNet validation set (docs/accuracy.md); each set's table is "
        "results/accuracy-<set>.{csv,md,json}, and with one set also results/accuracy.*")
    group.add_argument("--mturk", metavar="FILE", help="the study: imagenet_mturk.json")
    group.add_argument("--label-set", metavar="NAME", action="append", dest="label_sets",
                       help=f"repeatable: {', '.join(CORRECT_SETS)}; with --as-published one of "
                       f"the 2019 tables: {', '.join(PUBLISHED_SETS)}")
    group.add_argument("--as-published", action="store_true",
                       help="the 2019 repository's tables, reproduced with their rules and quirks")
    group.add_argument("--partial", action="store_true",
                       help="score the images of a set that the run has (else missing ones are an error)")


def handle(args: argparse.Namespace, console: Console) -> int:
    from runner.report.scoring import print_scored, score_run

    request = _request(args)
    rows = []
    runs = [Location.of(run, args.s3_endpoint) for run in args.runs]
    for out in runs:
        scored = score_run(out, request)
        print_scored(console, scored, args.wide)
        rows += scored.rows
    if len(runs) > 1:
        _write_wide(runs[0], rows, console)
    if args.format == "timm":
        _write_timm(runs[0], rows, console)
    return 0


def _request(args: argparse.Namespace):
    """Every input file is read (and a bad one refused) before any scoring."""
    from runner.report.scoring import ReferenceTable, ScoreRequest
    from runner.score.reduce import LabelOptions

    labels = LabelOptions(
        omit=_load_npy(args.omit, "--omit"),
        keep=_load_npy(args.keep, "--keep"),
        custom_labels=_load_npy(args.custom_labels, "--custom-labels"),
        real=_load_real(args.real),
    )
    reference = ReferenceTable(args.reference, _read_reference(args.reference)) if args.reference else None
    return ScoreRequest(labels, reference, _label_set_request(args), args.published)


def _write_timm(out: Location, rows, console: Console) -> None:
    from runner.report.timm_export import write_timm

    paths, left_out = write_timm(out, [row.cells() for row in rows])
    console.print("wrote " + ", ".join(str(p) for p in paths))
    if left_out:
        console.print("[yellow]not in the timm files[/] (incomplete): " + "; ".join(left_out),
                      highlight=False)


def _write_wide(out: Location, rows, console: Console) -> None:
    from runner.report.printout import print_wide_table
    from runner.report.tables import write_table
    from runner.score.shift_table import wide_table

    wide, columns = wide_table(rows)
    print_wide_table(console, wide, columns)
    random = any(row.weights == "random" for row in rows)
    paths = write_table(out, "accuracy-wide", wide, columns, random)
    console.print("wrote " + ", ".join(str(p) for p in paths))


def _label_set_request(args: argparse.Namespace):
    """The label-error sets asked for, or None; the study is read before any scoring."""
    from runner.score.label_tables import LabelSetRequest
    from runner.score.labelsets import read_mturk

    if not args.label_sets:
        given = [flag for flag, value in (("--mturk", args.mturk), ("--as-published", args.as_published),
                                          ("--partial", args.partial)) if value]
        if given:
            raise UserError(f"{given[0]} applies to label sets: give --label-set NAME too")
        return None
    if args.mturk is None:
        raise UserError("--label-set needs the study: --mturk imagenet_mturk.json")
    return LabelSetRequest(read_mturk(args.mturk), list(dict.fromkeys(args.label_sets)),
                           args.as_published, args.partial)


def _load_npy(path: str | None, flag: str) -> np.ndarray | None:
    if path is None:
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"{flag}: cannot read {path} as .npy ({exc})") from None


def _load_real(path: str | None) -> list[list[int]] | None:
    if path is None:
        return None
    try:
        with open(path) as file:
            real = json.load(file)
    except (OSError, ValueError) as exc:
        raise UserError(f"--real: cannot read {path} ({exc})") from None
    if not isinstance(real, list) or not all(
        isinstance(labels, list) and all(isinstance(x, int) for x in labels) for labels in real
    ):
        raise UserError(f"--real: {path} must be a JSON list of lists of class indices (real.json)")
    return real


def _read_reference(path: str) -> list[dict]:
    try:
        with open(path, newline="") as file:
            rows = list(csv.DictReader(file))
    except OSError as exc:
        raise UserError(f"--reference: cannot read {path} ({exc.strerror})") from None
    if not rows or not {"model", "acc1", "acc5"} <= set(rows[0]):
        raise UserError(f"--reference: {path} needs model, acc1 and acc5 columns")
    return rows
