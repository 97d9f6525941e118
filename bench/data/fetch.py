"""Fetching a dataset into place: the official archive downloaded (or put there by hand),
MD5-checked before anything reads it, and extracted safely; missing files are one-line errors."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from bench.data.datasets import DatasetInfo, dataset_info, default_data_dir, downloads_disabled
from bench.errors import BenchError

DOWNLOAD_TIMEOUT_S = 15.0


def ensure_dataset(name: str, data_dir: Path | None = None, download: bool = True) -> Path:
    """Return ``data_dir/<folder>`` with every batch file present, downloading it if allowed.

    $BENCH_NO_DOWNLOAD=1 acts as ``download=False``. Anything missing that cannot be fetched
    is a one-line BenchError saying where the files belong.
    """
    info = dataset_info(name)
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folder = root / info.folder
    needed = info.train_files + info.test_files
    if folder.is_dir():
        missing = [f for f in needed if not (folder / f).is_file()]
        if not missing:
            return folder
        raise BenchError(
            f"{info.title} in {folder} is incomplete (missing {', '.join(missing)}); put all "
            f"the official python-version files there or pass --data-dir DIR"
        )
    archive = root / Path(info.url).name
    if archive.is_file():  # the official archive, put there by hand
        _check_md5(archive, info.md5)
        _extract(info, archive, root)
        return ensure_dataset(name, root, download=False)
    if not download or downloads_disabled():
        reason = "downloads are disabled"
    else:
        made = _missing_folders(archive.parent)
        try:
            _extract(info, _download(info, archive), root)
            archive.unlink(missing_ok=True)
            return ensure_dataset(name, root, download=False)
        except _FetchError as e:
            reason = str(e)
            _remove_empty(made)  # a failed download leaves no empty ~/.cache/bench/data
    raise BenchError(
        f"{info.title} not found in {folder} and could not be downloaded ({reason}); put the "
        f"official python-version files there (from {info.url}) or pass --data-dir DIR"
    )


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, innermost first."""
    out = []
    while not folder.exists() and folder != folder.parent:
        out.append(folder)
        folder = folder.parent
    return out


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed download made, innermost first, where still empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


class _FetchError(Exception):
    """The archive could not be fetched (offline, HTTP error): reported as the reason."""


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_md5(archive: Path, expected: str) -> None:
    """A hand-placed archive must be the official one before anything reads it."""
    got = _md5(archive)
    if got != expected:
        raise BenchError(
            f"{archive} has MD5 {got}, expected {expected}; replace it with the official archive"
        )


def _download(info: DatasetInfo, archive: Path) -> Path:
    """Fetch the official archive to ``archive`` and verify its MD5 before anything reads it."""
    try:
        archive.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{archive.name}-", suffix=".part", dir=archive.parent)
    except OSError as e:
        raise _FetchError(f"cannot write to {archive.parent}: {e.strerror or e}") from e
    partial = Path(name)
    digest = hashlib.md5()
    try:
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(info.url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
    except (OSError, ValueError, http.client.HTTPException) as e:  # URLError, timeouts: OSError
        partial.unlink(missing_ok=True)
        reason = " ".join(str(getattr(e, "reason", None) or e).split())
        raise _FetchError(f"{type(e).__name__}: {reason}") from e
    if digest.hexdigest() != info.md5:
        partial.unlink(missing_ok=True)
        raise BenchError(
            f"downloaded {archive} has MD5 {digest.hexdigest()}, expected {info.md5}; deleted "
            f"this broken or tampered download, nothing extracted"
        )
    partial.replace(archive)
    return archive


def _extract(info: DatasetInfo, archive: Path, root: Path) -> None:
    """Extract ``archive`` into a temp dir inside ``root``, then rename its folder into place."""
    staging = Path(tempfile.mkdtemp(prefix=f".{info.folder}-", dir=root))
    try:
        _safe_extract(archive, staging)
        extracted = staging / info.folder
        if not extracted.is_dir():
            raise BenchError(f"archive {archive} does not contain the folder {info.folder}/")
        try:
            extracted.rename(root / info.folder)
        except OSError as e:
            if not (root / info.folder).is_dir():  # else another process finished first
                raise BenchError(f"cannot move {extracted} to {root / info.folder}: {e}") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _safe_extract(archive: Path, dest: Path) -> None:
    """Extract only plain files and folders whose paths stay inside ``dest``."""
    dest = dest.resolve()
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for m in members:
                target = (dest / m.name).resolve()
                if not (m.isfile() or m.isdir()) or not target.is_relative_to(dest):
                    raise BenchError(f"archive {archive} has an unsafe entry {m.name!r}")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members=members, filter="data")
            else:  # pragma: no cover - Python without PEP 706 backport
                tar.extractall(dest, members=members)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise BenchError(f"cannot extract {archive}: {e}") from e
