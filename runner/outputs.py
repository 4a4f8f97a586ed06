"""Where a run's files live: a local folder, or any pyarrow filesystem URI (s3://, gs://, file://).

Every writer and reader of a run folder (`run`, `score`, `report`, `compare`, `import-npy`) goes
through `Location`, a path below the folder. A file appears whole or not at all:
- on a local disk (and file://) it is written beside its place, then renamed over it;
- on object storage the finished bytes go up in one request. On S3, pyarrow's output stream,
  opened with allow_delayed_open, sends them as one PUT while they are under its 10 MiB part size
  (a shard of 1000 images is about 50 kB), so no partial object and no multipart upload is ever
  left behind. Larger files go up as a multipart upload, visible only once complete.
- Deletes on S3 go through boto3: pyarrow's delete_file puts an empty "folder/" marker object in
  place of the parent, which would be left behind as a stray object.

Credentials come only from the standard chain of the process that touches the files
(environment, profile, instance or pod role): each Ray actor uses its own node's. A URI with
credentials in it is refused, since it would be printed and shown in Ray's dashboard. `endpoint`
(the `s3_endpoint` option) names an S3-compatible store (MinIO, Ceph); without it pyarrow and boto3
read AWS_ENDPOINT_URL, as the AWS CLI does.
"""

from __future__ import annotations

import fnmatch
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.fs as pafs

from runner.atomic import atomic_path
from runner.errors import UserError

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_LOCAL = pafs.LocalFileSystem()


def is_uri(text: str) -> bool:
    return bool(_URI.match(text))


