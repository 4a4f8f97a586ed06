"""Fetch the cp312 wheels bench/gpu_check.py needs on the GPU machine and it lacks there.

    .venv/bin/python bench/gpu_wheels.py        # into .whl/ (git-ignored; about 6 MB)

That machine (Python 3.12, no package index) has torch, torchvision, jax with CUDA, numpy,
pyarrow, pillow, pyyaml, rich, h5py, ml-dtypes and absl-py, but not Keras and its optree and
namex, nor pydantic and its pydantic-core, annotated-types and typing-inspection. The versions
are the CPU image's (docker/requirements.lock), so the check runs what the images run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docker"))
from locks import normalize, read_lock  # noqa: E402

MISSING_THERE = ("keras", "optree", "namex", "pydantic", "pydantic-core", "annotated-types",
                 "typing-inspection")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")


def main() -> int:
    versions = read_lock((ROOT / "docker" / "requirements.lock").read_text())
    pins = [f"{name}=={versions[normalize(name)]}" for name in MISSING_THERE]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.12", "--implementation", "cp",
               *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
               "-d", str(ROOT / ".whl"), *pins]
    return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main())
