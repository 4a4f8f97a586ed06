"""Stand-ins for what real GPUs do (tests/test_device_faults.py, faults.yaml): tiny models that
raise the exception types PyTorch raises on a GPU, on this machine without one. Ray's fake GPUs
set CUDA_VISIBLE_DEVICES per actor, which is how a model tells which "GPU" it runs on."""

import os
from pathlib import Path

import torch

BAD_GPU = "1"


class _Tiny(torch.nn.Module):
    def __init__(self, check):
        super().__init__()
        self.check = check
        self.head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                        torch.nn.Linear(3, 1000))

    def forward(self, x):
        self.check(x)
        return self.head(x)


def _oom_above_8(x):
    if x.shape[0] > 8:
        raise torch.cuda.OutOfMemoryError(
            f"CUDA out of memory. Tried to allocate {x.shape[0] * 0.25:.2f} GiB (GPU 0; 79.15 GiB "
            "total capacity; 78.90 GiB already allocated)")


def _faults_on_bad_gpu(x):
    if os.environ.get("CUDA_VISIBLE_DEVICES") == BAD_GPU:
        raise torch.AcceleratorError("CUDA error: an illegal memory access was encountered\n"
                                     "CUDA kernel errors might be asynchronously reported")


def oom_above_8():
    """Runs out of device memory for batches of more than 8 images."""
    return _Tiny(_oom_above_8)


def faults_on_gpu_1():
    """Fine on any GPU but the fake GPU 1, where every forward pass meets an illegal address."""
    return _Tiny(_faults_on_bad_gpu)


def fails_second_load():
    """Loads once; the second load in a run (a restarted actor) fails, as a checkpoint on a
    node-local disk that went away would. The count lives in $KPBENCH_FAULT_DIR."""
    loads = Path(os.environ["KPBENCH_FAULT_DIR"]) / "fails_second_load.loads"
    count = len(loads.read_text().splitlines()) if loads.exists() else 0
    loads.write_text("load\n" * (count + 1))
    if count >= 1:
        raise RuntimeError("checkpoint /local/ckpt.pt vanished")
    return _Tiny(lambda x: None)


def slow():
    """No fault: a quarter of a second per forward pass, so that a run lasts long enough to lose
    a node in the middle of it."""
    import time

    return _Tiny(lambda x: time.sleep(0.25))
