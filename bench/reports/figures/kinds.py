"""The figures ``bench figures --kind`` draws: their names, default titles and file names.

- ``bytes``: accuracy vs artifact bytes (log x), one line per method with seed error bars,
  the dense model as a reference line, and the Pareto front of all points with its members
  named;
- ``sparsity``: accuracy vs sparsity in the PX paper's Fig. 2 layout: one panel per
  dataset/model, x ticks at the sparsities run, log-spaced in density;
- ``pemn-bars``: PEMN's bars per architecture (dense, mask, one-layer, MP, RP 1e-1..1e-5);
- ``pemn-curves``: PEMN against the pruning baselines, accuracy vs size on PEMN's count
  applied to every method alike (bench.reports.paper_bytes) and on artifact bytes.
"""

from __future__ import annotations

from typing import Literal, get_args

Kind = Literal["bytes", "sparsity", "pemn-bars", "pemn-curves"]
KINDS: tuple[Kind, ...] = get_args(Kind)
DEFAULT_KINDS: tuple[Kind, ...] = ("bytes", "sparsity")
DEFAULT_TITLES: dict[str, str] = {
    "bytes": "Accuracy vs. artifact size", "sparsity": "Accuracy vs. sparsity",
    "pemn-bars": "PEMN: masks on fixed random weights",
    "pemn-curves": "PEMN vs. pruning baselines: accuracy vs. size"}
FILE_NAMES: dict[str, str] = {"bytes": "accuracy-vs-bytes", "sparsity": "accuracy-vs-sparsity",
                              "pemn-bars": "pemn-bars", "pemn-curves": "pemn-curves"}
