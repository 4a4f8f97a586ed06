"""The reducer: a pure function from prediction Parquet files to the accuracy table.

Accuracy is over the images a model could read (status ok); `errors` counts the rest and
`missing` counts dataset images with no row at all (an unfinished run), so nothing is hidden.

Label options follow the 2019 scorer (benchmarking-keras-pytorch, imagenet_benchmarking.py):
- a mask (`omit` or `keep` positions) without custom labels: plain figures on all images,
  cleaned figures (cacc1, cacc5) on the mask;
- custom labels with a mask: plain figures on the mask, cleaned ones on the mask with the
  custom labels (one per kept image, in position order);
- custom labels alone: plain on all images, cleaned with the custom labels (one per image).
ImageNet-ReaL (`real`): top-1 counts when it is in the image's ReaL set, over images whose
set is not empty; rows are matched to ReaL entries by file name (ILSVRC2012_val_<n>.JPEG).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from runner.errors import UserError
from runner.predictions import FAILURE_FILE, STATUS_OK, TOP_K, read_provenance

# Column order of the table files; optional columns appear only when their option is used.
COLUMNS = (
    "framework", "model", "acc1", "acc5", "rank1", "rank5",
    "cacc1", "cacc5", "crank1", "crank5", "real_acc1", "real_rank1",
    "images", "errors", "missing", "weights", "protocol", "backend", "precision", "family",
    "published_acc1", "published_acc5", "published_delta1", "published_delta5", "published_source",
    "reference_acc1", "reference_acc5", "acc1_delta", "acc5_delta",
    "batch_mode", "batch_size", "images_per_s", "device", "status", "failure",
)
_VAL_FILE_PATTERN = r"ILSVRC2012_val_(?P<number>\d{8})\."


@dataclass(frozen=True)
class LabelOptions:
    omit: np.ndarray | None = None  # positions to leave out
    keep: np.ndarray | None = None  # positions to use
    custom_labels: np.ndarray | None = None  # labels for the kept (or all) images
    real: list[list[int]] | None = None  # ImageNet-ReaL sets, in validation file-number order

    @property
    def cleaned(self) -> bool:
        return self.omit is not None or self.keep is not None or self.custom_labels is not None

    def mask(self, num_images: int) -> np.ndarray | None:
        """Boolean mask over positions, or None; checks the indices."""
        if self.omit is not None and self.keep is not None:
            raise UserError("give --omit or --keep, not both")
        indices = self.omit if self.omit is not None else self.keep
        if indices is None:
            return None
        name = "--omit" if self.omit is not None else "--keep"
        indices = _integer_vector(indices, name)
        if len(indices) and (indices.min() < 0 or indices.max() >= num_images):
            raise UserError(f"{name}: indices must lie in 0..{num_images - 1} (the dataset's positions)")
        mask = np.zeros(num_images, bool) if self.keep is not None else np.ones(num_images, bool)
        mask[indices] = self.keep is not None
        return mask

    def custom_by_position(self, num_images: int, mask: np.ndarray | None) -> np.ndarray | None:
        """Custom labels spread over positions (-1 where an image is not kept)."""
        if self.custom_labels is None:
            return None
        custom = _integer_vector(self.custom_labels, "--custom-labels")
        expected = num_images if mask is None else int(mask.sum())
        if len(custom) != expected:
            where = "images" if mask is None else "kept images"
            raise UserError(f"--custom-labels has {len(custom)} labels for {expected} {where}")
        if len(custom) and (custom.min() < 0 or custom.max() >= 1000):
            raise UserError("--custom-labels: labels must be class indices 0..999")
        if mask is None:
            return custom
        full = np.full(num_images, -1, np.int64)
        full[mask] = custom
        return full


def _integer_vector(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
        raise UserError(f"{name}: expected a 1-D array of integers, got {values.dtype} {values.shape}")
    return values.astype(np.int64)


@dataclass(frozen=True)
class PairPredictions:
    """One (framework, model)'s rows, sorted by position."""

    provenance: dict
    positions: np.ndarray
    labels: np.ndarray
    top: np.ndarray  # (rows, 5) class indices, most probable first
    ok: np.ndarray  # readable
    val_numbers: np.ndarray | None  # ILSVRC2012_val_<n> file numbers - 1 (ReaL only; -1 if none)
    probs: np.ndarray | None  # (rows, 5) probabilities of `top`, when asked for
    seconds: float | None


