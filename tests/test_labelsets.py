"""Label-error sets: the study file, the correct sets, the ten published 2019 tables
(counts and anchor values from the 2019 files), and scoring a run with them."""

import csv

import numpy as np
import pytest

from runner.cli import main
from runner.errors import UserError
from runner.report.png import write_report
from runner.score.label_tables import LabelSetRequest, score_label_sets
from runner.score.labelsets import (
    CORRECT_SETS,
    CRANE_CLASSES,
    PUBLISHED_SETS,
    VALIDATION_IMAGES,
    MturkStudy,
    correct_set,
    label_set,
    published_entries,
    read_mturk,
)
from runner.score.reduce import score

from .helpers import SHARED, write_pair

STUDY = SHARED / "imagenet" / "imagenet_mturk.json"
GROUND_TRUTH = SHARED / "imagenet" / "val_ground_truth.csv"


@pytest.fixture(scope="module")
def study():
    if not STUDY.exists():
        pytest.skip(f"the Mechanical Turk study is not under {STUDY.parent}")
    return read_mturk(STUDY)


@pytest.fixture(scope="module")
def validation_labels():
    """Original label by file number - 1, from the ground truth."""
    if not GROUND_TRUTH.exists():
        pytest.skip(f"validation ground truth not found: {GROUND_TRUTH}")
    labels = np.full(VALIDATION_IMAGES, -1, np.int64)
    for row in csv.DictReader(GROUND_TRUTH.open()):
        labels[int(row["file"][len("ILSVRC2012_val_"):][:8]) - 1] = int(row["label"])
    return labels


# ---- the study and the set definitions ----------------------------------------------------

def test_study_entries_and_the_published_subset(study):
    assert len(study) == 5440 and study.numbers.min() >= 1
    assert len(published_entries(study)) == 5401  # 39 APOS entries left out
    # `id` is the file number: the first entry (class tench) is ILSVRC2012_val_00000293
    assert (study.numbers[0], study.given[0], study.guessed[0]) == (293, 0, 48)


PUBLISHED_COUNTS = {  # name: (images behind acc, images behind cacc)
    "consensus3": (1405, 1405), "consensus4": (943, 943), "consensus5": (460, 460),
    "consensus5_464": (464, 464),
    "cleaned_and_corrected_3": (48519, 48519), "cleaned_and_corrected_4": (47424, 47424),
    "cleaned_and_corrected_5": (46078, 46078),
    "test_noise_removed_3": (50000, 47114), "test_noise_removed_4": (50000, 46481),
    "test_noise_removed_5": (50000, 45618),
}


def test_published_rules_give_the_published_counts(study, validation_labels):
    assert set(PUBLISHED_COUNTS) == set(PUBLISHED_SETS)
    for name, counts in PUBLISHED_COUNTS.items():
        chosen = label_set(name, study, validation_labels, as_published=True)
        assert (chosen.acc_images.sum(), chosen.cacc_images.sum()) == counts, name


def test_cleaned_and_corrected_relabels_cranes_too(study):
    chosen = label_set("cleaned_and_corrected_3", study, as_published=True)
    entries = published_entries(study)
    confirmed = entries.votes_guessed >= 3
    crane = np.isin(entries.guessed, CRANE_CLASSES) | np.isin(entries.given, CRANE_CLASSES)
    relabelled = chosen.relabel[entries.numbers - 1] >= 0
    assert relabelled.sum() == confirmed.sum() and (relabelled & crane).any()


# documented in docs/accuracy.md
CORRECT_COUNTS = {  # name: (images, cimages, labels changed)
    "corrected-3": (50000, 50000, 1428), "corrected-4": (50000, 50000, 960),
    "corrected-5": (50000, 50000, 468),
    "cleaned-3": (48512, 48512, 1428), "cleaned-4": (47407, 47407, 960),
    "cleaned-5": (46044, 46044, 468),
    "consensus-3": (1428, 1428, 1428), "consensus-4": (960, 960, 960),
    "consensus-5": (468, 468, 468),
    "removed-3": (47084, None, 1428), "removed-4": (46447, None, 960),
    "removed-5": (45576, None, 468),
}


