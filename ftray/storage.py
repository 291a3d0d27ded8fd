"""Small file operations on run storage, local or s3:// (through pyarrow, as Ray Train uses)."""

from __future__ import annotations

from pathlib import Path

from ftray.errors import FtrayError


def _filesystem(uri: str):
    import pyarrow.fs

    if "://" not in uri:
        return pyarrow.fs.LocalFileSystem(), str(Path(uri).expanduser())
    try:
        return pyarrow.fs.FileSystem.from_uri(uri)
    except Exception as exc:
        raise FtrayError(f"checkpoint.storage_path: cannot open {uri}: {exc}") from None


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *parts])


def list_dirs(uri: str) -> list[str]:
    """Names of the directories directly under `uri` (none if it does not exist)."""
    import pyarrow.fs

    fs, path = _filesystem(uri)
    selector = pyarrow.fs.FileSelector(path, allow_not_found=True)
    return sorted(
        info.base_name
        for info in fs.get_file_info(selector)
        if info.type == pyarrow.fs.FileType.Directory
    )


def exists(uri: str) -> bool:
    import pyarrow.fs

    fs, path = _filesystem(uri)
    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def write_text(uri: str, text: str) -> None:
    fs, path = _filesystem(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as stream:
        stream.write(text.encode())


def read_text(uri: str) -> str:
    fs, path = _filesystem(uri)
    with fs.open_input_stream(path) as stream:
        return stream.read().decode()


def file_sizes(uri: str) -> dict[str, int]:
    """Name -> size of the files directly under `uri`."""
    import pyarrow.fs

    fs, path = _filesystem(uri)
    infos = fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
    return {info.base_name: info.size for info in infos if info.type == pyarrow.fs.FileType.File}


def is_directory(path: Path) -> bool:
    """`path.is_dir()`, false for names the OS refuses (too long, NUL bytes) instead of raising."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False
