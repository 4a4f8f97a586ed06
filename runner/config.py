"""Run configuration: YAML file plus command-line overrides, validated before anything starts.

`RunConfig` is the one place a run option is defined: its fields' types, defaults and
descriptions also make the `kpbench run` flags and docs/configuration.md (runner/options.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from runner.catalog import FRAMEWORKS, SET_NAMES, Framework, Protocol, Weights
from runner.data.shift import DATASETS
from runner.errors import UserError, did_you_mean
from runner.frameworks.keras_runtime import DEFAULT_BACKEND, KerasBackend
from runner.frameworks.precision import DEFAULT_PRECISION, Precision
from runner.plan.variants import Variant, parse_variants
from runner.run.packing import GpuShares, Share

if TYPE_CHECKING:  # a Literal made from the data is a str to a type checker
    DatasetName = str
else:
    DatasetName = Literal[tuple(DATASETS)]


@dataclass(frozen=True)
class OptionHints:
    """What a field's type and default do not say about its flag and its reference row."""

    unset: str = "none"  # what a None default means ("detected", "all", ...)
    metavar: str | None = None  # the value's name in --help, when the flag's is not apt
    parse: Callable[[str], object] | None = None  # argparse type, when the field's does not fit
    repeatable: bool = False  # a list flag that may also be given several times


def count_or_auto(value: str) -> int | str:
    """'auto' or a whole number (argparse names this function in its error message)."""
    return value if value == "auto" else int(value)


def share_or_shares(value: str) -> float | dict[str, float]:
    """0.25, or per kind: pytorch=0.5,keras_reproducible=0.2 (argparse names this function)."""
    if "=" not in value:
        return float(value)
    pairs = [item.split("=", 1) for item in value.replace(",", " ").split()]
    return {key.strip(): float(number) for key, number in pairs}


