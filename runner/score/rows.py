"""The accuracy table's row: what the reducer produces and the table files, the printout and
the report read. Its fields, in order, are the columns of OUT/results/accuracy.{csv,md,json}."""

from __future__ import annotations

from typing import Any, Literal

from runner.frameworks.keras_runtime import backend_suffix
from runner.predictions import Record
from runner.score.stats import Claim


class ScoreRow(Record):
    """One (framework, model). Accuracies are percentages over the images the model could read
    (NaN when there are none). Columns with a default appear in the files only when they were
    set: the cleaned figures with --omit/--keep/--custom-labels, ReaL with --real, the reference
    ones with --reference (on the rows the reference has). A label-set table's rows
    (runner.score.label_tables) have `label_set` and `cimages`, and no published figures."""

    framework: str
    model: str
    # a variant's canonical name (runner/plan/variants.py), empty for the base pair; only in the
    # tables of runs with variants
    variant: str | None = None
    acc1: float
    acc5: float
    # ranks: 1 = best over all rows, ties share the better rank; None without a readable image
    rank1: int | None = None
    rank5: int | None = None
    cacc1: float | None = None
    cacc5: float | None = None
    crank1: int | None = None
    crank5: int | None = None
    real_acc1: float | None = None
    real_acc5: float | None = None  # a top-5 class in the image's ReaL set
    real_rank1: int | None = None
    images: int  # readable images (label sets: the images behind acc1/acc5)
    cimages: int | None = None  # label sets: the images behind cacc1/cacc5
    errors: int  # unreadable images
    missing: int  # dataset images without a row (an unfinished or failed run)
    weights: str
    protocol: str
    # Keras: tensorflow, jax or torch (empty for PyTorch); the numeric precision setting
    backend: str | None = None
    precision: str | None = None
    family: str | None
    # from the catalog entry the pair ran with (None for a model not in the catalog)
    arch: str | None = None  # the same network in another framework has the same arch
    model_set: str | None = None  # the catalog set: northcutt2019, torchvision, keras, ...
    params: int | None = None
    gflops: float | None = None
    img_size: int | None = None  # side of the model input
    crop_pct: float | None = None  # center crop / resized shorter side (1 for a squash), as timm
    interpolation: str | None = None
    dataset: str = "imagenet"  # the test set (runner.data.shift)
    label_set: str | None = None  # the label-error set (runner.score.labelsets)
    # 95% Clopper-Pearson intervals (percent) and the tier of the Acc@1 ranking: 1 = best, a
    # new tier where an exact McNemar test separates neighbours (runner.score.stats); the
    # p-value against the model ranked just above. The c-prefixed ones: cAcc, label sets.
    tier: int | None = None
    acc1_ci_low: float | None = None
    acc1_ci_high: float | None = None
    acc5_ci_low: float | None = None
    acc5_ci_high: float | None = None
    tier_p_above: float | None = None
    ctier: int | None = None
    cacc1_ci_low: float | None = None
    cacc1_ci_high: float | None = None
    cacc5_ci_low: float | None = None
    cacc5_ci_high: float | None = None
    ctier_p_above: float | None = None
    # the published figure under this protocol, and measured minus it (percentage points)
    published_acc1: float | None = None
    published_acc5: float | None = None
    published_delta1: float | None = None
    published_delta5: float | None = None
    published_source: str | None = None
    # --reference: its figures, and measured (to two decimals) minus them
    reference_acc1: float | None = None
    reference_acc5: float | None = None
    acc1_delta: float | None = None
    acc5_delta: float | None = None
    batch_mode: str | None
    batch_size: int | None  # images per forward pass
    images_per_s: float | None
    device: str | None
    status: Literal["ok", "incomplete", "failed"]
    failure: str | None  # why the pair failed
    # the weights sanity check (runner/sanity.py): ok, failed, skipped; None where none ran.
    # It and the columns after it were added last, so that the columns before them keep their
    # places in the files.
    sanity: Literal["ok", "failed", "skipped"] | None = None
    # the published figure against the acc1 interval: inside it (consistent), below or above
    # it; None where no figure applies (runner.score.stats.claim)
    claim: Claim | None = None
    # 95% paired-bootstrap interval of rank1 (runner.score.stats.rank_intervals)
    rank1_low: int | None = None
    rank1_high: int | None = None
    # After those, for the same reason. input: the pair waited for its crops longer than it
    # spent in forward passes (decoding did not keep up); compute: the other way round; None
    # where the files do not record it
    bound: Literal["input", "compute"] | None = None

    @property
    def pair_name(self) -> str:
        """As plans and messages name the pair: keras/resnet50@jax, pytorch/resnet50."""
        variant = f" ({self.variant})" if self.variant else ""
        return f"{self.framework}/{self.model}{backend_suffix(self.backend)}{variant}"

    def cells(self) -> dict[str, Any]:
        """The columns this row has, in column order (floats as they are: NaN stays NaN)."""
        return self.model_dump(exclude_unset=True)


COLUMNS = tuple(ScoreRow.model_fields)
# accuracy column -> its rank column
RANKED = {"acc1": "rank1", "acc5": "rank5", "cacc1": "crank1", "cacc5": "crank5",
          "real_acc1": "real_rank1"}
