"""A grid of specs run in order with one progress bar, sharing the store with other workers."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

from tqdm.auto import tqdm

from bench.engine import (
    EngineOptions,
)
from bench.harness.data_cache import DataCache
from bench.harness.one_run import execute
from bench.harness.outcome import Outcome
from bench.harness.packing import Trainer, run_packed
from bench.store import RunSpec, RunStore, UnreadableRecord
from bench.wording import counted

GRID_POLL_SECONDS = 2.0


def run_grid(
    specs: Sequence[RunSpec],
    *,
    store: RunStore,
    data: DataCache,
    options: EngineOptions,
    force: bool = False,
    poll_seconds: float = GRID_POLL_SECONDS,
    pack: int = 1,
) -> list[Outcome]:
    """Run every spec with one progress bar; returns each outcome, in the specs' order.

    Specs that another live worker holds are passed over, then revisited until each is
    finished by someone or free to run here, so several workers on one store share a grid
    and every one of them returns when the whole grid is done. With ``pack`` K > 1 the
    specs run in windows of K whose trainings are packed where they can be
    (:mod:`bench.harness.packing`); the records are those of the runs one at a time, up to
    rounding.
    """
    outcomes: dict[int, Outcome] = {}
    bar = tqdm(total=len(specs), desc="grid", unit="run", disable=not options.progress,
               dynamic_ncols=True)
    pending = list(enumerate(specs, 1))
    first = True
    while pending:
        waiting = []
        for window in _windows(pending, pack, store, force and first):
            for (i, spec), outcome in zip(window, _execute(window, store, data, options,
                                                           force and first, pack)):
                if outcome.busy:
                    waiting.append((i, spec))
                    continue
                outcomes[i] = outcome
                tqdm.write(summary_line(i, len(specs), outcome), file=sys.stdout)
                bar.update(1)
        if waiting and first:
            tqdm.write(f"waiting for {counted(len(waiting), 'run')} held by other workers",
                       file=sys.stdout)
        if waiting:
            time.sleep(poll_seconds)
        pending, first = waiting, False
    bar.close()
    return [outcomes[i] for i in sorted(outcomes)]


def _windows(pending: list[tuple[int, RunSpec]], pack: int, store: RunStore, force: bool
             ) -> list[list[tuple[int, RunSpec]]]:
    """Windows of up to ``pack`` specs to train; with packing, specs whose result stands
    come first, one to a window (they are only read), so every window's K are to train."""
    if pack <= 1:
        return [[item] for item in pending]
    done = [] if force else [(i, s) for i, s in pending if _stands(store, s)]
    train = [item for item in pending if item not in done]
    return [[item] for item in done] + [train[k:k + pack] for k in range(0, len(train), pack)]


def _stands(store: RunStore, spec: RunSpec) -> bool:
    """Whether a readable stored record of ``spec`` is finished or diverged (a cheap look:
    :func:`execute` checks its artifact before reusing it)."""
    try:
        record = store.read(spec.key)
    except UnreadableRecord:
        return False
    return record is not None and record.get("status") in ("finished", "diverged")


def _execute(window: list[tuple[int, RunSpec]], store: RunStore, data: DataCache,
             options: EngineOptions, force: bool, pack: int) -> list[Outcome]:
    """The window's outcomes: one run alone, or several with their trainings packed."""
    def job(spec: RunSpec) -> Callable[[Trainer], Outcome]:
        return lambda trainer: execute(spec, store=store, data=data, options=options,
                                       force=force, echo=tqdm.write, trainer=trainer)

    if pack <= 1 or len(window) == 1:
        return [execute(spec, store=store, data=data, options=options, force=force,
                        echo=tqdm.write) for _, spec in window]
    return run_packed([job(spec) for _, spec in window], pack)


def summary_line(i: int, n: int, outcome: Outcome) -> str:
    """``[i/n] label (key): trained, test accuracy 91.20% (30.1 s training)``."""
    record = outcome.record
    head = f"[{i}/{n}] {outcome.spec.label()} ({record['key']}):"
    how = "cached" if outcome.cached else "trained"
    if record["status"] == "finished":
        acc = record["metrics"]["test_accuracy"]
        secs = (record.get("budget") or {}).get("all_phases_train_seconds")
        took = f" ({secs:.1f} s training)" if isinstance(secs, (int, float)) else ""
        return f"{head} {how}, test accuracy {acc:.2f}%{took}"
    message = (record.get("error") or {}).get("message", "")
    return f"{head} {record['status']}{' (cached)' if outcome.cached else ''}: {message}"
