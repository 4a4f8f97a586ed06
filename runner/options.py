"""RunConfig's fields as `kpbench run` flags and as docs/configuration.md.

    python -m runner.options    # rewrite docs/configuration.md
    make docs                   # the same

A field's annotation decides its flag: bool -> --key / --no-key, Literal -> choices, int and
float -> that type, a list of Literal values -> one comma-separated word, any other list -> one
or more words; OptionHints on the field fill in what its type cannot say. tests/test_options.py
fails while the committed reference differs from what this module renders.
"""

from __future__ import annotations

import argparse
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from runner.atomic import write_text_atomic
from runner.config import OptionHints, RunConfig

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def comma_list(value: str) -> list[str]:
    """'a,b' or 'a b' (after shell splitting) both give a list."""
    return [item for item in value.replace(",", " ").split() if item]


def _parts(annotation) -> tuple[list, list]:
    """The types a value may have (None and Annotated wrappers removed), and the constraints
    (Gt, Ge, Le, ...) the wrappers carried."""
    if get_origin(annotation) is Annotated:
        inner, *metadata = get_args(annotation)
        kinds, constraints = _parts(inner)
        return kinds, constraints + metadata
    if get_origin(annotation) in (Union, types.UnionType):
        kinds, constraints = [], []
        for member in get_args(annotation):
            if member is not type(None):
                more_kinds, more_constraints = _parts(member)
                kinds, constraints = kinds + more_kinds, constraints + more_constraints
        return kinds, constraints
    return [annotation], []


def _words(kind) -> tuple[str, ...]:
    return get_args(kind) if get_origin(kind) is Literal else ()


_BOUNDS = (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤"))
_TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "text"}


@dataclass(frozen=True)
class RunOption:
    """One RunConfig field: its flag, its help, its row in the reference."""

    key: str
    field: FieldInfo

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    @property
    def hints(self) -> OptionHints:
        found = [item for item in self.field.metadata if isinstance(item, OptionHints)]
        return found[0] if found else OptionHints()

    @property
    def kinds(self) -> list:
        """The types the value may have, None aside: [int] for `int | None`."""
        return _parts(self.field.annotation)[0]

    @property
    def item_words(self) -> tuple[str, ...]:
        """The allowed values of a list of Literal values (a comma-separated flag), else ()."""
        (kind, *_) = self.kinds
        return _words(get_args(kind)[0]) if get_origin(kind) is list else ()

    def argparse_kwargs(self) -> dict:
        """add_argument's keywords; every default is None so that the config file wins."""
        kwargs: dict = {"dest": self.key, "default": None, "help": self.help()}
        if self.hints.metavar:
            kwargs["metavar"] = self.hints.metavar
        style: dict[str, Any] | None
        if self.hints.parse:
            style = {"type": self.hints.parse}
        elif self.hints.repeatable:
            style = {"action": "extend", "nargs": "+"}
        else:
            style = _value_style(self.kinds[0], self.item_words) if len(self.kinds) == 1 else None
        if style is None:
            raise TypeError(f"RunConfig.{self.key}: no flag for {self.field.annotation}; "
                            "give it OptionHints(parse=...)")
        return {**kwargs, **style}

    def help(self) -> str:
        text = (self.field.description or "").replace("`", "")
        if self.item_words:
            text += "; comma-separated, from " + ", ".join(self.item_words)
        default = "required" if self.field.is_required() else f"default: {self.typed_default()}"
        return f"{text} ({default})".replace("%", "%%")

    def typed_default(self) -> str:
        """The default as one types it: 64, pytorch,keras, on (for a boolean flag)."""
        value = self.field.default
        if value is None:
            return self.hints.unset.replace("`", "")
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, list):
            return ("," if self.item_words else " ").join(value) or "none"
        return _number(value)

    def yaml_default(self) -> str:
        """The default as a config file writes it, for the reference."""
        value = self.field.default
        if self.field.is_required():
            return "required"
        if value is None:
            return self.hints.unset
        if isinstance(value, bool):
            return f"`{str(value).lower()}`"
        if isinstance(value, list):
            return f"`[{', '.join(value)}]`"
        return f"`{_number(value)}`"

    def flag_text(self) -> str:
        if self.kinds == [bool]:
            return f"`{self.flag}` / `--no-{self.flag[2:]}`"
        if self.item_words:
            return f"`{self.flag} A,B`"
        if get_origin(self.kinds[0]) is list:
            return f"`{self.flag} A B ...`" + (" (repeatable)" if self.hints.repeatable else "")
        return f"`{self.flag}`"

    def type_text(self) -> str:
        kinds, constraints = _parts(self.field.annotation)
        names = []
        for kind in kinds:
            if _words(kind):
                names.append(" or ".join(f"`{word}`" for word in _words(kind)))
            elif get_origin(kind) is list:
                items = ", ".join(f"`{word}`" for word in self.item_words)
                names.append(f"list of {items or 'text'}")
            elif isinstance(kind, type) and issubclass(kind, BaseModel):
                keys = ", ".join(f"`{key}`" for key in kind.model_fields)
                names.append(f"mapping of {keys} to numbers")
            else:
                names.append(_TYPE_NAMES[kind] + _bounds(constraints + self.field.metadata))
        return ", or ".join(names)


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _value_style(kind, item_words: tuple[str, ...]) -> dict | None:
    """add_argument's keywords for a value of this type (None: no rule for it)."""
    if kind is bool:
        return {"action": argparse.BooleanOptionalAction}
    if _words(kind):
        return {"choices": _words(kind)}
    if kind in (int, float):
        return {"type": kind}
    if kind is str:
        return {}
    if get_origin(kind) is list:
        return {"type": comma_list} if item_words else {"nargs": "+"}
    return None


