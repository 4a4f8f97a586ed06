"""How far the plan's printed estimate is from the measured wall time, on this machine.

    .venv/bin/python bench/plan_accuracy.py [--images 40] [--sets smoke northcutt2019]

Writes `--images` generated images (`kpbench sample-data`), then runs each set with `kpbench run`
(random weights, local Ray, a fresh --out) and reads from its output the plan's estimate and the
measured time of the run phase (the driver prints "ran in X (plan estimate Y)"); the process's
whole wall time (Python start, Ray start, scoring) is shown beside them. The throughput record
($KPBENCH_HOME) starts empty in a temporary folder, so the first set is estimated from assumed
speeds, and each later set is calibrated by the runs before it, as on a user's machine. At the end
each set is planned once more (no run) with every run's speeds recorded: the estimate a rerun on
this machine would print.
    smoke: configs/smoke.yaml's four models; northcutt2019: the 2019 benchmark's 34 models.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETS = {
    "smoke": ["--config", str(ROOT / "configs" / "smoke.yaml")],
    "northcutt2019": ["--models", "northcutt2019"],
}
RAN = re.compile(r"ran in (\S+) \(plan estimate (\S+)\)")


def seconds(duration: str) -> float:
    """'3m07s' or '1h24m' (the driver's format) in seconds."""
    if "h" in duration:
        hours, minutes = duration.rstrip("m").split("h")
        return int(hours) * 3600 + int(minutes) * 60
    minutes, secs = duration.rstrip("s").split("m")
    return int(minutes) * 60 + int(secs)


def run(name: str, data: Path, out: Path, env: dict) -> dict:
    command = [sys.executable, "-m", "runner", "run", *SETS[name], "--data", str(data / "val"),
               "--classes", str(data / "classes.txt"), "--out", str(out), "--weights", "random"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    found = RAN.search(done.stdout)
    if done.returncode != 0 or not found:
        raise SystemExit(f"{name}: kpbench run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    measured, estimate = (seconds(found.group(i)) for i in (1, 2))
    speeds = re.search(r"model\s+speeds:\s+([^;]*);", done.stdout)  # the line may be wrapped
    return {"set": name, "estimate": estimate, "measured": measured, "wall": wall,
            "speeds": " ".join(speeds.group(1).split()) if speeds else "?"}


def replan(name: str, data: Path, out: Path) -> float:
    """The estimate a run of `name` would print now, from the record as it stands (no run)."""
    from runner.config import load_config
    from runner.plan import calibration
    from runner.plan.pairs import plan_run
    from runner.plan.schedule import simulate

    overrides = {"data": str(data / "val"), "classes": str(data / "classes.txt"), "out": str(out),
                 "weights": "random"}
    config = SETS[name][1] if SETS[name][0] == "--config" else None
    if config is None:
        overrides["models"] = SETS[name][1:]
    cfg = load_config(config, overrides)
    _, plans = plan_run(cfg)
    slots = int((cfg.local_cpus or os.cpu_count() or 1) / cfg.cpus_per_actor)
    record = calibration.Calibration(calibration.load_samples(), gpu=False)
    states, _ = calibration.pair_states(plans, record, slots, cfg.replica_start_seconds)
    return simulate(states, slots).makespan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["KPBENCH_HOME"] = str(tmp / "home")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        data = tmp / "data"
        per_class = max(1, args.images // 5)
        subprocess.run([sys.executable, "-m", "runner", "sample-data", str(data), "--classes", "5",
                        "--per-class", str(per_class)], cwd=ROOT, env=env, check=True, capture_output=True)
        print(f"{5 * per_class} generated images; load average {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} cores; CPU slots as `kpbench run` makes them", flush=True)
        print(f"{'set':<15}{'estimate':>10}{'measured':>10}{'ratio':>7}{'process':>9}  model speeds from",
              flush=True)
        for name in args.sets:
            result = run(name, data, tmp / f"run-{name}", env)
            ratio = result["estimate"] / result["measured"]
            print(f"{name:<15}{result['estimate']:>9.0f}s{result['measured']:>9.0f}s{ratio:>7.2f}"
                  f"{result['wall']:>8.0f}s  {result['speeds']}", flush=True)
        for name in args.sets:
            estimate = replan(name, data, tmp / f"replan-{name}")
            print(f"{name:<15}{estimate:>9.0f}s  (planned again, every run's speeds recorded)", flush=True)
        print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
