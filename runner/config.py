"""Run configuration: YAML file plus command-line overrides, validated before anything starts."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
)

from runner.catalog import FRAMEWORKS, Framework, Protocol
from runner.errors import UserError, did_you_mean
from runner.frameworks.keras_runtime import DEFAULT_BACKEND, KerasBackend
from runner.frameworks.precision import DEFAULT_PRECISION, Precision


class RunConfig(BaseModel):
    """Everything a run depends on. Field docs double as the config-file reference."""

    model_config = ConfigDict(extra="forbid", strict=True)

    data: str = Field(description="dataset folder (class folders, or flat with `labels`)")
    labels: str | None = Field(None, description="labels file for a flat folder")
    classes: str | None = Field(None, description="full class list, when the data names only some")
    out: str = Field("runs/default", description="run folder: predictions/ and results/")
    # torchvision + keras: every pretrained weight once ("all" adds the 2019 names of 34 of them)
    models: list[str] = Field(
        ["torchvision", "keras"], description="names, framework/name, globs or set names"
    )
    frameworks: list[Framework] = Field(list(FRAMEWORKS), description="frameworks to run")
    weights: Literal["pretrained", "random"] = Field("pretrained", description="random = smoke")
    protocol: Protocol = Field("reference", description="preprocessing protocol")
    batch_size: PositiveInt = Field(64, description="images per forward pass (batched modes)")
    keras_mode: Literal["reproducible", "batched"] = Field(
        "reproducible", description="reproducible = one image per Keras forward pass"
    )
    keras_backends: list[KerasBackend] = Field(
        [DEFAULT_BACKEND], min_length=1,
        description="Keras backends each Keras model runs on: tensorflow, jax, torch (one pair each)",
    )
    precision: Precision = Field(
        DEFAULT_PRECISION, description="fp32 (strict), tf32 (TF32 matrix products) or bf16 compute"
    )
    forward_threads: PositiveInt = Field(
        2, description="reproducible mode: one-image forward passes in flight at once"
    )
    decode_threads: PositiveInt = Field(2, description="images decoded in parallel per shard")
    share_decoding: bool = Field(True, description="decode each image once per recipe, for all models")
    decode_cache_gb: NonNegativeFloat = Field(
        4.0, description="crops kept in the object store for models that start later"
    )
    replicas: PositiveInt | Literal["auto"] = Field(
        "auto", description="most actors one model may get (auto: as many as there are slots)"
    )
    replica_start_seconds: NonNegativeFloat = Field(
        20.0, description="estimated cost of starting a replica; lower adds replicas more eagerly"
    )
    shard_size: PositiveInt = Field(1000, description="images per shard (one Parquet file each)")
    seed: int = Field(0, description="seed for random weights and framework RNGs")
    address: str | None = Field(None, description="Ray cluster address (else RAY_ADDRESS or local)")
    gpus_per_actor: PositiveFloat = Field(1.0, le=1.0, description="GPU share per actor")
    cpus_per_actor: PositiveFloat = Field(1.0, description="CPU share per actor")
    local_cpus: PositiveInt | None = Field(None, description="CPUs for a local Ray (default: all)")
    local_gpus: int | None = Field(
        None, ge=0, description="GPUs a local Ray declares (default: detected; >0 fakes them)"
    )
    dashboard: bool = Field(False, description="start the Ray dashboard (localhost only)")
    overwrite: bool = Field(False, description="replace predictions made with another config")


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
    error = exc.errors()[0]
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        hint = did_you_mean(key, RunConfig.model_fields)
        return f"{source}: unknown config key {key!r}{hint}"
    if error["type"] == "missing":
        return f"{source}: {key!r} is required"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}: {key}: {error['msg']} (got {error.get('input')!r}){more}"
