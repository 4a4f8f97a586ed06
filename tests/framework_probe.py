"""Run framework-side checks in a child process, one framework per process (as in the runner).

    python -m tests.framework_probe FRAMEWORK CHECK [ARGS_JSON]

prints one JSON document on the last line of stdout. Tests call it through `probe()` in
tests/helpers.py, so the pytest process itself never imports PyTorch or TensorFlow.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def build_and_predict(framework: str, names: list[str]) -> dict:
    """Build each model with random weights; predict one random image of its input size.
    Also reports the built model's parameter count and input size. A model that fails to
    build or predict gets {"error": ...} and the others still run."""
    import gc

    from runner.catalog import load_catalog

    catalog = load_catalog()
    results = {}
    for name in names:
        try:
            results[name] = _build_and_predict_one(framework, catalog.get(f"{framework}/{name}"))
        except Exception as exc:
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        if framework == "keras":
            import keras

            keras.backend.clear_session()
        gc.collect()
    return results


def _build_and_predict_one(framework: str, spec) -> dict:
    from runner.frameworks import load_adapter

    started = time.perf_counter()
    adapter = load_adapter(spec, weights="random", seed=0, threads=2)
    built = time.perf_counter() - started
    size = spec.recipe("reference").output_size
    image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    probs = adapter.predict(image)
    return {
        "shape": list(probs.shape),
        "sum": float(probs.sum()),
        "min": float(probs.min()),
        "build_seconds": built,
        "seconds": time.perf_counter() - started,
        **_architecture(framework, adapter.model),
    }


def _architecture(framework: str, model) -> dict:
    if framework == "pytorch":
        return {"params": sum(p.numel() for p in model.parameters())}
    first = [type(layer).__name__ for layer in model.layers[:4]]
    return {
        "params": int(model.count_params()),
        "input_size": model.input_shape[1],  # None: the application accepts any size
        # EfficientNet(V2), ConvNeXt and MobileNetV3 open with Rescaling/Normalization layers
        "in_model_preprocessing": bool({"Rescaling", "Normalization"} & set(first)),
    }


def keras_weight_files(framework: str, names: list[str]) -> dict:
    """The cache file name keras.applications asks for, per Keras entry."""
    from runner.catalog import load_catalog

    catalog = load_catalog()
    return {name: _keras_requested_file(catalog.get(f"keras/{name}").builder) for name in names}


class _StopDownload(Exception):
    pass


def _keras_requested_file(builder_name: str) -> str:
    """The cache file name keras.applications asks get_file for (the download is stopped)."""
    import keras
    from keras.src.utils import file_utils

    requested = []

    def record(fname=None, origin=None, *args, **kwargs):
        requested.append(fname)
        raise _StopDownload

    original, file_utils.get_file = file_utils.get_file, record
    try:
        getattr(keras.applications, builder_name)(weights="imagenet")
    except _StopDownload:
        pass
    finally:
        file_utils.get_file = original
    return requested[0]


def load_pretrained(framework: str, names: list[str]) -> dict:
    """Try to load pretrained weights; report the error message (for the offline path)."""
    from runner.catalog import load_catalog
    from runner.errors import WeightsUnavailable
    from runner.frameworks import load_adapter

    catalog = load_catalog()
    out = {}
    for name in names:
        try:
            load_adapter(catalog.get(f"{framework}/{name}"), "pretrained", 0, 1)
            out[name] = {"error": None}
        except WeightsUnavailable as exc:
            out[name] = {"error": str(exc), "type": type(exc).__name__}
    return out


def recipe_fidelity(framework: str, args: dict) -> dict:
    """Largest |difference| between kpbench's uint8 crop and the framework's own pipeline,
    per recipe, over the given image files."""
    from runner.data.recipes import Recipe, decode_rgb

    out = {}
    for name, recipe_fields in args["recipes"].items():
        recipe = Recipe(**recipe_fields)
        worst = 0
        for path in args["images"]:
            ours = recipe.apply(decode_rgb(path)).astype(np.int16)
            theirs = _framework_crop(framework, recipe, path).astype(np.int16)
            assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
            worst = max(worst, int(np.abs(ours - theirs).max()))
        out[name] = worst
    return out


def _framework_crop(framework: str, recipe, path: str) -> np.ndarray:
    if framework == "pytorch" and recipe.resizer != "pil":  # torchvision's tensor transforms
        from PIL import Image
        from torchvision.transforms import v2

        pipeline = v2.Compose([
            v2.PILToTensor(),
            v2.Resize(recipe.size, v2.InterpolationMode(recipe.interpolation),
                      antialias=recipe.resizer == "tensor"),
            v2.CenterCrop(recipe.crop),
        ])
        with Image.open(path) as image:
            return pipeline(image.convert("RGB")).permute(1, 2, 0).numpy()
    if framework == "pytorch":
        from torchvision import transforms

        pipeline = transforms.Compose([
            transforms.Resize(recipe.size, transforms.InterpolationMode(recipe.interpolation)),
            transforms.CenterCrop(recipe.crop),
        ])
        from PIL import Image

        with Image.open(path) as image:
            return np.asarray(pipeline(image.convert("RGB")))
    import keras

    image = keras.utils.load_img(path, target_size=(recipe.size, recipe.size),
                                 interpolation=recipe.interpolation)
    return keras.utils.img_to_array(image, dtype="uint8")


def keras_reproducibility(framework: str, args: dict) -> dict:
    """kpbench's modes against `model.predict` on each image alone (the 2019 way)."""
    from runner.catalog import load_catalog
    from runner.frameworks import forward, load_adapter

    spec = load_catalog().get(f"keras/{args['model']}")
    adapter = load_adapter(spec, weights="random", seed=0, threads=0, backend=args.get("backend"))
    from runner.frameworks.keras import preprocess  # Keras is loaded now, on its backend

    size = spec.input_size
    images = np.random.default_rng(1).integers(0, 256, (args["images"], size, size, 3), np.uint8)
    x = preprocess(images, spec.preprocess)
    one_by_one = np.concatenate([adapter.model.predict(x[i : i + 1], verbose=0) for i in range(len(x))])
    reproducible = forward(adapter, images, forward_batch=1, forward_threads=2)
    batched = forward(adapter, images, forward_batch=len(images), forward_threads=1)
    return {
        "reproducible_identical": bool(np.array_equal(reproducible, one_by_one)),
        "batched_max_diff": float(np.abs(batched - one_by_one).max()),
        "top1_spread": int(len(set(one_by_one.argmax(axis=1).tolist()))),
        "max_prob": float(one_by_one.max()),
    }


