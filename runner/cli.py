"""The `kpbench` command: thin argument parsing over the runner library."""

from __future__ import annotations

import argparse
import multiprocessing
import sys

from rich import box
from rich.console import Console
from rich.table import Table

from runner import __version__
from runner.catalog import FRAMEWORKS, SET_NAMES, load_catalog
from runner.errors import UserError
from runner.options import add_run_flags, comma_list, overrides


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kpbench",
        description="Reproducible ImageNet accuracy of pretrained PyTorch and Keras models, on Ray.",
    )
    parser.add_argument("--version", action="version", version=f"kpbench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in (_add_run, _add_score, _add_report, _add_pack, _add_compare, _add_import_npy,
                        _add_models, _add_sample_data, _add_weights):
        add_command(commands)
    return parser


def _add_run(commands) -> None:
    run = commands.add_parser(
        "run", help="run models over a dataset, write Parquet predictions, print the table",
        description="Run models over a dataset on Ray (local by default; a cluster through "
        "--address or RAY_ADDRESS). Flags override the --config file. Rerunning the same "
        "command resumes: finished shards are not recomputed.",
    )
    run.add_argument("--config", help="YAML run config: keys as the long flags, with _ "
                     "(docs/configuration.md)")
    add_run_flags(run)


def _add_score(commands) -> None:
    score = commands.add_parser("score", help="score a run folder: print and write the table",
                                description="Aggregate OUT/predictions into "
                                "OUT/results/accuracy.{csv,md,json} and print the table.")
    score.add_argument("out", help="run folder")
    score.add_argument("--reference", metavar="CSV", help="published table to compare with "
                       "(framework or 2019-style platform, model, acc1, acc5): adds delta columns "
                       "and lists the rows that differ")
    masks = score.add_mutually_exclusive_group()
    masks.add_argument("--omit", metavar="NPY", help="positions to leave out (.npy of integers)")
    masks.add_argument("--keep", metavar="NPY", help="positions to use (.npy of integers)")
    score.add_argument("--custom-labels", metavar="NPY",
                       help="labels for the kept images (or all images without a mask); adds "
                       "cleaned figures cacc1/cacc5 by the 2019 scorer's rules")
    score.add_argument("--real", metavar="JSON", help="ImageNet-ReaL labels (real.json): adds "
                       "real_acc1")


def _add_report(commands) -> None:
    report = commands.add_parser("report", help="charts of a scored run (PNG) and an index page",
                                 description="Write PNG charts and OUT/results/report.md from the "
                                 "table `kpbench score` wrote (scoring first if it has not run).")
    report.add_argument("out", help="run folder")


def _add_pack(commands) -> None:
    pack = commands.add_parser(
        "pack", help="write a dataset as Parquet shards of image bytes (local path or URI)",
        description="Pack DATA (as `run` would read it) into URI/part-*.parquet plus a manifest; "
        "`kpbench run --data URI` then streams it from any pyarrow filesystem (s3://, gs://, ...).",
    )
    pack.add_argument("data", help="dataset folder")
    pack.add_argument("uri", help="where to write: a local path, file://, s3://, gs://, ...")
    pack.add_argument("--labels", help="labels file for a flat folder (as for run)")
    pack.add_argument("--classes", help="full class list (as for run)")
    pack.add_argument("--rows-per-file", type=int, default=1000, help="images per part file")


def _add_compare(commands) -> None:
    compare = commands.add_parser(
        "compare", help="how much two runs' predictions differ, per model in both",
        description="Per (framework, model) in both runs: images compared, top-1 and top-5 set "
        "agreement, changed top-1 predictions, largest probability difference (over classes in "
        "both top-5 lists), accuracy difference (B - A).",
    )
    compare.add_argument("run_a")
    compare.add_argument("run_b")
    compare.add_argument("--require-identical", action="store_true",
                         help="exit 1 when any prediction differs, naming the models")


def _add_import_npy(commands) -> None:
    importer = commands.add_parser(
        "import-npy", help="convert the 2019 benchmark's top-5 .npy files into kpbench Parquet",
        description="Convert <model>_<framework>_imagenet_top5preds.npy / _top5probs.npy files "
        "into OUT/predictions (rows in class-folder order).",
    )
    importer.add_argument("dir", help="folder with the .npy files")
    importer.add_argument("--out", required=True, help="run folder to write")
    importer.add_argument("--framework", choices=FRAMEWORKS, help="import only this framework")
    importer.add_argument("--ground-truth", metavar="CSV", help="file,wnid[,label] CSV of the "
                          "validation set: rows get file names (needed for ReaL)")
    importer.add_argument("--overwrite", action="store_true",
                          help="replace other predictions of the same models in OUT")


