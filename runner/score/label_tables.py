"""Score a run with label-error sets (runner.score.labelsets): one table per set.

A set's table has, per (framework, model): acc1/acc5 with the original labels on the set's
images (`images`), cacc1/cacc5 with the corrected labels on its corrected images (`cimages`;
empty for removed-C), ranks, intervals and tiers of both, and the plain table's columns that
describe the model and the run. Rows are matched to images by ILSVRC2012 file name; the run
must hold every image of the set, unless `partial` scores the images it has (and says so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from runner.errors import UserError
from runner.outputs import LocationLike
from runner.predictions import PairPredictions, load_pair, pair_folders
from runner.score.columns import join_columns, record_key, row_key
from runner.score.labelsets import VALIDATION_IMAGES, LabelSet, MturkStudy, label_set
from runner.score.reduce import accuracy, rank_column, validation_numbers
from runner.score.rows import ScoreRow
from runner.score.stats import Hits, significance_columns

NO_HITS = Hits(np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0, bool))
# Columns of the plain table that describe the model and the run rather than a figure.
DESCRIBING = ("dataset", "framework", "model", "errors", "missing", "weights", "protocol",
              "backend", "precision", "family", "batch_mode", "batch_size", "images_per_s", "device",
              "status", "failure")


@dataclass(frozen=True)
class LabelSetRequest:
    study: MturkStudy
    names: list[str]
    as_published: bool = False  # the 2019 tables' rules (names like consensus5_464)
    partial: bool = False  # score the images of the set that the run has


@dataclass(frozen=True)
class LabelSetTable:
    name: str
    rows: list[ScoreRow]
    notes: list[str]  # e.g. what --partial left out


@dataclass(frozen=True)
class _Pair:
    """A pair's predictions and the ILSVRC2012 file number (1-based) of each row."""

    predictions: PairPredictions
    numbers: np.ndarray


def score_label_sets(out: LocationLike, plain: list[ScoreRow],
                     request: LabelSetRequest) -> list[LabelSetTable]:
    """One table per requested set, rows sorted by Acc@1 like the plain table."""
    pairs = {}
    for folder in pair_folders(out):
        pair = load_pair(folder, image_ids=True)
        if pair.provenance is not None:  # a failed pair without predictions scores NaN
            pairs[record_key(pair.provenance)] = _Pair(
                pair, validation_numbers(pair.image_ids) + 1)
    labels = _validation_labels(pairs, request.study)
    return [_table(plain, pairs, label_set(name, request.study, labels, request.as_published),
                   request.partial) for name in request.names]


def _validation_labels(pairs: dict[tuple, _Pair], study: MturkStudy) -> np.ndarray:
    """The original label of each validation image (by file number - 1; -1 where no pair has
    the image), checked against the study's original labels."""
    labels = np.full(VALIDATION_IMAGES, -1, np.int64)
    for (framework, model, *_), pair in pairs.items():
        if (pair.numbers < 1).any():
            raise UserError(f"label sets match rows by ImageNet file name (ILSVRC2012_val_<n>.JPEG), "
                            f"but {framework}/{model} has rows without one (run over the ImageNet "
                            "validation set, or import with --ground-truth)")
        if pair.numbers.max(initial=0) > VALIDATION_IMAGES:
            raise UserError(f"{framework}/{model} has images beyond the {VALIDATION_IMAGES:,} of "
                            "the ImageNet validation set")
        labels[pair.numbers - 1] = pair.predictions.labels
    known = labels[study.numbers - 1] >= 0
    differ = np.flatnonzero(known & (labels[study.numbers - 1] != study.given))
    if len(differ):
        first = differ[0]
        raise UserError(
            f"the run's labels differ from the study's original labels on {len(differ)} images, e.g. "
            f"ILSVRC2012_val_{study.numbers[first]:08d}: {labels[study.numbers[first] - 1]} vs "
            f"{study.given[first]} (label sets need class indices in sorted WordNet-id order)")
    return labels