def precision_switches(framework: str, args: dict) -> dict:
    """Per precision: what kpbench's switches report and what the framework itself then says;
    and bf16 inference on a few images (rows must still sum to 1)."""
    from runner.catalog import load_catalog
    from runner.frameworks import load_adapter, precision

    spec = load_catalog().get(f"{framework}/{args['model']}")
    adapter = load_adapter(spec, "random", 0, 1, "bf16", args.get("backend"))
    images = np.random.default_rng(0).integers(0, 256, (2, spec.input_size, spec.input_size, 3), np.uint8)
    probs = adapter.predict(images)
    out = {"bf16_run": {"provenance": adapter.provenance().precision_in_effect,
                        "shape": list(probs.shape), "row_sums": probs.sum(axis=1).tolist()}}
    for setting in precision.PRECISIONS:
        switch = precision.set_torch if framework == "pytorch" else precision.set_keras
        out[setting] = {"reported": switch(setting), "framework": _framework_precision(framework)}
    return out


def _framework_precision(framework: str) -> dict:
    """The framework's own view of its precision state, read without kpbench's code."""
    import sys

    state = {}
    if "torch" in sys.modules:
        import torch

        state["allow_tf32"] = [torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32]
        state["matmul"] = torch.get_float32_matmul_precision()
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        state["tf32"] = tf.config.experimental.tensor_float_32_execution_enabled()
    if "jax" in sys.modules and framework == "keras":
        import jax

        state["jax_matmul"] = jax.config.jax_default_matmul_precision
    if framework == "keras":
        import keras

        state["policy"] = keras.mixed_precision.global_policy().name
    return state