def _add_models(commands) -> None:
    models = commands.add_parser(
        "models", help="list the model catalog",
        description="List catalog entries: set, weights, input size, parameters, the framework's "
        "documented Acc@1/Acc@5 (and the 2019 table's), the reference recipe and normalisation.",
    )
    models.add_argument("patterns", nargs="*", help="names, framework/name, globs or sets "
                        f"({', '.join(SET_NAMES)}); default all")
    models.add_argument("--all", action="store_true", help="every entry (the default)")
    models.add_argument("--frameworks", type=comma_list, default=list(FRAMEWORKS))


def _add_sample_data(commands) -> None:
    sample = commands.add_parser("sample-data", help="write a small generated dataset (JPEGs)")
    sample.add_argument("dir", help="where to write val/, classes.txt and labels.csv")
    sample.add_argument("--classes", type=int, default=5, dest="num_classes")
    sample.add_argument("--per-class", type=int, default=8)
    sample.add_argument("--seed", type=int, default=0)


def _add_weights(commands) -> None:
    weights = commands.add_parser("weights", help="download pretrained weights into the caches "
                                  "($TORCH_HOME, $KERAS_HOME); needs internet")
    weights.add_argument("--models", nargs="+", default=["all"], metavar="MODEL")
    weights.add_argument("--frameworks", type=comma_list, default=list(FRAMEWORKS))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # logs: don't squeeze tables into 80 columns
    try:
        return COMMANDS[args.command](args, console)
    except UserError as exc:
        print(f"kpbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kpbench: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def cmd_run(args, console: Console) -> int:
    from runner.config import load_config
    from runner.run.driver import run_benchmark

    cfg = load_config(args.config, overrides(args))
    outcome = run_benchmark(cfg, console)
    _score_and_print(cfg.out, console)
    return 1 if outcome.failed else 0


def cmd_score(args, console: Console) -> int:
    from runner.score.reduce import LabelOptions

    options = LabelOptions(
        omit=_load_npy(args.omit, "--omit"),
        keep=_load_npy(args.keep, "--keep"),
        custom_labels=_load_npy(args.custom_labels, "--custom-labels"),
        real=_load_real(args.real),
    )
    _score_and_print(args.out, console, options, args.reference)
    return 0


def _score_and_print(out: str, console: Console, options=None, reference: str | None = None) -> None:
    from runner.score.reduce import LabelOptions, compare_with_reference, score
    from runner.score.results import print_table, write_results

    rows = score(out, options or LabelOptions())
    differ = compare_with_reference(rows, _read_csv(reference)) if reference else []
    print_table(console, rows)
    if reference:
        console.print(f"{len(differ)} row(s) differ from {reference}" + (":" if differ else ""))
        for line in differ:
            console.print(f"  {line}", highlight=False)
    paths = write_results(out, rows)
    console.print("wrote " + ", ".join(str(p) for p in paths))


def _load_npy(path: str | None, flag: str):
    if path is None:
        return None
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"{flag}: cannot read {path} as .npy ({exc})") from None


def _load_real(path: str | None):
    if path is None:
        return None
    import json

    try:
        real = json.loads(open(path).read())
    except (OSError, ValueError) as exc:
        raise UserError(f"--real: cannot read {path} ({exc})") from None
    if not isinstance(real, list) or not all(
        isinstance(labels, list) and all(isinstance(x, int) for x in labels) for labels in real
    ):
        raise UserError(f"--real: {path} must be a JSON list of lists of class indices (real.json)")
    return real


def _read_csv(path: str) -> list[dict]:
    import csv

    try:
        with open(path, newline="") as file:
            rows = list(csv.DictReader(file))
    except OSError as exc:
        raise UserError(f"--reference: cannot read {path} ({exc.strerror})") from None
    if not rows or not {"model", "acc1", "acc5"} <= set(rows[0]):
        raise UserError(f"--reference: {path} needs model, acc1 and acc5 columns")
    return rows


def cmd_report(args, console: Console) -> int:
    from pathlib import Path

    from runner.score.report import write_report

    if not (Path(args.out) / "results" / "accuracy.json").is_file():
        _score_and_print(args.out, console)
    for path in write_report(args.out):
        console.print(f"wrote {path}")
    return 0