class RunConfig(BaseModel):
    """Everything a run depends on. Keys are `kpbench run`'s long flags with `_`; flags override
    the file. Descriptions are the flags' help and the reference's text (backticks mark code)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    data: str = Field(description=(
        "dataset: class folders (`ROOT/<wnid>/*.JPEG`), a flat folder of images plus a labels "
        "file, or the shards `kpbench pack` wrote, at a path or a URI such as `s3://...`"
    ))
    labels: str | None = Field(None, description=(
        "labels of a flat folder: a `file,label` or `file,wnid` CSV, or the devkit's "
        "`ILSVRC2012_validation_ground_truth.txt` with `meta.mat` beside it"
    ))
    classes: str | None = Field(None, description=(
        "full class list, when the data names only some classes: `imagenet_class_index.json` "
        "or one WordNet id per line"
    ))
    dataset: Annotated[DatasetName | None, OptionHints(
        unset="recognised from the class folders, else imagenet", metavar="NAME")] = Field(
        None, description="which test set the data is: ImageNet, or a distribution-shift set "
        "(docs/accuracy.md)")
    subset_classes: str | None = Field(None, description=(
        "the 200 classes of ImageNet-A or -R (a CSV with a `wnid` column, or one WordNet id per "
        "line), when timm is not installed to give them"
    ))
    out: str = Field("runs/default", description=(
        "run folder, a local path or an object-store URI (`s3://bucket/prefix`, `gs://...`): "
        "predictions/ and results/ go there (docs/object-storage.md)"
    ))
    s3_endpoint: Annotated[str | None, OptionHints(unset="`AWS_ENDPOINT_URL`, else AWS",
                                                   metavar="URL")] = Field(
        None, pattern=r"^https?://", description=(
            "S3-compatible store (MinIO, Ceph, ...) holding `s3://` run folders, such as "
            "`http://minio:9000`; credentials still come from the standard chain"
        ))
    models: Annotated[list[str], OptionHints(metavar="MODEL")] = Field(
        ["torchvision", "keras"], description=(
            "models to run: names, framework/name, globs (`'resnet*'`, `'*.IMAGENET1K_V2'`) or "
            f"sets ({', '.join(SET_NAMES)}); torchvision and keras hold every weight once, all "
            "also repeats 34 of them under their 2019 names"
        ))
    frameworks: list[Framework] = Field(list(FRAMEWORKS), description="frameworks to run")
    catalog: Annotated[list[str], OptionHints(metavar="FILE.yaml", repeatable=True)] = Field(
        [], description=(
            "your own models: catalog YAML files whose entries join the built-in ones "
            "(docs/models.md); their builders are code you chose to run"
        ))
    weights: Weights = Field("pretrained", description=(
        "pretrained, or random: fixed-seed random weights for smoke runs and tests"
    ))
    protocol: Protocol = Field("reference", description=(
        "preprocessing: reference, each model's documented evaluation; northcutt2019, exactly "
        "what the 2019 benchmark's scripts did"
    ))
    batch_size: Annotated[PositiveInt | Literal["auto"], OptionHints(parse=count_or_auto)] = Field(
        64, description=(
            "images per forward pass: PyTorch's, and Keras' in batched mode; auto: PyTorch's "
            "largest power of two up to 512 that fits the actor's GPU share, found once per model "
            "(the files' `forward_batch` records the batch used)"
        ))
    keras_mode: Literal["reproducible", "batched"] = Field("reproducible", description=(
        "reproducible: one image per Keras forward pass, bit-identical to `model.predict` on each "
        "image alone; batched: batch_size images per pass"
    ))
    keras_backends: list[KerasBackend] = Field([DEFAULT_BACKEND], min_length=1, description=(
        "Keras backends each Keras model runs on, one pair (actor, folder, table row) each; the "
        "same weight files serve all"
    ))
    precision: Precision = Field(DEFAULT_PRECISION, description=(
        "fp32: strict float32 everywhere; tf32: TF32 matrix products and convolutions on GPUs "
        "that have them; bf16: bfloat16 compute (PyTorch autocast, Keras `mixed_bfloat16`)"
    ))
    variants: Annotated[list[str], OptionHints(metavar="KEY=VALUE[,VALUE]")] = Field(
        [], description=(
            "run each model again under these changes, each a pair beside the unchanged one; "
            "several keys form a grid (`interpolation=bilinear,bicubic crop_pct=0.875,1.0`: 4 "
            "variants). Keys: interpolation, crop_pct, resizer (pil, tensor, tensor-noantialias), "
            "resize (squash), and for PyTorch models precision, channels_last, torch_compile "
            "(docs/sensitivity.md)"
        ))
    forward_threads: Annotated[PositiveInt | None, OptionHints(
        unset="sized to the GPU share: 8 per GPU over its actors, at least 2")] = Field(
        None, description=(
            "reproducible mode: one-image forward passes in flight at once; each is still one "
            "image, so results do not change"
        ))
    decode_threads: Annotated[PositiveInt | Literal["auto"], OptionHints(parse=count_or_auto)] = Field(
        "auto", description="images each node decodes at once: a number, or auto, the node's CPUs "
        "that model actors do not hold (at least 1)")
    share_decoding: bool = Field(True, description=(
        "decode each image once per node and cut every model's recipe from it; off: once per model"
    ))
    decode_cache_gb: Annotated[NonNegativeFloat | None, OptionHints(
        unset="half of Ray's object store (its smallest node's)")] = Field(None, description=(
            "GB of decoded crops held for models that start later or run behind, and decoded ahead "
            "of the models; beyond it an image is decoded again rather than held (Ray spills to "
            "disk beyond its store); 0 shares only between models running side by side"
        ))
    replicas: Annotated[PositiveInt | Literal["auto"], OptionHints(parse=count_or_auto)] = Field(
        "auto", description="most actors one model may get: a number, or auto, as many as there "
        "are slots"
    )
    replica_start_seconds: NonNegativeFloat = Field(20.0, description=(
        "estimated cost of starting a replica; lower adds replicas more eagerly"
    ))
    device_retries: NonNegativeInt = Field(2, description=(
        "times a model restarts away from a device that faulted (an illegal memory access, an "
        "ECC error, a lost GPU) before it fails; the device is left out for the rest of the run"
    ))
    shard_size: PositiveInt = Field(1000, description=(
        "images per shard; each shard is one Parquet file per model"
    ))
    seed: int = Field(0, description="seed for random weights and framework RNGs")
    address: Annotated[str | None, OptionHints(unset="`RAY_ADDRESS`, else a local Ray")] = Field(
        None, description="Ray cluster address"
    )
    device: Literal["auto", "gpu", "cpu"] = Field("auto", description=(
        "auto: GPUs when Ray has them, refusing a CPU run while this machine has GPUs that Ray "
        "does not; gpu: refuse to run without GPUs; cpu: run on CPUs, actors see no GPU"
    ))
    gpu_share: Annotated[Share | GpuShares | None, OptionHints(
        unset="`gpus_per_actor` if given, else `{pytorch: 0.5, keras_reproducible: 0.25, "
              "keras_batched: 0.5}`", metavar="SHARE", parse=share_or_shares)] = Field(
        None, description=(
            "share of one GPU per actor: one number, or per kind (`pytorch`: also timm and your "
            "models; `keras_reproducible`; `keras_batched`), `pytorch=0.5,keras_reproducible=0.2` "
            "on the command line; a GPU holds floor(1/share) actors, each with its share of the "
            "GPU's memory (docs/docker-and-clusters.md)"
        ))
    gpus_per_actor: Annotated[PositiveFloat | None, OptionHints(unset="see `gpu_share`")] = Field(
        None, le=1.0, description="one GPU share for every actor: the single-number `gpu_share`"
    )
    cpus_per_actor: PositiveFloat = Field(1.0, description=(
        "CPUs a CPU actor reserves, also every actor's thread count"
    ))
    cpus_per_gpu_actor: PositiveFloat = Field(0.5, description=(
        "CPUs a GPU actor reserves: what drives its GPU (slots per node are also bounded by its "
        "CPUs over this)"
    ))
    local_cpus: Annotated[PositiveInt | None, OptionHints(unset="all")] = Field(
        None, description="CPUs of a local Ray instance"
    )
    local_gpus: Annotated[int | None, OptionHints(unset="detected")] = Field(
        None, ge=0, description="GPUs a local Ray declares; more than 0 on a CPU machine fakes "
        "them, for tests"
    )
    dashboard: bool = Field(False, description="start the Ray dashboard of a local Ray, on 127.0.0.1 only")
    overwrite: bool = Field(False, description=(
        "replace predictions in the run folder that were made with another config"
    ))
    sanity: bool = Field(True, description=(
        "predict the sanity photos before each model starts on the dataset; off: the `sanity` "
        "column says skipped (docs/models.md)"
    ))
    strict_sanity: bool = Field(False, description=(
        "stop a model that fails the sanity check: status failed, and the run exits 1"
    ))

    @model_validator(mode="after")
    def _strict_needs_the_check(self) -> RunConfig:
        if self.strict_sanity and not self.sanity:
            raise ValueError("strict_sanity needs the sanity check (drop --no-sanity / sanity: false)")
        return self

    @field_validator("variants")
    @classmethod
    def _variants_parse(cls, words: list[str]) -> list[str]:
        try:
            parse_variants(words)
        except ValueError as exc:  # one line naming the bad word, without pydantic's prefix
            raise PydanticCustomError("variant", str(exc)) from None
        return words

    @property
    def variant_grid(self) -> list[Variant]:
        return parse_variants(self.variants)

    @model_validator(mode="after")
    def _one_share_setting(self) -> RunConfig:
        if self.gpu_share is not None and self.gpus_per_actor is not None:
            raise ValueError("give gpu_share or gpus_per_actor, not both")
        return self

    @field_validator("gpu_share", mode="before")
    @classmethod
    def _share_kinds(cls, value: object) -> object:
        """A mapping names known kinds (one clear line, not the union's two errors)."""
        if isinstance(value, dict):
            kinds = GpuShares.model_fields
            unknown = sorted(set(value) - set(kinds))
            if unknown:
                raise ValueError(f"unknown kind {unknown[0]!r}{did_you_mean(unknown[0], kinds)}"
                                 f" (kinds: {', '.join(kinds)})")
            return GpuShares.of(value)
        return value

    @property
    def gpu_shares(self) -> GpuShares:
        """Each kind's share of a GPU, from gpu_share, else gpus_per_actor, else the defaults."""
        return GpuShares.of(self.gpu_share if self.gpu_share is not None
                            else self.gpus_per_actor if self.gpus_per_actor is not None else GpuShares())

    @field_validator("keras_backends")
    @classmethod
    def _distinct(cls, backends: list[str]) -> list[str]:
        if len(set(backends)) != len(backends):
            raise ValueError("each backend at most once")
        return backends


def load_config(path: str | None, overrides: dict) -> RunConfig:
    """Merge a YAML file (if any) with non-None overrides; one clear line on any problem."""
    values: dict = {}
    source = "command line"
    if path:
        file = Path(path)
        if not file.is_file():
            raise UserError(f"config file not found: {path}")
        try:
            values = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(values, dict):
            raise UserError(f"{path}: expected a mapping of config keys")
        source = path
    values.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return RunConfig(**values)
    except ValidationError as exc:
        raise UserError(_one_line(exc, source)) from None


def _one_line(exc: ValidationError, source: str) -> str:
    errors = exc.errors()
    error = errors[0]
    # a value that fits no member of a union (a number or `auto`) fails once per member, each
    # error located at (option, member): one problem of the option
    union = sum(other["loc"][:1] == error["loc"][:1] for other in errors) > 1
    key = str(error["loc"][0]) if union else ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        hint = did_you_mean(key, RunConfig.model_fields)
        return f"{source}: unknown config key {key!r}{hint}"
    if error["type"] == "missing":
        return f"{source}: {key!r} is required"
    if not key:  # a check across keys (RunConfig's model validators)
        return f"{source}: {error['msg'].removeprefix('Value error, ')}"
    others = len({str(other["loc"][:1]) for other in errors}) - 1
    more = f" (and {others} more)" if others else ""
    return f"{source}: {key}: {error['msg']} (got {error.get('input')!r}){more}"
