"""Turning a shard's records into model inputs: read bytes, decode, apply the recipe.

Every record gives either a crop or an error message; nothing is dropped.
"""

from __future__ import annotations

import io
import os
import socket
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO

import numpy as np

from runner.data.packed import read_packed_images
from runner.data.recipes import Recipe, decode_rgb
from runner.data.records import ImageRecord


@dataclass(frozen=True)
class DecodeReport:
    """What happened to a shard's records when they were decoded (the small Ray object beside
    the crops, which the driver checks without fetching the crops)."""

    errors: list[str | None]  # per record: why it could not be read; None when it could
    decode_id: str  # the same in every model's file that shared the decoding
    decoded_by: str  # host:pid
    decode_seconds: float


def load_crops(records: list[ImageRecord], recipe: Recipe,
               threads: int) -> tuple[np.ndarray, DecodeReport]:
    """uint8 crops (readable images only, in record order), and what happened: one error (or
    None) per record, who decoded them and how long it took. PIL releases the GIL while
    decoding and resizing, so threads decode in parallel."""
    started = time.perf_counter()
    sources = _sources(records)

    def one(i: int) -> tuple[np.ndarray | None, str | None]:
        try:
            return recipe.apply(decode_rgb(sources[i])), None
        except Exception as exc:  # any failure becomes an error row, never a drop
            return None, _reason(exc, sources[i], records[i].image_id)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        results = list(pool.map(one, range(len(records))))
    crops = [crop for crop, _ in results if crop is not None]
    size = recipe.output_size
    stacked = np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8)
    report = DecodeReport(
        errors=[error for _, error in results],
        decode_id=uuid.uuid4().hex[:12],
        decoded_by=f"{socket.gethostname()}:{os.getpid()}",
        decode_seconds=round(time.perf_counter() - started, 4),
    )
    return stacked, report


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