def test_correct_sets_give_the_documented_counts(study):
    assert set(CORRECT_COUNTS) == set(CORRECT_SETS)
    for name, (images, cimages, changed) in CORRECT_COUNTS.items():
        chosen = label_set(name, study)
        counted = None if chosen.cacc_images is None else chosen.cacc_images.sum()
        assert (chosen.acc_images.sum(), counted, (chosen.relabel >= 0).sum()) == \
            (images, cimages, changed), name


def _tiny_study():
    """Four entries: original confirmed (5 given), relabel at 4 votes, neither, relabel at 5."""
    return MturkStudy(numbers=np.array([10, 20, 30, 40]), given=np.array([1, 2, 3, 4]),
                      guessed=np.array([7, 8, 9, 6]), votes_given=np.array([5, 1, 1, 0]),
                      votes_guessed=np.array([0, 4, 1, 5]))


@pytest.mark.parametrize("kind, level, acc_out, cacc_out, relabelled", [
    ("corrected", 3, set(), set(), {20: 8, 40: 6}),
    ("cleaned", 3, {30}, {30}, {20: 8, 40: 6}),
    ("removed", 3, {20, 30, 40}, None, {20: 8, 40: 6}),
    ("cleaned", 5, {20, 30}, {20, 30}, {40: 6}),  # 4 votes are short of 5: 20 is unsure
])
def test_correct_sets_on_a_tiny_study(kind, level, acc_out, cacc_out, relabelled):
    chosen = correct_set(_tiny_study(), kind, level)
    assert set(np.flatnonzero(~chosen.acc_images) + 1) == acc_out
    if cacc_out is None:
        assert chosen.cacc_images is None
    else:
        assert set(np.flatnonzero(~chosen.cacc_images) + 1) == cacc_out
    assert {int(n) + 1: int(chosen.relabel[n]) for n in np.flatnonzero(chosen.relabel >= 0)} == relabelled
    assert chosen.corrected(np.array([10, 20, 40]), np.array([1, 2, 4])).tolist() == [
        1, relabelled.get(20, 2), 6]


def test_consensus_keeps_only_confirmed_relabels():
    chosen = correct_set(_tiny_study(), "consensus", 4)
    assert set(np.flatnonzero(chosen.acc_images) + 1) == {20, 40}


def test_test_noise_removed_drops_list_positions_not_the_flagged_images():
    # labels in file-number order, 50 per class: sorted position = number - 1
    labels = np.arange(VALIDATION_IMAGES) // 50
    study = MturkStudy(numbers=np.array([1001, 2001, 3001]), given=labels[[1000, 2000, 3000]],
                       guessed=np.array([5, 6, 7]), votes_given=np.array([1, 5, 0]),
                       votes_guessed=np.array([1, 0, 5]))
    chosen = label_set("test_noise_removed_3", study, labels, as_published=True)
    # flagged: entry 0 (neither confirmed) and entry 2 (relabel), list positions 0 and 2
    assert set(np.flatnonzero(~chosen.cacc_images) + 1) == {1, 3}
    assert chosen.acc_images.all()
    with pytest.raises(UserError, match="needs predictions for all 50,000 images"):
        label_set("test_noise_removed_3", study, np.where(labels > 0, labels, -1), as_published=True)


def test_the_published_test_noise_removed_drops_the_first_classes(study, validation_labels):
    # docs/accuracy.md: 2,886 images dropped, all from classes 0..108; 179 of them flagged
    chosen = label_set("test_noise_removed_3", study, validation_labels, as_published=True)
    dropped = np.flatnonzero(~chosen.cacc_images)
    assert len(dropped) == 2886 and validation_labels[dropped].max() == 108
    flagged = label_set("removed-3", study)  # the flagged images (no APOS/CRANE quirks)
    assert (~flagged.acc_images[dropped]).sum() < 200


@pytest.mark.parametrize("name, as_published, message", [
    ("consensus-6", False, "unknown label set 'consensus-6'; choose from corrected-3"),
    ("consensus3", False, "a published table: add --as-published"),
    ("consensus-3", True, "a correct set: drop --as-published"),
])
def test_unknown_set_names(name, as_published, message):
    with pytest.raises(UserError, match=message):
        label_set(name, _tiny_study(), as_published=as_published)