def _bounds(constraints: list) -> str:
    """' > 0, ≤ 1' from pydantic's Gt/Ge/Lt/Le constraint objects."""
    found = [f"{sign} {getattr(item, name):g}" for name, sign in _BOUNDS for item in constraints
             if getattr(item, name, None) is not None]
    return " " + ", ".join(found) if found else ""


def run_options() -> list[RunOption]:
    return [RunOption(key, field) for key, field in RunConfig.model_fields.items()]


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    for option in run_options():
        parser.add_argument(option.flag, **option.argparse_kwargs())


def add_shared_flag(parser: argparse.ArgumentParser, key: str) -> None:
    """A run option that another command takes too, defined once (here, RunConfig's field)."""
    option = RunOption(key, RunConfig.model_fields[key])
    parser.add_argument(option.flag, **option.argparse_kwargs())


def overrides(args: argparse.Namespace) -> dict:
    """The run flags given on the command line, by config key (None where not given)."""
    return {option.key: getattr(args, option.key) for option in run_options()}


def reference_markdown() -> str:
    lines = [
        "# Configuration",
        "",
        "<!-- Generated from runner/config.py (RunConfig) by `make docs`; do not edit. -->",
        "",
        "A run config is YAML (`kpbench run --config FILE`) whose keys are `kpbench run`'s long "
        "flags with `_`. A flag overrides the file, the file the default. Unknown keys, wrong "
        "types and values out of range are refused with one line before anything starts.",
        "",
        "On the command line a list of free words takes several arguments (`--models resnet18 "
        "'efficientnet_*'`), a list of fixed words one comma-separated argument (`--frameworks "
        "pytorch,keras`); a boolean is `--key` or `--no-key`, and with neither the file decides.",
        "",
        "| key | flag | type | default | meaning |",
        "|---|---|---|---|---|",
    ]
    for option in run_options():
        cells = (f"`{option.key}`", option.flag_text(), option.type_text(),
                 option.yaml_default(), option.field.description or "")
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def write_reference() -> None:
    write_text_atomic(REFERENCE, reference_markdown())
    print(f"wrote {REFERENCE}", file=sys.stderr)


if __name__ == "__main__":
    write_reference()
