"""What went wrong, by kind: the one place that tells a device's faults from a model's.

Pure: it reads exception types by name and messages, and imports no framework, so the driver, the
actors and the tests share it. The kinds decide what the run does (docs/failures-and-resume.md):
- `out_of_memory`: the device ran out of memory (PyTorch `torch.OutOfMemoryError`, TensorFlow
  `ResourceExhaustedError`, JAX/XLA `RESOURCE_EXHAUSTED`): the shard is retried with half the
  batch, down to one image;
- `device_fault`: the device itself failed (CUDA errors such as an illegal memory access, an
  uncorrectable ECC error, a GPU that fell off the bus): the pair restarts away from that device,
  which is excluded from placement for the rest of the run;
- `model_error`: anything else while predicting (a bug, a wrong output shape): the pair fails;
- `load_error`: the model could not load (missing weights, a failing builder): the pair fails;
- `actor_died`: its process kept dying (Ray restarts it up to 3 times first): the pair fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

ErrorKind = Literal["out_of_memory", "device_fault", "model_error", "load_error", "actor_died"]

_OOM_TYPES = {"OutOfMemoryError", "ResourceExhaustedError"}  # torch (also torch.cuda's), TF
_OOM_TEXT = re.compile(r"RESOURCE_EXHAUSTED|CUDA out of memory|CUDA error: out of memory|"
                       r"CUDA_ERROR_OUT_OF_MEMORY|CUBLAS_STATUS_ALLOC_FAILED|OOM when allocating")
_DEVICE_TYPES = {"AcceleratorError"}  # torch >= 2.8 raises CUDA runtime errors as this
# CUDA runtime and driver errors that mean the device, not the program, failed. A device-side
# assert is left out on purpose: it is the model's bug (an index out of range), on any GPU.
_DEVICE_TEXT = re.compile(
    r"illegal memory access|CUDA_ERROR_ILLEGAL_ADDRESS|cudaErrorIllegalAddress|"
    r"uncorrectable ECC error|CUDA_ERROR_ECC_UNCORRECTABLE|cudaErrorECCUncorrectable|"
    r"unspecified launch failure|CUDA_ERROR_LAUNCH_FAILED|"
    r"GPU is lost|fallen off the bus|CUDA_ERROR_DEVICE_UNAVAILABLE|cudaErrorDevicesUnavailable|"
    r"\bXid\b|CUDA_ERROR_HARDWARE_STACK_ERROR|hardware stack error|"
    r"CUDA driver version is insufficient|no CUDA-capable device is detected",
    re.IGNORECASE,
)


def classify_error(exc: BaseException) -> ErrorKind:
    """The kind of an exception raised while a model predicts (a load failure is `load_error`
    whatever it was, unless the device ran out of memory or failed)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    text = f"{exc}"
    if names & _OOM_TYPES or _OOM_TEXT.search(text):
        return "out_of_memory"
    if names & _DEVICE_TYPES or _DEVICE_TEXT.search(text):
        return "device_fault"
    return "model_error"


@dataclass(frozen=True)
class PairError:
    """A failure that crosses Ray as a value (not an exception Ray would wrap): its kind, one
    line for the user, and where it happened."""

    kind: ErrorKind
    message: str
    node_id: str | None = None
    hostname: str | None = None
    gpu_ids: tuple[str, ...] = ()

    @property
    def device(self) -> str:
        """The device in words: 'GPU 1 of host-a', or the host alone without GPUs."""
        where = self.hostname or (self.node_id or "?")[:12]
        return f"GPU {','.join(self.gpu_ids)} of {where}" if self.gpu_ids else where


def error_line(exc: BaseException) -> str:
    """'Type: first line of the message', as the user sees it."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
