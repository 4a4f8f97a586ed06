"""The Ray driver: validate, plan (pair x shard), resume, schedule actors, track progress.

The driver imports no deep-learning framework; actors do.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import ray
from rich.console import Console

from runner.actors import FAULT_VARIABLES, PairActor, PairJob
from runner.catalog import ModelSpec, load_catalog
from runner.config import RunConfig
from runner.data.index import DatasetIndex, Shard, open_dataset
from runner.errors import UserError
from runner.progress import RunProgress
from runner.schema import (
    SCHEMA_VERSION,
    clear_failure,
    read_provenance,
    record_failure,
    shard_path,
)

IN_FLIGHT_PER_ACTOR = 2  # one shard computing, the next already queued at the actor


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
        _print_plan(console, cfg, dataset, plans, resources)
        return _execute(cfg, dataset, plans, resources, console)
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
        ray.init(num_cpus=cfg.local_cpus, num_gpus=cfg.local_gpus, logging_level="ERROR",
                 include_dashboard=cfg.dashboard, dashboard_host="127.0.0.1")
    return True


def _actor_resources(cfg: RunConfig) -> dict:
    """One GPU (or the configured share) per actor when the cluster has GPUs, else a CPU share."""
    if ray.cluster_resources().get("GPU", 0) > 0:
        return {"num_gpus": cfg.gpus_per_actor, "num_cpus": cfg.cpus_per_actor}
    return {"num_cpus": cfg.cpus_per_actor}


def _print_plan(console, cfg, dataset, plans, resources) -> None:
    cluster = ray.cluster_resources()
    todo = sum(len(p.todo) for p in plans)
    resumed = sum(p.done for p in plans)
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
    if cfg.weights == "random":
        console.print("  [bold yellow]weights: random[/] - accuracies measure nothing but the pipeline")


def _execute(cfg, dataset, plans, resources, console) -> RunOutcome:
    outcome = RunOutcome(out=cfg.out)
    plans = [p for p in plans if p.todo]
    records = {s.index: dataset.shard_records(s) for p in plans for s in p.todo}
    actors, queues, waiting, in_flight = {}, {}, {}, {}
    jobs = {plan.job.spec.key: plan.job for plan in plans}
    fault_env = {name: os.environ[name] for name in FAULT_VARIABLES if name in os.environ}
    options = {**resources, **({"runtime_env": {"env_vars": fault_env}} if fault_env else {})}
    for plan in plans:
        key = plan.job.spec.key
        actors[key] = PairActor.options(**options).remote(plan.job)
        queues[key] = deque(plan.todo)
        waiting[actors[key].ready.remote()] = key

    def submit(key: str) -> None:
        while queues[key] and sum(k == key for k, _ in in_flight.values()) < IN_FLIGHT_PER_ACTOR:
            shard = queues[key].popleft()
            in_flight[actors[key].run_shard.remote(shard, records[shard.index])] = (key, shard)

    def fail(key: str, reason: str) -> None:
        outcome.failed[key] = reason
        record_failure(cfg.out, jobs[key], reason)
        queues[key].clear()
        for ref in [r for r, (k, _) in in_flight.items() if k == key]:
            del in_flight[ref]
        ray.kill(actors.pop(key))
        progress.finished(key, "[red]failed[/]")

    totals = {p.job.spec.key: sum(s.size for s in p.todo) for p in plans}
    with RunProgress(console, totals) as progress:
        while waiting or in_flight:
            ready, _ = ray.wait([*waiting, *in_flight], num_returns=1, timeout=1.0)
            for ref in ready:
                if ref in waiting:
                    key = waiting.pop(ref)
                    error = _get(ref)
                    if error:
                        fail(key, error)
                    else:
                        progress.started(key)
                        submit(key)
                    continue
                if ref not in in_flight:  # its pair failed meanwhile
                    continue
                key, _shard = in_flight.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    fail(key, _first_line(exc))
                    continue
                progress.advance(key, result.images)
                submit(key)
                if not queues[key] and not any(k == key for k, _ in in_flight.values()):
                    ray.kill(actors.pop(key))  # frees its GPU/CPU for a waiting pair
                    clear_failure(cfg.out, jobs[key])
                    progress.finished(key, "[green]done[/]")
    for key, reason in outcome.failed.items():
        console.print(f"[red]failed[/] {key}: {reason}")
    return outcome


def _get(ref) -> str | None:
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        return _first_line(exc)


def _first_line(exc: Exception) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
