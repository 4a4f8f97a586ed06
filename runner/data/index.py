"""Dataset discovery: an ImageNet-style validation folder becomes a sorted, hashed index.

Two layouts:
- class folders: ROOT/<wnid>/<file> (torchvision ImageFolder order: classes, then files, sorted);
- flat folder plus a labels file: `file,label` or `file,wnid` CSV (header optional), or the
  devkit's ILSVRC2012_validation_ground_truth.txt with its meta.mat beside it.

Class indices always follow the sorted order of the full class list (the 1000 WordNet ids for
ImageNet), so a folder holding only some classes still gets the right indices; when the folder
or labels file does not name every class, the list comes from a classes file.

Distribution-shift sets (runner.data.shift) are recognised from the class folders or named:
ImageNet-V2's folders 0..999 are class indices; ImageNet-A/-R name 200 of the classes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from pathlib import Path

from runner.data import shift
from runner.data.packed import is_packed, open_packed
from runner.data.records import DatasetIndex, ImageRecord
from runner.errors import UserError

# torchvision's IMG_EXTENSIONS: the files ImageFolder would pick up.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
NUM_IMAGENET_CLASSES = 1000
_WNID = re.compile(r"^n\d{8}$")


def open_dataset(data: str, labels: str | None = None, classes: str | None = None,
                 dataset: str | None = None, subset_classes: str | None = None) -> DatasetIndex:
    """Index a dataset folder or pack; every problem is a UserError with one clear line.
    `dataset` names the test set (else it is recognised from class folders, or is ImageNet);
    `subset_classes` lists an A/R-style set's 200 classes when timm is not installed."""
    if dataset is not None and dataset not in shift.DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose from {', '.join(shift.DATASETS)}")
    named = shift.DATASETS[dataset or shift.DEFAULT]
    if is_packed(data):
        if labels or classes:
            raise UserError(f"{data} is a packed dataset: its labels and classes are inside it")
        packed = open_packed(data)  # a pack knows the set it was packed from
        return shift.named(packed, shift.DATASETS[dataset or packed.name], subset_classes)
    if "://" in data:
        raise UserError(f"no packed dataset at {data} (expected its kpbench-pack.json)")
    root = Path(data).expanduser().resolve()
    if not root.exists():
        raise UserError(f"data folder not found: {data}")
    if not root.is_dir():
        raise UserError(f"data path is not a folder: {data}")
    class_list = read_class_list(classes) if classes else None
    if labels:
        return shift.named(_index_flat(root, labels, class_list), named, subset_classes)
    folders = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    recognised = shift.recognise(root, folders, dataset, subset_classes) if folders else named
    if recognised.layout == "index":
        index = _index_numbered_folders(root, folders)
    else:
        wnids = shift.imagenet_wnids() if recognised.subset else None
        index = _index_class_folders(root, folders, class_list or wnids)
    return shift.named(index, recognised, subset_classes)


def read_class_list(path: str) -> list[str]:
    """Classes in index order from imagenet_class_index.json, a text file of WordNet ids
    (one per line, sorted on read), or a CSV with a `wnid` column."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"classes file not found: {path}")
    text = file.read_text()
    if file.suffix == ".json":
        try:
            index = json.loads(text)
            wnids = [index[str(i)][0] for i in range(len(index))]
        except (ValueError, KeyError, IndexError, TypeError):
            raise UserError(
                f"{path}: expected imagenet_class_index.json format "
                '{"0": ["n01440764", "tench"], ...}'
            ) from None
    elif file.suffix == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        if not rows or "wnid" not in rows[0]:
            raise UserError(f"{path}: a classes CSV needs a 'wnid' column")
        wnids = sorted({row["wnid"] for row in rows})
    else:
        wnids = sorted({line.strip() for line in text.splitlines() if line.strip()})
    if len(set(wnids)) != len(wnids) or not wnids:
        raise UserError(f"{path}: the class list is empty or repeats a class")
    return wnids


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _index_numbered_folders(root: Path, folders: list[str]) -> DatasetIndex:
    """ImageNet-V2: ROOT/<class index>/<file>, folders and files in sorted (name) order."""
    found = [(f"{folder}/{name}", int(folder))
             for folder in folders for name in sorted(os.listdir(root / folder)) if _is_image(name)]
    return _build(root, "class_index_folders", None, found)


def _index_class_folders(root: Path, folders: list[str], class_list: list[str] | None) -> DatasetIndex:
    if not folders:
        if any(_is_image(name) for name in os.listdir(root)):
            raise UserError(
                f"{root} holds images but no class folders; give their labels with --labels"
            )
        raise UserError(f"no images in {root} (expected class folders ROOT/<wnid>/*.JPEG)")
    if class_list is None:
        if len(folders) != NUM_IMAGENET_CLASSES:
            raise UserError(
                f"{root} has {len(folders)} class folders, not {NUM_IMAGENET_CLASSES}: give the full "
                "class list with --classes (imagenet_class_index.json or one WordNet id per line) "
                "so labels get the right indices"
            )
        class_list = folders
    class_index = {wnid: i for i, wnid in enumerate(class_list)}
    unknown = [name for name in folders if name not in class_index]
    if unknown:
        raise UserError(
            f"{len(unknown)} class folder(s) are not in the class list, e.g. {unknown[0]!r}"
        )
    found = []
    for folder in folders:
        for name in sorted(os.listdir(root / folder)):
            if _is_image(name):
                found.append((f"{folder}/{name}", class_index[folder]))
    return _build(root, "class_folders", class_list, found)


def _index_flat(root: Path, labels_path: str, class_list: list[str] | None) -> DatasetIndex:
    labels, class_list = read_labels(labels_path, class_list)
    files = sorted(name for name in os.listdir(root) if _is_image(name))
    if not files:
        raise UserError(f"no images in {root}")
    unlabelled = [name for name in files if name not in labels]
    if unlabelled:
        raise UserError(
            f"{len(unlabelled)} of {len(files)} images in {root} have no label in {labels_path}, "
            f"e.g. {unlabelled[0]!r}"
        )
    return _build(root, "flat", class_list, [(name, labels[name]) for name in files])


def read_labels(
    path: str, class_list: list[str] | None
) -> tuple[dict[str, int], list[str] | None]:
    """file name -> class index, and the class list (None when labels are plain indices)."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"labels file not found: {path}")
    lines = [line for line in file.read_text().splitlines() if line.strip()]
    if not lines:
        raise UserError(f"labels file is empty: {path}")
    if all(line.strip().isdigit() for line in lines):
        id_to_wnid = _devkit_synsets(file)
        class_list = class_list or sorted(id_to_wnid.values())
        return _devkit_labels(file, lines, id_to_wnid, class_list), class_list
    kind, pairs = _csv_label_pairs(path, lines)
    if kind == "label":
        return _index_labels(path, pairs, class_list), class_list
    return _wnid_labels(path, pairs, class_list)


