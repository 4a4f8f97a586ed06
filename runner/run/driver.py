"""The Ray driver: connect to Ray, print the plan, run it with live progress, report failures.

The driver imports no deep-learning framework; actors do.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass, field

import ray
from rich.console import Console

from runner.config import RunConfig
from runner.plan import calibration
from runner.plan.pairs import PairJob, PairPlan, plan_run
from runner.plan.schedule import Scheduler, lower_bound, simulate
from runner.run import packing, store
from runner.run.actors import FAULT_VARIABLES
from runner.run.devices import DeviceLog
from runner.run.execute import Execution
from runner.run.feed import MIN_WINDOW, Feed, FeedPolicy, NodeCpus
from runner.run.nvidia import machine_gpu_count
from runner.run.progress import RunProgress
from runner.run.shared import require_shared_folders

PLAN_LINES = 25  # models listed in the printed plan, the biggest first


@dataclass
class RunOutcome:
    out: str
    failed: dict[str, str] = field(default_factory=dict)  # pair key -> reason


def run_benchmark(cfg: RunConfig, console: Console) -> RunOutcome:
    dataset, plans = plan_run(cfg)
    if not any(plan.todo for plan in plans):
        console.print(f"kpbench: all {len(plans)} model(s) already done in {cfg.out}")
        return RunOutcome(out=cfg.out)
    owns_ray = _connect(cfg, console, plans)
    try:
        require_shared_folders(cfg, dataset)
        device = packing.choose_device(cfg.device, ray.cluster_resources().get("GPU", 0),
                                       machine_gpu_count())
        resumed = sum(plan.done for plan in plans)  # also of models with nothing left to do
        plans = [plan for plan in plans if plan.todo]
        requests = {plan.job.name: _request(cfg, device, plan.job) for plan in plans}
        watch = packing.SlotWatch(functools.partial(_slots, list(requests.values())))
        slots = watch.slots
        cfg = cfg.model_copy(update={"decode_cache_gb": _decode_cache_gb(cfg)})
        states, sources = _pair_states(cfg, plans, slots, device == "gpu")
        scheduler = Scheduler(states)
        estimate = _print_plan(console, cfg, dataset, plans, requests, slots, scheduler, resumed, sources)
        options = {key: _ray_options(request) for key, request in requests.items()}
        totals = {p.job.name: sum(s.size for s in p.todo) for p in plans}
        devices = DeviceLog(plans[0].job.out, plans[0].job.run_id, cfg.device_retries)
        nodes = _alive_nodes()
        started = time.monotonic()
        with RunProgress(console, totals) as progress:
            feed = _feed(cfg, plans, list(requests.values()))
            failed = Execution(cfg, dataset, plans, options, watch, scheduler, progress, feed,
                               devices).run()
        console.print(f"kpbench: ran in {_duration(time.monotonic() - started)} "
                      f"(plan estimate {_duration(estimate)})")
        _record_throughput(console, cfg, plans)
        for node_id, hostname in nodes.items() - _alive_nodes().items():
            devices.node_lost(node_id, hostname)
        for line in devices.summary():
            console.print(f"[yellow]{line}[/]", highlight=False)
        for key, reason in failed.items():
            console.print(f"[red]failed[/] {key}: {reason}", highlight=False)
        return RunOutcome(out=cfg.out, failed=failed)
    finally:
        if owns_ray:
            ray.shutdown()


def _connect(cfg: RunConfig, console: Console, plans: list[PairPlan]) -> bool:
    """Join the given cluster, else start a local Ray; True when this run owns the instance."""
    if ray.is_initialized():
        return False
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, logging_level=logging.ERROR)
    else:
        size = _local_store(cfg, plans)
        if size.warning:
            console.print(f"[yellow]kpbench: warning:[/] {size.warning}", highlight=False)
        # The dashboard, when asked for, listens on localhost only (reach it by an SSH tunnel).
        # "local": a new instance of our own, even if a `ray start` cluster runs on this machine
        ray.init(address="local", num_cpus=cfg.local_cpus, num_gpus=cfg.local_gpus,
                 object_store_memory=size.bytes, logging_level=logging.ERROR,
                 include_dashboard=cfg.dashboard, dashboard_host="127.0.0.1")
    return True


def _alive_nodes() -> dict[str, str]:
    """The cluster's live nodes: id -> address."""
    return {node["NodeID"]: node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]}


