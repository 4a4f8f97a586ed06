"""`kpbench import-npy`: the 2019 benchmark's published top-5 files as kpbench predictions.

Files: `<model>_<framework>_imagenet_top5preds.npy` (int, (N, 5), classes in no order) and
`..._top5probs.npy` (float, same shape). Rows follow ImageFolder order over val/<wnid>/<file>;
without a ground-truth CSV, row i of the 50,000-image validation set has label i // 50.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path

import numpy as np

from runner import __version__
from runner.catalog import FRAMEWORKS, load_catalog
from runner.data.index import read_labels
from runner.errors import UserError
from runner.outputs import Location, LocationLike, check_writable
from runner.predictions import (
    SCHEMA_VERSION,
    Provenance,
    predictions_table,
    read_provenance,
    shard_path,
    write_shard,
)

PREDS_FILE = re.compile(r"^(?P<model>.+)_(?P<framework>keras|pytorch)_imagenet_top5preds\.npy$")
IMAGENET_VAL_IMAGES = 50_000


def import_npy(
    directory: str,
    out: LocationLike,
    framework: str | None = None,
    ground_truth: str | None = None,
    overwrite: bool = False,
) -> list[str]:
    """Write one Parquet file per model found; returns the imported 'framework/model' keys."""
    folder = Path(directory)
    if not folder.is_dir():
        raise UserError(f"folder not found: {directory}")
    if framework is not None and framework not in FRAMEWORKS:
        raise UserError(f"unknown framework {framework!r}; choose from {', '.join(FRAMEWORKS)}")
    found = sorted(
        (match["framework"], match["model"], path)
        for path in folder.glob("*_imagenet_top5preds.npy")
        if (match := PREDS_FILE.match(path.name)) and framework in (None, match["framework"])
    )
    if not found:
        raise UserError(f"no <model>_<framework>_imagenet_top5preds.npy files in {directory}")
    files, labels = _row_identity(ground_truth)
    check_writable(Location.of(out))
    imported = []
    for fw, model, preds_path in found:
        probs_path = preds_path.with_name(preds_path.name.replace("top5preds", "top5probs"))
        if not probs_path.is_file():
            raise UserError(f"{preds_path.name} has no matching {probs_path.name}")
        table, pair_key = _convert(fw, model, preds_path, probs_path, files, labels, ground_truth)
        path = shard_path(out, fw, model, 0)
        _check_replaceable(path.parent, pair_key, overwrite)
        write_shard(table, path)
        imported.append(f"{fw}/{model}")
    return imported


def _row_identity(ground_truth: str | None) -> tuple[list[str] | None, np.ndarray | None]:
    """File names and labels of rows in ImageFolder order, from a file,wnid[,label] CSV."""
    if ground_truth is None:
        return None, None
    labels, _ = read_labels(ground_truth, None)
    # ImageFolder order: class folder (sorted WordNet id = label order), then file name
    ordered = sorted(labels.items(), key=lambda item: (item[1], item[0]))
    return [name for name, _ in ordered], np.array([label for _, label in ordered])


def _load(path: Path, kind: str) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path.name}: not a readable .npy file ({exc})") from None
    if array.ndim != 2 or array.shape[1] != 5:
        raise UserError(f"{path.name}: expected shape (N, 5), got {array.shape}")
    wanted = np.integer if kind == "preds" else np.floating
    if not np.issubdtype(array.dtype, wanted):
        raise UserError(f"{path.name}: expected {'integer' if kind == 'preds' else 'float'} "
                        f"values, got {array.dtype}")
    return array


def _convert(framework, model, preds_path, probs_path, files, labels, ground_truth):
    preds, probs = _load(preds_path, "preds"), _load(probs_path, "probs")
    if preds.shape != probs.shape:
        raise UserError(f"{preds_path.name} and {probs_path.name} differ in shape: "
                        f"{preds.shape} vs {probs.shape}")
    if preds.min() < 0 or preds.max() >= 1000:
        raise UserError(f"{preds_path.name}: class indices must lie in 0..999")
    rows = len(preds)
    if files is None:
        if rows != IMAGENET_VAL_IMAGES:
            raise UserError(f"{preds_path.name} has {rows} rows; without --ground-truth only the "
                            f"{IMAGENET_VAL_IMAGES}-image validation set (label = row // 50) is known")
        image_ids = [str(i) for i in range(rows)]
        labels = np.arange(rows) // 50
    elif len(files) != rows:
        raise UserError(f"{preds_path.name} has {rows} rows but {ground_truth} lists {len(files)} images")
    else:
        image_ids = files
    # Most probable first; a stable sort keeps the first of equal probabilities first, which
    # is the one the 2019 scorer's argmax picked.
    order = np.argsort(-probs.astype(np.float32), axis=1, kind="stable")
    classes = np.take_along_axis(preds, order, axis=1).astype(np.int32)
    top_probs = np.take_along_axis(probs, order, axis=1).astype(np.float32)
    identity = hashlib.sha256("\n".join(image_ids).encode() + labels.tobytes()).hexdigest()[:16]
    provenance = _provenance(framework, model, (preds_path, probs_path), identity, rows,
                             f"ground truth {ground_truth}" if ground_truth else "row // 50")
    table = predictions_table(image_ids, range(rows), labels, [None] * rows, classes,
                              top_probs, provenance)
    return table, provenance.pair_key


def _provenance(framework: str, model: str, paths: tuple[Path, Path], identity: str, rows: int,
                labels: str) -> Provenance:
    """Imported rows are keyed on their row identity (file names, labels) and the files' bytes."""
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    pair_key = hashlib.sha256((identity + str(sorted(digests.items()))).encode()).hexdigest()[:16]
    spec = {spec.key: spec for spec in load_catalog().specs}.get(f"{framework}/{model}")
    return Provenance(
        schema_version=SCHEMA_VERSION,
        kpbench_version=__version__,
        run_id=uuid.uuid4().hex[:12],
        pair_key=pair_key,
        framework=framework,
        model=model,
        spec=spec.model_dump(mode="json") if spec else None,
        weights="pretrained",
        protocol="northcutt2019",
        batch_mode="imported",
        source={"kind": "northcutt2019 top-5 .npy", "files": digests,
                "folder": str(paths[0].parent.resolve()), "labels": labels},
        dataset={"images": rows, "fingerprint": identity, "layout": "imported"},
        shard={"index": 0, "start": 0, "stop": rows},
        shard_seconds=None,
        device=None,
    )


def _check_replaceable(folder: Location, pair_key: str, overwrite: bool) -> None:
    """Importing over other predictions (a run's, or other files') would mix sources."""
    others = [p for p in folder.files("*.parquet") if read_provenance(p).pair_key != pair_key]
    if others and not overwrite:
        raise UserError(f"{folder} already holds other predictions; use --overwrite or a new --out")
    for path in others:
        path.delete()