def _csv_label_pairs(path: str, lines: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """The CSV's (file, value) rows and what the values are: "label" (class indices) or "wnid".
    With a header the columns are named; without one, the second column's look decides."""
    rows = list(csv.reader(lines))
    header = [cell.strip() for cell in rows[0]]
    if "file" in header:
        rows = rows[1:]
        file_col = header.index("file")
        if "label" in header:
            kind, col = "label", header.index("label")
        elif "wnid" in header:
            kind, col = "wnid", header.index("wnid")
        else:
            raise UserError(f"{path}: the header needs a 'label' or 'wnid' column")
    else:
        file_col, col = 0, 1
        kind = "wnid" if _WNID.match(rows[0][1].strip() if len(rows[0]) > 1 else "") else "label"
    pairs = []
    for line_no, row in enumerate(rows, start=2 if "file" in header else 1):
        try:
            pairs.append((row[file_col].strip(), row[col].strip()))
        except IndexError:
            raise UserError(f"{path}:{line_no}: expected file,{kind}") from None
    return kind, pairs


def _index_labels(
    path: str, pairs: list[tuple[str, str]], class_list: list[str] | None
) -> dict[str, int]:
    num_classes = len(class_list) if class_list else NUM_IMAGENET_CLASSES
    labels = {}
    for name, value in pairs:
        if not value.isdigit() or int(value) >= num_classes:
            raise UserError(
                f"{path}: label {value!r} for {name!r} is not a class index 0..{num_classes - 1}"
            )
        labels[name] = int(value)
    return labels


def _wnid_labels(
    path: str, pairs: list[tuple[str, str]], class_list: list[str] | None
) -> tuple[dict[str, int], list[str]]:
    if class_list is None:
        class_list = sorted({wnid for _, wnid in pairs})
        if len(class_list) != NUM_IMAGENET_CLASSES:
            raise UserError(
                f"{path} names {len(class_list)} classes, not {NUM_IMAGENET_CLASSES}: give the full "
                "class list with --classes so labels get the right indices"
            )
    class_index = {wnid: i for i, wnid in enumerate(class_list)}
    missing = [wnid for _, wnid in pairs if wnid not in class_index]
    if missing:
        raise UserError(f"{path}: class {missing[0]!r} is not in the class list")
    return {name: class_index[wnid] for name, wnid in pairs}, class_list


def _devkit_labels(
    file: Path, lines: list[str], id_to_wnid: dict[int, str], class_list: list[str]
) -> dict[str, int]:
    """ILSVRC2012_validation_ground_truth.txt: line i holds the devkit ILSVRC2012_ID of
    ILSVRC2012_val_{i:08d}.JPEG; meta.mat maps those ids to WordNet ids."""
    class_index = {wnid: i for i, wnid in enumerate(class_list)}
    labels = {}
    for number, line in enumerate(lines, start=1):
        devkit_id = int(line)
        wnid = id_to_wnid.get(devkit_id)
        if wnid not in class_index:
            raise UserError(f"{file}:{number}: devkit class id {devkit_id} is not a known class")
        labels[f"ILSVRC2012_val_{number:08d}.JPEG"] = class_index[wnid]
    return labels


def _devkit_synsets(file: Path) -> dict[int, str]:
    """ILSVRC2012_ID -> WNID for the leaf synsets of the devkit's meta.mat (as torchvision reads it)."""
    meta_path = file.with_name("meta.mat")
    if not meta_path.is_file():
        raise UserError(
            f"{file} is a devkit ground-truth file; its meta.mat must sit beside it ({meta_path})"
        )
    from scipy.io import loadmat

    synsets = loadmat(str(meta_path), squeeze_me=True)["synsets"]
    return {
        int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0
    }


def _build(
    root: Path, layout: str, class_list: list[str] | None, found: list[tuple[str, int]]
) -> DatasetIndex:
    if not found:
        raise UserError(f"no images in {root}")
    digest = hashlib.sha256()
    digest.update("\n".join(class_list or []).encode())
    records = []
    for position, (image_id, label) in enumerate(found):
        path = root / image_id
        digest.update(f"\n{image_id}\t{label}\t{path.stat().st_size}".encode())
        records.append(ImageRecord(position, image_id, str(path), label))
    classes = tuple(class_list) if class_list else tuple(str(i) for i in range(NUM_IMAGENET_CLASSES))
    return DatasetIndex(str(root), layout, classes, tuple(records), digest.hexdigest()[:16])
