"""timm models for the PyTorch adapter: architectures by name, weights through the Hugging Face
cache ($HF_HOME/hub; $TORCH_HOME for the few tags timm keeps off the Hub)."""

from __future__ import annotations

import warnings
from pathlib import Path

import timm
import torch
from huggingface_hub import constants

from runner.catalog import ModelSpec
from runner.errors import WeightsUnavailable


def cached_weights_path(spec: ModelSpec) -> Path:
    """The Hub repository's cache folder (or, for a URL, the torch hub checkpoint file)."""
    if "://" in spec.weights_id:
        return Path(torch.hub.get_dir()) / "checkpoints" / spec.weights_id.rsplit("/", 1)[-1]
    return Path(constants.HF_HUB_CACHE) / f"models--{spec.weights_id.replace('/', '--')}"


def build(spec: ModelSpec, pretrained: bool) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # e.g. "Mapping deprecated model name"
        if not pretrained:
            return timm.create_model(spec.builder, pretrained=False)
        try:
            return timm.create_model(spec.name, pretrained=True)
        except OSError as exc:  # offline or unreachable: huggingface_hub's errors are OSErrors
            path = cached_weights_path(spec)
            hub = "://" not in spec.weights_id
            detail = f"Hugging Face repository {spec.weights_id}" if hub else spec.weights_id
            raise WeightsUnavailable(spec.key, path, "HF_HOME" if hub else "TORCH_HOME",
                                     detail) from exc
