"""The dataset types every stage shares: an indexed dataset, its images and its shards.

Their own module so that the layouts that build an index (folders in `index`, packs in
`packed`) and the stages that read one depend on these types, not on each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True)
class ImageRecord:
    position: int  # index in the dataset's sorted order (the 2019 files' row number)
    image_id: str  # path relative to the dataset root, '/'-separated; unique
    path: str  # absolute path on the machine that built the index, or a packed part's URI
    label: int  # class index in sorted-class-list order
    row: int | None = None  # row in the packed part file; None for a plain image file


@dataclass(frozen=True)
class Shard:
    index: int
    start: int  # first position, inclusive
    stop: int  # last position, exclusive

    @property
    def size(self) -> int:
        return self.stop - self.start


class DatasetSummary(BaseModel):
    """A dataset as the plan hands it to actors and every predictions file records it."""

    model_config = ConfigDict(extra="allow")  # read back from files, which may say more

    root: str | None = None
    layout: str | None = None  # "class_folders", "flat", ..., or "imported"
    images: int
    classes: int | None = None
    fingerprint: str | None = None
    name: str = "imagenet"  # which test set (runner.data.shift.DATASETS)
    subset: list[int] | None = None  # the classes an A/R-style set is scored over


@dataclass(frozen=True)
class DatasetIndex:
    root: str
    layout: str  # "class_folders" or "flat"
    classes: tuple[str, ...]  # class names (WordNet ids) in index order
    records: tuple[ImageRecord, ...]
    fingerprint: str  # sha256 over (image id, label, file size) rows and the class list
    name: str = "imagenet"  # which test set (runner.data.shift.DATASETS)
    subset: tuple[int, ...] | None = None  # classes an A/R-style set is scored over

    def __len__(self) -> int:
        return len(self.records)

    def shards(self, shard_size: int) -> list[Shard]:
        """Contiguous, deterministic shards covering every position exactly once."""
        if shard_size <= 0:
            raise ValueError("shard_size must be positive")
        return [
            Shard(k, start, min(start + shard_size, len(self.records)))
            for k, start in enumerate(range(0, len(self.records), shard_size))
        ]

    def shard_records(self, shard: Shard) -> list[ImageRecord]:
        return list(self.records[shard.start : shard.stop])

    def summary(self) -> DatasetSummary:
        # subset only when there is one: files of plain sets leave it out
        return DatasetSummary(
            name=self.name, root=self.root, layout=self.layout, images=len(self.records),
            classes=len(self.classes), fingerprint=self.fingerprint,
            **({"subset": list(self.subset)} if self.subset else {}),
        )