@dataclass(frozen=True)
class Location:
    """A path below a run folder. Plain strings only, so that it travels to Ray actors, which
    open the filesystem themselves, with their own node's credentials."""

    root: str  # the run folder: an absolute local path, or a URI without credentials
    endpoint: str | None = None  # S3-compatible endpoint for an s3:// root
    relative: str = ""  # '/'-separated, below root

    @classmethod
    def of(cls, where: LocationLike, endpoint: str | None = None) -> Location:
        """A run folder (or a file or folder in one) given as a local path or a URI; checks the
        URI (one line if unusable)."""
        if isinstance(where, Location):
            return where
        text = str(where)
        if not is_uri(text):
            return cls(str(Path(text).resolve()))
        parts = urlsplit(text)
        if parts.username or parts.password:
            raise UserError(f"{parts.scheme}://...@{parts.hostname}: credentials in a URI would show in "
                            "logs and Ray's dashboard; give them through the environment, a profile "
                            "or an instance or pod role")
        location = cls(text.rstrip("/"), endpoint or None)
        location.filesystem  # noqa: B018  (an unknown scheme or a bad URI fails here, early)
        return location

    @property
    def filesystem(self) -> pafs.FileSystem:
        return _open(self.root, self.endpoint)[0]

    @property
    def path(self) -> str:
        """The path within `filesystem`."""
        base = _open(self.root, self.endpoint)[1]
        return f"{base}/{self.relative}" if self.relative else base

    @property
    def local(self) -> bool:
        return isinstance(self.filesystem, pafs.LocalFileSystem)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent(self) -> Location:
        if not self.relative:
            raise ValueError(f"{self} is the top of its run folder")
        return replace(self, relative=self.relative.rpartition("/")[0])

    def __truediv__(self, name: str) -> Location:
        return replace(self, relative=f"{self.relative}/{name}".strip("/"))

    def __str__(self) -> str:
        shown = urlunsplit(urlsplit(self.root)._replace(query="")) if is_uri(self.root) else self.root
        return f"{shown}/{self.relative}" if self.relative else shown

    @contextmanager
    def io(self, action: str) -> Iterator[None]:
        """Turn a failure to read or write here into one clear line."""
        try:
            yield
        except (OSError, pa.ArrowException) as exc:
            raise UserError(f"cannot {action} {self}: {_first_line(exc)}") from None

    # ---- reading ----
    def is_file(self) -> bool:
        with self.io("read"):
            return self.filesystem.get_file_info(self.path).type == pafs.FileType.File

    def files(self, pattern: str = "*") -> list[Location]:
        """The files directly in this folder whose names match `pattern`, by name."""
        return self._children(pafs.FileType.File, pattern)

    def folders(self, pattern: str = "*") -> list[Location]:
        return self._children(pafs.FileType.Directory, pattern)

    def _children(self, kind: pafs.FileType, pattern: str) -> list[Location]:
        with self.io("list"):
            infos = self.filesystem.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))
        names = sorted(info.base_name for info in infos if info.type == kind)
        return [self / name for name in names if fnmatch.fnmatchcase(name, pattern)]

    def files_below(self) -> list[tuple[Location, float | None]]:
        """Every file below this folder at any depth, by path, with its modification time (Unix
        seconds; None where the store gives none)."""
        with self.io("list"):
            infos = self.filesystem.get_file_info(
                pafs.FileSelector(self.path, recursive=True, allow_not_found=True))
        below = len(self.path) + 1
        return [(self / info.path[below:], info.mtime.timestamp() if info.mtime else None)
                for info in sorted(infos, key=lambda info: info.path)
                if info.type == pafs.FileType.File]

    def read_bytes(self) -> bytes:
        with self.io("read"), self.filesystem.open_input_stream(self.path) as stream:
            return stream.read()

    def read_text(self) -> str:
        return self.read_bytes().decode()

    # ---- writing ----
    def write_bytes(self, data) -> None:
        """Write the file whole, replacing any file there (see the module doc)."""
        with self.io("write"):
            self._put(data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    def delete(self) -> None:
        """Remove the file, if it is there."""
        if self.is_file():
            with self.io("delete"):
                self._remove()

    def _put(self, data) -> None:
        if self.local:
            with atomic_path(self.path) as tmp:
                tmp.write_bytes(data)
        else:
            with self.filesystem.open_output_stream(self.path) as stream:
                stream.write(data)  # all of it at once: one request, on close

    def _remove(self) -> None:
        if isinstance(self.filesystem, pafs.S3FileSystem):
            _delete_s3_object(self.endpoint, self.filesystem.region, self.path)
        else:
            self.filesystem.delete_file(self.path)


LocationLike = str | Path | Location  # a run folder or a file in it, as given or as a Location


def check_bucket(location: Location) -> None:
    """One clear line when an object store's bucket is missing or cannot be reached."""
    if location.local:
        return
    bucket = _open(location.root, location.endpoint)[1].split("/")[0]
    try:
        found = location.filesystem.get_file_info(bucket).type != pafs.FileType.NotFound
    except OSError as exc:
        raise UserError(f"cannot reach bucket {bucket!r} of {location}: {_first_line(exc)}") from None
    if not found:
        where = f" at {location.endpoint}" if location.endpoint else ""
        raise UserError(f"bucket {bucket!r}{where} does not exist (for {location})")


def check_writable(location: Location) -> None:
    """Write and delete a probe file, so that a run finds out now rather than in its actors."""
    check_bucket(location)
    probe = location / f".kpbench-write-test-{uuid.uuid4().hex}"
    try:
        probe._put(b"")
        probe._remove()
    except (OSError, pa.ArrowException) as exc:
        raise UserError(f"cannot write to output folder {location}: {_first_line(exc)}") from None


@lru_cache(maxsize=64)
def _open(root: str, endpoint: str | None) -> tuple[pafs.FileSystem, str]:
    """The filesystem and base path of a run folder, opened once per process."""
    if not is_uri(root):
        return _LOCAL, root
    parts = urlsplit(root)
    query = dict(parse_qsl(parts.query))
    if parts.scheme == "s3":
        query.setdefault("allow_delayed_open", "true")  # a small file is then one PUT
        if endpoint:
            query.setdefault("endpoint_override", endpoint)
    try:
        return pafs.FileSystem.from_uri(urlunsplit(parts._replace(query=urlencode(query))))
    except (pa.ArrowException, ValueError, OSError) as exc:
        if "Unrecognized filesystem type" in str(exc):
            raise UserError(f"cannot use {root} as a run folder: unknown scheme {parts.scheme!r} "
                            "(give a local path or a URI such as s3://bucket/prefix, gs://..., "
                            "file://...)") from None
        raise UserError(f"cannot use {root} as a run folder: {_first_line(exc)}") from None


def _delete_s3_object(endpoint: str | None, region: str, path: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = path.partition("/")
    try:
        _s3_client(endpoint, region).delete_object(Bucket=bucket, Key=key)
    except (BotoCoreError, ClientError) as exc:
        raise OSError(str(exc)) from None


@lru_cache(maxsize=8)
def _s3_client(endpoint: str | None, region: str):
    import boto3  # the standard credential chain, and AWS_ENDPOINT_URL without an endpoint

    return boto3.client("s3", endpoint_url=endpoint, region_name=region or None)


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:  # a local error: its reason without the path
        return exc.strerror
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # pyarrow's messages start with what it was doing ("When uploading object ... : "): said already
    return re.sub(r"^When [^:]*: ", "", lines[0]) if lines else type(exc).__name__
