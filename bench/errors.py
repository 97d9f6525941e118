"""The user-facing exception types and the one way a warning line is printed.

:class:`BenchError` is every mistake a user can make; :class:`StorageError` is the disk
refusing a read or write (full, read-only, no permission, failing), named by path with what
to do. The CLI prints either as one ``error:`` line and exits non-zero.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class BenchError(Exception):
    """A user-facing error: bad input, missing or corrupt data, unreadable record.

    The CLI catches it, prints ``error: <message>`` on one line and exits non-zero;
    everything else is a bug and keeps its traceback.
    """


# errno -> (what happened, what to do): the storage failures a user can meet and fix
STORAGE_ERRNOS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("the disk is full", "free space there (or point --results/--out at "
                   "another disk) and run the same command again"),
    errno.EDQUOT: ("the disk quota is used up", "free space within your quota (or point "
                   "--results/--out at another disk) and run the same command again"),
    errno.EROFS: ("the filesystem is read-only", "remount it read-write or point "
                  "--results/--out at a writable folder, then run the same command again"),
    errno.EACCES: ("permission denied", "give this user write access there or point "
                   "--results/--out at a folder it can write"),
    errno.EPERM: ("operation not permitted", "give this user write access there or point "
                  "--results/--out at a folder it can write"),
    errno.EIO: ("an input/output error", "the disk or network filesystem is failing: check "
                "it (dmesg, the mount) before running again"),
}


class StorageError(BenchError):
    """The disk refused an operation on ``path``: one line saying what, where and what to do.

    A grid stops at the first one (every later run would fail the same way); finished runs
    and their records are kept, and the same command resumes once the disk is fixed.
    """

    def __init__(self, path: Path | str | None, exc: OSError, doing: str = "writing") -> None:
        what, advice = STORAGE_ERRNOS.get(exc.errno or 0, (exc.strerror or str(exc), ""))
        where = f" {path}" if path is not None else ""
        super().__init__(f"{doing}{where} failed: {what} [errno {exc.errno}]"
                         + (f"; {advice}" if advice else ""))
        self.path = path
        self.errno = exc.errno


def is_storage_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the disk refusing (full, read-only, permission, I/O error)."""
    return isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS


def storage_error(exc: OSError, path: Path | str | None = None,
                  doing: str = "writing") -> StorageError:
    """``exc`` as a :class:`StorageError` naming ``path`` (default: the path it names)."""
    return StorageError(path if path is not None else exc.filename, exc, doing)


@contextmanager
def reading(path: Path | str, unreadable: Callable[[str], Exception]) -> Iterator[None]:
    """Read ``path`` inside: a disk that refuses the read is a :class:`StorageError`, any
    other ``OSError`` but a missing file is ``unreadable(reason)`` (a missing file stays
    ``FileNotFoundError``: the caller's "not there yet")."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as exc:
        if is_storage_failure(exc):
            raise storage_error(exc, path, "reading") from None
        raise unreadable(str(exc.strerror or exc)) from None


def printable(text: object) -> str:
    """``text`` with control characters (ANSI escapes, newlines, NUL) escaped, so a name
    read from a file can never steer the terminal or split a line when printed."""
    out = []
    for ch in str(text):
        code = ord(ch)
        if code < 0x20 or 0x7F <= code < 0xA0 or code in (0x2028, 0x2029):
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


def warn(message: str) -> None:
    """One ``warning:`` line on stderr (never Python's ``UserWarning`` with a source line)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)
