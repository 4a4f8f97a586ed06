"""Errors that reach the user as one clear line (the CLI prints them without a traceback)."""

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input: unknown model, missing folder, bad config. Printed as `kpbench: error: ...`."""


class WeightsUnavailable(UserError):
    """Pretrained weights are not cached and could not be downloaded."""

    def __init__(self, model_key: str, path, cache_variable: str, detail: str = ""):
        super().__init__(
            f"{model_key}: weights file {path} is not cached and could not be downloaded"
            f"{f' ({detail})' if detail else ''}; run `make weights` on a machine with internet "
            f"and copy {path.parent} here, or point {cache_variable} at a cache that has it"
        )


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choices, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
