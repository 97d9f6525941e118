"""Atomic file writes with names unique across processes and hosts (one definition).

Every file the suite writes that another process may read goes to a temporary name
beside its target (host, pid and a random token in the name, so concurrent writers on a
shared filesystem never collide), is flushed to disk, and is renamed into place
(:func:`staged`, :func:`write_atomic`); files that must never be replaced are created
exclusively (:func:`create_exclusive`). Both flush through the one :func:`_sync`.
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
    rename, it is removed and the target is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Staged(temporary_path(path), path)
    try:
        yield staging
        with open(staging.path, "rb") as f:
            _sync(f)
        os.replace(staging.path, staging.target)
    finally:
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
    partly written); one whose ``write`` fails is left as it is, still taken.
    """
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        write(f)
        _sync(f)
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


def check_writable_folder(path: Path, what: str) -> None:
    """A BenchError unless ``path`` is (or can be made as) a folder this process can write.

    Proven by writing: folders it had to make for the proof are removed again, so a
    command that fails later leaves nothing behind.
    """
    from bench.errors import BenchError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BenchError(f"{what} {path} is a file, not a folder")
    made = []
    try:
        missing = path
        while not missing.exists():
            made.append(missing)
            missing = missing.parent
        if not missing.is_dir():
            raise BenchError(f"{what} {path} cannot be made: {missing} is a file")
        for folder in reversed(made):
            folder.mkdir()
        probe = temporary_path(path / "write-check")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise BenchError(f"{what} {path} is not writable: {exc.strerror or exc}") from None
    finally:
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()
