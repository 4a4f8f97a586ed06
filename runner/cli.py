"""The `kpbench` command: thin argument parsing over the runner library."""

from __future__ import annotations

import argparse
import multiprocessing
import sys

from rich.console import Console
from rich.table import Table

from runner import __version__
from runner.catalog import FRAMEWORKS, PROTOCOLS, load_catalog
from runner.errors import UserError


def _list(value: str) -> list[str]:
    """'a,b' or 'a b' (after shell splitting) both give a list."""
    return [item for item in value.replace(",", " ").split() if item]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kpbench",
        description="Reproducible ImageNet accuracy of pretrained PyTorch and Keras models, on Ray.",
    )
    parser.add_argument("--version", action="version", version=f"kpbench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="run models over a dataset, write Parquet predictions, print the table",
        description="Run models over a dataset on Ray (local by default; a cluster through "
        "--address or RAY_ADDRESS). Flags override the --config file. Rerunning the same "
        "command resumes: finished shards are not recomputed.",
    )
    run.add_argument("--config", help="YAML run config (keys as the long flags, with _)")
    run.add_argument("--data", help="dataset folder: ROOT/<wnid>/*.JPEG, or flat with --labels")
    run.add_argument("--labels", help="labels for a flat folder: file,label / file,wnid CSV, "
                     "or the devkit's ILSVRC2012_validation_ground_truth.txt (meta.mat beside it)")
    run.add_argument("--classes", help="full class list when the data names only some classes "
                     "(imagenet_class_index.json or one WordNet id per line)")
    run.add_argument("--out", help="run folder (default runs/default)")
    run.add_argument("--models", nargs="+", metavar="MODEL",
                     help="names, framework/name, globs ('resnet*') or sets (all, northcutt2019)")
    run.add_argument("--frameworks", type=_list, help=f"comma-separated: {','.join(FRAMEWORKS)}")
    run.add_argument("--weights", choices=("pretrained", "random"),
                     help="pretrained (default) or random (fixed seed; for smoke runs and tests)")
    run.add_argument("--protocol", choices=PROTOCOLS, help="preprocessing protocol (default "
                     "reference: the framework's documented evaluation)")
    run.add_argument("--batch-size", type=int, help="images per forward pass in batched modes")
    run.add_argument("--keras-mode", choices=("reproducible", "batched"),
                     help="reproducible (default): one image per Keras forward pass")
    run.add_argument("--shard-size", type=int, help="images per shard / Parquet file")
    run.add_argument("--seed", type=int, help="seed for random weights and framework RNGs")
    run.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else local)")
    run.add_argument("--local-gpus", type=int,
                     help="GPUs a local Ray declares (default: detected; >0 on a CPU box fakes them)")
    run.add_argument("--overwrite", action="store_true", default=None,
                     help="replace predictions in --out that were made with another config")

    score = commands.add_parser("score", help="score a run folder: print and write the table",
                                description="Aggregate OUT/predictions into "
                                "OUT/results/accuracy.{csv,md,json} and print the table.")
    score.add_argument("out", help="run folder")

    models = commands.add_parser("models", help="list the model catalog")
    models.add_argument("patterns", nargs="*", default=["all"], help="filter (names, globs, sets)")
    models.add_argument("--frameworks", type=_list, default=list(FRAMEWORKS))

    sample = commands.add_parser("sample-data", help="write a small generated dataset (JPEGs)")
    sample.add_argument("dir", help="where to write val/, classes.txt and labels.csv")
    sample.add_argument("--classes", type=int, default=5, dest="num_classes")
    sample.add_argument("--per-class", type=int, default=8)
    sample.add_argument("--seed", type=int, default=0)

    weights = commands.add_parser("weights", help="download pretrained weights into the caches "
                                  "($TORCH_HOME, $KERAS_HOME); needs internet")
    weights.add_argument("--models", nargs="+", default=["all"], metavar="MODEL")
    weights.add_argument("--frameworks", type=_list, default=list(FRAMEWORKS))
    return parser


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
    from runner.driver import run_benchmark

    overrides = {
        key: getattr(args, key)
        for key in ("data", "labels", "classes", "out", "models", "frameworks", "weights",
                    "protocol", "batch_size", "keras_mode", "shard_size", "seed", "address",
                    "local_gpus", "overwrite")
    }
    cfg = load_config(args.config, overrides)
    outcome = run_benchmark(cfg, console)
    _score_and_print(cfg.out, console)
    return 1 if outcome.failed else 0


def cmd_score(args, console: Console) -> int:
    _score_and_print(args.out, console)
    return 0


def _score_and_print(out: str, console: Console) -> None:
    from runner.reduce import score
    from runner.results import print_table, write_results

    rows = score(out)
    print_table(console, rows)
    paths = write_results(out, rows)
    console.print("wrote " + ", ".join(str(p) for p in paths))


def cmd_models(args, console: Console) -> int:
    specs = load_catalog().select(args.patterns, args.frameworks)
    table = Table(title=f"kpbench catalog ({len(specs)} models)")
    for column in ("framework", "model", "builder", "weights", "input", "2019 acc1/acc5",
                   "documented acc1/acc5", "reference recipe", "northcutt2019 recipe"):
        table.add_column(column)
    for spec in specs:
        table.add_row(
            spec.framework, spec.name, spec.builder, spec.weights_id, str(spec.input_size),
            _pair(spec.published.northcutt2019), _pair(spec.published.documented),
            spec.recipe("reference").key, spec.recipe("northcutt2019").key,
        )
    console.print(table)
    return 0


def _pair(figures) -> str:
    return f"{figures[0]:.2f} / {figures[1]:.2f}" if figures else "-"


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
    "models": cmd_models,
    "sample-data": cmd_sample_data,
    "weights": cmd_weights,
}
