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


def test_recipe_keys_and_squash_then_crop():
    assert Recipe(resize="shorter_side", size=256, crop=224, interpolation="bilinear").key == (
        "shorter_side256-crop224-bilinear"
    )
    # timm's crop_mode squash with crop_pct < 1: squash to 248 x 248, then a 224 center crop
    squash = Recipe(resize="squash", size=248, crop=224, interpolation="bicubic")
    assert squash.key == "squash248-crop224-bicubic" and squash.output_size == 224
    image = Image.fromarray(np.arange(300 * 500 * 3, dtype=np.uint32).astype(np.uint8).reshape(300, 500, 3))
    squashed = np.asarray(image.resize((248, 248), Image.Resampling.BICUBIC))
    assert np.array_equal(squash.apply(image), squashed[12:236, 12:236])
    with pytest.raises(ValueError):
        Recipe(resize="squash", size=224, crop=0, interpolation="nearest")


def test_the_in_place_conversion_equals_torchvisions_steps_bit_for_bit():
    """The CPU input tensor, made in place step by step (new, and into a reused buffer), has the
    values and strides of the plain steps: uint8 -> float, /255, torchvision's normalize. Crops
    of 75x77 pixels end every batch in a partial step. In a child process: torchvision after
    TensorFlow (which other tests load in this one) crashes."""
    batches = [1, 3, 4, 5, 9, 64]
    args = {"batches": batches, "side": 75, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    expected = {"equal": [True] * 3, "same_strides": [True] * 3, "buffer_used": True,
                "partial_last_step": True}
    assert probe("pytorch", "input_conversion", args) == {str(batch): expected for batch in batches}