def save_random_checkpoint(framework: str, names: list[str]) -> dict:
    """Stand-in 'pretrained' weights: a random state dict saved where torchvision caches the
    real file (the hash in its name is only checked on download). For offline tests."""
    import torch

    from runner.catalog import load_catalog
    from runner.frameworks import pytorch

    out = {}
    for name in names:
        spec = load_catalog().get(f"pytorch/{name}")
        path = pytorch.cached_weights_path(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(pytorch.build(spec, pretrained=False).state_dict(), path)
        out[name] = str(path)
    return out


def save_keras_checkpoint(framework: str, args: dict) -> dict:
    """Stand-in 'pretrained' Keras weights: a model's random weights written as the legacy h5
    file keras.applications reads from $KERAS_HOME/models (MobileNets: no hash is checked)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    from runner.catalog import load_catalog
    from runner.frameworks import keras as keras_adapter
    from runner.frameworks import load_adapter

    spec = load_catalog().get(f"keras/{args['model']}")
    model = load_adapter(spec, "random", 0, 1).model
    path = keras_adapter.cached_weights_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, model)
    return {"path": str(path), "weights_checksum": _keras_checksum(model)}


def keras_pretrained_predictions(framework: str, args: dict) -> dict:
    """Load the cached pretrained file on a backend; predict a few generated images."""
    from runner.catalog import load_catalog
    from runner.frameworks import load_adapter

    spec = load_catalog().get(f"keras/{args['model']}")
    adapter = load_adapter(spec, "pretrained", 0, 1, backend=args["backend"])
    size = spec.input_size
    images = np.random.default_rng(0).integers(0, 256, (args["images"], size, size, 3), np.uint8)
    return {"probs": adapter.predict(images).tolist(), "weights_file": adapter.provenance().weights_file,
            "weights_checksum": _keras_checksum(adapter.model)}


def _keras_checksum(model) -> float:
    return float(sum(np.abs(np.asarray(weight, np.float64)).sum() for weight in model.get_weights()))


def torch_preprocess_fidelity(framework: str, args: dict) -> dict:
    """Per entry: the largest |difference| between the tensor kpbench feeds the model (the
    entry's reference recipe, then the adapter's normalisation) and `weights.transforms()`
    applied to the same PIL image, over the given image files."""
    from torchvision.models import get_weight

    from runner.catalog import load_catalog
    from runner.data.recipes import decode_rgb

    catalog = load_catalog()
    images = [decode_rgb(path) for path in args["images"]]
    out = {}
    for name in args["entries"]:
        spec = catalog.get(f"pytorch/{name}")
        out[name] = _worst_input_difference(spec, get_weight(spec.weights_id).transforms(), images)
    return out


def _worst_input_difference(spec, transform, images) -> float:
    """The largest |difference| between the tensor kpbench feeds the model (the entry's reference
    recipe, then the PyTorch adapter's normalisation) and `transform` of the same PIL images."""
    import torch

    from runner.frameworks.pytorch import to_input

    recipe, worst = spec.recipe("reference"), 0.0
    for image in images:
        ours = to_input(recipe.apply(image)[None].copy(), spec.mean, spec.std)[0]
        theirs = transform(image)
        assert ours.shape == theirs.shape, (spec.name, ours.shape, theirs.shape)
        worst = max(worst, float(torch.abs(ours - theirs).max()))
    return worst


def keras_preprocess_fidelity(framework: str, args: dict) -> dict:
    """Per entry: the largest |difference| between kpbench's Keras input (the adapter's
    `preprocess` in the entry's mode) and the application module's own `preprocess_input`
    on the same array (every 0..255 value, in every channel)."""
    import importlib

    import keras

    from runner.catalog import load_catalog
    from runner.frameworks.keras import preprocess

    catalog = load_catalog()
    pixels = np.stack([np.arange(256, dtype=np.uint8)] * 3, axis=-1)  # every value, 3 channels
    batch = np.stack([pixels.reshape(16, 16, 3), pixels[::-1].reshape(16, 16, 3)])
    out = {}
    for name in args["entries"]:
        spec = catalog.get(f"keras/{name}")
        module_name = getattr(keras.applications, spec.builder).__module__.rsplit(".", 1)[-1]
        module = importlib.import_module(f"keras.applications.{module_name}")
        ours = preprocess(batch, spec.preprocess)
        theirs = np.asarray(module.preprocess_input(batch.astype(np.float32)))
        assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
        out[name] = {"module": module_name, "max_diff": float(np.abs(ours - theirs).max())}
    return out


def torchvision_catalog(framework: str, args) -> dict:
    """What the installed torchvision gives: the generated catalog text and every
    classification weight's name."""
    from runner.catalog import generate

    return {"yaml": generate.render(), "weights": generate.all_weight_names()}


def timm_catalog(framework: str, args: dict) -> dict:
    """The timm catalog text the installed timm gives, with the given results file."""
    from pathlib import Path

    from runner.catalog import timm

    return {"yaml": timm.render(Path(args["results"]))}


def timm_preprocess_fidelity(framework: str, args: dict) -> dict:
    """Per entry: the largest |difference| between kpbench's input tensor (the entry's reference
    recipe, then the adapter's normalisation) and timm's own eval transform,
    `create_transform(**resolve_data_config(pretrained_cfg=...))` (what resolve_data_config({},
    model=m) gives, without building m), on the same PIL images."""
    import torch
    from timm.data import create_transform, resolve_data_config
    from timm.models import get_pretrained_cfg

    from runner.catalog import load_catalog
    from runner.data.recipes import decode_rgb

    torch.set_num_threads(1)  # many small tensors: threads only contend
    catalog = load_catalog()
    images = [decode_rgb(path) for path in args["images"]]
    out = {}
    for name in args["entries"]:
        config = resolve_data_config(pretrained_cfg=get_pretrained_cfg(name).to_dict())
        out[name] = _worst_input_difference(catalog.get(f"pytorch/{name}"),
                                            create_transform(**config), images)
    return out


def timm_weights_offline(framework: str, args: dict) -> dict:
    """With HF_HOME pointing at an empty cache and HF_HUB_OFFLINE=1: load an entry's pretrained
    weights (the error), then put a stand-in in the Hugging Face cache layout (a random state
    dict as model.safetensors under models--org--repo/snapshots/<rev>, with refs/main) and load
    again through the adapter. Returns the error and checksums of the saved and loaded weights."""
    from safetensors.torch import save_file

    from runner.catalog import load_catalog
    from runner.errors import WeightsUnavailable
    from runner.frameworks import load_adapter, timm_zoo

    spec = load_catalog().get(f"pytorch/{args['name']}")
    try:
        load_adapter(spec, "pretrained", 0, 1)
        error = None
    except WeightsUnavailable as exc:
        error = str(exc)
    folder, revision = timm_zoo.cached_weights_path(spec), "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(revision)
    (folder / "snapshots" / revision).mkdir(parents=True)
    state = timm_zoo.build(spec, pretrained=False).state_dict()
    save_file(state, folder / "snapshots" / revision / "model.safetensors")
    loaded = load_adapter(spec, "pretrained", 0, 1).model.state_dict()
    return {"error": error, "saved": _checksum(state), "loaded": _checksum(loaded)}


def _checksum(state: dict) -> float:
    return float(sum(tensor.double().sum() for tensor in state.values() if tensor.is_floating_point()))


def keras_applications(framework: str, args) -> list[str]:
    """Every model builder keras.applications exports."""
    import keras

    return sorted(name for name in dir(keras.applications)
                  if name[:1].isupper() and callable(getattr(keras.applications, name)))


def execution_settings(framework: str, args: dict) -> dict:
    """Per setting (precision, channels_last, torch_compile): the largest probability difference
    to strict fp32 eager and the top-1 agreement on generated crops, or the one-line error."""
    from runner.catalog import load_catalog
    from runner.data.sample import synthetic_crops
    from runner.frameworks import load_adapter

    spec = load_catalog().get(args["model"])
    images = synthetic_crops(4, spec.recipe("reference").output_size, seed=2)
    reference = load_adapter(spec, "random", 0, 1).predict(images)
    results = {}
    for name, settings in args["settings"].items():
        try:
            probs = load_adapter(spec, "random", 0, 1, **settings).predict(images)
        except Exception as exc:
            results[name] = {"error": str(exc)}
            continue
        results[name] = {"max_diff": float(np.abs(probs - reference).max()),
                         "top1_same": float((probs.argmax(1) == reference.argmax(1)).mean())}
    return results


def input_conversion(framework: str, args: dict) -> dict:
    """Per batch size: whether kpbench's in-place CPU input (new, then twice into one reused
    buffer) has the values, strides and dtype of the plain steps (uint8 -> float, /255,
    torchvision's normalize) on read-only crops, whether the buffer was used, and whether the
    batch ends in a partial step."""
    import torch
    from torchvision.transforms.functional import normalize

    from runner.frameworks.pytorch import PIXELS_PER_STEP, to_input

    mean, std, side = args["mean"], args["std"], args["side"]
    results = {}
    for batch in args["batches"]:
        crops = np.random.default_rng(batch).integers(0, 256, (batch, side, side + 2, 3), dtype=np.uint8)
        crops.flags.writeable = False  # as a view of Ray's object store
        plain = normalize(torch.tensor(crops).permute(0, 3, 1, 2).float().div(255), mean, std)
        buffer = torch.full((max(args["batches"]) + 1, side, side + 2, 3), float("nan"))
        ours = [to_input(crops, mean, std), to_input(crops, mean, std, buffer=buffer),
                to_input(crops, mean, std, buffer=buffer)]
        results[str(batch)] = {
            "equal": [bool(torch.equal(x, plain)) for x in ours],
            "same_strides": [x.stride() == plain.stride() and x.dtype == plain.dtype for x in ours],
            "buffer_used": ours[-1].data_ptr() == buffer.data_ptr(),
            "partial_last_step": crops[..., 0].size % PIXELS_PER_STEP != 0,
        }
    return results


CHECKS = {
    "input_conversion": input_conversion,
    "execution_settings": execution_settings,
    "build_and_predict": build_and_predict,
    "keras_weight_files": keras_weight_files,
    "load_pretrained": load_pretrained,
    "recipe_fidelity": recipe_fidelity,
    "keras_reproducibility": keras_reproducibility,
    "precision_switches": precision_switches,
    "save_random_checkpoint": save_random_checkpoint,
    "save_keras_checkpoint": save_keras_checkpoint,
    "keras_pretrained_predictions": keras_pretrained_predictions,
    "torch_preprocess_fidelity": torch_preprocess_fidelity,
    "keras_preprocess_fidelity": keras_preprocess_fidelity,
    "torchvision_catalog": torchvision_catalog,
    "keras_applications": keras_applications,
    "timm_catalog": timm_catalog,
    "timm_preprocess_fidelity": timm_preprocess_fidelity,
    "timm_weights_offline": timm_weights_offline,
}

if __name__ == "__main__":
    framework, check = sys.argv[1], sys.argv[2]
    args = json.loads(sys.argv[3]) if len(sys.argv) > 3 else []
    result = CHECKS[check](framework, args)
    loaded = sorted(m for m in ("torch", "tensorflow") if m in sys.modules)
    print(json.dumps({"result": result, "frameworks_loaded": loaded}))
