"""Provenance of GPU runs: the NVIDIA driver and CUDA versions, read from nvidia-smi; a GPU given
to a pair whose framework stays on the CPU fails it."""

import os
import stat

import pytest

from runner.errors import UserError
from runner.run.nvidia import nvidia_versions, require_gpu_in_use

# the head of `nvidia-smi -q` (the layout of driver 570 and later)
REPORT = """
==============NVSMI LOG==============

Timestamp                                 : Mon Nov 30 10:00:00 2026
Driver Version                            : 580.65.06
CUDA Version                              : 13.0

Attached GPUs                             : 1
GPU 00000000:18:00.0
    Product Name                          : NVIDIA H200
"""


def _fake_nvidia_smi(folder, monkeypatch, body: str) -> None:
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def test_cpu_actors_record_none():
    assert nvidia_versions([]) == {"nvidia_driver": None, "cuda": None}


def test_gpu_actors_record_what_nvidia_smi_reports(tmp_path, monkeypatch):
    (tmp_path / "report.txt").write_text(REPORT)
    _fake_nvidia_smi(tmp_path, monkeypatch, f'[ "$1" = -q ] && cat {tmp_path / "report.txt"}')
    assert nvidia_versions(["0"]) == {"nvidia_driver": "580.65.06", "cuda": "13.0"}


def test_gpu_without_a_readable_nvidia_smi_says_unknown(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi at all
    assert nvidia_versions(["0"]) == dict.fromkeys(("nvidia_driver", "cuda"),
                                                   "unknown (nvidia-smi not found)")
    _fake_nvidia_smi(tmp_path, monkeypatch, "echo 'NVIDIA-SMI has failed' >&2; exit 9")
    assert nvidia_versions(["0"])["cuda"] == "unknown (nvidia-smi: CalledProcessError)"
    _fake_nvidia_smi(tmp_path, monkeypatch, "echo 'Driver Version : 1.2'")
    assert nvidia_versions(["0"]) == {"nvidia_driver": "1.2",
                                      "cuda": "unknown (no CUDA Version in nvidia-smi -q)"}


def test_a_real_gpu_left_unused_fails_the_pair_with_one_line():
    on_gpu = {"nvidia_driver": "580.65.06", "cuda": "13.0"}
    with pytest.raises(UserError, match=r"keras/resnet50@jax: given GPU 0 \(driver 580.65.06\), but "
                                        "its framework computes on the CPU"):
        require_gpu_in_use("keras/resnet50@jax", ["0"], on_gpu, "cpu")
    require_gpu_in_use("keras/resnet50@jax", ["0"], on_gpu, "cuda:0 (NVIDIA H200)")
    # Ray's fake GPUs (no driver, as in the tests) and CPU actors are left alone
    no_driver = dict.fromkeys(on_gpu, "unknown (nvidia-smi not found)")
    require_gpu_in_use("pytorch/resnet50", ["0"], no_driver, "cpu")
    require_gpu_in_use("pytorch/resnet50", [], dict.fromkeys(on_gpu), "cpu")
