"""The NVIDIA driver and CUDA versions of the machine an actor runs on, for provenance; and the
check that an actor given a GPU computes on it.

Read from `nvidia-smi -q` (the tool that ships with the driver, and that the NVIDIA container
runtime mounts into GPU containers), so no binding library is needed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from runner.errors import UserError

# provenance field -> the line of `nvidia-smi -q` that gives it ("CUDA Version" is the CUDA
# version the driver provides; the framework's own CUDA build is in its library version)
FIELDS = {"nvidia_driver": "Driver Version", "cuda": "CUDA Version"}


def nvidia_versions(gpu_ids: list[str] | None) -> dict[str, str | None]:
    """{nvidia_driver, cuda}: None when the actor has no GPU; "unknown (why)" when it has one
    but nvidia-smi cannot tell."""
    if not gpu_ids:
        return dict.fromkeys(FIELDS)
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return dict.fromkeys(FIELDS, "unknown (nvidia-smi not found)")
    try:
        done = subprocess.run([executable, "-q"], capture_output=True, text=True, timeout=60,
                              check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return dict.fromkeys(FIELDS, f"unknown (nvidia-smi: {type(exc).__name__})")
    return {field: _value(done.stdout, label) for field, label in FIELDS.items()}


def _value(report: str, label: str) -> str:
    found = re.search(rf"^\s*{label}\s*:\s*(\S+)", report, re.MULTILINE)
    return found.group(1) if found else f"unknown (no {label} in nvidia-smi -q)"


def require_gpu_in_use(pair: str, gpu_ids: list[str], versions: dict, device: str) -> None:
    """A pair given a real GPU (nvidia-smi reports a driver) whose framework computes on the CPU
    fails with one line: a framework or Keras backend without CUDA support (say, a CPU-only jax)
    would otherwise run on the CPU silently, at a fraction of the speed. Ray's fake GPUs on a
    machine without a driver are left alone."""
    driver = versions.get("nvidia_driver")
    if gpu_ids and driver and not driver.startswith("unknown") and device == "cpu":
        raise UserError(f"{pair}: given GPU {','.join(gpu_ids)} (driver {driver}), but its "
                        "framework computes on the CPU: install the framework's CUDA build "
                        "(the GPU image has them)")


def machine_gpu_count(proc: Path = Path("/proc/driver/nvidia/gpus")) -> int:
    """NVIDIA GPUs this machine's driver knows (0 without a driver), whatever Ray declares."""
    try:
        return sum(1 for _ in proc.iterdir())
    except OSError:
        return 0
