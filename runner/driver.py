"""The Ray driver: validate, plan (pair x shard), resume, schedule actors, track progress.

The driver imports no deep-learning framework; actors do.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import ray
from rich.console import Console

from runner.actors import FAULT_VARIABLES, PairJob
from runner.catalog import ModelSpec, load_catalog
from runner.config import RunConfig
from runner.data.index import DatasetIndex, Shard, open_dataset
from runner.errors import UserError
from runner.execute import Execution
from runner.progress import RunProgress
from runner.schedule import PairState, Scheduler, estimate_image_seconds, lower_bound, simulate
from runner.schema import SCHEMA_VERSION, read_provenance, shard_path

PLAN_LINES = 25  # models listed in the printed plan, the biggest first


@dataclass
class PairPlan:
    job: PairJob
    todo: list[Shard]
    done: int  # shards already on disk from an earlier run of the same config


@dataclass
class RunOutcome:
    out: str
    failed: dict[str, str] = field(default_factory=dict)  # pair key -> reason


def plan_run(cfg: RunConfig) -> tuple[DatasetIndex, list[PairPlan]]:
    """Everything that can be checked before Ray starts; raises UserError."""
    specs = load_catalog().select(cfg.models, cfg.frameworks)
    dataset = open_dataset(cfg.data, cfg.labels, cfg.classes)
    _check_writable(Path(cfg.out))
    shards = dataset.shards(cfg.shard_size)
    run_id = uuid.uuid4().hex[:12]
    plans = []
    for spec in specs:
        job = _job(cfg, spec, dataset, run_id)
        done = _finished_shards(cfg, job, shards)
        plans.append(PairPlan(job, [s for s in shards if s.index not in done], len(done)))
    return dataset, plans


def run_benchmark(cfg: RunConfig, console: Console) -> RunOutcome:
    dataset, plans = plan_run(cfg)
    if not any(plan.todo for plan in plans):
        console.print(f"kpbench: all {len(plans)} model(s) already done in {cfg.out}")
        return RunOutcome(out=cfg.out)
    owns_ray = _connect(cfg)
    try:
        resources = _actor_resources(cfg)
        slots = _slots(cfg, resources)
        resumed = sum(plan.done for plan in plans)  # also of models with nothing left to do
        plans = [plan for plan in plans if plan.todo]
        scheduler = Scheduler(_pair_states(cfg, plans, slots, "num_gpus" in resources))
        _print_plan(console, cfg, dataset, plans, resources, slots, scheduler, resumed)
        fault_env = {name: os.environ[name] for name in FAULT_VARIABLES if name in os.environ}
        options = {**resources, **({"runtime_env": {"env_vars": fault_env}} if fault_env else {})}
        totals = {p.job.spec.key: sum(s.size for s in p.todo) for p in plans}
        with RunProgress(console, totals) as progress:
            failed = Execution(cfg, dataset, plans, options, slots, scheduler, progress).run()
        for key, reason in failed.items():
            console.print(f"[red]failed[/] {key}: {reason}", highlight=False)
        return RunOutcome(out=cfg.out, failed=failed)
    finally:
        if owns_ray:
            ray.shutdown()


def _job(cfg: RunConfig, spec: ModelSpec, dataset: DatasetIndex, run_id: str) -> PairJob:
    reproducible = spec.framework == "keras" and cfg.keras_mode == "reproducible"
    forward_batch = 1 if reproducible else cfg.batch_size
    batch_mode = "reproducible (one image per forward pass)" if reproducible else "batched"
    determines = {
        "schema_version": SCHEMA_VERSION,
        "dataset": dataset.fingerprint,
        "spec": spec.model_dump(mode="json"),
        "weights": cfg.weights,
        "protocol": cfg.protocol,
        "seed": cfg.seed,
        "forward_batch": forward_batch,
    }
    pair_key = hashlib.sha256(json.dumps(determines, sort_keys=True).encode()).hexdigest()[:16]
    return PairJob(
        spec=spec,
        weights=cfg.weights,
        protocol=cfg.protocol,
        seed=cfg.seed,
        forward_batch=forward_batch,
        forward_threads=cfg.forward_threads,
        batch_mode=batch_mode,
        threads=max(1, int(cfg.cpus_per_actor)),
        decode_threads=cfg.decode_threads,
        out=str(Path(cfg.out).resolve()),
        run_id=run_id,
        pair_key=pair_key,
        dataset=dataset.summary(),
    )


def _finished_shards(cfg: RunConfig, job: PairJob, shards: list[Shard]) -> set[int]:
    """Shards already written by a run of this same config; a different config is refused."""
    spec = job.spec
    folder = shard_path(cfg.out, spec.framework, spec.name, 0).parent
    if not folder.exists():
        return set()
    for stale in folder.glob(".*.tmp"):  # left by a killed run; never read
        stale.unlink()
    existing = {path: read_provenance(path).get("pair_key") for path in folder.glob("*.parquet")}
    foreign = [path for path, key in existing.items() if key != job.pair_key]
    if foreign and not cfg.overwrite:
        raise UserError(
            f"{cfg.out} already holds {spec.key} predictions made with a different dataset or "
            f"config ({foreign[0].name}); use --overwrite to replace them, or a new --out"
        )
    for path in foreign:
        path.unlink()
    expected = {shard_path(cfg.out, spec.framework, spec.name, s.index): s.index for s in shards}
    return {expected[path] for path, key in existing.items() if key == job.pair_key}


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{uuid.uuid4().hex}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to output folder {out}: {exc.strerror}") from None


def _connect(cfg: RunConfig) -> bool:
    """Join the given cluster, else start a local Ray; True when this run owns the instance."""
    if ray.is_initialized():
        return False
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, logging_level="ERROR")
    else:
        # The dashboard, when asked for, listens on localhost only (reach it by an SSH tunnel).
        # "local": a new instance of our own, even if a `ray start` cluster runs on this machine
        ray.init(address="local", num_cpus=cfg.local_cpus, num_gpus=cfg.local_gpus,
                 logging_level="ERROR", include_dashboard=cfg.dashboard, dashboard_host="127.0.0.1")
    return True


def _actor_resources(cfg: RunConfig) -> dict:
    """One GPU (or the configured share) per actor when the cluster has GPUs, else a CPU share."""
    if ray.cluster_resources().get("GPU", 0) > 0:
        return {"num_gpus": cfg.gpus_per_actor, "num_cpus": cfg.cpus_per_actor}
    return {"num_cpus": cfg.cpus_per_actor}


def _slots(cfg: RunConfig, resources: dict) -> int:
    """How many actors fit at once: per node, its GPUs (or CPUs) over one actor's share."""
    resource, share = ("GPU", cfg.gpus_per_actor) if "num_gpus" in resources else ("CPU", cfg.cpus_per_actor)
    nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    return max(1, sum(int(node.get(resource, 0) / share + 1e-9) for node in nodes))


