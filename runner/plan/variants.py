"""Variants: a model run again under named changes, each a pair beside its unchanged base pair.

    --variants interpolation=bilinear,bicubic crop_pct=0.875,1.0    # a grid: 4 variants

Each word is `key=value[,value...]`; several words form the grid of all their combinations. A
variant's canonical name lists its changes with the keys sorted (`crop_pct=1.0,interpolation=
bicubic`); that name is its folder (`model=<m>/variant=<name>/`), its `variant` column and part
of its pair_key. Recipe changes apply to every model; the execution settings (and the tensor
resizers, which run torchvision) to PyTorch models only. Nothing here imports a framework.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from runner.data.recipes import RESIZERS, Recipe
from runner.errors import did_you_mean
from runner.frameworks.precision import PRECISIONS, Precision


def _float_in(low: float, high: float) -> Callable[[str], str]:
    def canonical(value: str) -> str:
        try:
            number = float(value)
        except ValueError:
            raise ValueError("not a number") from None
        if not low < number <= high:  # NaN too
            raise ValueError(f"must lie in ({low}, {high}]")
        return repr(number)
    return canonical


def _one_of(*choices: str) -> Callable[[str], str]:
    def canonical(value: str) -> str:
        if value.lower() not in choices:
            raise ValueError(f"one of {', '.join(choices)}")
        return value.lower()
    return canonical


# key -> its values' check (returns the canonical spelling, raises ValueError)
KEYS: dict[str, Callable[[str], str]] = {
    "interpolation": _one_of("nearest", "bilinear", "bicubic"),
    "crop_pct": _float_in(0.0, 2.0),  # timm's rule: resize to floor(crop / crop_pct), then crop
    "resizer": _one_of(*RESIZERS),
    "resize": _one_of("shorter_side", "squash"),
    "precision": _one_of(*PRECISIONS),
    "channels_last": _one_of("true", "false"),
    "torch_compile": _one_of("true", "false"),
}
EXECUTION_KEYS = ("precision", "channels_last", "torch_compile")  # how the model runs


class Variant(BaseModel):
    """One combination of changes, keys sorted."""

    model_config = ConfigDict(frozen=True)

    changes: tuple[tuple[str, str], ...]

    @property
    def name(self) -> str:
        return ",".join(f"{key}={value}" for key, value in self.changes)

    @property
    def folder(self) -> str:
        """The folder name below the model's (`variant=<name>`); names made of checked values
        need no escaping, anything else would be percent-encoded (pyarrow decodes it back)."""
        return "variant=" + quote(self.name, safe="=,._-")

    def get(self, key: str) -> str | None:
        return dict(self.changes).get(key)

    @property
    def precision(self) -> Precision | None:
        return self.get("precision")  # type: ignore[return-value]  # checked against PRECISIONS

    @property
    def channels_last(self) -> bool:
        return self.get("channels_last") == "true"

    @property
    def torch_compile(self) -> bool:
        return self.get("torch_compile") == "true"

    def torch_only(self) -> list[str]:
        """The changes only PyTorch models can run."""
        return [f"{key}={value}" for key, value in self.changes
                if key in EXECUTION_KEYS or (key == "resizer" and value != "pil")]

    def recipe(self, base: Recipe) -> Recipe:
        """The base recipe with this variant's changes. The model input keeps its side: a
        `resize` change resizes to it (squash: no crop, as Keras' load_img; shorter_side: then
        crops it), and `crop_pct` resizes to floor(side / crop_pct), then center-crops the side."""
        fields = base.model_dump()
        side = base.output_size
        if resize := self.get("resize"):
            fields.update(resize=resize, size=side, crop=None if resize == "squash" else side)
        if crop_pct := self.get("crop_pct"):
            fields.update(size=math.floor(side / float(crop_pct)), crop=side)
        for key in ("interpolation", "resizer"):
            if value := self.get(key):
                fields[key] = value
        return Recipe(**fields)


def parse_variants(words: list[str]) -> list[Variant]:
    """The grid the words describe, in the order they give it; ValueError with one line."""
    axes: dict[str, list[str]] = {}
    for word in words:
        key, equals, values = word.partition("=")
        key = key.strip()
        if not equals or not values.strip():
            raise ValueError(f"{word!r}: expected key=value[,value...], e.g. crop_pct=0.875,1.0")
        if key not in KEYS:
            raise ValueError(f"{word!r}: unknown key {key!r}{did_you_mean(key, KEYS)}; keys: "
                             f"{', '.join(KEYS)}")
        if key in axes:
            raise ValueError(f"{key!r} is given twice; list its values once: {key}=a,b")
        axes[key] = []
        for value in (v.strip() for v in values.split(",")):
            try:
                canonical = KEYS[key](value)
            except ValueError as exc:
                raise ValueError(f"{key}={value!r}: {exc}") from None
            if canonical in axes[key]:
                raise ValueError(f"{key}={canonical} is listed twice")
            axes[key].append(canonical)
    if not axes:
        return []  # (the product of no axes would be one variant without changes)
    grid = itertools.product(*([(key, value) for value in values] for key, values in axes.items()))
    return [Variant(changes=tuple(sorted(combination))) for combination in grid]