@pytest.mark.parametrize("text, message", [
    ("[{\"url\": \"x.jpg\"}]", "is not cleanlab's imagenet_mturk.json"),
    ("{", "cannot read"),
    ("[]", "file numbers must lie in"),
])
def test_bad_study_files(tmp_path, text, message):
    path = tmp_path / "mturk.json"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        read_mturk(path)


# ---- the 2019 files -----------------------------------------------------------------------

ANCHORS = [  # published fractions (issue 13)
    ("consensus3", "keras", "nasnetlarge", "acc1", 0.19786476868327402),
    ("consensus3", "keras", "nasnetlarge", "cacc1", 0.6626334519572954),
    ("test_noise_removed_3", "pytorch", "resnet50", "acc1", 0.75062),
    ("test_noise_removed_3", "pytorch", "resnet50", "cacc1", 0.7475909496115805),
    ("consensus5_464", "pytorch", "resnet50", "cacc1", 0.8060344827586207),
]


def test_as_published_reproduces_the_anchor_values(imported_2019, study, capsys):
    names = sorted({anchor[0] for anchor in ANCHORS})
    argv = ["score", str(imported_2019), "--mturk", str(STUDY), "--as-published"]
    assert main(argv + [arg for name in names for arg in ("--label-set", name)]) == 0
    assert "label set consensus5_464" in capsys.readouterr().out
    for name, framework, model, column, published in ANCHORS:
        table = list(csv.DictReader((imported_2019 / "results" / f"accuracy-{name}.csv").open()))
        row = next(r for r in table if (r["framework"], r["model"]) == (framework, model))
        images = int(row["images" if column == "acc1" else "cimages"])
        assert images == PUBLISHED_COUNTS[name][column == "cacc1"]
        right = round(float(row[column]) * images / 100)
        assert right / images == published, (name, model, column)  # the fraction, exactly
        assert float(row[f"{column}_ci_low"]) < float(row[column]) < float(row[f"{column}_ci_high"])


def test_all_ten_tables_and_the_correct_sets_on_the_2019_files(imported_2019, study):
    plain = score(imported_2019)
    one_of_each_kind = ["corrected-3", "cleaned-4", "consensus-3", "removed-5"]
    for names, published in ((list(PUBLISHED_SETS), True), (one_of_each_kind, False)):
        counts = PUBLISHED_COUNTS if published else CORRECT_COUNTS
        tables = score_label_sets(imported_2019, plain, LabelSetRequest(study, names, published))
        for table in tables:
            assert len(table.rows) == 34 and not table.notes
            assert {row.images for row in table.rows} == {counts[table.name][0]}
            assert {row.cimages for row in table.rows} == {counts[table.name][1]}
            assert sorted(row.tier for row in table.rows)[0] == 1
    # corrected labels help every model on consensus-3: its images had wrong original labels
    consensus = {row.model: row for row in tables[2].rows if row.framework == "pytorch"}
    assert all(row.cacc1 > row.acc1 for row in tables[2].rows)
    assert consensus["resnet50"].ctier < consensus["alexnet"].ctier


def test_tiers_of_the_published_ranking(imported_2019):
    """docs/accuracy.md: 18 of the 33 adjacent Acc@1 gaps are significant, 19 tiers."""
    rows = score(imported_2019)
    significant = [row for row in rows if row.tier_p_above is not None and row.tier_p_above < 0.05]
    assert (len(rows), len(significant), rows[-1].tier) == (34, 18, 19)
    tier_of = {row.model: row.tier for row in rows if row.framework == "pytorch"}
    # densenet161, resnet101 and densenet201 cannot be told apart from keras xception
    assert tier_of["densenet161"] == tier_of["resnet101"] == tier_of["densenet201"] == 4


# ---- scoring a run ------------------------------------------------------------------------

