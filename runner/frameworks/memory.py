"""Each actor's GPU memory policy: its share of the GPU's memory, set before its framework loads.

Several actors share a GPU (runner/run/packing.py); without a policy the first TensorFlow or JAX
actor takes the whole GPU's memory and the next one on that GPU cannot load. Per framework:
- TensorFlow (Keras): memory growth (`TF_FORCE_GPU_ALLOW_GROWTH`), memory as it needs it;
- JAX (Keras): no preallocation, and `XLA_PYTHON_CLIENT_MEM_FRACTION` caps it at the share;
- PyTorch (and Keras on torch): `torch.cuda.set_per_process_memory_fraction(share)`.
Each cap leaves `CONTEXT_HEADROOM` of the share for the process's CUDA context and libraries,
which no allocator counts. An actor without a GPU sees none (`CUDA_VISIBLE_DEVICES=""`).
Nothing here imports a framework until `after_import`, which is called once it is loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

CONTEXT_HEADROOM = 0.1  # of each share: CUDA context, cuDNN/cuBLAS handles, workspaces


@dataclass(frozen=True)
class MemoryPolicy:
    gpu_share: float  # of one GPU; 0: the actor has none
    env: dict[str, str] = field(default_factory=dict)  # set before the framework is imported
    torch_fraction: float | None = None  # PyTorch's allocator cap, set once torch is loaded

    def record(self) -> dict[str, object]:
        """For the provenance: what was set."""
        return {"gpu_share": self.gpu_share, **self.env,
                **({"torch_memory_fraction": self.torch_fraction} if self.torch_fraction else {})}

    def before_import(self) -> None:
        os.environ.update(self.env)

    def after_import(self) -> None:
        if self.torch_fraction is None:
            return
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_per_process_memory_fraction(self.torch_fraction)


def memory_policy(framework: str, backend: str | None, gpu_share: float) -> MemoryPolicy:
    """The policy of an actor of `framework` (Keras: on `backend`) given `gpu_share` of a GPU."""
    if gpu_share <= 0:
        return MemoryPolicy(0.0, {"CUDA_VISIBLE_DEVICES": ""})
    cap = round(gpu_share * (1 - CONTEXT_HEADROOM), 4)
    if framework == "keras" and backend == "tensorflow":
        return MemoryPolicy(gpu_share, {"TF_FORCE_GPU_ALLOW_GROWTH": "true"})
    if framework == "keras" and backend == "jax":
        return MemoryPolicy(gpu_share, {"XLA_PYTHON_CLIENT_PREALLOCATE": "false",
                                        "XLA_PYTHON_CLIENT_MEM_FRACTION": f"{cap:g}"})
    return MemoryPolicy(gpu_share, torch_fraction=cap)  # PyTorch, and Keras on torch
