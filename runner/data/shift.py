"""Distribution-shift test sets: their names, folder layouts and 200-class subsets.

- ImageNet-V2 (three variants, 10,000 images each): class folders named 0..999 by class index.
- ImageNet-Sketch (50,889 images): class folders named by WordNet id, like ImageNet.
- ImageNet-A (7,500) and ImageNet-R (30,000): 200 WordNet-id folders each; a model is scored
  over those 200 classes only (argmax over the subset, as the authors' evaluation code does).
- imagenet-a-clean / imagenet-r-clean: the ImageNet validation images of the same 200 classes,
  scored the same way (timm's baselines for A and R).

Labels are always indices into the 1000 ImageNet classes (sorted WordNet ids), so predictions
of every set compare. The subsets come from timm's class lists (timm/data/_info) when timm is
installed, else from a file (`subset_classes`: a CSV with a `wnid` column, or one id a line).
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from runner.data.records import DatasetIndex
from runner.errors import UserError

_WNID = re.compile(r"^n\d{8}$")
_VALIDATION_FILE = re.compile(r"^ILSVRC2012_val_\d{8}\.")


@dataclass(frozen=True)
class ShiftSet:
    name: str
    layout: str  # "wnid": folders named by WordNet id; "index": folders 0..999
    subset: str | None  # "a" or "r": scored over that 200-class subset
    baseline: str | None  # what timm's top1_diff/rank_diff are against
    timm_results: str | None  # timm's results file for it, when timm publishes one
    images: int  # images in the published set


DATASETS = {s.name: s for s in (
    ShiftSet("imagenet", "wnid", None, None, "results-imagenet.csv", 50_000),
    ShiftSet("imagenet-v2-matched-frequency", "index", None, "imagenet",
             "results-imagenetv2-matched-frequency.csv", 10_000),
    ShiftSet("imagenet-v2-threshold0.7", "index", None, "imagenet", None, 10_000),
    ShiftSet("imagenet-v2-top-images", "index", None, "imagenet", None, 10_000),
    ShiftSet("imagenet-sketch", "wnid", None, "imagenet", "results-sketch.csv", 50_889),
    ShiftSet("imagenet-a", "wnid", "a", "imagenet-a-clean", "results-imagenet-a.csv", 7_500),
    ShiftSet("imagenet-r", "wnid", "r", "imagenet-r-clean", "results-imagenet-r.csv", 30_000),
    ShiftSet("imagenet-a-clean", "wnid", "a", None, "results-imagenet-a-clean.csv", 10_000),
    ShiftSet("imagenet-r-clean", "wnid", "r", None, "results-imagenet-r-clean.csv", 10_000),
)}
DEFAULT = "imagenet"
V2 = tuple(name for name, s in DATASETS.items() if s.layout == "index")


def recognise(root: Path, folders: list[str], requested: str | None,
              subset_file: str | None = None) -> ShiftSet:
    """The set a class-folder tree holds: `requested` when its layout fits, else the one the
    layout shows; a bad or ambiguous layout is a UserError. `subset_file`: the 200 classes of
    the requested A or R set, when timm is not there to give them."""
    if requested is not None and requested not in DATASETS:
        raise UserError(f"unknown dataset {requested!r}; choose from {', '.join(DATASETS)}")
    numbered = bool(folders) and all(name.isdigit() for name in folders)
    if numbered and not all(0 <= int(name) < 1000 and str(int(name)) == name for name in folders):
        raise UserError(f"{root}: class folders named by index must be 0..999 (ImageNet-V2 layout)")
    if requested is None:
        return _detect(root, folders, numbered)
    chosen = DATASETS[requested]
    if numbered != (chosen.layout == "index"):
        expected = "named 0..999 by class index" if numbered is False else "named by WordNet id"
        found = "by class index" if numbered else "otherwise"
        raise UserError(f"--dataset {requested} expects class folders {expected}, but {root} "
                        f"names them {found}")
    if chosen.subset:
        _check_subset_files(root, folders, chosen, subset_wnids(chosen.subset, subset_file))
    return chosen


def named(index: DatasetIndex, chosen: ShiftSet, subset_file: str | None = None) -> DatasetIndex:
    """The index with its set's name, and for A/R-style sets the subset's class indices."""
    if chosen.subset is None:
        return replace(index, name=chosen.name)
    index_of = {wnid: i for i, wnid in enumerate(index.classes)}
    wnids = subset_wnids(chosen.subset, subset_file)
    unknown = [wnid for wnid in wnids if wnid not in index_of]
    if unknown:
        raise UserError(f"{chosen.name}: its class {unknown[0]} is not in the dataset's class list")
    return replace(index, name=chosen.name, subset=tuple(sorted(index_of[w] for w in wnids)))


def _detect(root: Path, folders: list[str], numbered: bool) -> ShiftSet:
    if numbered:
        raise UserError(f"{root} has class folders named by index (the ImageNet-V2 layout): name "
                        f"the variant with --dataset {' | '.join(V2)}")
    wnids = set(folders)
    for letter in ("a", "r"):  # only with timm's lists: a file names the subset of one set
        if len(wnids) == 200 and wnids == set(_timm_list(letter) or ()):
            validation = _validation_files(root, folders)
            name = f"imagenet-{letter}" + ("-clean" if validation else "")
            return DATASETS[name]
    return DATASETS[DEFAULT]  # ImageNet, or part of it (Sketch has the same layout: name it)


def _check_subset_files(root: Path, folders: list[str], chosen: ShiftSet, subset: list[str]) -> None:
    allowed = set(subset)
    outside = [name for name in folders if name not in allowed]
    if outside:
        raise UserError(f"--dataset {chosen.name}: {len(outside)} class folder(s) of {root} are not "
                        f"among its 200 classes, e.g. {outside[0]!r}")
    clean = chosen.name.endswith("-clean")
    if _validation_files(root, folders) != clean:
        other = chosen.name.removesuffix("-clean") if clean else f"{chosen.name}-clean"
        raise UserError(f"--dataset {chosen.name}: {root} holds "
                        f"{'no ' if clean else ''}ImageNet validation files (ILSVRC2012_val_*): "
                        f"did you mean --dataset {other}?")


def _validation_files(root: Path, folders: list[str]) -> bool:
    """Whether the images are ImageNet validation files (a -clean set); a mix is an error."""
    names = [name for folder in folders for name in os.listdir(root / folder)]
    validation = sum(bool(_VALIDATION_FILE.match(name)) for name in names)
    if 0 < validation < len(names):
        raise UserError(f"{root} mixes ImageNet validation files (ILSVRC2012_val_*) with others: "
                        "neither a shift set nor its -clean baseline")
    return bool(names) and validation == len(names)


_TIMM_LISTS = {"1k": "imagenet_synsets.txt", "a": "imagenet_a_synsets.txt", "r": "imagenet_r_synsets.txt"}


def subset_wnids(letter: str, path: str | None = None) -> list[str]:
    """The 200 WordNet ids of ImageNet-A (`a`) or -R (`r`): from `path` (a CSV with a `wnid`
    column, or one id a line) when given, else timm's list."""
    wnids = _read_wnids(path) if path else _timm_list(letter)
    if wnids is None:
        raise UserError(f"ImageNet-{letter.upper()}'s 200 classes come from timm's class lists: "
                        "install timm, or give a file of them with --subset-classes")
    if len(wnids) != 200 or not all(_WNID.match(w) for w in wnids):
        raise UserError(f"{path}: expected the 200 WordNet ids of ImageNet-{letter.upper()}")
    return wnids


def imagenet_wnids() -> list[str] | None:
    """The 1000 ImageNet classes in index order from timm, or None without timm."""
    return _timm_list("1k")


def _timm_list(name: str) -> list[str] | None:
    """One of timm's class lists, found without importing timm (which imports torch: the
    driver loads no framework)."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "data" / "_info" / _TIMM_LISTS[name]
    return path.read_text().split() if path.is_file() else None


def _read_wnids(path: str) -> list[str]:
    file = Path(path)
    if not file.is_file():
        raise UserError(f"class list not found: {path}")
    if file.suffix == ".csv":
        rows = list(csv.DictReader(file.read_text().splitlines()))
        if not rows or "wnid" not in rows[0]:
            raise UserError(f"{path}: a class-list CSV needs a 'wnid' column")
        return [row["wnid"] for row in rows]
    return file.read_text().split()
