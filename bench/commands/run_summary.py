"""The last line of ``bench run`` and its exit status, the same for every executor."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Sequence

from bench.defaults import EXIT_RUN_FAILED
from bench.wording import counted


def done_line(statuses: Sequence[str]) -> str:
    """``done: 3 finished, 1 failed``."""
    counts = Counter(statuses)
    return "done: " + ", ".join(f"{n} {label}" for label, n in sorted(counts.items()))


def exit_status(statuses: Iterable[str]) -> int:
    """1 when any run failed or diverged, else 0."""
    return EXIT_RUN_FAILED if any(s in ("failed", "diverged") for s in statuses) else 0


def followed_exit(states: Sequence[str], left_hint: str) -> int:
    """End a followed grid: the done line, one error line when runs were left unfinished
    (``left_hint`` says why and what to do), and the exit status."""
    print(done_line(states))
    left = sum(s not in ("finished", "diverged", "failed") for s in states)
    if left:
        print(f"error: {counted(left, 'run')} unfinished: {left_hint}", file=sys.stderr)
        return 1
    return exit_status(states)
