"""`kpbench sample-data`: a small generated ImageNet-style dataset of real JPEG files.

The class list is 1000 made-up WordNet-style ids (n00000000 ... n00000999), written to
classes.txt; images go into a spread of those classes so that index mapping of a
partial folder is exercised. Sizes vary like real validation images do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZES = ((500, 375), (375, 500), (333, 333), (640, 427), (160, 120), (1024, 683))


def sample_classes() -> list[str]:
    return [f"n{i:08d}" for i in range(1000)]


def write_sample_dataset(
    out_dir: str | Path, num_classes: int = 5, per_class: int = 8, seed: int = 0
) -> Path:
    """Write OUT/val/<wnid>/sample_<k>.JPEG, OUT/classes.txt and OUT/labels.csv (file,wnid)."""
    if not 1 <= num_classes <= 1000 or per_class < 1:
        raise ValueError("need 1..1000 classes and at least one image per class")
    out = Path(out_dir)
    classes = sample_classes()
    picked = [classes[i] for i in np.linspace(0, 999, num_classes).round().astype(int)]
    rng = np.random.default_rng(seed)
    label_rows = ["file,wnid"]
    for class_number, wnid in enumerate(picked):
        folder = out / "val" / wnid
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            width, height = SIZES[(class_number * per_class + k) % len(SIZES)]
            name = f"sample_{class_number:03d}_{k:03d}.JPEG"
            _synthetic_image(rng, width, height).save(folder / name, quality=90)
            label_rows.append(f"{name},{wnid}")
    (out / "labels.csv").write_text("\n".join(label_rows) + "\n")
    (out / "classes.txt").write_text("\n".join(classes) + "\n")
    return out


def _synthetic_image(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Smooth colour gradients plus noise: compresses like a photo, differs per image."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(0.002, 0.03, 2).tolist() + [rng.uniform(0, 6.28)]
        channels.append(np.sin(x * fx + y * fy + phase))
    pixels = (np.stack(channels, axis=-1) + 1) * 110 + rng.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def synthetic_crops(count: int, size: int, seed: int = 0) -> np.ndarray:
    """`count` generated images as a uint8 (count, size, size, 3) batch: model inputs for speed
    and agreement checks that need no files."""
    rng = np.random.default_rng(seed)
    return np.stack([np.asarray(_synthetic_image(rng, size, size)) for _ in range(count)])
