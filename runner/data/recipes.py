"""Preprocessing recipes: decode an image file and turn it into a uint8 RGB crop.

A recipe covers everything up to the uint8 pixels (resize policy, size, crop,
interpolation); normalisation belongs to the framework adapter. Two models with
equal recipes see byte-identical inputs, so a recipe is also the key under which
decoded crops can be shared between models.
"""

from __future__ import annotations

import warnings
from typing import IO, Literal, get_args

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

_PIL_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}
# pil: PIL resizes (what torchvision's PIL transforms and Keras' loader do); tensor: torchvision's
# resize and center crop on a uint8 tensor, antialiased (its default since 0.17), or not.
Resizer = Literal["pil", "tensor", "tensor-noantialias"]
RESIZERS: tuple[Resizer, ...] = get_args(Resizer)


class Recipe(BaseModel):
    """How one image becomes a square uint8 model input."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # shorter_side: scale so the shorter side is `size` (aspect kept), as torchvision Resize(int);
    # squash: resize straight to size x size, as keras load_img(target_size) and, followed by a
    # center crop, timm's crop_mode "squash" (Resize((size, size)) then CenterCrop).
    resize: Literal["shorter_side", "squash"]
    size: PositiveInt
    # Side of the center crop; None for no crop. Larger than the resized image pads with black,
    # as torchvision CenterCrop does (the 2019 inception_v3 recipe and timm's crop_pct > 1 rely on it).
    crop: PositiveInt | None = None
    interpolation: Literal["nearest", "bilinear", "bicubic"]
    # Added after pair keys were first made: left out of dumps (and keys) at its default.
    resizer: Resizer = Field("pil", exclude_if=lambda value: value == "pil")

    @property
    def output_size(self) -> int:
        return self.crop or self.size

    @property
    def description(self) -> str:
        """In words, for people (catalog docs, `kpbench models`): "256 / 224, bilinear"."""
        if self.resize == "squash":
            crop = f" / {self.crop}" if self.crop else ""
            return f"squash to {self.size}{crop}, {self.interpolation}"
        return f"{self.size} / {self.crop}, {self.interpolation}"

    @property
    def key(self) -> str:
        crop = f"-crop{self.crop}" if self.crop else ""
        resizer = f"-{self.resizer}" if self.resizer != "pil" else ""
        return f"{self.resize}{self.size}{crop}-{self.interpolation}{resizer}"

    def apply(self, image: Image.Image) -> np.ndarray:
        """RGB PIL image -> uint8 array (output_size, output_size, 3)."""
        if self.resizer != "pil":
            return self._apply_tensor(image)
        target = self._target(*image.size)
        if target != image.size:
            image = image.resize(target, resample=_PIL_FILTERS[self.interpolation])
        if self.crop:
            image = center_crop(image, self.crop)
        return np.asarray(image, dtype=np.uint8)

    def _target(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after the resize."""
        if self.resize == "squash":
            return self.size, self.size
        # torchvision's _compute_resized_output_size: the long side is truncated, not rounded.
        if width <= height:
            return self.size, int(self.size * height / width)
        return int(self.size * width / height), self.size

    def _apply_tensor(self, image: Image.Image) -> np.ndarray:
        """torchvision's tensor transforms (Resize, CenterCrop) on the uint8 image, as a
        torchvision.io.decode_image pipeline does them; imported here, so only PyTorch actors,
        the only ones given tensor resizers (runner/plan/variants.py), load torch."""
        import torch
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as tv

        pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
        width, height = self._target(*image.size)
        if (width, height) != image.size:
            pixels = tv.resize(pixels, [height, width], InterpolationMode(self.interpolation),
                               antialias=self.resizer == "tensor")
        if self.crop:
            pixels = tv.center_crop(pixels, [self.crop])
        return pixels.permute(1, 2, 0).contiguous().numpy()


def center_crop(image: Image.Image, side: int) -> Image.Image:
    """Square center crop with torchvision's offsets, padding with black when the image is smaller."""
    width, height = image.size
    if side > width or side > height:
        pad_left = (side - width) // 2 if side > width else 0
        pad_top = (side - height) // 2 if side > height else 0
        padded = Image.new(image.mode, (max(side, width), max(side, height)))
        padded.paste(image, (pad_left, pad_top))
        image, (width, height) = padded, padded.size
    top = int(round((height - side) / 2.0))
    left = int(round((width - side) / 2.0))
    return image.crop((left, top, left + side, top + side))


def decode_rgb(path: str | IO[bytes]) -> Image.Image:
    """Open and fully decode an image file as 8-bit RGB.

    Decoding goes by content, not by extension (PNG bytes named .JPEG decode as PNG).
    CMYK, grayscale and palette images convert as torchvision's and Keras' loaders convert
    them; 16-bit images are scaled to 8 bits first (a plain convert would clip them to white).
    An image over PIL's decompression-bomb limit raises instead of warning: the limit stays on.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        # Palette transparency: converting straight to RGB is what the frameworks' loaders do.
        warnings.filterwarnings("ignore", "Palette images with Transparency", UserWarning)
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                return _sixteen_bit_to_rgb(image)
            return image.convert("RGB")


def _sixteen_bit_to_rgb(image: Image.Image) -> Image.Image:
    pixels = np.asarray(image, dtype=np.uint32)
    scaled = (pixels >> 8) if pixels.max(initial=0) > 255 else pixels
    return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
