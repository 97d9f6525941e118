"""Runs one spec end to end (model, method, evaluation, record) and a grid of them.

The harness owns everything around a method: building the initial model from the run seed,
checkpoint paths, timing, the record and its status. Methods only compute; they never write
files.
"""

from bench.harness.data_cache import DataCache
from bench.harness.evaluation import check_finite, measure
from bench.harness.grid import GRID_POLL_SECONDS, run_grid, summary_line
from bench.harness.one_run import execute
from bench.harness.outcome import Outcome
from bench.harness.records import verify_artifact

__all__ = ["GRID_POLL_SECONDS", "DataCache", "Outcome", "check_finite", "execute", "measure",
           "run_grid", "summary_line", "verify_artifact"]