def _local_store(cfg: RunConfig, plans: list[PairPlan]) -> store.StoreSize:
    """The object store of a local Ray, for the crops the run will hold in flight (the slots
    this machine will have, MIN_WINDOW shards each, at the largest crop)."""
    gpus = cfg.local_gpus if cfg.local_gpus is not None else machine_gpu_count()
    device: packing.Device = "gpu" if gpus and cfg.device != "cpu" else "cpu"
    node = packing.NodeCapacity(cpus=cfg.local_cpus or os.cpu_count() or 1, gpus=gpus)
    requests = [_request(cfg, device, plan.job) for plan in plans if plan.todo]
    ask = packing.planning_request(requests)
    slots = packing.cluster_slots([node], ask.gpus, ask.cpus)
    crop = max(plan.job.recipe.output_size for plan in plans)
    shm_free, memory = store.machine_shm_and_memory()
    return store.size_object_store(shm_free, memory,
                                   store.in_flight_bytes(slots, MIN_WINDOW, cfg.shard_size, crop))


def _decode_cache_gb(cfg: RunConfig) -> float:
    """decode_cache_gb, or its default from the smallest live node's object store."""
    if cfg.decode_cache_gb is not None:
        return cfg.decode_cache_gb
    stores = [node["Resources"].get("object_store_memory", 0) for node in ray.nodes() if node["Alive"]]
    return store.decode_cache_bytes(None, min(stores, default=0)) / store.GB


def _request(cfg: RunConfig, device: packing.Device, job: PairJob) -> packing.ActorRequest:
    share = cfg.gpu_shares.for_pair(job.spec.framework, job.forward_batch == 1)
    return packing.actor_request(device, share, cfg.cpus_per_actor, cfg.cpus_per_gpu_actor)


def _ray_options(request: packing.ActorRequest) -> dict:
    """Ray's actor options for a request; an actor without a GPU gets CUDA_VISIBLE_DEVICES=""
    (Ray leaves the variable alone when it assigns no GPU, and every GPU would be visible)."""
    env = {name: os.environ[name] for name in FAULT_VARIABLES if name in os.environ}
    if not request.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return {"num_cpus": request.cpus, "num_gpus": request.gpus,
            **({"runtime_env": {"env_vars": env}} if env else {})}


def _slots(requests: list[packing.ActorRequest]) -> int:
    """How many actors fit on the live nodes at once (packing.cluster_slots); called again
    during the run, so that nodes joining later add slots."""
    nodes = [packing.NodeCapacity.from_ray(node["Resources"]) for node in ray.nodes() if node["Alive"]]
    ask = packing.planning_request(requests)
    return packing.cluster_slots(nodes, ask.gpus, ask.cpus)


def _feed(cfg: RunConfig, plans: list[PairPlan], requests: list[packing.ActorRequest]) -> Feed:
    """Decode threads per node (the CPUs its model actors leave) and shards per replica."""
    ask = packing.planning_request(requests)
    nodes, slots = {}, 0
    for node in ray.nodes():
        if node["Alive"]:
            actors = packing.node_slots(packing.NodeCapacity.from_ray(node["Resources"]), ask.gpus, ask.cpus)
            nodes[node["NodeID"]] = NodeCpus(node["Resources"].get("CPU", 0), actors * ask.cpus)
            slots += actors
    recipes = {p.job.recipe for p in plans}
    shard_bytes = cfg.shard_size * sum(recipe.output_size ** 2 * 3 for recipe in recipes)
    threads = None if cfg.decode_threads == "auto" else int(cfg.decode_threads)
    budget = int((cfg.decode_cache_gb or 0) * store.GB)
    return FeedPolicy(budget, threads).feed(nodes, shard_bytes, max(1, slots))


