"""Checksums on the files the suite writes and later trusts, checked on every read.

Binary files (checkpoints, shared trainings) are a header (magic, SHA-256 and length of
the payload) followed by the payload: a flipped byte anywhere, a truncation or a file of
another kind fails :func:`read_checked`. JSON files (records, manifests, claims, worker
beacons) carry a ``checksum`` field: the SHA-256 of the canonical JSON of everything else
(:func:`seal`, :func:`unseal`). A file that fails its check is :class:`DamagedFile`: the
caller sets it aside (:func:`set_aside`) with one line naming it, and redoes the work,
exactly as if the file were missing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from pathlib import Path
from typing import IO, Any

import torch

from bench.errors import BenchError, is_storage_failure, reading, storage_error, warn
from bench.fsutil import write_atomic

MAGIC = b"BENCHSUM1\n"
_HEADER = struct.Struct("<32sQ")  # the payload's SHA-256 and its length in bytes
SEAL_FIELD = "checksum"
_SEAL_PREFIX = "sha256:"


class DamagedFile(BenchError):
    """A file the suite wrote no longer passes its checksum (or is not what it should be)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path} is damaged: {reason}")
        self.path = Path(path)
        self.reason = reason


def checked_header(payload: bytes | memoryview) -> bytes:
    """The header :func:`write_checked` puts before ``payload``: magic, SHA-256, length."""
    return MAGIC + _HEADER.pack(hashlib.sha256(payload).digest(), len(payload))


def write_checked(path: Path, payload: bytes | memoryview) -> None:
    """Write ``payload`` behind its checksum header, atomically (``payload`` not copied)."""
    header = checked_header(payload)

    def write(f: IO[bytes]) -> None:
        f.write(header)
        f.write(payload)

    write_atomic(Path(path), write)


def verify_checked(data: bytes, path: Path) -> memoryview:
    """The payload of a checked file's bytes ``data``; :class:`DamagedFile` if it fails."""
    head = len(MAGIC) + _HEADER.size
    if len(data) < head or not data.startswith(MAGIC):
        raise DamagedFile(path, "no checksum header (torn, foreign or from an older version)")
    digest, length = _HEADER.unpack_from(data, len(MAGIC))
    payload = memoryview(data)[head:]
    if len(payload) != length:
        raise DamagedFile(path, f"{len(payload)} bytes where its header says {length}")
    if hashlib.sha256(payload).digest() != digest:
        raise DamagedFile(path, "its content does not match its SHA-256")
    return payload


def read_checked(path: Path) -> memoryview:
    """The payload of a file :func:`write_checked` wrote, verified.

    A missing file raises ``FileNotFoundError``; a damaged one :class:`DamagedFile`; a disk
    that refuses the read :class:`~bench.errors.StorageError`.
    """
    with reading(path, lambda reason: DamagedFile(path, f"unreadable ({reason})")):
        data = Path(path).read_bytes()
    return verify_checked(data, Path(path))


class _HashingWriter:
    """A write-only stream that hashes and counts what passes through to ``file``."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file, self.digest, self.length = file, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.length += len(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()


def save_torch(path: Path, obj: Any) -> None:
    """``torch.save(obj)`` into a checked file, hashed as it is written (no copy of it is
    held in memory: a VGG-16 checkpoint with momentum is 118 MB)."""
    def write(f: IO[bytes]) -> None:
        f.write(MAGIC + bytes(_HEADER.size))  # the header, filled in once the hash is known
        stream = _HashingWriter(f)
        torch.save(obj, stream)
        f.seek(len(MAGIC))
        f.write(_HEADER.pack(stream.digest.digest(), stream.length))

    write_atomic(Path(path), write)


class _Window:
    """A read-only view of ``file`` from byte ``start`` on: the payload of a checked file
    handed to ``torch.load`` without copying it into memory first."""

    def __init__(self, file: IO[bytes], start: int) -> None:
        self.file, self.start = file, start
        self.file.seek(start)

    def read(self, size: int = -1) -> bytes:
        return self.file.read(size)

    def readinto(self, buffer: Any) -> int:
        return self.file.readinto(buffer)

    def readline(self, size: int = -1) -> bytes:
        return self.file.readline(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            offset += self.start
        return self.file.seek(offset, whence) - self.start

    def tell(self) -> int:
        return self.file.tell() - self.start


def _verify_stream(f: IO[bytes], path: Path) -> int:
    """Check an open checked file's header and payload hash chunk by chunk; the payload's
    offset. :class:`DamagedFile` if it fails."""
    head = f.read(len(MAGIC) + _HEADER.size)
    if len(head) < len(MAGIC) + _HEADER.size or not head.startswith(MAGIC):
        raise DamagedFile(path, "no checksum header (torn, foreign or from an older version)")
    digest, length = _HEADER.unpack_from(head, len(MAGIC))
    actual, seen = hashlib.sha256(), 0
    while block := f.read(1 << 22):
        actual.update(block)
        seen += len(block)
    if seen != length:
        raise DamagedFile(path, f"{seen} bytes where its header says {length}")
    if actual.digest() != digest:
        raise DamagedFile(path, "its content does not match its SHA-256")
    return len(head)


def load_torch(path: Path) -> Any:
    """What :func:`save_torch` saved (tensors only, on the CPU), verified first."""
    with reading(path, lambda reason: DamagedFile(path, f"unreadable ({reason})")):
        with open(path, "rb") as f:
            start = _verify_stream(f, Path(path))
            try:
                return torch.load(_Window(f, start), map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - checksum right, not a torch file
                raise DamagedFile(path, f"not a torch file ({type(exc).__name__})") from None


def _canonical(data: dict[str, Any]) -> bytes:
    body = {k: v for k, v in data.items() if k != SEAL_FIELD}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def seal(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with its ``checksum`` field (any old one replaced)."""
    return {**{k: v for k, v in data.items() if k != SEAL_FIELD},
            SEAL_FIELD: _SEAL_PREFIX + hashlib.sha256(_canonical(data)).hexdigest()}


def sealed(data: dict[str, Any]) -> bool:
    """Whether ``data`` carries a checksum field at all (files of older versions do not)."""
    return SEAL_FIELD in data


def unseal(data: dict[str, Any], path: Path | str) -> dict[str, Any]:
    """``data`` after checking its checksum (an unsealed dict passes: older versions wrote
    none); :class:`DamagedFile` when the checksum is there and wrong."""
    if SEAL_FIELD not in data:
        return data
    expected = data[SEAL_FIELD]
    actual = _SEAL_PREFIX + hashlib.sha256(_canonical(data)).hexdigest()
    if expected != actual:
        raise DamagedFile(Path(path), "its content does not match its checksum field")
    return data


def set_aside(path: Path, reason: str | None = None) -> Path | None:
    """Move a damaged ``path`` to ``<name>.damaged.<n>`` beside it (kept for inspection,
    never read again) with one warning line; returns the new path (None if it vanished, or
    if the disk refused the move: the line says so, and the file is still never used)."""
    path = Path(path)
    why = f" ({reason})" if reason else ""
    n = 0
    while (aside := path.with_name(f"{path.name}.damaged.{n}")).exists():
        n += 1
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if not is_storage_failure(exc):
            raise
        warn(f"{path} is damaged{why} and is not used; it could not be set aside "
             f"({storage_error(exc, path, 'moving')})")
        return None
    warn(f"{path} is damaged{why}: set aside as {aside.name}; its work is done again")
    return aside
