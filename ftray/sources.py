"""Where training data lives: one local file, a directory, a glob, or an `s3://` URI.

A `Source` is the files behind one `data.*` reference, their format and the pyarrow filesystem
that reads them (the same one Ray Train uses for checkpoints; an S3 endpoint comes from
`AWS_ENDPOINT_URL`). Small local data is read whole into memory, as it always was; a remote or
large training set is *streamed*: Ray Data reads and tokenizes it across the cluster and each
worker trains on its shard (`ftray.streaming`). Nothing here downloads a whole remote dataset
to the submitting machine: row counts come from Parquet metadata (or an estimate from bytes), and
what the driver inspects is a sample of the first rows, which is said wherever it matters.
"""

from __future__ import annotations

import glob as globbing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftray.errors import FtrayError

FORMATS = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
ARROW_FORMATS = {"jsonl": "json", "csv": "csv", "parquet": "parquet"}
# `data.streaming: auto` streams a training set at least this large (or any remote one): below
# it, reading into memory is faster end to end (bench/data_scale.py).
STREAM_ABOVE_BYTES = 256 * 2**20
SAMPLE_ROWS = 10_000  # what the driver reads of a streamed set: label inference and data checks


@dataclass(frozen=True)
class Source:
    ref: str  # as the spec wrote it
    files: tuple[str, ...]  # paths within `filesystem`, sorted
    format: str  # jsonl | csv | parquet
    filesystem: Any  # pyarrow.fs.FileSystem
    total_bytes: int

    @property
    def remote(self) -> bool:
        return "://" in self.ref

    @property
    def single_local_file(self) -> bool:
        return not self.remote and len(self.files) == 1 and Path(self.ref).is_file()

    def arrow_dataset(self) -> Any:
        import pyarrow.dataset as pds

        return pds.dataset(
            list(self.files), format=ARROW_FORMATS[self.format], filesystem=self.filesystem
        )

    def count_rows(self) -> tuple[int, bool]:
        """(rows, exact): Parquet counts from its metadata; JSONL and CSV are estimated from
        the bytes per row of a sample, since counting them means reading them."""
        if self.format == "parquet":
            return self.arrow_dataset().count_rows(), True
        sample = self.head(1000)
        size = sum(len(repr(row)) for row in sample) or 1  # about the bytes of the text
        return max(len(sample), round(self.total_bytes * len(sample) / size)), False

    def head(self, rows: int) -> list[dict[str, Any]]:
        """The first `rows` rows, in file order."""
        try:
            return self.arrow_dataset().head(rows).to_pylist()
        except Exception as exc:
            raise FtrayError(f"{self.ref}: cannot read its {self.format} rows: {exc}") from None

    def read_all(self) -> list[dict[str, Any]]:
        try:
            return self.arrow_dataset().to_table().to_pylist()
        except Exception as exc:
            raise FtrayError(f"{self.ref}: cannot read its {self.format} rows: {exc}") from None

    def ray_dataset(self) -> Any:
        """The rows as a Ray Dataset, read in parallel by Ray Data tasks."""
        import ray.data

        files, fs = list(self.files), self.filesystem
        if self.format == "parquet":
            return ray.data.read_parquet(files, filesystem=fs)
        if self.format == "csv":
            return ray.data.read_csv(files, filesystem=fs)
        return ray.data.read_json(files, filesystem=fs)  # pyarrow's reader: one object a line


def resolve(ref: str, fmt: str, what: str) -> Source:
    """The files behind `ref` (a file, a directory, a glob, or an s3:// object, prefix or
    glob), all of one format; one line naming `what` if there are none or they are mixed."""
    import pyarrow.fs

    if "://" in ref:
        scheme, path = ref.split("://", 1)
        try:
            fs, _ = pyarrow.fs.FileSystem.from_uri(f"{scheme}://{path.split('/', 1)[0]}")
        except Exception as exc:
            raise FtrayError(f"{what}: cannot open {ref}: {exc}") from None
        infos = _remote_files(fs, path.rstrip("/"), what)
    else:
        fs = pyarrow.fs.LocalFileSystem()
        infos = _local_files(ref)
    infos = [info for info in infos if not Path(info.path).name.startswith((".", "_"))]
    if not infos:
        raise FtrayError(f"{what}: no data files at {ref}")
    if fmt == "auto":
        formats = {FORMATS.get(Path(info.path).suffix.lower(), "") for info in infos}
        if "" in formats or len(formats) > 1:
            kinds = ", ".join(sorted(f or "unknown" for f in formats))
            raise FtrayError(
                f"{what}: cannot tell the format of {ref} ({kinds}); "
                "use .jsonl, .csv or .parquet files of one kind or set data.format"
            )
        fmt = formats.pop()
    files = tuple(sorted(info.path for info in infos))
    return Source(ref, files, fmt, fs, sum(info.size or 0 for info in infos))


def _local_files(ref: str) -> list[Any]:
    import pyarrow.fs

    fs = pyarrow.fs.LocalFileSystem()
    path = Path(ref).expanduser()
    if any(char in ref for char in "*?["):
        names = [str(Path(p).resolve()) for p in globbing.glob(str(path), recursive=True)]
    elif path.is_dir():
        selector = pyarrow.fs.FileSelector(str(path.resolve()), recursive=True)
        return [i for i in fs.get_file_info(selector) if i.type == pyarrow.fs.FileType.File]
    else:
        names = [str(path.resolve())] if path.is_file() else []
    infos = fs.get_file_info(names) if names else []
    return [i for i in infos if i.type == pyarrow.fs.FileType.File]


def _remote_files(fs: Any, path: str, what: str) -> list[Any]:
    import fnmatch

    import pyarrow.fs

    pattern = path if any(char in path for char in "*?[") else None
    base = path.split("*")[0].rsplit("/", 1)[0] if pattern else path
    try:
        info = fs.get_file_info(base)
        if info.type == pyarrow.fs.FileType.File and not pattern:
            return [info]
        selector = pyarrow.fs.FileSelector(base, recursive=True, allow_not_found=True)
        infos = [i for i in fs.get_file_info(selector) if i.type == pyarrow.fs.FileType.File]
    except Exception as exc:
        raise FtrayError(f"{what}: cannot list {path}: {exc}") from None
    return [i for i in infos if not pattern or fnmatch.fnmatch(i.path, pattern)]


def streams(source: Source, streaming: bool | str) -> bool:
    """Whether a training set is streamed (`data.streaming`); auto: remote or large data."""
    if streaming != "auto":
        return bool(streaming)
    return source.remote or source.total_bytes >= STREAM_ABOVE_BYTES
