"""Atomic file writes with names unique across processes and hosts (one definition).

Every file the suite writes that another process may read goes to a temporary name
beside its target (host, pid and a random token in the name, so concurrent writers on a
shared filesystem never collide), is flushed to disk, and is renamed into place
(:func:`staged`, :func:`write_atomic`); files that must never be replaced are created
exclusively (:func:`create_exclusive`). Both flush through the one :func:`_sync`. A disk
that refuses (full, read-only, no permission, I/O error) raises
:class:`~bench.errors.StorageError` naming the file, and leaves no partial file behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench.errors import is_storage_failure, storage_error

HOST = socket.gethostname()


def unique_token() -> str:
    """``host.pid.random``: unique for every call, in every process on every host."""
    return f"{HOST}.{os.getpid()}.{uuid.uuid4().hex[:12]}"


def temporary_path(path: Path) -> Path:
    """A fresh temporary name beside ``path`` (hidden, ending in ``.tmp``)."""
    return path.with_name(f".{path.name}.{unique_token()}.tmp")


def _sync(f: IO[bytes]) -> None:
    """Flush ``f`` and force its bytes to disk: the one fsync of every write here."""
    f.flush()
    os.fsync(f.fileno())


@dataclass
class Staged:
    """A file being written at ``path`` (a temporary name) that will become ``target``.

    The block may set ``target`` to another name beside it (a name known only once the
    file is written, such as one from its hash).
    """

    path: Path
    target: Path


@contextlib.contextmanager
def staged(path: Path) -> Iterator[Staged]:
    """A temporary file beside ``path`` to write; fsynced and renamed into place on success.

    On leaving the block normally the temporary file is fsynced and renamed to the
    ``target`` (``path`` unless the block changed it). On any error, in the block or the
    rename, it is removed and the target is left as it was; a disk that refuses raises
    :class:`~bench.errors.StorageError`.
    """
    path = Path(path)
    staging = Staged(temporary_path(path), path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield staging
        with open(staging.path, "rb") as f:
            _sync(f)
        os.replace(staging.path, staging.target)
    except OSError as exc:
        if is_storage_failure(exc):
            raise storage_error(exc, staging.target) from None
        raise
    finally:
        with contextlib.suppress(OSError):  # a read-only disk refuses this too
            staging.path.unlink(missing_ok=True)


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, fsync it, rename it into place.

    On any error the temporary file is removed and the target is left as it was.
    """
    with staged(path) as staging, open(staging.path, "wb") as f:
        write(f)


def create_exclusive(path: Path, write: Callable[[IO[bytes]], None]) -> bool:
    """Create ``path`` (``O_CREAT | O_EXCL``), call ``write`` on it, fsync it: True.

    False, touching nothing, when ``path`` exists already: an existing file is never
    replaced. The file is visible from its creation on (readers may see it empty or
    partly written); one whose ``write`` fails is left as it is, still taken, except when
    the disk refused it (:class:`~bench.errors.StorageError`): then it is removed.
    """
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    except OSError as exc:
        if is_storage_failure(exc):
            raise storage_error(exc, path) from None
        raise
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            _sync(f)
    except OSError as exc:
        if not is_storage_failure(exc):
            raise
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise storage_error(exc, path) from None
    return True


def write_json_atomic(path: Path, data: Any) -> None:
    """JSON (indented, NaN allowed) written atomically to ``path``."""
    text = json.dumps(data, indent=1, sort_keys=False, allow_nan=True) + "\n"
    write_atomic(path, lambda f: f.write(text.encode()))


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


WRITE_CHECK_BYTES = 1 << 16
"""What the writability check writes and fsyncs: real blocks, so a full disk fails it."""


def check_writable_folder(path: Path, what: str) -> None:
    """A BenchError unless ``path`` is (or can be made as) a folder this process can write.

    Proven by writing :data:`WRITE_CHECK_BYTES` bytes and forcing them to disk (an empty
    file needs no block and passes on a full disk); folders it had to make for the proof
    are removed again, so a command that fails later leaves nothing behind.
    """
    from bench.errors import BenchError, StorageError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BenchError(f"{what} {path} is a file, not a folder")
    made = []
    probe = temporary_path(path / "write-check")
    try:
        missing = path
        while not missing.exists():
            made.append(missing)
            missing = missing.parent
        if not missing.is_dir():
            raise BenchError(f"{what} {path} cannot be made: {missing} is a file")
        for folder in reversed(made):
            folder.mkdir()
        with open(probe, "wb") as f:
            f.write(os.urandom(WRITE_CHECK_BYTES))
            _sync(f)
    except OSError as exc:
        if is_storage_failure(exc):
            raise StorageError(path, exc, f"{what}: writing a test file to") from None
        raise BenchError(f"{what} {path} is not writable: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()