def _pair_states(cfg: RunConfig, plans: list[PairPlan], slots: int, gpus: bool):
    """Estimates from earlier runs on this cluster's hosts (a user's replica_start_seconds wins)."""
    hosts = {node["NodeManagerHostname"] for node in ray.nodes() if node["Alive"]}
    record = calibration.Calibration(calibration.load_samples(), gpus, hosts)
    return calibration.pair_states(
        plans, record, slots if cfg.replicas == "auto" else cfg.replicas, cfg.replica_start_seconds,
        measured_load="replica_start_seconds" not in cfg.model_fields_set,
    )


def _record_throughput(console: Console, cfg: RunConfig, plans: list[PairPlan]) -> None:
    """Add this run's measured speeds to the machine's record, for later runs' estimates."""
    run_id = plans[0].job.run_id
    try:
        samples = calibration.samples_from_run(run_id, plans)
        if samples:
            calibration.save_samples(samples, f"run-{run_id}")
    except OSError as exc:  # the record only improves estimates: a run does not fail for it
        console.print(f"[yellow]could not record throughput[/] in {calibration.record_folder()}: {exc}")


def _print_plan(console, cfg, dataset, plans, requests, slots, scheduler, resumed, sources) -> float:
    """Print the plan; return its estimated wall time in seconds."""
    cluster = ray.cluster_resources()
    todo = sum(len(p.todo) for p in plans)
    states = list(scheduler.pairs.values())
    estimate = simulate(states, slots)
    bound = max(lower_bound(states, slots))
    recipes = {p.job.recipe.key for p in plans}
    origins = ", ".join(f"{list(sources.values()).count(origin)} {origin}"
                        for origin in ("measured", "device speed", "assumed") if origin in sources.values())
    console.print(
        f"[bold]kpbench[/]: {len(plans)} model(s) x {len(dataset)} images "
        f"({len(dataset.shards(cfg.shard_size))} shards of {cfg.shard_size}), "
        f"weights={cfg.weights}, protocol={cfg.protocol}, precision={cfg.precision}"
    )
    asks = sorted({(r.gpus, r.cpus) for r in requests.values()}, reverse=True)
    console.print(
        f"  Ray: {cluster.get('CPU', 0):g} CPUs, {cluster.get('GPU', 0):g} GPUs; per actor: "
        + " or ".join(f"gpus={gpus:g}, cpus={cpus:g}" for gpus, cpus in asks)
        + f"; shards to run: {todo}" + (f", already done: {resumed}" if resumed else "")
    )
    per = "node" if cfg.share_decoding else "node and model"
    console.print(
        f"  plan: {slots} actor slot(s); replicas per model: {cfg.replicas} (added while a model "
        f"would finish last); {len(recipes)} distinct preprocessing recipe(s), each image decoded "
        f"once per {per}; estimate {_duration(estimate.makespan)} "
        f"(lower bound {_duration(bound)}; model speeds: {origins}; the live ETA is measured)"
    )
    biggest_first = sorted(states, key=lambda s: -s.shards_left * s.shard_seconds)
    width = max([32, *(len(state.key) for state in biggest_first[:PLAN_LINES])])  # variants' names
    for state in biggest_first[:PLAN_LINES]:
        console.print(f"    {state.key:<{width}} {state.shards_left:>5} shards  "
                      f"~{_duration(state.shard_seconds)}/shard  "
                      f"replicas planned: {estimate.replicas[state.key]}  "
                      f"({sources[state.key]})", highlight=False)
    if len(biggest_first) > PLAN_LINES:
        console.print(f"    ... and {len(biggest_first) - PLAN_LINES} smaller model(s)")
    if cfg.weights == "random":
        console.print("  [bold yellow]weights: random[/] - accuracies measure nothing but the pipeline")
    return estimate.makespan


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
