"""A small set of real labelled photographs (photos.yaml): the weights sanity check predicts
them before a model starts on the dataset, and tests build a dataset of them.

Scoring is multi-label, keyed by photo name (not by ILSVRC file names as ImageNet-ReaL is): a
photo counts when any of its accepted classes is in the model's top-5.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Photo:
    name: str  # file name, unique in the set
    path: Path
    accepted: dict[int, str]  # ImageNet class index -> class name; any of them is correct


@cache
def sanity_photos() -> tuple[Photo, ...]:
    """The photos that ship with kpbench and its run-time dependencies."""
    folder = Path(__file__).parent
    document = yaml.safe_load((folder / "photos.yaml").read_text())
    photos = []
    for entry in document["photos"]:
        package = entry.get("package")
        path = _package_folder(package) / entry["sample_data"] if package else folder / entry["file"]
        photos.append(Photo(entry["file"], path, dict(entry["accepted"])))
    return tuple(photos)


def _package_folder(name: str) -> Path:
    """An installed package's folder, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"no installed package {name}")
    return Path(spec.submodule_search_locations[0])


def top5_hits(top5: Mapping[str, Sequence[int]], photos: Sequence[Photo]) -> dict[str, bool]:
    """Per photo: is one of its accepted classes among the predicted classes?"""
    return {photo.name: bool(set(top5[photo.name]) & set(photo.accepted)) for photo in photos}


def write_photo_dataset(out_dir: str | Path, photos: Sequence[Photo]) -> Path:
    """OUT/val/<photo files>, OUT/labels.csv (file,label: the first accepted class) and
    OUT/accepted.json (file -> every accepted class): a dataset `kpbench run` reads."""
    out = Path(out_dir)
    (out / "val").mkdir(parents=True, exist_ok=True)
    for photo in photos:
        shutil.copyfile(photo.path, out / "val" / photo.name)
    rows = ["file,label"] + [f"{photo.name},{next(iter(photo.accepted))}" for photo in photos]
    (out / "labels.csv").write_text("\n".join(rows) + "\n")
    accepted = {photo.name: sorted(photo.accepted) for photo in photos}
    (out / "accepted.json").write_text(json.dumps(accepted, indent=1) + "\n")
    return out
