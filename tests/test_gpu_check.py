"""bench/gpu_check.py --cpu: the GPU machine's check runs the adapters directly, without Ray or
TensorFlow (neither is installed there)."""

import json
import subprocess
import sys

from .helpers import ROOT


def test_gpu_check_cpu_mode_runs_without_ray_or_tensorflow(tmp_path):
    completed = subprocess.run([sys.executable, "bench/gpu_check.py", "--cpu", "--out", str(tmp_path)],
                               cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["mode"] == "cpu"
    # the whole import graph: what the process had loaded when it finished
    assert "ray" not in report["modules_loaded"] and "tensorflow" not in report["modules_loaded"]
    assert {"torch", "jax", "keras"} <= set(report["modules_loaded"])
    assert report["repeatable"] == dict.fromkeys([
        "pytorch/squeezenet1_1", "keras/mobilenet@jax", "pytorch/squeezenet1_1 fp32, two passes",
        "keras/mobilenet@jax fp32, two passes", "keras/mobilenet@jax in 2 processes",
        "pytorch/squeezenet1_1 in 2 processes"], True)
    assert {(r["model"], r["batch"], r["deterministic"], r["overlapped"]) for r in report["pytorch"]} == {
        ("pytorch/squeezenet1_1", batch, deterministic, overlapped)
        for batch in (2, 4) for deterministic in (True, False) for overlapped in (True, False)}
    assert {r["mode"] for r in report["keras_jax"]} == {"reproducible", "batched"}
    assert all(r["images_per_s"] > 0 for r in report["pytorch"] + report["keras_jax"])
    # decoding on one core with a real recipe; one-image Keras on JAX in processes sharing a GPU,
    # each under its share's memory policy (preallocation off, a memory cap)
    assert report["decode"][0]["images_per_s_per_core"] > 0 and report["decode"][0]["images"] == 4
    (shared,) = report["keras_jax_shared"]
    assert shared["processes"] == 2 and shared["images_per_s_total"] > 0
    assert shared["memory_policy"]["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert {(r["backend"], r["precision"]) for r in report["precision"]} == {
        (None, "tf32"), (None, "bf16"), ("jax", "tf32"), ("jax", "bf16")}
    assert all(0 <= r["top1_agreement"] <= 100 and r["max_logprob_diff"] >= 0 for r in report["precision"])
    bf16 = [r["in_effect"] for r in report["precision"] if r["precision"] == "bf16"]
    assert {"autocast": "bfloat16"}.items() <= bf16[0].items()
    assert bf16[1]["compute_dtype"] == "bfloat16"
    # its figures are plan-calibration samples
    assert {s["source"] for s in report["samples"]} == {"gpu_check"}
    assert len(report["samples"]) == 4