def _table(plain: list[ScoreRow], pairs: dict, chosen: LabelSet, partial: bool) -> LabelSetTable:
    rows, hits, chits, notes = [], {}, {}, []
    for base in plain:
        key = row_key(base)
        figures, hits[key], chits[key], note = _figures(pairs.get(key), chosen, partial,
                                                        f"{base.framework}/{base.model}")
        variant = {"variant": base.variant} if base.given("variant") else {}  # runs with variants
        rows.append(ScoreRow(label_set=chosen.name, **{c: getattr(base, c) for c in DESCRIBING},
                             **variant, **figures))
        if note:
            notes.append(f"{base.framework}/{base.model}: {note}")
    ranked = ("acc1", "acc5") + (("cacc1", "cacc5") if chosen.cacc_images is not None else ())
    for column in ranked:
        rank_column(rows, column, column.replace("acc", "rank"))
    join_columns(rows, significance_columns(hits, {row_key(r): r.acc1 for r in rows}))
    if chosen.cacc_images is not None:
        join_columns(rows, significance_columns(chits, {row_key(r): r.cacc1 for r in rows
                                                        if r.cacc1 is not None},
                                                prefix="cacc", tier_column="ctier"))
    rows.sort(key=lambda row: (row.rank1 or math.inf, row.framework, row.model))
    return LabelSetTable(chosen.name, rows, notes)


def _figures(pair: _Pair | None, chosen: LabelSet, partial: bool, who: str):
    """(figures, hits behind acc, hits behind cacc, note) of one pair on one set."""
    if pair is None:  # the pair failed before writing any prediction
        figures = {"acc1": math.nan, "acc5": math.nan, "images": 0}
        if chosen.cacc_images is not None:
            figures |= {"cacc1": math.nan, "cacc5": math.nan, "cimages": 0}
        return figures, NO_HITS, NO_HITS, None
    predictions, numbers = pair.predictions, pair.numbers
    note = _coverage(predictions, chosen, numbers, partial, who)
    in_acc = predictions.ok & chosen.acc_images[numbers - 1]
    figures, hits = _scored(predictions, in_acc, predictions.labels[in_acc], "acc", "images")
    chits = NO_HITS
    if chosen.cacc_images is not None:
        in_cacc = predictions.ok & chosen.cacc_images[numbers - 1]
        corrected = chosen.corrected(numbers[in_cacc], predictions.labels[in_cacc])
        corrected_figures, chits = _scored(predictions, in_cacc, corrected, "cacc", "cimages")
        figures |= corrected_figures
    return figures, hits, chits, note


def _scored(pair: PairPredictions, selected: np.ndarray, true: np.ndarray, prefix: str,
            count: str) -> tuple[dict, Hits]:
    top = pair.top[selected]
    acc1, acc5 = accuracy(top, true)
    figures = {f"{prefix}1": acc1, f"{prefix}5": acc5, count: int(selected.sum())}
    return figures, Hits.of(pair.positions[selected], top, true)


def _coverage(pair: PairPredictions, chosen: LabelSet, numbers: np.ndarray, partial: bool,
              who: str) -> str | None:
    """An error when the run lacks images of the set; with `partial`, a note saying how many."""
    has = np.zeros(VALIDATION_IMAGES, bool)
    has[numbers - 1] = True
    wanted = chosen.acc_images if chosen.cacc_images is None else chosen.acc_images | chosen.cacc_images
    lacking = int((wanted & ~has).sum())
    if not lacking:
        return None
    if not partial:
        raise UserError(f"label set {chosen.name} needs {int(wanted.sum()):,} images; {who} has no "
                        f"prediction for {lacking:,} of them (score a run over the full validation "
                        "set, or give --partial to score the images it has)")
    return f"--partial: {lacking:,} of the set's {int(wanted.sum()):,} images are not in the run"
