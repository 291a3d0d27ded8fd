"""A version's files on this machine: pulled into a directory, or checked out read-only under
the cache; every downloaded blob is checked against its sha256."""

from __future__ import annotations

import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from registry.errors import RegistryError
from registry.layout import MANIFEST_FILE, Manifest, blob_key
from registry.refs import Ref
from registry.store import NotFound
from registry.versions import FILE_THREADS, RegistryVersions


class RegistryFiles(RegistryVersions):
    def pull(self, ref: str | Ref, destination: str | Path) -> Manifest:
        """Download a version into `destination` (absent or empty), every file checked against
        its sha256; blobs already in the local cache are not downloaded again. The manifest is
        written beside the files as ftray_manifest.json."""
        manifest = self.resolve(ref)
        destination = Path(destination)
        if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
            raise RegistryError(f"pull: {destination} is not an empty directory")
        self.fetch_blobs(manifest)
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
        try:
            for path, entry in manifest.files.items():
                self.cache.place(entry["sha256"], staging / path)
            (staging / MANIFEST_FILE).write_bytes(manifest.to_json())
            if destination.exists():
                destination.rmdir()
            staging.rename(destination)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return manifest

    def read_file(self, ref: str | Ref, path: str) -> bytes:
        """One file of a version (through the cache, checked like every download)."""
        manifest = self.resolve(ref)
        entry = manifest.files.get(path)
        if entry is None:
            raise RegistryError(f"{manifest.ref} has no file {path!r}")
        download = lambda target: self.store.download(blob_key(entry["sha256"]), target)  # noqa: E731
        try:
            self.cache.fetch(entry["sha256"], download, f"{manifest.ref} {path}")
        except NotFound:
            raise RegistryError(f"{manifest.ref} {path}: blob is missing") from None
        return self.cache.path(entry["sha256"]).read_bytes()

    def checkout(self, ref: str | Ref) -> tuple[Manifest, Path]:
        """A version's files in a read-only directory under the cache (pulled once, reused):
        what loaders use. Keyed by the file set's fingerprint, so it can never be stale."""
        manifest = self.resolve(ref)
        key = f"{manifest.version}-{manifest.fingerprint[:16]}"
        directory = self.cache.root.parent / "versions" / manifest.name / key
        if not (directory / MANIFEST_FILE).exists():
            try:
                self.pull(manifest.ref, directory)
            except (RegistryError, OSError):
                if not (directory / MANIFEST_FILE).exists():  # else another process won the race
                    raise
        return manifest, directory

    def fetch_blobs(self, manifest: Manifest) -> dict[str, Path]:
        """Every file of a version in the local cache (downloading what is missing); returns
        relative path -> cached path."""

        def fetch(item: tuple[str, dict[str, Any]]) -> int:
            path, entry = item
            download = lambda target: self.store.download(blob_key(entry["sha256"]), target)  # noqa: E731
            try:
                _, size = self.cache.fetch(entry["sha256"], download, f"{manifest.ref} {path}")
            except NotFound:
                raise RegistryError(
                    f"{manifest.ref} {path}: blob {entry['sha256'][:12]}... is missing"
                ) from None
            return size

        with ThreadPoolExecutor(FILE_THREADS) as pool:
            self.bytes_downloaded += sum(pool.map(fetch, manifest.files.items()))
        return {path: self.cache.path(entry["sha256"]) for path, entry in manifest.files.items()}
