"""PyTorch adapter: torchvision builders and weight enums (cached under $TORCH_HOME), timm
(runner/frameworks/timm_zoo.py) and users' builders (runner/frameworks/user.py)."""

from __future__ import annotations

import os
import threading

# torch.load only unpickles tensors and plain containers, whatever a caller asks for.
os.environ.setdefault("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "1")
# cuBLAS needs a fixed workspace for deterministic results (and deterministic algorithms
# refuse to run without one); it must be set before CUDA initialises.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from torchvision.models import get_model, get_weight  # noqa: E402
from torchvision.transforms.functional import normalize  # noqa: E402

from runner.catalog import ModelSpec  # noqa: E402
from runner.errors import WeightsUnavailable  # noqa: E402
from runner.frameworks import AdapterProvenance  # noqa: E402
from runner.frameworks.precision import Precision, set_torch, torch_autocast  # noqa: E402

DEFAULT_BATCH = 64  # what batch_size auto uses without a GPU to fit


def configure_determinism(seed: int) -> dict:
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    # Deterministic mode also fills every new tensor's memory (NaN or the integer maximum) to
    # expose reads of uninitialised memory: an extra kernel per CUDA allocation, and inference
    # reads only what it wrote, so results do not depend on it. Off; determinism stays on.
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]  # a property of its module class
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    return {
        "seed": seed,
        "use_deterministic_algorithms": True,
        "fill_uninitialized_memory": False,
        "cudnn_benchmark": False,
        "cudnn_deterministic": True,
        "CUBLAS_WORKSPACE_CONFIG": os.environ["CUBLAS_WORKSPACE_CONFIG"],
    }


def cached_weights_path(spec: ModelSpec) -> Path:
    if spec.source == "timm":
        from runner.frameworks import timm_zoo

        return timm_zoo.cached_weights_path(spec)
    if spec.source == "user":
        return Path(spec.builder.rpartition(":")[0])  # the builder loads its own weights
    url = get_weight(spec.weights_id).url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def build(spec: ModelSpec, pretrained: bool) -> torch.nn.Module:
    if spec.source == "timm":
        from runner.frameworks import timm_zoo

        return timm_zoo.build(spec, pretrained)
    if spec.source == "user":
        return _build_user(spec, pretrained)
    if not pretrained:
        with warnings.catch_warnings():
            # inception_v3/googlenet warn that init_weights will default to False one day.
            warnings.simplefilter("ignore", FutureWarning)
            return get_model(spec.builder, weights=None, **spec.builder_kwargs)
    path = cached_weights_path(spec)
    try:
        return get_model(spec.builder, weights=get_weight(spec.weights_id))
    except OSError as exc:  # URLError, HTTPError and socket errors are all OSErrors
        if path.exists():
            raise
        raise WeightsUnavailable(spec.key, path, "TORCH_HOME", str(exc)) from None


def _build_user(spec: ModelSpec, pretrained: bool) -> torch.nn.Module:
    """The builder's model; for random weights, every layer re-initialised (seeded by the adapter)."""
    from runner.frameworks.user import call_builder

    model = call_builder(spec)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"the builder returned {type(model).__name__}, not a torch.nn.Module")
    if not pretrained:
        for module in model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    return model


PIXELS_PER_STEP = 16_384  # 192 KiB of float32 pixels: each step's four passes stay in cache


