"""The weights sanity check: before a model starts on the dataset, it predicts the photo set.

Broken weights happen (keras.applications once shipped InceptionResNetV2 and NASNet weights that
scored about 0.1%), and so do random ones; either shows in seconds here rather than after hours
on the dataset. A model fails when fewer than MIN_FRACTION of the photos have an accepted class
in its top-5: the table says `sanity=failed` with a warning line, and under --strict-sanity the
model stops (status=failed, exit 1). The result goes to the pair's folder (SANITY_FILE), where
the scorer reads it; `skipped` under --no-sanity.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from runner.data.photos import sanity_photos, top5_hits
from runner.data.recipes import Recipe, decode_rgb
from runner.errors import UserError
from runner.outputs import Location, LocationLike
from runner.predictions import top_k

MIN_FRACTION = 0.6
SANITY_FILE = "_sanity.json"  # "_": not read as predictions (like _failed.json)
Mode = Literal["check", "strict", "skip"]


@dataclass(frozen=True)
class SanityResult:
    status: Literal["ok", "failed", "skipped"]
    hits: int = 0
    photos: int = 0
    top5: dict[str, list[int]] = field(default_factory=dict)  # photo -> predicted classes

    def summary(self) -> str:
        return f"{self.hits}/{self.photos} photos with an accepted class in the top-5"


def check(predict: Callable[[np.ndarray], np.ndarray], recipe: Recipe) -> SanityResult:
    """Predict the photo set (uint8 crops of `recipe`, through `predict`) and judge the top-5."""
    photos = sanity_photos()
    crops = np.stack([recipe.apply(decode_rgb(str(photo.path))) for photo in photos])
    probabilities = predict(crops)
    if probabilities.shape != (len(photos), 1000):
        raise RuntimeError(f"the model returned {probabilities.shape} for {len(photos)} images, "
                           "not one row of 1000 ImageNet classes per image")
    classes, _ = top_k(probabilities)
    top5 = {photo.name: classes[i].tolist() for i, photo in enumerate(photos)}
    hits = sum(top5_hits(top5, photos).values())
    return SanityResult("ok" if hits >= MIN_FRACTION * len(photos) else "failed", hits, len(photos), top5)


def run_check(mode: Mode, key: str, predict, recipe: Recipe, folder: LocationLike) -> SanityResult:
    """The check as the run asks for it; the result is written to `folder`. Strict mode raises
    UserError for a failed check, so the model fails alone."""
    result = SanityResult("skipped") if mode == "skip" else check(predict, recipe)
    (Location.of(folder) / SANITY_FILE).write_text(json.dumps(asdict(result)) + "\n")
    if result.status == "failed" and mode == "strict":
        raise UserError(f"{key}: sanity check failed ({result.summary()}; broken or random "
                        "weights?); stopped by --strict-sanity")
    return result


def read_status(folder: LocationLike) -> str | None:
    """ok, failed or skipped from a pair's folder; None where no check ran (imported, older)."""
    path = Location.of(folder) / SANITY_FILE
    return json.loads(path.read_text())["status"] if path.is_file() else None
