"""Packed datasets: the images as Parquet files of encoded bytes, on any pyarrow filesystem.

`kpbench pack DATA URI` writes URI/part-<k>.parquet (image_id, position, label, image bytes,
in dataset order) and, last, URI/kpbench-pack.json, the manifest that makes the pack usable.
`kpbench run --data URI` streams the parts from there (local path, file://, s3://, gs://, ...),
so cluster nodes need no shared disk. The manifest keeps the source's class list and
fingerprint: a pack gives the same predictions, and resumes the same runs, as its folder.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from runner.data.records import DatasetIndex, ImageRecord
from runner.errors import UserError

MANIFEST = "kpbench-pack.json"
ROW_GROUP = 64  # a shard reads only the row groups it needs
PACK_FIELDS: list[pa.Field] = [
    pa.field("image_id", pa.string(), nullable=False),
    pa.field("position", pa.int64(), nullable=False),
    pa.field("label", pa.int32(), nullable=False),
    pa.field("image", pa.binary(), nullable=False),  # the file's bytes, as they were on disk
]
PACK_SCHEMA = pa.schema(PACK_FIELDS)


@cache
def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem of a path or URI (s3://, gs://, file://...) and the path on it."""
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, ValueError):  # a plain local path
        return pafs.LocalFileSystem(), str(Path(uri).resolve())


def _join(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


def is_packed(data: str) -> bool:
    filesystem, path = _filesystem(data)
    try:
        return filesystem.get_file_info(_join(path, MANIFEST)).type == pafs.FileType.File
    except OSError:
        return False


def pack_dataset(index: DatasetIndex, uri: str, rows_per_file: int, progress=None) -> int:
    """Write the parts, then the manifest; returns the number of part files."""
    if rows_per_file <= 0:
        raise UserError("--rows-per-file must be positive")
    filesystem, base = _filesystem(uri)
    filesystem.create_dir(base, recursive=True)
    parts = []
    for number, start in enumerate(range(0, len(index), rows_per_file)):
        records = index.records[start : start + rows_per_file]
        table = pa.table({
            "image_id": [r.image_id for r in records],
            "position": [r.position for r in records],
            "label": [r.label for r in records],
            "image": [_read_file(r.path) for r in records],
        }, schema=PACK_SCHEMA)
        name = f"part-{number:05d}.parquet"
        # images are already compressed: storing them plainly is faster to read and as small
        pq.write_table(table, _join(base, name), filesystem=filesystem, row_group_size=ROW_GROUP,
                       compression="none")
        parts.append({"name": name, "start": start, "stop": start + len(records)})
        if progress:
            progress(len(records))
    manifest = {"format": 1, "images": len(index), "layout": index.layout, "source": index.root,
                "dataset": index.name,
                "fingerprint": index.fingerprint, "classes": list(index.classes), "parts": parts}
    with filesystem.open_output_stream(_join(base, MANIFEST)) as stream:
        stream.write(json.dumps(manifest, indent=1).encode())
    return len(parts)


def _read_file(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def open_packed(uri: str) -> DatasetIndex:
    filesystem, base = _filesystem(uri)
    try:
        with filesystem.open_input_stream(_join(base, MANIFEST)) as stream:
            manifest = json.loads(stream.read())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the pack manifest {_join(uri, MANIFEST)}: {exc}") from None
    records = []
    for part in manifest["parts"]:
        location = _join(uri, part["name"])
        table = pq.read_table(_join(base, part["name"]), filesystem=filesystem,
                              columns=["image_id", "position", "label"])
        for row, entry in enumerate(table.to_pylist()):
            records.append(ImageRecord(entry["position"], entry["image_id"], location, entry["label"], row))
    if [r.position for r in records] != list(range(manifest["images"])):
        raise UserError(f"{uri}: the pack's parts do not hold positions 0..{manifest['images'] - 1}")
    return DatasetIndex(uri, f"packed {manifest['layout']}", tuple(manifest["classes"]),
                        tuple(records), manifest["fingerprint"], manifest.get("dataset", "imagenet"))


def read_packed_images(location: str, rows: list[int]) -> list[bytes]:
    """The encoded images at `rows` of one part file, reading only their row groups."""
    filesystem, path = _filesystem(location)
    with filesystem.open_input_file(path) as file:
        part = pq.ParquetFile(file)
        groups = sorted({row // ROW_GROUP for row in rows})
        column = part.read_row_groups(groups, columns=["image"])["image"]
        # every row group but the file's last holds ROW_GROUP rows, so a row's place in what
        # was read follows from its group's rank among the groups read
        offsets = {group: rank * ROW_GROUP for rank, group in enumerate(groups)}
        return [column[offsets[row // ROW_GROUP] + row % ROW_GROUP].as_py() for row in rows]