def _run_on_study_images(out, study, count=4):
    """A run over the first `count` consensus-3 images of the study plus two unflagged images:
    the model predicts the guessed label on the first half, the original on the rest."""
    picked = np.flatnonzero(study.votes_guessed >= 3)[:count]
    flagged = set(study.numbers.tolist())
    clean = [n for n in range(1, 100) if n not in flagged][:2]
    numbers = [*study.numbers[picked].tolist(), *clean]
    labels = [*study.given[picked].tolist(), 0, 0]
    first = [*study.guessed[picked[: count // 2]], *study.given[picked[count // 2:]], 0, 5]
    top5 = [[int(c), 999, 998, 997, 996] for c in first]
    ids = [f"n0/ILSVRC2012_val_{n:08d}.JPEG" for n in numbers]
    write_pair(out, "pytorch", "m", labels, top5, image_ids=ids)


def test_partial_run_is_an_error_unless_partial(tmp_path, study):
    _run_on_study_images(tmp_path, study)
    argv = ["score", str(tmp_path), "--mturk", str(STUDY), "--label-set", "consensus-3"]
    with pytest.raises(UserError, match="needs 1,428 images; pytorch/m has no prediction for 1,424"):
        score_label_sets(tmp_path, score(tmp_path), LabelSetRequest(study, ["consensus-3"]))
    assert main(argv) == 2
    assert main([*argv, "--partial"]) == 0
    (row,) = csv.DictReader((tmp_path / "results" / "accuracy-consensus-3.csv").open())
    # original labels: right on 2 of 4; corrected (guessed) labels: right on the other 2
    assert (row["images"], row["cimages"], row["acc1"], row["cacc1"]) == ("4", "4", "50.0", "50.0")
    assert row["label_set"] == "consensus-3" and row["weights"] == "random" and row["tier"] == "1"
    # a single label set is also the accuracy table
    assert (tmp_path / "results" / "accuracy.csv").read_text() == \
        (tmp_path / "results" / "accuracy-consensus-3.csv").read_text()
    assert "1,424 of the set's 1,428 images are not in the run" in \
        (tmp_path / "results" / "accuracy.md").read_text()
    assert "rank_movement.png" in {path.name for path in write_report(tmp_path)}


def test_removed_set_has_no_corrected_figures(tmp_path, study):
    _run_on_study_images(tmp_path, study)
    request = LabelSetRequest(study, ["removed-3", "corrected-3"], partial=True)
    removed, corrected = score_label_sets(tmp_path, score(tmp_path), request)
    (row,) = removed.rows
    assert (row.images, row.acc1, row.given("cacc1"), row.given("cimages")) == (2, 50.0, False, False)
    (row,) = corrected.rows  # all six images; corrected labels on the four study images
    assert (row.images, row.acc1, row.cimages, row.cacc1) == (6, 50.0, 6, 50.0)


def test_runs_without_file_names_or_with_other_labels_are_refused(tmp_path, study):
    write_pair(tmp_path / "a", "pytorch", "m", [0], [[0, 1, 2, 3, 4]])
    request = LabelSetRequest(study, ["corrected-3"], partial=True)
    with pytest.raises(UserError, match="match rows by ImageNet file name"):
        score_label_sets(tmp_path / "a", score(tmp_path / "a"), request)
    # ILSVRC2012_val_00000293 is a tench (0) in the study
    write_pair(tmp_path / "b", "pytorch", "m", [5], [[0, 1, 2, 3, 4]],
               image_ids=["ILSVRC2012_val_00000293.JPEG"])
    with pytest.raises(UserError, match="differ from the study's original labels on 1 images"):
        score_label_sets(tmp_path / "b", score(tmp_path / "b"), request)


@pytest.mark.parametrize("flags, message", [
    (["--label-set", "consensus-3"], "--label-set needs the study: --mturk"),
    (["--mturk", "x.json"], "--mturk applies to label sets"),
    (["--partial"], "--partial applies to label sets"),
    (["--as-published"], "--as-published applies to label sets"),
])
def test_label_set_flags_need_each_other(tmp_path, capsys, flags, message):
    write_pair(tmp_path, "pytorch", "m", [0], [[0, 1, 2, 3, 4]])
    assert main(["score", str(tmp_path), *flags]) == 2
    assert message in capsys.readouterr().err
