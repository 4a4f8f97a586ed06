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
from runner.options import add_run_flags, add_shared_flag, comma_list, overrides, run_options
from runner.outputs import Location


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
    score.add_argument("runs", nargs="+", metavar="RUN",
                       help="run folder, a path or a URI (s3://bucket/prefix, ...); several (one per "
                       "dataset): also the wide table RUN/results/accuracy-wide.{csv,md,json} of "
                       "the first, a column group per dataset")
    score.add_argument("--published", metavar="DIR", help="a copy of timm's results/ folder: timm "
                       "models are compared with timm's figure for the run's dataset")
    add_shared_flag(score, "s3_endpoint")
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
                       "real_acc1 and real_acc5")
    score.add_argument("--format", choices=("kpbench", "timm"), default="kpbench",
                       help="kpbench: the tables only (always written); timm: also "
                       "OUT/results/timm/results-<dataset>.csv in the format of timm's results "
                       "files (docs/report.md)")
    _label_set_arguments(score)


def _add_report(commands) -> None:
    report = commands.add_parser(
        "report", help="a browsable HTML page of scored runs (and PNG charts)",
        description="Write report/index.html, one self-contained page (it opens from file:// with "
        "no network): the accuracy table, sortable and filterable, charts and provenance, from the "
        "tables `kpbench score` wrote (a run not scored yet is scored first). One run: "
        "RUN/report/index.html, and PNG charts with RUN/results/report.md; several runs: "
        "--out DIR (docs/report.md).",
    )
    report.add_argument("runs", nargs="+", metavar="RUN",
                        help="run folder, or URI of one (s3://..., gs://..., file://...)")
    report.add_argument("--out", metavar="DIR", help="folder for index.html (needed for several "
                        "runs; default RUN/report)")
    add_shared_flag(report, "s3_endpoint")


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
    _dataset_arguments(pack)
    pack.add_argument("--rows-per-file", type=int, default=1000, help="images per part file")


def _add_compare(commands) -> None:
    compare = commands.add_parser(
        "compare", help="how much two runs' predictions differ, per model in both",
        description="Per (framework, model) in both runs: images compared, top-1 and top-5 set "
        "agreement, changed top-1 predictions, largest probability difference (over classes in "
        "both top-5 lists), accuracy difference (B - A), and an exact McNemar test of the top-1 "
        "difference (images only A / only B got right, p-value).",
    )
    compare.add_argument("run_a", help="run folder: a path or a URI (s3://bucket/prefix, ...)")
    compare.add_argument("run_b", nargs="?",
                         help="the other run folder (with --backends: default RUN_A itself)")
    compare.add_argument("--backends", metavar="A,B", type=_backend_pair,
                         help="compare each Keras model on backend A (in RUN_A) with itself on "
                         "backend B (in RUN_B), e.g. tensorflow,jax")
    add_shared_flag(compare, "s3_endpoint")
    compare.add_argument("--require-identical", action="store_true",
                         help="exit 1 when any prediction differs, naming the models")


def _backend_pair(value: str) -> tuple[str, str]:
    from runner.frameworks.keras_runtime import KERAS_BACKENDS

    backends = comma_list(value)
    if len(backends) != 2 or not set(backends) <= set(KERAS_BACKENDS):
        raise argparse.ArgumentTypeError(f"two of {', '.join(KERAS_BACKENDS)}, as A,B: not {value!r}")
    return backends[0], backends[1]


def _add_import_npy(commands) -> None:
    importer = commands.add_parser(
        "import-npy", help="convert the 2019 benchmark's top-5 .npy files into kpbench Parquet",
        description="Convert <model>_<framework>_imagenet_top5preds.npy / _top5probs.npy files "
        "into OUT/predictions (rows in class-folder order).",
    )
    importer.add_argument("dir", help="folder with the .npy files")
    importer.add_argument("--out", required=True, help="run folder to write: a path or a URI")
    add_shared_flag(importer, "s3_endpoint")
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
    models.add_argument("--all", action="store_true", help="every entry but the opt-in timm set "
                        "(the default)")
    models.add_argument("--frameworks", type=comma_list, default=list(FRAMEWORKS))
    models.add_argument("--catalog", action="append", default=[], metavar="FILE.yaml",
                        help="add your own models' catalog file (repeatable)")


def _add_sample_data(commands) -> None:
    sample = commands.add_parser("sample-data", help="write a small generated dataset (JPEGs)")
    sample.add_argument("dir", help="where to write val/, classes.txt and labels.csv")
    sample.add_argument("--classes", type=int, default=5, dest="num_classes")
    sample.add_argument("--per-class", type=int, default=8)
    sample.add_argument("--seed", type=int, default=0)


def _add_weights(commands) -> None:
    weights = commands.add_parser("weights", help="download pretrained weights into the caches "
                                  "($TORCH_HOME, $KERAS_HOME, $HF_HOME for timm); needs internet")
    weights.add_argument("--models", nargs="+", default=["all"], metavar="MODEL")
    weights.add_argument("--frameworks", type=comma_list, default=list(FRAMEWORKS))


def _dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """pack reads a dataset as run does: run's --dataset and --subset-classes."""
    for option in run_options():
        if option.key in ("dataset", "subset_classes"):
            parser.add_argument(option.flag, **option.argparse_kwargs())


