"""Follow a grid that workers elsewhere train: one progress bar over the store, a line per
run as it ends, until every run has ended or no worker is left to end them."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from tqdm.auto import tqdm

from bench.harness import Outcome, summary_line
from bench.harness.manifest import GridManifest
from bench.harness.status import FINAL, grid_status
from bench.store import RunSpec, RunStore

FOLLOW_POLL_SECONDS = 2.0


def follow(store: RunStore, manifest: GridManifest, specs: list[RunSpec],
           working: Callable[[], bool], *, progress: bool,
           poll_seconds: float = FOLLOW_POLL_SECONDS) -> list[str]:
    """Poll the store until the grid is done or ``working()`` says no worker is left.

    Returns every run's state at the end (finished, failed, ..., pending for runs that no
    worker finished).
    """
    by_key = {spec.key: spec for spec in specs}
    told: set[str] = set()
    bar = tqdm(total=len(specs), desc="grid", unit="run", disable=not progress,
               dynamic_ncols=True)
    while True:
        status = grid_status(store, manifest)
        for i, run in enumerate(status.runs, 1):
            if run.state in (*FINAL, "failed") and run.key not in told:
                told.add(run.key)
                record = store.read(run.key)
                if record is not None:
                    outcome = Outcome(by_key[run.key], record, cached=False)
                    tqdm.write(summary_line(i, len(specs), outcome), file=sys.stdout)
                bar.update(1)
        if status.done or not working():
            break
        time.sleep(poll_seconds)
    bar.close()
    return [run.state for run in grid_status(store, manifest).runs]
