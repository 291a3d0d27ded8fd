"""A directory as an object store: the registry's embedded default, and the reference the S3
store is tested against.

Writes go to a temporary file in the target directory first, so readers never see a partial
object. Create-only is `link(2)` of that file onto the key (atomic, fails if the key exists);
compare-and-swap holds an exclusive `flock` on a per-key lock file while it compares the etag
and renames. Temporary and lock files are dot-files, invisible to `list`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from registry.store import NotFound, ObjectInfo, PreconditionFailed, StoreError

LOCKS = ".locks"


class LocalStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"registry: cannot create {self.root}: {exc.strerror}") from None

    def _path(self, key: str) -> Path:
        if key.startswith("/") or any(part in ("", ".", "..") for part in key.split("/")):
            raise ValueError(f"unsafe object key {key!r}")
        return self.root / key

    @staticmethod
    def _etag(stat: os.stat_result) -> str:
        # A new file (new inode) backs every write, so this changes with each put.
        return f"{stat.st_ino:x}-{stat.st_mtime_ns:x}-{stat.st_size:x}"

    def get(self, key: str) -> tuple[bytes, str]:
        try:
            with self._path(key).open("rb") as handle:
                return handle.read(), self._etag(os.fstat(handle.fileno()))
        except FileNotFoundError:
            raise NotFound(f"{key} not found") from None

    def head(self, key: str) -> ObjectInfo:
        try:
            stat = self._path(key).stat()
        except FileNotFoundError:
            raise NotFound(f"{key} not found") from None
        return ObjectInfo(key, stat.st_size, self._etag(stat), stat.st_mtime)

    def put(
        self, key: str, data: bytes, *, create_only: bool = False, if_match: str | None = None
    ) -> str:
        path = self._path(key)
        with self._staged(path) as staged:
            staged.write_bytes(data)
            etag = self._etag(staged.stat())  # link and rename keep the inode and mtime
            if create_only:
                try:
                    os.link(staged, path)
                except FileExistsError:
                    raise PreconditionFailed(f"{key} already exists") from None
            elif if_match is not None:
                with self._lock(key):
                    try:
                        current = self._etag(path.stat())
                    except FileNotFoundError:
                        raise PreconditionFailed(f"{key} no longer exists") from None
                    if current != if_match:
                        raise PreconditionFailed(f"{key} changed since it was read")
                    os.replace(staged, path)
            else:
                os.replace(staged, path)
        return etag

    def upload(self, key: str, path: Path) -> None:
        target = self._path(key)
        with self._staged(target) as staged:
            shutil.copyfile(path, staged)
            os.replace(staged, target)

    def download(self, key: str, path: Path) -> None:
        try:
            shutil.copyfile(self._path(key), path)
        except FileNotFoundError:
            raise NotFound(f"{key} not found") from None

    def list(self, prefix: str) -> list[ObjectInfo]:
        directory = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        if not directory.is_dir():
            return []
        found = []
        for dirpath, dirnames, filenames in os.walk(directory):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for filename in filenames:
                if filename.startswith("."):
                    continue
                path = Path(dirpath) / filename
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    stat = path.stat()
                    found.append(ObjectInfo(key, stat.st_size, self._etag(stat), stat.st_mtime))
        return sorted(found, key=lambda info: info.key)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    @contextlib.contextmanager
    def _staged(self, target: Path) -> Iterator[Path]:
        """A temporary file beside `target` (same filesystem, so link/rename are atomic)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        os.close(handle)
        try:
            yield Path(name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)

    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        locks = self.root / LOCKS
        locks.mkdir(exist_ok=True)
        lock_path = locks / hashlib.sha256(key.encode()).hexdigest()
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
