"""The model catalog: every benchmarked (framework, model) as data.

Entries live in YAML files beside this module; this module types and validates
them and answers lookups. Nothing here imports a deep-learning framework.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from runner.data.recipes import Recipe
from runner.errors import UserError, did_you_mean

Framework = Literal["pytorch", "keras"]
FRAMEWORKS: tuple[Framework, ...] = ("pytorch", "keras")
Protocol = Literal["northcutt2019", "reference"]
PROTOCOLS: tuple[Protocol, ...] = ("northcutt2019", "reference")

_CATALOG_FILES = ("northcutt2019.yaml",)


class Published(BaseModel):
    """Published (Acc@1, Acc@5) in percent; None where nobody published one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    northcutt2019: tuple[float, float] | None = None  # the 2019 benchmark's table
    documented: tuple[float, float] | None = None  # the framework's own documentation


class ModelSpec(BaseModel):
    """One pretrained classifier in one framework."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    framework: Framework
    name: str  # the benchmark's name for it, unique within its framework
    family: str  # architecture family, for grouping in reports
    builder: str  # torchvision.models.get_model name, or keras.applications attribute
    weights_id: str  # torchvision weights enum member ("ResNet50_Weights.IMAGENET1K_V1") or "imagenet"
    weights_file: str | None = None  # Keras: the cached file name (torchvision derives it from the enum)
    input_size: PositiveInt  # side of the square input the network expects
    # Input normalisation, in keras.applications.imagenet_utils terms: torch = /255 then ImageNet
    # mean/std (torchvision's ToTensor+Normalize), tf = scale to [-1, 1], caffe = BGR minus mean.
    preprocess: Literal["torch", "tf", "caffe"]
    recipes: dict[Protocol, Recipe]  # decode/resize/crop per protocol
    published: Published = Field(default_factory=Published)
    gflops: float | None = None  # multiply-adds per image, in billions: a cost estimate for planning
    documented_source: str  # where `published.documented` comes from

    @property
    def key(self) -> str:
        return f"{self.framework}/{self.name}"

    def recipe(self, protocol: Protocol) -> Recipe:
        return self.recipes[protocol]


# Named sets accepted wherever a model list is.
SET_NAMES = ("all", "northcutt2019")


class Catalog:
    def __init__(self, specs: Sequence[ModelSpec]):
        self.specs = list(specs)
        self._by_key = {spec.key: spec for spec in self.specs}
        if len(self._by_key) != len(self.specs):
            raise ValueError("duplicate (framework, name) in the model catalog")

    def get(self, key: str) -> ModelSpec:
        """Look up 'framework/name'."""
        try:
            return self._by_key[key]
        except KeyError:
            raise UserError(f"unknown model {key!r}{did_you_mean(key, self._by_key)}") from None

    def select(
        self, patterns: Iterable[str], frameworks: Iterable[str] = FRAMEWORKS
    ) -> list[ModelSpec]:
        """Resolve names, 'framework/name', globs and set names, in catalog order.

        A bare name matches that model in every framework given; a pattern that
        matches nothing is an error with suggestions.
        """
        frameworks = list(frameworks)
        for framework in frameworks:
            if framework not in FRAMEWORKS:
                raise UserError(
                    f"unknown framework {framework!r}{did_you_mean(framework, FRAMEWORKS)}"
                    f"; choose from {', '.join(FRAMEWORKS)}"
                )
        candidates = [spec for spec in self.specs if spec.framework in frameworks]
        chosen: set[str] = set()
        for pattern in patterns:
            matched = [spec.key for spec in candidates if _matches(spec, pattern)]
            if not matched:
                names = sorted({s.name for s in candidates} | {s.key for s in candidates})
                where = f" in {', '.join(frameworks)}" if len(frameworks) < len(FRAMEWORKS) else ""
                raise UserError(
                    f"unknown model {pattern!r}{where}{did_you_mean(pattern, names)}"
                    " (`kpbench models` lists them)"
                )
            chosen.update(matched)
        return [spec for spec in candidates if spec.key in chosen]


def _matches(spec: ModelSpec, pattern: str) -> bool:
    if pattern in SET_NAMES:
        return True  # every entry of this catalog belongs to both sets for now
    target = spec.key if "/" in pattern else spec.name
    return fnmatch.fnmatchcase(target, pattern)


@cache
def load_catalog() -> Catalog:
    specs: list[ModelSpec] = []
    for file_name in _CATALOG_FILES:
        path = Path(__file__).with_name(file_name)
        document = yaml.safe_load(path.read_text())
        defaults = document.get("defaults", {})
        for entry in document["models"]:
            try:
                specs.append(ModelSpec(**{**defaults.get(entry.get("framework"), {}), **entry}))
            except ValidationError as exc:
                raise ValueError(f"{path.name}: bad entry {entry.get('name')!r}: {exc}") from exc
    return Catalog(specs)