def to_input(batch: np.ndarray | torch.Tensor, mean, std, device: torch.device | None = None,
             buffer: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 NHWC crops -> the float NCHW tensor the model takes: the arithmetic of
    torchvision's ToTensor()/convert_image_dtype + Normalize, as weights.transforms() does it:
    /255, then (x - mean) / std, on `device`.

    On the CPU the same steps run in place, PIXELS_PER_STEP pixels at a time, into `buffer` (a
    float32 NHWC tensor of at least the batch's size, which a caller reuses) or a new tensor:
    one pass over main memory instead of four batch-sized temporaries, and no fresh pages per
    batch. Same bits and the same strides (NCHW view of NHWC memory) as the plain steps."""
    if device is not None and device.type != "cpu" or isinstance(batch, torch.Tensor) and batch.is_cuda:
        x = batch if isinstance(batch, torch.Tensor) else torch.tensor(batch)
        x = x.to(device).permute(0, 3, 1, 2).float().div(255)
        return normalize(x, list(mean), list(std))
    out = torch.empty(batch.shape, dtype=torch.float32) if buffer is None else buffer[: len(batch)]
    with warnings.catch_warnings():
        # a crop batch may be a read-only view of Ray's object store: it is only read here
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        source = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(np.asarray(batch))
    pixels, target = source.reshape(-1, source.shape[-1]), out.view(-1, out.shape[-1])
    mean_t, std_t = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
    for start in range(0, len(target), PIXELS_PER_STEP):
        step = target[start : start + PIXELS_PER_STEP]
        step.copy_(pixels[start : start + PIXELS_PER_STEP])
        step.div_(255).sub_(mean_t).div_(std_t)
    return out.permute(0, 3, 1, 2)


class StagedCopies:
    """Host-to-GPU copies that overlap the forward pass: two pinned host buffers take turns,
    each batch is copied on a side stream with non_blocking=True while the previous batch
    computes, and the compute stream waits only for its own batch's copy."""

    def __init__(self, shape: tuple[int, ...], device: torch.device):
        self.device, self.stream = device, torch.cuda.Stream(device)
        self.buffers = [torch.empty(shape, dtype=torch.uint8).pin_memory() for _ in range(2)]
        self.done: list[torch.cuda.Event | None] = [None, None]  # each buffer's last copy
        self.turn = 0

    def send(self, chunk: np.ndarray) -> tuple[torch.Tensor, torch.cuda.Event]:
        """Start copying `chunk` to the GPU; the device tensor and the event that ends its copy."""
        index, self.turn = self.turn, 1 - self.turn
        if (previous := self.done[index]) is not None:
            previous.synchronize()  # the buffer's copy two batches ago has left it
        host = self.buffers[index][: len(chunk)]
        host.numpy()[...] = chunk
        with torch.cuda.stream(self.stream):
            on_device = host.to(self.device, non_blocking=True)
            copied = torch.cuda.Event()
            copied.record(self.stream)
        self.done[index] = copied
        return on_device, copied


class TorchAdapter:
    def __init__(self, spec: ModelSpec, weights: str, seed: int, threads: int, precision: Precision,
                 channels_last: bool = False, torch_compile: bool = False):
        if spec.preprocess != "torch":
            raise ValueError(f"{spec.key}: PyTorch models take 'torch' preprocessing")
        torch.set_num_threads(threads)
        self.determinism = configure_determinism(seed)
        self.precision = precision
        self.numerics = {**set_torch(precision), "autocast": "bfloat16" if precision == "bf16" else None}
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.spec, self.weights = spec, weights
        self.model = build(spec, pretrained=weights == "pretrained").eval().to(self.device)
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.execution: dict[str, str] = {"memory_format": "channels_last"} if channels_last else {}
        self.inputs = threading.local()  # a reusable CPU input per thread: one-image passes are threaded
        if torch_compile:
            self._compile()

    def _compile(self) -> None:
        """torch.compile, tried at once on one blank image, so that a compiler that cannot run
        here (no C++ compiler on a CPU machine, ...) fails this pair alone with one line."""
        self.model = torch.compile(self.model)  # type: ignore[assignment]  # called as the module is
        side = self.spec.input_size
        try:
            self.predict(np.zeros((1, side, side, 3), np.uint8))
        except Exception as exc:
            lines = [line for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
            raise RuntimeError(f"torch.compile does not run on {self.device.type} here: "
                               f"{type(exc).__name__}: {lines[0][:300]}") from None
        self.execution["inference"] = f"torch.compile (backend inductor, torch {torch.__version__})"

    @torch.inference_mode()
    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self._probabilities(batch).cpu().numpy()

    def _probabilities(self, batch: np.ndarray | torch.Tensor) -> torch.Tensor:
        buffer = self._input_buffer(tuple(batch.shape)) if self.device.type == "cpu" else None
        x = to_input(batch, self.spec.mean, self.spec.std, self.device, buffer)
        if self.channels_last:  # else as to_input leaves it, as before the setting existed
            x = x.contiguous(memory_format=torch.channels_last)
        with torch_autocast(self.precision, self.device.type):
            logits = self.model(x)
        return torch.softmax(logits.float(), dim=1)  # bf16 logits: softmax in fp32

    def _input_buffer(self, shape: tuple[int, ...]) -> torch.Tensor:
        """This thread's float32 NHWC input tensor, grown to the largest batch it has seen."""
        held = getattr(self.inputs, "tensor", None)
        if held is None or held.shape[0] < shape[0] or tuple(held.shape[1:]) != shape[1:]:
            held = self.inputs.tensor = torch.empty(shape, dtype=torch.float32)
        return held

    @torch.inference_mode()
    def predict_batches(self, images: np.ndarray, batch: int) -> np.ndarray:
        """`images`, `batch` per forward pass. On a GPU the next batch's copy overlaps the
        current pass (StagedCopies) and results stay on the GPU until the last pass: one sync
        per call, not one per batch. The same arithmetic per batch as `predict`."""
        starts = range(0, len(images), batch)
        if self.device.type != "cuda":
            return np.concatenate([self.predict(images[i : i + batch]) for i in starts])
        copies = StagedCopies((min(batch, len(images)), *images.shape[1:]), self.device)
        compute = torch.cuda.current_stream(self.device)
        results, upcoming = [], copies.send(images[:batch])
        for start in starts:
            on_device, copied = upcoming
            compute.wait_event(copied)
            on_device.record_stream(compute)  # made on the copy stream, used on this one
            if start + batch < len(images):
                upcoming = copies.send(images[start + batch : start + 2 * batch])
            results.append(self._probabilities(on_device))
        return torch.cat(results).cpu().numpy()

    @torch.inference_mode()
    def largest_batch(self, limit: int) -> int:
        """The largest power of two up to `limit` whose forward pass fits this process's GPU
        memory (its share, runner/frameworks/memory.py); on a CPU, DEFAULT_BATCH."""
        if self.device.type != "cuda":
            return DEFAULT_BATCH
        size = self.spec.input_size
        batch = limit
        while batch > 1:
            try:
                self._probabilities(torch.zeros((batch, size, size, 3), dtype=torch.uint8))
                torch.cuda.synchronize(self.device)
                break
            except torch.OutOfMemoryError:
                batch //= 2
            finally:
                torch.cuda.empty_cache()
        return batch

    def provenance(self) -> AdapterProvenance:
        device = str(self.device)
        if self.device.type == "cuda":
            device += f" ({torch.cuda.get_device_name(self.device)})"
        return AdapterProvenance(
            device=device,
            determinism=self.determinism,
            precision=self.precision,
            precision_in_effect=self.numerics,
            libraries={"torch": torch.__version__, "torchvision": torchvision.__version__,
                       **_source_library(self.spec)},
            weights_file=str(cached_weights_path(self.spec)) if self.weights == "pretrained" else None,
            **self.execution,
        )


def _source_library(spec: ModelSpec) -> dict[str, str]:
    if spec.source != "timm":
        return {}
    import timm

    return {"timm": timm.__version__}


def load(spec: ModelSpec, weights: str, seed: int, threads: int, precision: Precision,
         channels_last: bool = False, torch_compile: bool = False) -> TorchAdapter:
    return TorchAdapter(spec, weights, seed, threads, precision, channels_last, torch_compile)
