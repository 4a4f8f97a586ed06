import json
import shutil

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from runner.data.index import open_dataset
from runner.data.sample import sample_classes
from runner.errors import UserError


def _class_folders(sample_dir):
    return open_dataset(str(sample_dir / "val"), classes=str(sample_dir / "classes.txt"))


def _flatten(sample_dir, target):
    target.mkdir()
    for path in (sample_dir / "val").glob("*/*.JPEG"):
        shutil.copy(path, target / path.name)
    return target


def test_partial_class_folder_gets_indices_of_the_full_class_list(sample_dir):
    dataset = _class_folders(sample_dir)
    classes = sample_classes()
    assert len(dataset) == 15
    for record in dataset.records:
        wnid = record.image_id.split("/")[0]
        assert record.label == classes.index(wnid)
    assert sorted({r.label for r in dataset.records}) == [0, 250, 500, 749, 999]
    # ImageFolder order: classes sorted, then files sorted; positions are 0..n-1
    assert [r.image_id for r in dataset.records] == sorted(r.image_id for r in dataset.records)
    assert [r.position for r in dataset.records] == list(range(15))


def test_classes_from_imagenet_class_index_json(sample_dir, tmp_path):
    index = {str(i): [wnid, f"name{i}"] for i, wnid in enumerate(sample_classes())}
    (tmp_path / "imagenet_class_index.json").write_text(json.dumps(index))
    dataset = open_dataset(str(sample_dir / "val"), classes=str(tmp_path / "imagenet_class_index.json"))
    assert [r.label for r in dataset.records] == [r.label for r in _class_folders(sample_dir).records]


def test_flat_folder_with_wnid_csv_gives_the_same_labels(sample_dir, tmp_path):
    flat = _flatten(sample_dir, tmp_path / "flat")
    by_folder = {r.image_id.split("/")[1]: r.label for r in _class_folders(sample_dir).records}
    dataset = open_dataset(str(flat), labels=str(sample_dir / "labels.csv"),
                           classes=str(sample_dir / "classes.txt"))
    assert dataset.layout == "flat"
    assert {r.image_id: r.label for r in dataset.records} == by_folder


def test_flat_folder_with_headerless_file_label_csv(sample_dir, tmp_path):
    flat = _flatten(sample_dir, tmp_path / "flat")
    by_folder = {r.image_id.split("/")[1]: r.label for r in _class_folders(sample_dir).records}
    labels = tmp_path / "labels.csv"
    labels.write_text("".join(f"{name},{label}\n" for name, label in by_folder.items()))
    dataset = open_dataset(str(flat), labels=str(labels))
    assert {r.image_id: r.label for r in dataset.records} == by_folder


def test_devkit_ground_truth_with_meta_mat(tmp_path):
    # A devkit-shaped meta.mat whose ILSVRC2012_IDs are NOT in sorted-wnid order.
    wnids = ["n00000003", "n00000001", "n00000002"]
    synsets = np.array(
        [(i + 1, wnid, "words", 0) for i, wnid in enumerate(wnids)]
        + [(4, "n09999999", "a parent synset", 3)],
        dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("num_children", "O")],
    )
    devkit = tmp_path / "devkit"
    devkit.mkdir()
    savemat(devkit / "meta.mat", {"synsets": synsets})
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text("1\n2\n3\n1\n")
    images = tmp_path / "val"
    images.mkdir()
    for number in range(1, 5):
        Image.new("RGB", (8, 8)).save(images / f"ILSVRC2012_val_{number:08d}.JPEG")
    dataset = open_dataset(str(images), labels=str(devkit / "ILSVRC2012_validation_ground_truth.txt"))
    # sorted wnids: n..01 -> 0, n..02 -> 1, n..03 -> 2; devkit id 1 is n..03
    assert [r.label for r in dataset.records] == [2, 0, 1, 2]
    assert dataset.classes == ("n00000001", "n00000002", "n00000003")


@pytest.mark.parametrize("shard_size", [1, 4, 7, 15, 100])
def test_shards_cover_every_image_exactly_once(sample_dir, shard_size):
    dataset = _class_folders(sample_dir)
    shards = dataset.shards(shard_size)
    positions = [r.position for s in shards for r in dataset.shard_records(s)]
    assert positions == list(range(len(dataset)))
    assert all(0 < s.size <= shard_size for s in shards)
    assert dataset.shards(shard_size) == shards  # deterministic


def test_fingerprint_changes_with_the_files(sample_dir, tmp_path):
    copy = shutil.copytree(sample_dir, tmp_path / "copy")
    before = _class_folders(copy).fingerprint
    assert before == _class_folders(copy).fingerprint
    next(iter((copy / "val").glob("*/*.JPEG"))).unlink()
    assert _class_folders(copy).fingerprint != before


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "nope", "data folder not found"),
        (lambda d: d, "no images in"),
        (lambda d: (d / "n00000001").mkdir() or d, "has 1 class folders, not 1000"),
    ],
)
def test_bad_folders_are_clear_errors(tmp_path, make, message):
    with pytest.raises(UserError, match=message):
        open_dataset(str(make(tmp_path)))


def test_images_without_labels_are_refused(sample_dir, tmp_path):
    flat = _flatten(sample_dir, tmp_path / "flat")
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\nsomething_else.JPEG,3\n")
    with pytest.raises(UserError, match="15 of 15 images .* have no label"):
        open_dataset(str(flat), labels=str(labels))


def test_class_folder_outside_the_class_list_is_refused(sample_dir, tmp_path):
    classes = tmp_path / "classes.txt"
    classes.write_text("n00000000\n")
    with pytest.raises(UserError, match="not in the class list"):
        open_dataset(str(sample_dir / "val"), classes=str(classes))
