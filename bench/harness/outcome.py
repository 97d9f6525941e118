"""What asking for one run gives back: its record, and whether it was cached or busy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.store import RunSpec


@dataclass
class Outcome:
    """The result of asking for one spec: its record, whether it came from the store, and
    whether another live worker holds it (``busy``: not run here, try again later)."""

    spec: RunSpec
    record: dict[str, Any]
    cached: bool
    busy: bool = False

    @property
    def status(self) -> str:
        return "busy" if self.busy else self.record["status"]
