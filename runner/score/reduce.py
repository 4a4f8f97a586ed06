"""The reducer: a pure function from prediction Parquet files to the accuracy table.

Accuracy is over the images a model could read (status ok); `errors` counts the rest and
`missing` counts dataset images with no row at all (an unfinished run), so nothing is hidden.

Label options follow the 2019 scorer (benchmarking-keras-pytorch, imagenet_benchmarking.py):
- a mask (`omit` or `keep` positions) without custom labels: plain figures on all images,
  cleaned figures (cacc1, cacc5) on the mask;
- custom labels with a mask: plain figures on the mask, cleaned ones on the mask with the
  custom labels (one per kept image, in position order);
- custom labels alone: plain on all images, cleaned with the custom labels (one per image).
ImageNet-ReaL (`real`): top-1 counts when it is in the image's ReaL set (top-5: when one of the
five is, as timm's RealLabelsImagenet), over images whose set is not empty; rows are matched
to ReaL entries by file name (ILSVRC2012_val_<n>.JPEG).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from runner.errors import UserError
from runner.outputs import Location, LocationLike
from runner.predictions import PairPredictions, PairRecord, load_pair, pair_folders
from runner.sanity import read_status as read_sanity_status
from runner.score.columns import join_columns, row_key
from runner.score.rows import RANKED, ScoreRow
from runner.score.stats import Hits, claim, rank_intervals, significance_columns

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


def score(out: LocationLike, options: LabelOptions = LabelOptions()) -> list[ScoreRow]:
    """One row per (framework, model) under OUT/predictions, sorted by Acc@1 (best first),
    with intervals, tiers, rank intervals and the claim check (runner.score.stats)."""
    sets = real_label_sets(options.real) if options.real is not None else None
    rows, hits = [], {}
    for folder in pair_folders(out):
        pair = load_pair(folder, image_ids=sets is not None)
        if pair.record is not None:  # a folder with neither predictions nor a failure is skipped
            row, row_hits = _score(pair, pair.record, options, sets, read_sanity_status(folder))
            hits[row_key(row)] = row_hits
            rows.append(row)
    if not rows:
        raise UserError(f"no predictions under {Location.of(out) / 'predictions'}")
    for column, rank in RANKED.items():
        if rows[0].given(column):
            rank_column(rows, column, rank)
    acc1 = {row_key(row): row.acc1 for row in rows}
    join_columns(rows, significance_columns(hits, acc1))
    join_columns(rows, rank_intervals(hits, acc1))
    for row in rows:
        row.claim = claim(row.published_acc1, row.acc1_ci_low, row.acc1_ci_high)
    if any(row.variant for row in rows):  # the base pairs' variant: empty, not left out
        for row in rows:
            row.variant = row.variant
    rows.sort(key=lambda row: (row.rank1 or math.inf, row.framework, row.model, row.backend or "",
                               row.variant or ""))
    return rows


def accuracy(top: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """(Acc@1, Acc@5) in percent; NaN for no images."""
    if len(true) == 0:
        return float("nan"), float("nan")
    hits = top == true[:, None]
    return float(100.0 * hits[:, 0].mean()), float(100.0 * hits.any(axis=1).mean())


def _score(pair: PairPredictions, record: PairRecord, options: LabelOptions,
           real_sets: np.ndarray | None, sanity: str | None) -> tuple[ScoreRow, Hits]:
    """The row, and the per-image correctness behind acc1/acc5 (`record`: the pair's)."""
    run = pair.provenance  # None when the pair failed before any file
    num_images = record.dataset.images
    figures, hits = _figures(pair, num_images, options)
    if real_sets is not None:
        figures["real_acc1"], figures["real_acc5"] = _real_accuracy(pair, record, real_sets)
    published = _published(record)
    ok = pair.ok
    missing = int(num_images - len(ok))
    return ScoreRow(
        framework=record.framework, model=record.model, **figures,
        **({"variant": record.variant} if record.variant else {}),
        images=int(ok.sum()), errors=int(len(ok) - ok.sum()), missing=missing,
        dataset=record.dataset.name,
        weights=record.weights, sanity=sanity, protocol=_protocol(record),
        backend=record.backend_setting, precision=record.precision_setting,
        family=record.spec.family if record.spec else None,
        **_catalog_facts(record),
        published_acc1=published[0], published_acc5=published[1],
        published_delta1=_difference(figures["acc1"], published[0]),
        published_delta5=_difference(figures["acc5"], published[1]),
        published_source=published[2],
        batch_mode=run.batch_mode if run else None,
        batch_size=run.forward_batch if run else None,
        images_per_s=len(ok) / pair.seconds if pair.seconds else None,
        **({"bound": bound} if (bound := _bound(pair)) else {}),  # only where the files say
        device=run.device if run else None,
        status="failed" if pair.failure else ("incomplete" if missing else "ok"),
        failure=pair.failure.reason if pair.failure else None,
    ), hits


def _bound(pair: PairPredictions) -> Literal["input", "compute"] | None:
    """Input-bound when the pair waited for crops longer than its forward passes took."""
    if pair.wait_seconds is None or pair.forward_seconds is None:
        return None
    return "input" if pair.wait_seconds > pair.forward_seconds else "compute"


def _figures(pair: PairPredictions, num_images: int,
             options: LabelOptions) -> tuple[dict[str, float], Hits]:
    """acc1 and acc5, and cacc1 and cacc5 when label options are given (see the module doc);
    and the per-image correctness behind acc1/acc5."""
    ok, top, labels = pair.ok, pair.top, pair.labels
    mask = options.mask(num_images)
    custom = options.custom_by_position(num_images, mask)
    in_mask = mask[pair.positions] if mask is not None else np.ones(len(ok), bool)
    plain = ok & in_mask if custom is not None and mask is not None else ok
    figures = dict(zip(("acc1", "acc5"), accuracy(top[plain], labels[plain]), strict=True))
    if options.cleaned:
        selected = ok & in_mask
        true = (custom[pair.positions] if custom is not None else labels)[selected]
        figures.update(zip(("cacc1", "cacc5"), accuracy(top[selected], true), strict=True))
    return figures, Hits.of(pair.positions[plain], top[plain], labels[plain])


def _protocol(record: PairRecord) -> str:
    """The run's protocol; an entry without its own recipe for it says that it used its reference
    recipe (users' entries may leave out the northcutt2019 recipe)."""
    recipes = getattr(record.spec, "recipes", None)
    protocol = record.protocol
    return protocol if recipes is None or protocol in recipes else f"{protocol} (reference recipe)"


def _difference(measured: float, published: float | None) -> float | None:
    """Measured minus published (percentage points); None without a published figure."""
    if published is None or math.isnan(measured):
        return None
    return measured - published


def validation_numbers(image_ids) -> np.ndarray:
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


def _real_accuracy(pair: PairPredictions, record: PairRecord, sets: np.ndarray) -> tuple[float, float]:
    numbers = validation_numbers(pair.image_ids)
    if (numbers < 0).any():
        raise UserError(
            f"ReaL labels match rows by ImageNet file name (ILSVRC2012_val_<n>.JPEG), but "
            f"{record.framework}/{record.model} has rows without one "
            "(import with --ground-truth to get file names)"
        )
    if len(numbers) and numbers.max() >= len(sets):
        raise UserError(f"the ReaL file has {len(sets)} entries; image {numbers.max() + 1} is beyond it")
    rows = sets[numbers]
    counted = pair.ok & (rows >= 0).any(axis=1)
    if not counted.any():
        return float("nan"), float("nan")
    # hits[i, k]: the k-th prediction is in the image's set (the -1 padding matches no prediction)
    hits = (pair.top[:, :, None] == rows[:, None, :]).any(axis=2)[counted]
    return float(100.0 * hits[:, 0].mean()), float(100.0 * hits.any(axis=1).mean())


def _catalog_facts(record: PairRecord) -> dict:
    """The catalog entry's architecture key, set, size, cost and model input, for the tables,
    the report and the timm files."""
    spec = record.spec
    if spec is None:
        return {}
    recipe = getattr(record, "recipe", None) or spec.recipes.get(record.protocol)
    facts = {"arch": spec.arch, "model_set": spec.model_set, "params": spec.num_params,
             "gflops": spec.gflops, "img_size": None, "crop_pct": None, "interpolation": None}
    if recipe:
        squash = recipe["resize"] == "squash"
        facts["img_size"] = recipe["size"] if squash else recipe["crop"] or recipe["size"]
        facts["crop_pct"] = 1.0 if squash else facts["img_size"] / recipe["size"]
        facts["interpolation"] = recipe["interpolation"]
    return facts


def _published(record: PairRecord) -> tuple[float | None, float | None, str | None]:
    """The figure to compare with: the 2019 table under its protocol, else the framework's own."""
    spec = record.spec
    if spec is None or record.dataset.name != "imagenet":
        return None, None, None  # the catalog's figures are ImageNet's (--published: timm's)
    source: str | None
    if record.protocol == "northcutt2019":
        figures, source = spec.published.get("northcutt2019"), "northcutt2019 table"
    else:
        figures, source = spec.published.get("documented"), spec.documented_source
    # Acc@5 may be None: keras.io documents only Acc@1 for some models
    return (figures[0], figures[1], source) if figures else (None, None, None)


def rank_column(rows: list[ScoreRow], column: str, rank: str) -> None:
    """Rank rows on `column` into `rank`: 1 = best over all rows; equal accuracies share the
    better rank, as in the 2019 table. A model with no readable image (NaN) gets no rank."""
    values = [getattr(row, column) for row in rows if not math.isnan(getattr(row, column))]
    for row in rows:
        value = getattr(row, column)
        setattr(row, rank, None if math.isnan(value) else 1 + sum(o > value for o in values))


def compare_with_reference(rows: list[ScoreRow], reference: list[dict]) -> list[str]:
    """Set reference_acc1/5 and acc1/5_delta (measured to two decimals minus the reference) on
    each row found in `reference` (rows with framework or 2019-style platform, model, acc1,
    acc5); return a line for each row that differs."""
    by_key = {}
    for ref in reference:
        framework = ref.get("framework") or ref.get("platform", "").split()[0].lower()
        by_key[(framework, ref["model"])] = (float(ref["acc1"]), float(ref["acc5"]))
    differ = []
    for row in rows:
        figures = by_key.get((row.framework, row.model))
        if figures is None:
            continue
        row.reference_acc1, row.reference_acc5 = figures
        row.acc1_delta = round(round(row.acc1, 2) - figures[0], 2)
        row.acc5_delta = round(round(row.acc5, 2) - figures[1], 2)
        if row.acc1_delta or row.acc5_delta:
            differ.append(
                f"{row.pair_name}: acc1 {row.acc1:.2f} vs {figures[0]:.2f} "
                f"({row.acc1_delta:+.2f}), acc5 {row.acc5:.2f} vs {figures[1]:.2f} "
                f"({row.acc5_delta:+.2f})"
            )
    return differ
