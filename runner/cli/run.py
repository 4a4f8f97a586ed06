"""`kpbench run`: run models over a dataset, write Parquet predictions, print the table."""

from __future__ import annotations

import argparse

from rich.console import Console

from runner.options import add_run_flags, overrides
from runner.outputs import Location


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "run", help="run models over a dataset, write Parquet predictions, print the table",
        description="Run models over a dataset on Ray (local by default; a cluster through "
        "--address or RAY_ADDRESS). Flags override the --config file. Rerunning the same "
        "command resumes: finished shards are not recomputed.",
    )
    parser.add_argument("--config", help="YAML run config: keys as the long flags, with _ "
                        "(docs/configuration.md)")
    add_run_flags(parser)
    return parser


def handle(args: argparse.Namespace, console: Console) -> int:
    from runner.config import load_config
    from runner.report.scoring import print_scored, score_run
    from runner.run.driver import run_benchmark

    cfg = load_config(args.config, overrides(args))
    outcome = run_benchmark(cfg, console)
    print_scored(console, score_run(Location.of(cfg.out, cfg.s3_endpoint)))
    return 1 if outcome.failed else 0
