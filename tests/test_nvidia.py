"""Provenance of GPU runs: the NVIDIA driver and CUDA versions, read from nvidia-smi."""

import os
import stat

from runner.run.nvidia import nvidia_versions

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
