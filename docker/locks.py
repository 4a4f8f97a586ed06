"""The Docker images' lock files, derived from requirements.txt (the one file of pins).

    python docker/locks.py lock     # `make lock`: regenerate docker/*.lock (uv, hashes, Linux x86_64)
    python docker/locks.py check    # every version in the locks, Dockerfiles and manifests agrees
    ... pip list --format=freeze | python docker/locks.py installed LOCK   # an image against its lock

Nobody edits the locks or a second pin list. `lock` takes requirements.txt's runtime pins (the lines
above TOOLING_MARKER), applies each image's substitutions (IMAGES), adds the build-system requirement
from pyproject.toml, and resolves that for the image's Python and platform with `uv pip compile
--generate-hashes` (uv fetches metadata only, so this runs anywhere). `check` is what
tests/test_docker.py runs; it needs no network.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLING_MARKER = "# tests and tooling"
PLATFORM = "x86_64-manylinux_2_28"

# Lock file (in docker/) -> substitutions applied to requirements.txt's runtime pins.
# ray[default]: the dashboard and job server that `ray job submit`, the cluster launcher and KubeRay
# need. The GPU image swaps tensorflow-cpu for tensorflow[and-cuda] at the same version, and jax for
# jax[cuda13] (without it Keras on JAX silently runs on the CPU there): its CUDA 13 libraries are the
# ones torch's wheels install, so the two share one copy.
IMAGES = {
    "requirements.lock": {"ray": "ray[default]"},
    "requirements-gpu.lock": {"ray": "ray[default]", "tensorflow-cpu": "tensorflow[and-cuda]",
                              "jax": "jax[cuda13]"},
}

# torch's CUDA 13 wheels and tensorflow[and-cuda]'s CUDA 12 wheels both install cuDNN and NCCL into
# site-packages/nvidia/{cudnn,nccl}/lib under the same file names: whichever pip installs last wins
# and one framework runs on a cuDNN built for the other's CUDA. The GPU image keeps torch's in
# site-packages (torch finds them by DT_RPATH) and installs TensorFlow's from this separate lock into
# /opt/tf-cuda12, which docker/kpbench_tf_cuda12.py preloads in processes that import tensorflow.
# (Listing the files of every CUDA wheel in the GPU resolution, torch and tensorflow included,
# found no other path that two packages share; recheck when torch or TensorFlow changes CUDA.)
GPU_SPLIT = {
    "requirements-gpu.lock": (
        "requirements-gpu-tf-cuda12.lock",
        ("nvidia-cudnn-cu12", "nvidia-nccl-cu12"),
    ),
}

BASE_IMAGE_RE = re.compile(
    r"^ARG BASE_IMAGE=python:(?P<version>\d+\.\d+(?:\.\d+)?)-slim-\w+@sha256:(?P<digest>[0-9a-f]{64})\s*$",
    re.M,
)
LOCK_ENTRY_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s\\;]+)", re.M)
TARGET_RE = re.compile(r"^# target: python (\S+), (\S+); input sha256: ([0-9a-f]{64})$", re.M)
VERSION_ARG_RE = re.compile(r"^(?:ARG|ENV)\s+([A-Z0-9_]+)_VERSION=\"?([^\s\"]+)\"?", re.M)
REQUIRE_CUDA_RE = re.compile(r"NVIDIA_REQUIRE_CUDA=\"?cuda>=(\d+)\.(\d+)")
# In an image besides its lock: the base image's pip (and wheel, in python:3.11 images) and kpbench.
UNLOCKED = {"pip", "wheel", "kpbench"}


def normalize(name: str) -> str:
    """PEP 503 name, without extras."""
    return re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()


def read_pins(text: str) -> list[tuple[str, str, bool]]:
    """requirements.txt lines as (requirement name as written, version, is_runtime)."""
    pins, runtime = [], True
    for line in text.splitlines():
        if line.strip() == TOOLING_MARKER:
            runtime = False
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise ValueError(f"requirements.txt: {line!r} is not pinned with ==")
        pins.append((name.strip(), version.strip(), runtime))
    return pins


def lock_input(requirements: str, pyproject: str, lock_name: str) -> str:
    """The requirements a lock is resolved from: runtime pins, substituted, plus the build backend."""
    substitutions = IMAGES[lock_name]
    lines = [
        f"{substitutions.get(normalize(name), name)}=={version}"
        for name, version, runtime in read_pins(requirements)
        if runtime
    ]
    lines += tomllib.loads(pyproject)["build-system"]["requires"]
    return "\n".join(lines) + "\n"


def read_lock(text: str) -> dict[str, str]:
    return {normalize(name): version for name, version in LOCK_ENTRY_RE.findall(text)}


def base_image(dockerfile: str) -> re.Match | None:
    return BASE_IMAGE_RE.search(dockerfile)


def python_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def split_entries(text: str, names: tuple[str, ...]) -> tuple[str, str]:
    """Split a uv lock into (everything else, the entries of `names`); an entry runs from its
    `name==version` line through the indented lines after it."""
    keep, taken = [], []
    target = keep
    for line in text.splitlines(keepends=True):
        entry = LOCK_ENTRY_RE.match(line)
        if entry:
            target = taken if normalize(entry.group(1)) in names else keep
        elif not line.startswith(" "):
            target = keep
        target.append(line)
    missing = set(names) - set(read_lock("".join(taken)))
    if missing:
        raise SystemExit(f"the resolution has no {', '.join(sorted(missing))}: update GPU_SPLIT")
    return "".join(keep), "".join(taken)


def header(input_text: str, python: str, note: str) -> str:
    digest = hashlib.sha256(input_text.encode()).hexdigest()
    body = "".join(f"#   {line}\n" for line in input_text.splitlines())
    return (
        "# Generated by `make lock` (docker/locks.py) from requirements.txt; do not edit.\n"
        f"# target: python {python}, {PLATFORM}; input sha256: {digest}\n"
        f"# {note}\n"
        f"# input:\n{body}"
    )


def uv_binary() -> str:
    here = Path(sys.executable).parent / "uv"
    found = str(here) if here.exists() else shutil.which("uv")
    if not found:
        raise SystemExit("uv not found: `make setup` installs it (pinned in requirements.txt)")
    return found


def compile_lock(input_text: str, python: str) -> str:
    command = [
        uv_binary(), "pip", "compile", "-", "--quiet", "--no-header", "--generate-hashes",
        "--python-version", python, "--python-platform", PLATFORM, "--no-python-downloads",
    ]
    done = subprocess.run(command, input=input_text, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"uv pip compile failed:\n{done.stderr}")
    return done.stdout


def lock(root: Path = ROOT) -> None:
    requirements = (root / "requirements.txt").read_text()
    pyproject = (root / "pyproject.toml").read_text()
    match = base_image((root / "docker" / "Dockerfile").read_text())
    if not match:
        raise SystemExit("docker/Dockerfile: no `ARG BASE_IMAGE=python:X.Y...@sha256:...` line")
    python = python_minor(match.group("version"))
    for lock_name in IMAGES:
        input_text = lock_input(requirements, pyproject, lock_name)
        resolved = compile_lock(input_text, python)
        note = "Install with: pip install --no-deps --require-hashes -r " + lock_name
        if lock_name in GPU_SPLIT:
            split_name, names = GPU_SPLIT[lock_name]
            resolved, split = split_entries(resolved, names)
            (root / "docker" / split_name).write_text(
                header(input_text, python, f"{', '.join(names)} from the {lock_name} resolution: "
                       "TensorFlow's CUDA 12 libraries, installed apart (see docker/Dockerfile)")
                + split
            )
            print(f"wrote docker/{split_name}")
        (root / "docker" / lock_name).write_text(header(input_text, python, note) + resolved)
        print(f"wrote docker/{lock_name}")


def check(root: Path = ROOT) -> list[str]:
    """Every disagreement between requirements.txt and the versions written elsewhere."""
    problems: list[str] = []
    requirements = (root / "requirements.txt").read_text()
    pyproject = (root / "pyproject.toml").read_text()
    pins = read_pins(requirements)
    pinned = {normalize(name): version for name, version, _ in pins}

    dockerfiles = sorted((root / "docker").glob("Dockerfile*"))
    pythons = set()
    for dockerfile in dockerfiles:
        text = dockerfile.read_text()
        match = base_image(text)
        if not match:
            problems.append(f"{dockerfile.name}: no `ARG BASE_IMAGE=python:X.Y.Z-slim-...@sha256:<digest>`")
            continue
        pythons.add(match.group("version"))
        requires = tomllib.loads(pyproject)["project"]["requires-python"]
        if not _satisfies(match.group("version"), requires):
            problems.append(f"{dockerfile.name}: python {match.group('version')} is outside "
                            f"pyproject's requires-python {requires}")
        for name, version in VERSION_ARG_RE.findall(text):
            package = normalize(name.replace("_", "-"))
            if package in pinned and pinned[package] != version:
                problems.append(f"{dockerfile.name}: {name}_VERSION={version} but requirements.txt "
                                f"pins {package}=={pinned[package]}")
    if len(pythons) > 1:
        problems.append(f"the Dockerfiles' base images differ in Python: {sorted(pythons)}")

    locks = {}
    for lock_name in list(IMAGES) + [split for split, _ in GPU_SPLIT.values()]:
        path = root / "docker" / lock_name
        if not path.exists():
            problems.append(f"docker/{lock_name} is missing: run `make lock`")
            continue
        locks[lock_name] = path.read_text()
    for lock_name, text in locks.items():
        versions = read_lock(text)
        for package, version in versions.items():
            if package in pinned and pinned[package] != version:
                problems.append(f"docker/{lock_name}: {package}=={version} but requirements.txt "
                                f"pins {package}=={pinned[package]}")
        target = TARGET_RE.search(text)
        if not target:
            problems.append(f"docker/{lock_name}: no `# target:` header: run `make lock`")
            continue
        python, platform, digest = target.groups()
        for version in pythons:
            if python_minor(version) != python:
                problems.append(f"docker/{lock_name} was resolved for python {python}, "
                                f"the images run {version}")
        if platform != PLATFORM:
            problems.append(f"docker/{lock_name} was resolved for {platform}, not {PLATFORM}")
        source = lock_name if lock_name in IMAGES else _split_source(lock_name)
        expected = hashlib.sha256(lock_input(requirements, pyproject, source).encode()).hexdigest()
        if digest != expected:
            problems.append(f"docker/{lock_name} is stale (requirements.txt or pyproject.toml "
                            "changed since): run `make lock`")
    for lock_name, substitutions in IMAGES.items():
        if lock_name not in locks:
            continue
        versions = read_lock(locks[lock_name])
        for name, version, runtime in pins:
            package = normalize(substitutions.get(normalize(name), name))
            if runtime and versions.get(package) != version:
                problems.append(f"docker/{lock_name}: {package}=={versions.get(package, '(absent)')} "
                                f"but requirements.txt pins {name}=={version}")

    gpu = (root / "docker" / "Dockerfile").read_text() if (root / "docker" / "Dockerfile").exists() else ""
    cuda = REQUIRE_CUDA_RE.search(gpu)
    runtime_version = read_lock(locks.get("requirements-gpu.lock", "")).get("nvidia-cuda-runtime")
    if not cuda:
        problems.append("docker/Dockerfile: no NVIDIA_REQUIRE_CUDA=cuda>=X.Y")
    elif runtime_version and runtime_version.split(".")[0] != cuda.group(1):
        problems.append(f"docker/Dockerfile: NVIDIA_REQUIRE_CUDA says CUDA {cuda.group(1)} but torch's "
                        f"nvidia-cuda-runtime in the GPU lock is {runtime_version}")

    rayjob = root / "deploy" / "k8s" / "rayjob.yaml"
    if rayjob.exists():
        found = re.search(r"^\s*rayVersion:\s*\"?([^\s\"]+)\"?", rayjob.read_text(), re.M)
        if not found or found.group(1) != pinned.get("ray"):
            problems.append(f"deploy/k8s/rayjob.yaml: rayVersion {found and found.group(1)} but "
                            f"requirements.txt pins ray=={pinned.get('ray')}")
    return problems


def compare_installed(lock_text: str, freeze: str) -> list[str]:
    """How the packages installed in an image (`pip list --format=freeze`) differ from its lock."""
    locked, installed = read_lock(lock_text), read_lock(freeze)
    problems = [f"{name}: locked {version}, installed {installed.get(name, '(absent)')}"
                for name, version in sorted(locked.items()) if installed.get(name) != version]
    problems += [f"{name}=={version} is installed but not locked"
                 for name, version in sorted(installed.items())
                 if name not in locked and name not in UNLOCKED]
    return problems


def _split_source(split_name: str) -> str:
    return next(source for source, (split, _) in GPU_SPLIT.items() if split == split_name)


def _satisfies(version: str, specifier: str) -> bool:
    """Enough of PEP 440 for requires-python: comma-separated >=, >, <=, <, ==, != on release tuples."""
    def as_tuple(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in text.split("."))

    ops = {
        ">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
        "<": lambda a, b: a < b, "==": lambda a, b: a[: len(b)] == b, "!=": lambda a, b: a[: len(b)] != b,
    }
    have = as_tuple(version)
    for clause in specifier.split(","):
        op, bound = re.match(r"\s*(>=|<=|==|!=|>|<)\s*([\d.]+)", clause).groups()
        if not ops[op](have, as_tuple(bound)):
            return False
    return True


def main(argv: list[str]) -> int:
    if argv == ["lock"]:
        lock()
        return 0
    if argv == ["check"]:
        problems = check()
        for problem in problems:
            print(problem)
        return 1 if problems else 0
    if len(argv) == 2 and argv[0] == "installed":
        lock_name = argv[1]
        problems = compare_installed((ROOT / "docker" / lock_name).read_text(), sys.stdin.read())
        for problem in problems:
            print(f"docker/{lock_name}: {problem}")
        if not problems:
            print(f"the image's packages are exactly docker/{lock_name}")
        return 1 if problems else 0
    print("usage: python docker/locks.py lock|check|installed LOCK", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
