"""Decode once, cut every recipe: the crops equal a decode per recipe, for every recipe in the catalog."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from runner.catalog import load_catalog
from runner.data.decode import cut_crops, load_crops
from runner.data.recipes import decode_rgb
from runner.data.records import ImageRecord


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Landscape and portrait JPEGs, one smaller than most crops (padding), a grayscale PNG,
    and a file that is no image."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for i, (size, mode) in enumerate([((500, 375), "RGB"), ((375, 500), "RGB"), ((150, 97), "RGB"),
                                      ((333, 260), "L")]):
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        path = folder / f"img{i}.{'JPEG' if mode == 'RGB' else 'png'}"
        Image.fromarray(pixels).convert(mode).save(path)
        paths.append(path)
    (folder / "broken.JPEG").write_bytes(b"not an image")
    paths.append(folder / "broken.JPEG")
    return [ImageRecord(i, path.name, str(path), 0) for i, path in enumerate(paths)]


def test_every_catalog_recipe_cut_from_one_decode_equals_its_own_decode(records):
    recipes = sorted({r for spec in load_catalog().specs for r in spec.recipes.values()},
                     key=lambda recipe: recipe.key)
    assert len(recipes) > 100  # torchvision, Keras, the 2019 set and timm
    with ThreadPoolExecutor(2) as pool:
        report, crops = cut_crops(records, recipes, pool)
    readable = [decode_rgb(record.path) for record in records[:-1]]
    for recipe, stack in zip(recipes, crops, strict=True):
        expected = np.stack([recipe.apply(image) for image in readable])
        assert stack.dtype == np.uint8 and np.array_equal(stack, expected), recipe.key
        errors = report.errors_of(recipe)
        assert errors[:-1] == [None] * len(readable)
        assert errors[-1].startswith("UnidentifiedImageError") and "broken.JPEG" in errors[-1]


def test_one_recipe_alone_gives_its_crops_and_one_error_list(records):
    recipe = load_catalog().get("pytorch/resnet18").recipe("reference")
    crops, report = load_crops(records, recipe, threads=2)
    assert crops.shape == (len(records) - 1, 224, 224, 3)
    assert report.errors_of(recipe)[:-1] == [None] * (len(records) - 1) and report.errors_of(recipe)[-1]
    assert report.decode_seconds > 0 and len(report.decode_id) == 12
