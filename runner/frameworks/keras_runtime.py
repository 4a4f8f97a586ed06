"""Keras' backends (TensorFlow, JAX, PyTorch): choosing one before Keras loads, and per backend
the determinism switches, the compiled one-call inference step and the device in use.

`select_backend` imports nothing; the other functions act on the backend Keras loaded with and
import only that backend's framework.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Literal, get_args

import numpy as np

KerasBackend = Literal["tensorflow", "jax", "torch"]
KERAS_BACKENDS: tuple[KerasBackend, ...] = get_args(KerasBackend)
DEFAULT_BACKEND: KerasBackend = "tensorflow"

# XLA (JAX) reads its flags once, when its backend starts: one intra-op thread where the actor
# has one core, and GPU kernels that give the same result on every run.
_XLA_ONE_THREAD = ("--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1")
_XLA_DETERMINISTIC = ("--xla_gpu_deterministic_ops=true",)


def backend_suffix(backend: str | None) -> str:
    """How a pair's name shows a non-default Keras backend: resnet50 + "@jax"."""
    return f"@{backend}" if backend and backend != DEFAULT_BACKEND else ""


def select_backend(backend: KerasBackend, threads: int) -> None:
    """Make Keras load with `backend`; a process keeps the backend Keras first loaded with."""
    loaded = sys.modules.get("keras")
    if loaded is not None and loaded.backend.backend() != backend:
        raise RuntimeError(f"Keras is already loaded with the {loaded.backend.backend()} backend "
                           f"in this process; {backend} needs a process of its own")
    os.environ["KERAS_BACKEND"] = backend
    if backend == "jax" and "jax" not in sys.modules:
        flags = [*_XLA_DETERMINISTIC, *(_XLA_ONE_THREAD if threads == 1 else ())]
        present = os.environ.get("XLA_FLAGS", "").split()
        os.environ["XLA_FLAGS"] = " ".join(present + [f for f in flags if f not in present])


def current_backend() -> KerasBackend:
    import keras

    return keras.backend.backend()


def configure_determinism(seed: int, threads: int) -> dict:
    """Seed Keras and make the backend's kernels deterministic; `threads` 0: the backend decides."""
    import keras

    backend = current_backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.experimental.enable_op_determinism()
        switches = {"intra_op_threads": threads, "op_determinism": True,
                    "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS")}
    elif backend == "jax":
        switches = {"XLA_FLAGS": os.environ.get("XLA_FLAGS")}
    else:
        import torch

        from runner.frameworks.pytorch import configure_determinism as torch_determinism

        if threads:
            torch.set_num_threads(threads)
        switches = {**torch_determinism(seed), "intra_op_threads": torch.get_num_threads()}
    if backend != "tensorflow" and "tensorflow" not in sys.modules:
        # set_random_seed also seeds TensorFlow (for tf.data) whenever it is installed, which
        # would load it into a JAX or PyTorch process: seconds of start-up and memory for nothing.
        from keras.src.utils import module_utils

        module_utils.tensorflow._available = False
    keras.utils.set_random_seed(seed)  # after TensorFlow's thread setting, which must come first
    return {"seed": seed, **switches}


def compiled_step(model) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """A function from a float32 input batch to float32 probabilities that runs Keras' own
    `predict_step` compiled as `model.predict` compiles it (the same jit_compile setting), so
    a batch of one equals `model.predict` on that image alone, without predict's per-call
    set-up (data adapter, iterator, callbacks); and a description for the provenance."""
    backend, jit = current_backend(), bool(model.jit_compile)
    if backend == "tensorflow":
        import tensorflow as tf

        step = tf.function(lambda x: model.predict_step((x,)), jit_compile=jit, reduce_retracing=True)
        return lambda x: _numpy(step(tf.constant(x))), f"tf.function(predict_step, jit_compile={jit})"
    if backend == "jax":
        import jax

        def stateless(state, x):
            return model.predict_step(state, (x,))[0]

        step = jax.jit(stateless) if jit else stateless
        # The variable lists, built once (model.trainable_variables walks every layer); their
        # arrays are read per call: model.predict donates the arrays it is given, so arrays
        # kept from an earlier call may have been deleted. `_value` is what `.value` returns
        # outside a stateless or autocast scope (as here), without its per-variable scope checks
        # (measured: NASNetLarge's 1,546 variables, 85 ms per image rebuilt, 1 ms read this way).
        variables = (list(model.trainable_variables), list(model.non_trainable_variables))

        def run(x: np.ndarray) -> np.ndarray:
            state = tuple([v._value for v in group] for group in variables)
            return _numpy(step(state, x))

        return run, f"{'jax.jit' if jit else 'eager'}(stateless predict_step)"
    import torch

    step = torch.compile(model.predict_step) if jit else model.predict_step

    def run_torch(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return _numpy(step((x,)))

    return run_torch, f"predict_step under torch.no_grad (jit_compile={jit})"


def _numpy(outputs) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(outputs), dtype=np.float32)


def device() -> str:
    """The device the backend computes on, with the GPU's name where there is one."""
    backend = current_backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        return gpus[0].name if gpus else "cpu"
    if backend == "jax":
        import jax

        first = jax.devices()[0]
        return "cpu" if first.platform == "cpu" else f"{first.platform}:{first.id} ({first.device_kind})"
    import torch

    if torch.cuda.is_available():
        return f"cuda:0 ({torch.cuda.get_device_name(0)})"
    return "cpu"


def libraries() -> dict:
    import keras

    backend = current_backend()
    module = __import__(backend)
    return {"keras": keras.__version__, backend: module.__version__}
