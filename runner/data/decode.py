"""Turning a shard's records into model inputs: read bytes, decode once, cut every recipe.

Each image is decoded once; every recipe asked for is cut from that one decoded image (a recipe
never changes the image it is given, so the crops equal a decode per recipe, bit for bit). Every
record gives, per recipe, either a crop or an error message; nothing is dropped.
"""

from __future__ import annotations

import io
import os
import socket
import time
import uuid
from collections import defaultdict
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO

import numpy as np
from PIL import Image

from runner.data.packed import read_packed_images
from runner.data.recipes import Recipe, decode_rgb
from runner.data.records import ImageRecord

Cut = tuple[np.ndarray | None, str | None]  # one image's crop under one recipe, or why not


@dataclass(frozen=True)
class DecodeReport:
    """What happened to a shard's records when they were decoded (the small Ray object beside
    the crops, which the driver checks without fetching the crops)."""

    # per recipe key, per record: why it could not be read or cut; None when it could
    errors: dict[str, list[str | None]]
    decode_id: str  # the same in every model's file that shared the decoding
    decoded_by: str  # host:pid
    decode_seconds: float

    def errors_of(self, recipe: Recipe) -> list[str | None]:
        return self.errors[recipe.key]


def load_crops(records: list[ImageRecord], recipe: Recipe,
               threads: int) -> tuple[np.ndarray, DecodeReport]:
    """One recipe's crops and report (see `cut_crops`)."""
    with ThreadPoolExecutor(max(1, threads)) as pool:
        report, crops = cut_crops(records, [recipe], pool)
    return crops[0], report


def cut_crops(records: list[ImageRecord], recipes: list[Recipe],
              pool: Executor) -> tuple[DecodeReport, list[np.ndarray]]:
    """The shard's report and, per recipe, its uint8 crops (readable images only, in record
    order). The report says per recipe key one error (or None) per record, who decoded them and
    how long it took. PIL releases the GIL while decoding and resizing, so the pool's threads
    decode in parallel; a pool shared by several shards keeps a node's cores busy."""
    started = time.perf_counter()
    sources = _sources(records)

    def one(i: int) -> list[Cut]:
        try:
            image = decode_rgb(sources[i])
        except Exception as exc:  # any failure becomes an error row, never a drop
            return [(None, _reason(exc, sources[i], records[i].image_id))] * len(recipes)
        return [_cut(recipe, image, sources[i], records[i].image_id) for recipe in recipes]

    results = list(pool.map(one, range(len(records))))
    stacks = []
    for r, recipe in enumerate(recipes):
        crops = [crop for cuts in results if (crop := cuts[r][0]) is not None]
        size = recipe.output_size
        stacks.append(np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8))
    report = DecodeReport(
        errors={recipe.key: [cuts[r][1] for cuts in results] for r, recipe in enumerate(recipes)},
        decode_id=uuid.uuid4().hex[:12],
        decoded_by=f"{socket.gethostname()}:{os.getpid()}",
        decode_seconds=round(time.perf_counter() - started, 4),
    )
    return report, stacks


def _cut(recipe: Recipe, image: Image.Image, source: str | IO[bytes], image_id: str) -> Cut:
    try:
        return recipe.apply(image), None
    except Exception as exc:  # any failure becomes an error row, never a drop
        return None, _reason(exc, source, image_id)


def _sources(records: list[ImageRecord]) -> list[str | IO[bytes]]:
    """A path per plain file; the bytes (as a file object) per packed image."""
    sources: list[str | IO[bytes]] = [record.path for record in records]
    wanted: defaultdict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        if record.row is not None:
            wanted[record.path].append(i)
    for location, indices in wanted.items():
        blobs = read_packed_images(location, [row for i in indices if (row := records[i].row) is not None])
        for i, blob in zip(indices, blobs, strict=True):
            sources[i] = io.BytesIO(blob)
    return sources


def _reason(exc: Exception, source: str | IO[bytes], image_id: str) -> str:
    # PIL names a file object by its repr; name the image instead
    return f"{type(exc).__name__}: {exc}".replace(repr(source), repr(image_id))