def _label_set_arguments(score: argparse.ArgumentParser) -> None:
    from runner.score.labelsets import CORRECT_SETS, PUBLISHED_SETS

    group = score.add_argument_group(
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
    _score_and_print(Location.of(cfg.out, cfg.s3_endpoint), console)
    return 1 if outcome.failed else 0


def cmd_score(args, console: Console) -> int:
    from runner.score.reduce import LabelOptions

    options = LabelOptions(
        omit=_load_npy(args.omit, "--omit"),
        keep=_load_npy(args.keep, "--keep"),
        custom_labels=_load_npy(args.custom_labels, "--custom-labels"),
        real=_load_real(args.real),
    )
    label_sets = _label_set_request(args)
    rows = []
    runs = [Location.of(run, args.s3_endpoint) for run in args.runs]
    for out in runs:
        rows += _score_and_print(out, console, options, args.reference, label_sets, args.published)
    if len(runs) > 1:
        _write_wide(runs[0], rows, console)
    if args.format == "timm":
        _write_timm(runs[0], rows, console)
    return 0


def _write_timm(out: Location, rows, console: Console) -> None:
    from runner.report.timm_export import write_timm

    paths, left_out = write_timm(out, [row.cells() for row in rows])
    console.print("wrote " + ", ".join(str(p) for p in paths))
    if left_out:
        console.print("[yellow]not in the timm files[/] (incomplete): " + "; ".join(left_out),
                      highlight=False)


def _write_wide(out: Location, rows: list[dict], console: Console) -> None:
    from runner.report.tables import print_wide_table, write_table
    from runner.score.shift_table import wide_table

    wide, columns = wide_table(rows)
    print_wide_table(console, wide, columns)
    random = any(row.weights == "random" for row in rows)
    paths = write_table(out, "accuracy-wide", wide, columns, random)
    console.print("wrote " + ", ".join(str(p) for p in paths))


def _label_set_request(args):
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


def _score_and_print(out: Location, console: Console, options=None, reference: str | None = None,
                     label_sets=None, published: str | None = None) -> list[dict]:
    """Score one run, print and write its tables; returns the plain rows."""
    from runner.score.label_tables import score_label_sets
    from runner.score.reduce import LabelOptions, compare_with_reference, score
    from runner.report.tables import print_table, write_results
    from runner.score.shift_table import apply_published

    rows = score(out, options or LabelOptions())
    for note in apply_published(rows, published) if published else []:
        console.print(note, highlight=False)
    differ = compare_with_reference(rows, _read_csv(reference)) if reference else []
    imagenet = all(row.dataset == "imagenet" for row in rows)
    if label_sets and not imagenet:
        console.print(f"label sets are of ImageNet's validation images: not applied to {out}")
    tables = score_label_sets(out, rows, label_sets) if label_sets and imagenet else []
    if len(tables) != 1:  # with one label set, its table is also the accuracy table
        print_table(console, rows)
    if reference:
        console.print(f"{len(differ)} row(s) differ from {reference}" + (":" if differ else ""))
        for line in differ:
            console.print(f"  {line}", highlight=False)
    paths = [] if len(tables) == 1 else write_results(out, rows)
    for table in tables:
        print_table(console, table.rows, f"kpbench accuracy, label set {table.name}")
        for note in table.notes:
            console.print(note, highlight=False)
        paths += write_results(out, table.rows, f"accuracy-{table.name}", table.notes)
        if len(tables) == 1:
            paths += write_results(out, table.rows, "accuracy", table.notes)
    console.print("wrote " + ", ".join(str(p) for p in paths))
    return rows


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
    from runner.report.html import write_html_report
    from runner.report.png import write_report
    from runner.report.runs import read_run

    runs = [Location.of(run, args.s3_endpoint) for run in args.runs]
    if args.out is None and len(runs) > 1:
        raise UserError("give --out DIR for several runs (there is no one run folder to write into)")
    for run in runs:
        if not (run / "results" / "accuracy.json").is_file():
            _score_and_print(run, console)
    written = write_report(runs[0]) if len(runs) == 1 else []
    written.append(write_html_report([read_run(run) for run in runs], args.out or runs[0] / "report"))
    for path in written:
        console.print(f"wrote {path}")
    return 0


def cmd_pack(args, console: Console) -> int:
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


def cmd_compare(args, console: Console) -> int:
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


def cmd_import_npy(args, console: Console) -> int:
    from runner.import_npy import import_npy

    out = Location.of(args.out, args.s3_endpoint)
    imported = import_npy(args.dir, out, args.framework, args.ground_truth, args.overwrite)
    console.print(f"imported {len(imported)} model(s) into {args.out}: {', '.join(imported)}")
    return 0


def cmd_models(args, console: Console) -> int:
    patterns = ["all"] if args.all or not args.patterns else args.patterns
    specs = load_catalog().with_user_catalogs(args.catalog).select(patterns, args.frameworks)
    table = Table(title=f"kpbench catalog ({len(specs)} models)", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("framework", "model", "set", "input", "params", "acc1/acc5 (docs)",
                   "acc1/acc5 (2019)", "reference recipe", "normalise"):
        table.add_column(column, justify="right" if column in ("input", "params") else "left",
                         no_wrap=True)
    for spec in specs:
        table.add_row(
            spec.framework, spec.name, spec.model_set, str(spec.input_size),
            f"{spec.num_params / 1e6:.1f}M" if spec.num_params else "-", _pair(spec.published.documented),
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
                  "weights='imagenet', timm entries are timm's tags (docs: timm's results table).",
                  highlight=False)
    return 0


def _recipe(recipe) -> str:
    if recipe.resize == "squash":
        crop = f"/{recipe.crop}" if recipe.crop else ""
        return f"squash {recipe.size}{crop} {recipe.interpolation}"
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
