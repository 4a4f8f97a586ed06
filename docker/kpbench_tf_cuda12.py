"""GPU image only: TensorFlow gets the CUDA 12 cuDNN and NCCL it was built against.

torch's CUDA 13 wheels and tensorflow[and-cuda]'s CUDA 12 wheels install cuDNN and NCCL under the
same file names (site-packages/nvidia/{cudnn,nccl}/lib). The image keeps torch's there (torch's
libraries find them through DT_RPATH) and installs TensorFlow's into $KPBENCH_TF_CUDA_LIBS
(/opt/tf-cuda12). TensorFlow dlopens "libcudnn.so.9" by name, so loading its copies first, by full
path, is enough: the dynamic loader then hands out the already loaded library. A global
LD_LIBRARY_PATH would not do: cuDNN's sub-libraries find each other through DT_RUNPATH, which
LD_LIBRARY_PATH overrides, so torch would end up with a mix of both builds.

kpbench runs one framework per process (the adapters import one each), so the preload happens only
in processes that import tensorflow. Installed by kpbench_tf_cuda12.pth (`import` at start-up).
"""

from __future__ import annotations

import os
import sys

LIBRARIES = ("nvidia/cudnn/lib/libcudnn.so.9", "nvidia/nccl/lib/libnccl.so.2")


class _PreloadBeforeTensorFlow:
    """A meta path finder that finds nothing: it only acts on the first `import tensorflow`."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow":
            sys.meta_path.remove(self)
            preload()
        return None


def preload() -> list[str]:
    import ctypes  # here, not at start-up: the .pth imports this module in every Python process
    import warnings

    root = os.environ.get("KPBENCH_TF_CUDA_LIBS", "/opt/tf-cuda12")
    if "torch" in sys.modules:
        warnings.warn("torch is already imported: TensorFlow will use torch's CUDA 13 cuDNN and NCCL",
                      stacklevel=2)
        return []
    loaded = []
    for relative in LIBRARIES:
        path = os.path.join(root, relative)
        if os.path.exists(path):
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            loaded.append(path)
    return loaded


def install() -> None:
    if not any(isinstance(finder, _PreloadBeforeTensorFlow) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PreloadBeforeTensorFlow())


install()
