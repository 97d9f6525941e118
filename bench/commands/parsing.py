"""Parsing comma-separated lists and hyperparameter options the same way in every command."""

from __future__ import annotations

import typing
from typing import Any

from bench.errors import BenchError

MAX_SEED = 2**63 - 1  # seeds enter 64-bit generators


def csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def listed(text: str | None, option: str) -> list[str] | None:
    """The items of a comma-separated option; None when it was not given. Given but empty
    (``''`` or ``,``) is a mistake, not "use the preset's"."""
    if text is None:
        return None
    items = csv(text)
    if not items:
        raise BenchError(f"{option} {text!r} names nothing; give at least one value or leave "
                         "the option out to use the preset's")
    return items


def floats(text: str | None, option: str) -> list[float] | None:
    items = listed(text, option)
    if items is None:
        return None
    try:
        return [float(t) for t in items]
    except ValueError:
        raise BenchError(f"bad number list {text!r} for {option}; expected e.g. 0.5,0.1") from None


def ints(text: str | None, option: str) -> list[int] | None:
    items = listed(text, option)
    if items is None:
        return None
    try:
        return [int(t) for t in items]
    except ValueError:
        raise BenchError(f"bad integer list {text!r} for {option}; expected e.g. 0,1,2") from None


def option_name(method: str, field: str) -> str:
    return f"--{method}-{field.replace('_', '-')}"


def metavar(kind: Any) -> str:
    if typing.get_origin(kind) is typing.Literal:
        return "{" + ",".join(map(str, typing.get_args(kind))) + "}"
    return getattr(kind, "__name__", "value").upper()
