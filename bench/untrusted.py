"""JSON from files as untrusted data: parsed within limits, names and numbers checked.

Records, snapshots, manifests, claims and beacons may have been damaged, hand-edited or
crafted. :func:`read_json` refuses a file past a size limit, nesting past
:data:`MAX_DEPTH`, integers longer than :data:`MAX_INT_DIGITS` digits and numbers that
overflow to infinity, each with one :class:`UntrustedJSON` line naming the file; the
checks below say what a name, a key or a number read from such a file may be.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from bench.errors import BenchError, printable, reading

MAX_DEPTH = 32
MAX_INT_DIGITS = 30
MAX_NAME_LENGTH = 200
MiB = 1 << 20
RUN_KEY_RE = re.compile(r"[0-9a-f]{16}")
SHARED_KEY_RE = re.compile(r"[0-9a-f]{32}")
GRID_ID_RE = re.compile(r"[0-9a-f]{12}")


class UntrustedJSON(BenchError):
    """A JSON file or text that is not within the limits of what the suite writes;
    ``reason`` is the message without the file's name, for callers that name it."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _parse_constant(name: str) -> float:
    if name == "NaN":  # the suite writes NaN (allow_nan) for values it could not measure
        return math.nan
    raise ValueError(f"{name} is not a result")


def _depth(value: Any) -> int:
    """The nesting depth of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _bad(where: str, reason: str) -> UntrustedJSON:
    return UntrustedJSON(f"{where} {reason}", reason)


def loads(text: str | bytes, where: str) -> Any:
    """Parse ``text`` as JSON within the limits; :class:`UntrustedJSON` naming ``where``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _bad(where, f"is not UTF-8 text (byte {exc.start})") from None
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float,
                           parse_constant=_parse_constant)
    except RecursionError:
        raise _bad(where, f"is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError is one, and the hooks' refusals
        raise _bad(where, f"is not valid JSON: {printable(exc)}") from None
    if _depth(value) > MAX_DEPTH:
        raise _bad(where, f"is nested deeper than {MAX_DEPTH} levels")
    return value


def read_json(path: Path, max_bytes: int, what: str = "") -> Any:
    """The JSON in ``path`` within the limits (``FileNotFoundError`` if absent).

    Larger than ``max_bytes``, unreadable or outside the limits: :class:`UntrustedJSON`;
    a disk that refuses the read: :class:`~bench.errors.StorageError`.
    """
    path = Path(path)
    where = f"{what} {path}".strip()
    with reading(path, lambda reason: _bad(where, f"is unreadable: {reason}")):
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _bad(where, f"is larger than {max_bytes // MiB} MiB: not a file the suite wrote")
    return loads(data, where)


def check_name(value: Any, what: str) -> str:
    """``value`` if it is a name a file may hold (a short string without control
    characters), else :class:`UntrustedJSON` saying so (the value escaped)."""
    if not isinstance(value, str) or not value:
        raise UntrustedJSON(f"{what} is {printable(repr(value))[:80]}, not a name")
    if len(value) > MAX_NAME_LENGTH:
        raise UntrustedJSON(f"{what} is {len(value)} characters long")
    if printable(value) != value:
        raise UntrustedJSON(f"{what} '{printable(value)}' holds control characters")
    return value


def check_number(value: Any, what: str, low: float, high: float, *,
                 integer: bool = False) -> float | int:
    """``value`` if it is a finite number (an integer where asked) in ``[low, high]``."""
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or (
            isinstance(value, float) and not math.isfinite(value)):
        raise UntrustedJSON(f"{what} is {printable(repr(value))[:80]}, not a "
                            f"{'whole ' if integer else 'finite '}number")
    if not low <= value <= high:
        raise UntrustedJSON(f"{what} is {value:.6g}, outside [{low:g}, {high:g}]")
    return value


def check_key(value: Any, what: str, pattern: re.Pattern[str] = RUN_KEY_RE) -> str:
    """``value`` if it is a key of the given form (hex of the right length): keys name
    folders and files, so anything else (``../x``, an absolute path) is refused."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise UntrustedJSON(f"{what} is {printable(repr(value))[:80]}, not a key "
                            f"({pattern.pattern})")
    return value