def cmd_pack(args, console: Console) -> int:
    from rich.progress import Progress

    from runner.data.index import open_dataset
    from runner.data.packed import pack_dataset

    index = open_dataset(args.data, args.labels, args.classes)
    with Progress(console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task("packing", total=len(index))
        parts = pack_dataset(index, args.uri, args.rows_per_file,
                             lambda n: progress.advance(task, n))
    console.print(f"packed {len(index)} images into {parts} part file(s) at {args.uri}")
    return 0


def cmd_compare(args, console: Console) -> int:
    from runner.score.compare import compare_runs

    rows = compare_runs(args.run_a, args.run_b)
    table = Table(title=f"{args.run_a} (A) vs {args.run_b} (B)")
    columns = ("framework", "backend", "model", "precision", "images", "top1_agreement",
               "top5_set_agreement", "top1_changed", "max_prob_diff", "acc1_diff", "acc5_diff", "identical")
    for column in columns:
        table.add_column(column, justify="left" if column in ("framework", "model") else "right")
    for row in rows:
        table.add_row(*(_fmt_compare(column, row[column]) for column in columns))
    console.print(table)
    different = [row for row in rows if not row["identical"]]
    for row in different:
        extra = [f"{row[k]} {k.replace('_', ' ')}" for k in ("only_in_one", "status_changed") if row[k]]
        backend = f"@{row['backend']}" if row["backend"] not in (None, "tensorflow") else ""
        console.print(f"differs: {row['framework']}/{row['model']}{backend}: "
                      f"{row['top1_changed']} changed top-1, "
                      f"max |dp| {row['max_prob_diff']:.3g}" + "".join(f", {e}" for e in extra),
                      highlight=False)
    if not different:
        console.print(f"identical: all {len(rows)} model(s) in both runs")
    return 1 if args.require_identical and different else 0


def _fmt_compare(column: str, value) -> str:
    if value is None:  # PyTorch's backend
        return ""
    if column == "max_prob_diff":
        return f"{value:.3g}"
    if isinstance(value, float):
        return f"{value:+.2f}" if column.endswith("_diff") else f"{value:.2f}"
    return str(value)


def cmd_import_npy(args, console: Console) -> int:
    from runner.score.import_npy import import_npy

    imported = import_npy(args.dir, args.out, args.framework, args.ground_truth, args.overwrite)
    console.print(f"imported {len(imported)} model(s) into {args.out}: {', '.join(imported)}")
    return 0


def cmd_models(args, console: Console) -> int:
    patterns = ["all"] if args.all or not args.patterns else args.patterns
    specs = load_catalog().select(patterns, args.frameworks)
    table = Table(title=f"kpbench catalog ({len(specs)} models)", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("framework", "model", "set", "input", "params", "acc1/acc5 (docs)",
                   "acc1/acc5 (2019)", "reference recipe", "normalise"):
        table.add_column(column, justify="right" if column in ("input", "params") else "left",
                         no_wrap=True)
    for spec in specs:
        table.add_row(
            spec.framework, spec.name, spec.model_set, str(spec.input_size),
            f"{spec.num_params / 1e6:.1f}M", _pair(spec.published.documented),
            _pair(spec.published.northcutt2019), _recipe(spec.recipe("reference")), _normalise(spec),
        )
    # Not a terminal (a pipe, a log): as wide as the table needs, so no name is cut.
    natural = console.measure(table, options=console.options.update(width=1000)).maximum
    if not console.is_terminal and natural > console.width:
        console = Console(width=natural)
    console.print(table)
    console.print("docs: the framework's documented Acc@1/Acc@5; 2019: the 2019 table's. "
                  "recipe: shorter side/center crop (or squash), interpolation. Weights: torchvision "
                  "entries are <builder>.<weights>, the 2019 PyTorch names use IMAGENET1K_V1, Keras "
                  "weights='imagenet'.", highlight=False)
    return 0


def _recipe(recipe) -> str:
    if recipe.resize == "squash":
        return f"squash {recipe.size} {recipe.interpolation}"
    return f"{recipe.size}/{recipe.crop} {recipe.interpolation}"


def _pair(figures) -> str:
    if not figures:
        return "-"
    return " / ".join("-" if value is None else f"{value:.2f}" for value in figures)


def _normalise(spec) -> str:
    if spec.framework == "pytorch":
        return "imagenet" if spec.mean == (0.485, 0.456, 0.406) else "mean/std " + ",".join(
            f"{value:g}" for value in (*spec.mean[:1], *spec.std[:1]))
    return {"none": "in model"}.get(spec.preprocess, spec.preprocess)


def cmd_sample_data(args, console: Console) -> int:
    from runner.data.sample import write_sample_dataset

    if args.num_classes < 1 or args.per_class < 1:
        raise UserError("--classes and --per-class must be at least 1")
    out = write_sample_dataset(args.dir, args.num_classes, args.per_class, args.seed)
    console.print(f"wrote {args.num_classes * args.per_class} images to {out / 'val'} "
                  f"(class list {out / 'classes.txt'}, labels {out / 'labels.csv'})")
    return 0


def cmd_weights(args, console: Console) -> int:
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


COMMANDS = {
    "run": cmd_run,
    "score": cmd_score,
    "report": cmd_report,
    "import-npy": cmd_import_npy,
    "compare": cmd_compare,
    "pack": cmd_pack,
    "models": cmd_models,
    "sample-data": cmd_sample_data,
    "weights": cmd_weights,
}
