import math

import pandas as pd
import pytest

from runner.errors import UserError
from runner.predictions import shard_path
from runner.report.tables import write_results
from runner.sanity import run_check
from runner.score.reduce import score
from runner.score.rows import COLUMNS

from .helpers import write_pair

BASE_COLUMNS = {
    "dataset", "framework", "model", "acc1", "acc5", "rank1", "rank5", "images", "errors", "missing",
    "weights", "protocol", "backend", "precision", "family", "arch", "model_set", "params", "gflops",
    "img_size", "crop_pct", "interpolation", "published_acc1", "published_acc5", "published_delta1",
    "published_delta5", "published_source",
    "batch_mode", "batch_size", "images_per_s", "device", "status", "failure",
    "acc1_ci_low", "acc1_ci_high", "acc5_ci_low", "acc5_ci_high", "tier", "tier_p_above", "sanity",
    "claim", "rank1_low", "rank1_high",
}


def test_accuracy_errors_missing_and_ranks(tmp_path):
    labels = [1, 2, 3, 4]
    # model a: top-1 right on 2 of 4, top-5 right on 3 of 4
    write_pair(tmp_path, "pytorch", "a", labels,
           [[1, 0, 0, 0, 0], [2, 9, 9, 9, 9], [9, 3, 9, 9, 9], [9, 9, 9, 9, 9]])
    # model b: image 1 unreadable; of the 3 readable, top-1 right on 2, top-5 on 3
    write_pair(tmp_path, "keras", "b", labels,
           [[1, 0, 0, 0, 0], None, [3, 9, 9, 9, 9], [9, 9, 9, 9, 4]], errors={1})
    # model c: only the first shard of two written -> 2 images missing
    write_pair(tmp_path, "keras", "c", labels[:2], [[1, 0, 0, 0, 0], [2, 0, 0, 0, 0]], images=4)
    rows = {row.model: row for row in score(tmp_path)}
    assert rows["a"].acc1 == 50.0 and rows["a"].acc5 == 75.0
    assert rows["b"].acc1 == pytest.approx(200 / 3) and rows["b"].acc5 == 100.0
    assert (rows["b"].images, rows["b"].errors, rows["b"].missing) == (3, 1, 0)
    assert (rows["c"].images, rows["c"].missing, rows["c"].acc1) == (2, 2, 100.0)
    assert [rows[m].rank1 for m in "abc"] == [3, 2, 1]
    assert [rows[m].rank5 for m in "abc"] == [3, 1, 1]  # ties share the better rank
    assert rows["a"].published_acc1 is None  # reference protocol: documented figure, none here
    assert rows["a"].images_per_s == 2.0


def test_northcutt2019_protocol_compares_with_the_2019_table(tmp_path):
    write_pair(tmp_path, "pytorch", "a", [1], [[1, 0, 0, 0, 0]], protocol="northcutt2019")
    (row,) = score(tmp_path)
    assert (row.published_acc1, row.published_acc5) == (50.0, 70.0)
    assert row.published_source == "northcutt2019 table"
    # measured (100 / 100) minus published
    assert (row.published_delta1, row.published_delta5) == (50.0, 30.0)


def test_reference_protocol_compares_with_the_documented_figure(tmp_path):
    # keras.io documents only Acc@1 for some models (ConvNeXt): no Acc@5 difference then
    write_pair(tmp_path, "keras", "a", [1, 2], [[1, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
               documented=[80.0, None])
    (row,) = score(tmp_path)
    assert (row.published_acc1, row.published_acc5) == (80.0, None)
    assert (row.published_delta1, row.published_delta5) == (-30.0, None)
    assert row.published_source == "docs"


def test_claim_places_the_claimed_figure_against_the_interval(tmp_path):
    labels = list(range(40))
    top5 = [[label if i < 30 else 999, 0, 0, 0, 0] for i, label in enumerate(labels)]  # 75% right
    # 30 of 40: the 95% interval is 58.8 .. 87.3
    for model, documented in (("high", [95.0, None]), ("low", [50.0, None]), ("near", [80.0, None]),
                              ("none", None)):
        write_pair(tmp_path, "pytorch", model, labels, top5, documented=documented)
    write_pair(tmp_path, "keras", "y2019", labels, top5, protocol="northcutt2019")  # 2019 table: 50
    rows = {row.model: row for row in score(tmp_path)}
    assert rows["near"].acc1_ci_low == pytest.approx(58.80, abs=0.01)
    assert rows["near"].acc1_ci_high == pytest.approx(87.31, abs=0.01)
    claims = {model: row.claim for model, row in rows.items()}
    assert claims == {"high": "above", "low": "below", "near": "consistent", "none": None,
                      "y2019": "below"}


def test_sanity_column_reads_the_pairs_check(tmp_path):
    for model in ("a", "b"):
        write_pair(tmp_path, "pytorch", model, [1], [[1, 0, 0, 0, 0]])
    folder = shard_path(tmp_path, "pytorch", "a", 0).parent
    run_check("skip", "pytorch/a", None, None, folder)
    rows = {row.model: row for row in score(tmp_path)}
    assert (rows["a"].sanity, rows["b"].sanity) == ("skipped", None)  # b: never checked


def test_results_files_carry_random_weights(tmp_path):
    write_pair(tmp_path, "pytorch", "a", [1, 2], [[1, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    paths = write_results(tmp_path, score(tmp_path))
    frame = pd.read_csv(tmp_path / "results" / "accuracy.csv")
    assert list(frame.columns) == [c for c in COLUMNS if c in BASE_COLUMNS]
    # appended last, so that the columns before them keep their places in the files
    assert list(frame.columns)[-4:] == ["sanity", "claim", "rank1_low", "rank1_high"]
    assert frame.loc[0, "acc1"] == 50.0 and frame.loc[0, "weights"] == "random"
    # PyTorch has no backend; files from before precision was a setting were strict fp32
    assert pd.isna(frame.loc[0, "backend"]) and frame.loc[0, "precision"] == "fp32"
    assert "weights: random" in (tmp_path / "results" / "accuracy.md").read_text()
    assert '"random_weights": true' in (tmp_path / "results" / "accuracy.json").read_text()
    assert len(paths) == 3


def test_mixed_configs_and_duplicates_are_refused(tmp_path):
    write_pair(tmp_path, "pytorch", "a", [1], [[1, 0, 0, 0, 0]], shard=0, images=2)
    write_pair(tmp_path, "pytorch", "a", [1], [[1, 0, 0, 0, 0]], shard=1, start=1, images=2,
           pair_key="other")
    with pytest.raises(UserError, match="mixes predictions"):
        score(tmp_path)
    write_pair(tmp_path, "pytorch", "a", [1], [[1, 0, 0, 0, 0]], shard=1, start=0, images=2)
    with pytest.raises(UserError, match="more than one row"):
        score(tmp_path)


def test_all_unreadable_gives_nan_not_a_crash(tmp_path):
    write_pair(tmp_path, "pytorch", "a", [1, 2], [None, None], errors={0, 1})
    write_pair(tmp_path, "keras", "b", [1, 2], [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    rows = score(tmp_path)
    assert [row.model for row in rows] == ["b", "a"]  # unrankable last
    assert math.isnan(rows[1].acc1) and rows[1].errors == 2 and rows[1].rank1 is None
    assert rows[0].rank1 == 1


def test_empty_run_folder_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no predictions"):
        score(tmp_path)
