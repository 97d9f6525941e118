"""Atomic file writes with names unique across processes and hosts (one definition).

Every file the suite writes that another process may read goes to a temporary name
beside its target (host, pid and a random token in the name, so concurrent writers on a
shared filesystem never collide), is flushed to disk, and is renamed into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

HOST = socket.gethostname()


def unique_token() -> str:
    """``host.pid.random``: unique for every call, in every process on every host."""
    return f"{HOST}.{os.getpid()}.{uuid.uuid4().hex[:12]}"


def temporary_path(path: Path) -> Path:
    """A fresh temporary name beside ``path`` (hidden, ending in ``.tmp``)."""
    return path.with_name(f".{path.name}.{unique_token()}.tmp")


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, fsync it, rename it into place.

    On any error the temporary file is removed and the target is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
