"""Users' own models (--catalog): call the entry's builder function inside the actor.

The builder is code the user chose to run; kpbench imports it only here, in the actor's process,
never in the driver. A file builder is loaded from its path under a name derived from its hash, and
must still hash to what the run was planned with (an edit during a run would mix two models).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from runner.catalog import ModelSpec


def call_builder(spec: ModelSpec):
    """The model the entry's builder returns (weights loaded by the builder)."""
    target, _, function = spec.builder.rpartition(":")
    if target.endswith(".py"):
        path = Path(target)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != spec.builder_sha256:
            raise RuntimeError(f"{path} changed after the run was planned; run again")
        name = f"kpbench_user_{digest[:16]}"
        module = sys.modules.get(name)
        if module is None:
            if str(path.parent) not in sys.path:  # its sibling modules import as from a script
                sys.path.append(str(path.parent))
            module_spec = importlib.util.spec_from_file_location(name, path)
            if module_spec is None or module_spec.loader is None:
                raise ImportError(f"cannot load {path} as a module")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    return getattr(module, function)()