def _pair_states(cfg: RunConfig, plans: list[PairPlan], slots: int, gpus: bool) -> list[PairState]:
    max_replicas = slots if cfg.replicas == "auto" else cfg.replicas
    return [
        PairState(
            key=plan.job.spec.key,
            shards_left=len(plan.todo),
            shard_seconds=cfg.shard_size * estimate_image_seconds(
                plan.job.spec.gflops, gpus, one_image=plan.job.forward_batch == 1),
            load_seconds=cfg.replica_start_seconds,
            max_replicas=max_replicas,
        )
        for plan in plans
    ]


def _print_plan(console, cfg, dataset, plans, resources, slots, scheduler, resumed) -> None:
    cluster = ray.cluster_resources()
    todo = sum(len(p.todo) for p in plans)
    states = list(scheduler.pairs.values())
    estimate = simulate(states, slots)
    bound = max(lower_bound(states, slots))
    recipes = {p.job.spec.recipe(p.job.protocol).key for p in plans}
    console.print(
        f"[bold]kpbench[/]: {len(plans)} model(s) x {len(dataset)} images "
        f"({len(dataset.shards(cfg.shard_size))} shards of {cfg.shard_size}), "
        f"weights={cfg.weights}, protocol={cfg.protocol}"
    )
    console.print(
        f"  Ray: {cluster.get('CPU', 0):g} CPUs, {cluster.get('GPU', 0):g} GPUs; per actor: "
        + ", ".join(f"{k.removeprefix('num_')}={v:g}" for k, v in resources.items())
        + f"; shards to run: {todo}" + (f", already done: {resumed}" if resumed else "")
    )
    console.print(
        f"  plan: {slots} actor slot(s); replicas per model: {cfg.replicas} (added while a model "
        f"would finish last); {len(recipes)} distinct preprocessing recipe(s), each image decoded "
        f"once per recipe; rough estimate {_duration(estimate.makespan)} "
        f"(lower bound {_duration(bound)}; from GFLOPs, the live ETA is measured)"
    )
    biggest_first = sorted(states, key=lambda s: -s.shards_left * s.shard_seconds)
    for state in biggest_first[:PLAN_LINES]:
        console.print(f"    {state.key:<32} {state.shards_left:>5} shards  ~{_duration(state.shard_seconds)}"
                      f"/shard  replicas planned: {estimate.replicas[state.key]}", highlight=False)
    if len(biggest_first) > PLAN_LINES:
        console.print(f"    ... and {len(biggest_first) - PLAN_LINES} smaller model(s)")
    if cfg.weights == "random":
        console.print("  [bold yellow]weights: random[/] - accuracies measure nothing but the pipeline")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