def score(out: str | Path, options: LabelOptions = LabelOptions()) -> list[dict]:
    """One row per (framework, model) under OUT/predictions, sorted by Acc@1 (best first)."""
    rows = []
    sets = real_label_sets(options.real) if options.real is not None else None
    for folder in pair_folders(out):
        pair = load_pair(folder, file_numbers=options.real is not None)
        failure = _read_failure(folder)
        if pair is not None:
            row = _score(pair, options, sets)
        elif failure is not None:
            row = _failed_row(failure, options, sets)
        else:
            continue
        row["status"] = "failed" if failure else ("incomplete" if row["missing"] else "ok")
        row["failure"] = failure["reason"] if failure else None
        rows.append(row)
    if not rows:
        raise UserError(f"no predictions under {Path(out) / 'predictions'}")
    for column in ("acc1", "acc5", "cacc1", "cacc5", "real_acc1"):
        if column in rows[0]:
            _rank(rows, column, column.replace("acc", "rank"))
    rows.sort(key=lambda row: (row["rank1"] or math.inf, row["framework"], row["model"],
                               row["backend"] or ""))
    return rows


def pair_folders(out: str | Path) -> list[Path]:
    """Each pair's folder: framework=*/model=*, and framework=keras/backend=*/model=* for Keras
    on a backend other than the default."""
    root = Path(out) / "predictions"
    return sorted([*root.glob("framework=*/model=*"), *root.glob("framework=*/backend=*/model=*")])


def _read_failure(folder: Path) -> dict | None:
    path = folder / FAILURE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _failed_row(failure: dict, options: LabelOptions, sets) -> dict:
    """A pair with no predictions at all: every figure NaN, every image missing."""
    empty = PairPredictions(
        provenance={**failure, "batch_mode": None, "device": None},
        positions=np.zeros(0, np.int64), labels=np.zeros(0, np.int64),
        top=np.zeros((0, TOP_K), np.int64), ok=np.zeros(0, bool),
        val_numbers=np.zeros(0, np.int64) if sets is not None else None, probs=None, seconds=None,
    )
    return _score(empty, options, sets)


def load_pair(
    folder: Path, file_numbers: bool = False, probabilities: bool = False
) -> PairPredictions | None:
    """A (framework, model)'s rows sorted by position; None when the folder has no files."""
    files = sorted(folder.glob("*.parquet"))
    if not files:
        return None
    provenances = [read_provenance(path) for path in files]
    if len({p["pair_key"] for p in provenances}) != 1:
        raise UserError(f"{folder} mixes predictions from different configs; rerun with --overwrite")
    columns = ["position", "label", "top5_class", "status"]
    columns += (["image_id"] if file_numbers else []) + (["top5_prob"] if probabilities else [])
    table = pq.read_table(files, columns=columns)
    positions = table["position"].to_numpy()
    order = np.argsort(positions, kind="stable")
    positions = positions[order]
    if len(positions) and (np.diff(positions) == 0).any():
        raise UserError(f"{folder} holds more than one row for some images")
    # error rows have a null list; -1 matches no label, and `ok` keeps them out anyway
    top = _matrix(table["top5_class"], -1)
    seconds = [p.get("shard_seconds") for p in provenances]
    return PairPredictions(
        provenance=provenances[0],
        positions=positions,
        labels=table["label"].to_numpy()[order],
        top=top[order],
        ok=pc.equal(table["status"], STATUS_OK).to_numpy(zero_copy_only=False)[order],
        val_numbers=_val_numbers(table["image_id"])[order] if file_numbers else None,
        probs=_matrix(table["top5_prob"], np.nan)[order] if probabilities else None,
        seconds=sum(seconds) if None not in seconds else None,
    )


def _matrix(column, fill) -> np.ndarray:
    """A fixed-size-list column as a (rows, 5) array; error rows (null lists) hold `fill`,
    which matches no label."""
    no_prediction = pa.scalar([fill] * TOP_K, type=column.type)
    return pc.list_flatten(pc.fill_null(column, no_prediction)).to_numpy().reshape(-1, TOP_K)


