"""Users' own models: the entries of --catalog FILE.yaml files, beside the built-in catalog.

    set: mine                       # optional: the set name (default: the file's stem)
    models:
      - framework: pytorch
        name: efficientnet_lite0
        builder: my_models.py:lite0   # path/to/file.py:function (relative to this file)
        input_size: 224               #   or package.module:function
        mean: [0.5, 0.5, 0.5]         # PyTorch: the input normalisation
        std: [0.5, 0.5, 0.5]
        recipes: {reference: {resize: shorter_side, size: 256, crop: 224, interpolation: bicubic}}

Everything else is optional (family, preprocess, num_params, gflops, published, the
northcutt2019 recipe) or derived. Checked here, before Ray starts, each problem one line: a bad
entry, a name or set clash with the catalog, a builder that cannot be found. Nothing of the
builder runs here: its source is read (to find the function and hash the file) but only the
actor calls it. The hash enters the pair key through the spec, so an edited builder does not
resume from the old shards.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from runner.data.recipes import Recipe
from runner.errors import UserError

if TYPE_CHECKING:
    from runner.catalog import Catalog, ModelSpec


class UserEntry(BaseModel):
    """What a user writes for one model; the rest of a ModelSpec is derived."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    framework: str
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")  # a folder name in the run's output
    builder: str = Field(pattern=r"^[^:]+:[A-Za-z_]\w*$")  # file.py:function or module:function
    input_size: PositiveInt
    recipes: dict[str, Recipe]
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    preprocess: str | None = None  # default: torch for PyTorch, none (in the model) for Keras
    family: str | None = None
    num_params: PositiveInt | None = None
    gflops: float | None = None
    published: dict | None = None
    documented_source: str | None = None


def load_user_specs(paths: Sequence[str], catalog: Catalog) -> list[ModelSpec]:
    specs: list[ModelSpec] = []
    taken = {spec.key: f"the catalog's {spec.model_set} set" for spec in catalog.specs}
    for path in paths:
        for spec in _read_file(Path(path), catalog):
            if spec.key in taken:
                raise UserError(f"{path}: {spec.key} is already in {taken[spec.key]}; rename it")
            taken[spec.key] = path
            specs.append(spec)
    return specs


def _read_file(path: Path, catalog: Catalog) -> list[ModelSpec]:
    if not path.is_file():
        raise UserError(f"catalog file not found: {path}")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(document, dict) or not isinstance(document.get("models"), list):
        raise UserError(f"{path}: expected a mapping with a `models` list")
    unknown = set(document) - {"set", "models"}
    if unknown:
        raise UserError(f"{path}: unknown top-level key(s) {sorted(unknown)}; expected set, models")
    model_set = str(document.get("set") or path.stem)
    if model_set in catalog.set_names:
        raise UserError(f"{path}: set {model_set!r} is a built-in set name; choose another")
    return [_spec(path, model_set, entry) for entry in document["models"]]


def _spec(path: Path, model_set: str, fields) -> ModelSpec:
    from runner.catalog import ModelSpec

    name = fields.get("name") if isinstance(fields, dict) else None
    where = f"{path}: model {name!r}" if name else f"{path}: an entry"
    if not isinstance(fields, dict):
        raise UserError(f"{where} is not a mapping")
    try:
        entry = UserEntry(**fields)
        builder, digest = _locate_builder(entry.builder, path.parent)
        derived = {
            "source": "user",
            "builder": builder,
            "builder_sha256": digest,
            "weights_id": "builder",
            "family": entry.family or model_set,
            "preprocess": entry.preprocess or ("torch" if entry.framework == "pytorch" else "none"),
            "published": entry.published or {},
            "documented_source": entry.documented_source or (str(path) if entry.published else None),
            "model_set": model_set,
        }
        return ModelSpec(**{**entry.model_dump(exclude_none=True), **derived})
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        raise UserError(f"{where}: {field + ': ' if field else ''}{message}") from None
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None


def _locate_builder(builder: str, base: Path) -> tuple[str, str]:
    """(the builder with its file made absolute, sha256 of its source), without running it."""
    target, _, function = builder.rpartition(":")
    if target.endswith(".py"):
        file = (base / target).resolve()
        if not file.is_file():
            raise UserError(f"builder file not found: {file}")
        resolved = f"{file}:{function}"
    else:
        try:
            found = importlib.util.find_spec(target)
        except (ImportError, ValueError):
            found = None
        if found is None or not found.origin or not Path(found.origin).is_file():
            raise UserError(f"cannot import builder module {target!r} (is it installed?)")
        file, resolved = Path(found.origin), builder
    source = file.read_bytes()
    if function not in _top_level_names(source, file):
        raise UserError(f"builder {function!r} is not defined in {file}")
    return resolved, hashlib.sha256(source).hexdigest()


def _top_level_names(source: bytes, file: Path) -> set[str]:
    try:
        tree = ast.parse(source, str(file))
    except SyntaxError as exc:
        raise UserError(f"builder file {file} does not parse: line {exc.lineno}: {exc.msg}") from None
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names
