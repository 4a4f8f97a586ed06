"""Packed datasets: Parquet shards of image bytes that index and decode like their folder."""

import numpy as np
import pytest
from PIL import Image

from runner.catalog import load_catalog
from runner.data.decode import load_crops
from runner.data.index import open_dataset
from runner.data.packed import pack_dataset, read_packed_images
from runner.errors import UserError


@pytest.fixture(scope="module")
def many_images(tmp_path_factory):
    """150 small images in 3 classes: more than two Parquet row groups in one part."""
    root = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(0)
    for i in range(150):
        folder = root / "val" / f"n{(i % 3) * 7:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), np.uint8)).save(folder / f"{i:04d}.JPEG")
    (root / "classes.txt").write_text("".join(f"n{i:08d}\n" for i in range(1000)))
    return root


def _folder(root):
    return open_dataset(str(root / "val"), classes=str(root / "classes.txt"))


def test_pack_keeps_ids_labels_order_and_fingerprint(many_images, tmp_path):
    folder = _folder(many_images)
    assert pack_dataset(folder, str(tmp_path / "pack"), rows_per_file=100) == 2
    for uri in (str(tmp_path / "pack"), f"file://{tmp_path / 'pack'}"):
        packed = open_dataset(uri)
        assert [(r.position, r.image_id, r.label) for r in packed.records] == [
            (r.position, r.image_id, r.label) for r in folder.records
        ]
        assert packed.fingerprint == folder.fingerprint and packed.classes == folder.classes


def test_reading_rows_across_row_groups_returns_the_original_bytes(many_images, tmp_path):
    folder = _folder(many_images)
    pack_dataset(folder, str(tmp_path / "pack"), rows_per_file=150)
    part = open_dataset(str(tmp_path / "pack")).records[0].path
    rows = [149, 0, 63, 64, 65, 130]
    blobs = read_packed_images(part, rows)
    assert blobs == [open(folder.records[row].path, "rb").read() for row in rows]


def test_packed_and_folder_crops_are_identical(many_images, tmp_path):
    folder = _folder(many_images)
    pack_dataset(folder, str(tmp_path / "pack"), rows_per_file=70)
    packed = open_dataset(str(tmp_path / "pack"))
    recipe = load_catalog().get("pytorch/resnet18").recipe("reference")
    crops_a, report_a = load_crops(list(folder.records[60:140]), recipe, threads=2)
    crops_b, report_b = load_crops(list(packed.records[60:140]), recipe, threads=2)
    assert np.array_equal(crops_a, crops_b) and report_a.errors == report_b.errors


def test_a_uri_without_a_pack_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no packed dataset at file://"):
        open_dataset(f"file://{tmp_path}")
