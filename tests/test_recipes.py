"""Recipes reproduce the frameworks' own resize/crop pipelines on the same files."""

import numpy as np
import pytest
from PIL import Image

from runner.data.recipes import Recipe, center_crop

from .helpers import probe


@pytest.fixture(scope="module")
def images(sample_dir):
    # every size the sample generator makes, landscape and portrait, small and large
    return sorted(str(p) for p in (sample_dir / "val").glob("*/*.JPEG"))


def test_shorter_side_recipes_equal_torchvision_resize_and_center_crop(images):
    recipes = {
        "resize256-crop224": {"resize": "shorter_side", "size": 256, "crop": 224,
                              "interpolation": "bilinear"},
        # the 2019 inception_v3 recipe: a 299 crop of a 256 side pads with black
        "resize256-crop299": {"resize": "shorter_side", "size": 256, "crop": 299,
                              "interpolation": "bilinear"},
        "resize342-crop299": {"resize": "shorter_side", "size": 342, "crop": 299,
                              "interpolation": "bilinear"},
        "resize256-crop224-bicubic": {"resize": "shorter_side", "size": 256, "crop": 224,
                                      "interpolation": "bicubic"},
    }
    worst = probe("pytorch", "recipe_fidelity", {"recipes": recipes, "images": images})
    assert worst == {name: 0 for name in recipes}


def test_squash_recipes_equal_keras_load_img(images):
    recipes = {
        f"squash{size}": {"resize": "squash", "size": size, "interpolation": "nearest"}
        for size in (224, 299, 331)
    }
    worst = probe("keras", "recipe_fidelity", {"recipes": recipes, "images": images})
    assert worst == {name: 0 for name in recipes}


def test_center_crop_pads_like_torchvision():
    image = Image.fromarray(np.full((10, 7, 3), 200, np.uint8))  # 7 wide, 10 high
    crop = np.asarray(center_crop(image, 9))
    # width 7 -> pad 1 left, 1 right; height 10 -> crop rows round(0.5)=0..9
    assert crop.shape == (9, 9, 3)
    assert (crop[:, 0] == 0).all() and (crop[:, -1] == 0).all() and (crop[:, 1:-1] == 200).all()


def test_recipe_validation():
    with pytest.raises(ValueError, match="squash recipe"):
        Recipe(resize="squash", size=224, crop=200, interpolation="nearest")
    assert Recipe(resize="shorter_side", size=256, crop=224, interpolation="bilinear").key == (
        "shorter_side256-crop224-bilinear"
    )