def accuracy(top: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """(Acc@1, Acc@5) in percent; NaN for no images."""
    if len(true) == 0:
        return float("nan"), float("nan")
    hits = top == true[:, None]
    return float(100.0 * hits[:, 0].mean()), float(100.0 * hits.any(axis=1).mean())


def _score(pair: PairPredictions, options: LabelOptions, real_sets: np.ndarray | None) -> dict:
    first = pair.provenance
    num_images = first["dataset"]["images"]
    ok, top, labels = pair.ok, pair.top, pair.labels
    row = {"framework": first["framework"], **run_setting(first), "model": first["model"],
           "family": (first.get("spec") or {}).get("family")}
    mask = options.mask(num_images)
    custom = options.custom_by_position(num_images, mask)
    in_mask = mask[pair.positions] if mask is not None else np.ones(len(ok), bool)
    plain = ok & in_mask if custom is not None and mask is not None else ok
    row["acc1"], row["acc5"] = accuracy(top[plain], labels[plain])
    if options.cleaned:
        selected = ok & in_mask
        true = (custom[pair.positions] if custom is not None else labels)[selected]
        row["cacc1"], row["cacc5"] = accuracy(top[selected], true)
    if real_sets is not None:
        row["real_acc1"] = _real_accuracy(pair, real_sets)
    published = _published(first)
    row.update({
        "images": int(ok.sum()),
        "errors": int(len(ok) - ok.sum()),
        "missing": int(num_images - len(ok)),
        "weights": first["weights"],
        "protocol": first["protocol"],
        "published_acc1": published[0],
        "published_acc5": published[1],
        "published_delta1": _difference(row["acc1"], published[0]),
        "published_delta5": _difference(row["acc5"], published[1]),
        "published_source": published[2],
        "batch_mode": first["batch_mode"],
        "batch_size": first.get("forward_batch"),
        "images_per_s": len(ok) / pair.seconds if pair.seconds else None,
        "device": first.get("device"),
    })
    return row


def run_setting(provenance: dict) -> dict:
    """backend (Keras; empty for PyTorch) and precision, from a provenance: files written before
    both were settings ran Keras on TensorFlow, at strict fp32."""
    backend = provenance.get("backend") or ("tensorflow" if provenance["framework"] == "keras" else None)
    return {"backend": backend, "precision": provenance.get("precision") or "fp32"}


def _difference(measured: float, published: float | None) -> float | None:
    """Measured minus published (percentage points); None without a published figure."""
    if published is None or math.isnan(measured):
        return None
    return measured - published


def _val_numbers(image_ids) -> np.ndarray:
    """0-based ImageNet validation file number of each image id, -1 where it has none."""
    matched = pc.extract_regex(image_ids, _VAL_FILE_PATTERN)
    digits = pc.struct_field(matched, "number")
    return pc.fill_null(pc.subtract(pc.cast(digits, pa.int64()), 1), -1).to_numpy()


def real_label_sets(real: list[list[int]]) -> np.ndarray:
    """ReaL sets as a (images, widest set) array padded with -1."""
    widest = max((len(labels) for labels in real), default=0)
    sets = np.full((len(real), max(widest, 1)), -1, np.int64)
    for i, labels in enumerate(real):
        sets[i, : len(labels)] = labels
    return sets


def _real_accuracy(pair: PairPredictions, sets: np.ndarray) -> float:
    numbers = pair.val_numbers
    if (numbers < 0).any():
        raise UserError(
            f"ReaL labels match rows by ImageNet file name (ILSVRC2012_val_<n>.JPEG), but "
            f"{pair.provenance['framework']}/{pair.provenance['model']} has rows without one "
            "(import with --ground-truth to get file names)"
        )
    if len(numbers) and numbers.max() >= len(sets):
        raise UserError(f"the ReaL file has {len(sets)} entries; image {numbers.max() + 1} is beyond it")
    rows = sets[numbers]
    counted = pair.ok & (rows >= 0).any(axis=1)
    correct = (rows == pair.top[:, :1]).any(axis=1)
    return float(100.0 * correct[counted].mean()) if counted.any() else float("nan")


def _published(provenance: dict) -> tuple[float | None, float | None, str | None]:
    """The figure to compare with: the 2019 table under its protocol, else the framework's own."""
    spec = provenance.get("spec")
    if not spec:
        return None, None, None
    if provenance["protocol"] == "northcutt2019":
        figures, source = spec["published"]["northcutt2019"], "northcutt2019 table"
    else:
        figures, source = spec["published"]["documented"], spec["documented_source"]
    # Acc@5 may be None: keras.io documents only Acc@1 for some models
    return (figures[0], figures[1], source) if figures else (None, None, None)


def _rank(rows: list[dict], column: str, rank_column: str) -> None:
    """1 = best over all rows; equal accuracies share the better rank, as in the 2019 table.
    A model with no readable image (NaN) gets no rank."""
    values = [row[column] for row in rows if not math.isnan(row[column])]
    for row in rows:
        value = row[column]
        row[rank_column] = None if math.isnan(value) else 1 + sum(o > value for o in values)


def compare_with_reference(rows: list[dict], reference: list[dict]) -> list[str]:
    """Add reference_acc1/5 and acc1/5_delta (measured to two decimals minus the reference) to
    each row found in `reference` (rows with framework or 2019-style platform, model, acc1, acc5);
    return a line for each row that differs."""
    by_key = {}
    for ref in reference:
        framework = ref.get("framework") or ref.get("platform", "").split()[0].lower()
        by_key[(framework, ref["model"])] = (float(ref["acc1"]), float(ref["acc5"]))
    differ = []
    for row in rows:
        figures = by_key.get((row["framework"], row["model"]))
        if figures is None:
            continue
        row["reference_acc1"], row["reference_acc5"] = figures
        row["acc1_delta"] = round(round(row["acc1"], 2) - figures[0], 2)
        row["acc5_delta"] = round(round(row["acc5"], 2) - figures[1], 2)
        if row["acc1_delta"] or row["acc5_delta"]:
            differ.append(
                f"{row['framework']}/{row['model']}: acc1 {row['acc1']:.2f} vs {figures[0]:.2f} "
                f"({row['acc1_delta']:+.2f}), acc5 {row['acc5']:.2f} vs {figures[1]:.2f} "
                f"({row['acc5_delta']:+.2f})"
            )
    return differ
