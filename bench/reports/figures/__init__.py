"""Figures from the run store, saved as PNG and PDF: records in, pictures out; nothing trains.

``python -m bench figures`` draws, from whatever runs the store holds (filtered like
``bench report``), the kinds of :mod:`bench.reports.figures.kinds`; ``--paper px|pemn|all``
draws exactly the figures of that protocol from the runs of its presets (or, with
``--preset``, of a reduced version of one), and lists every run the store lacks with the
``bench run`` command that makes it. Every method keeps one colour
and marker in every figure (colour-blind-safe Okabe-Ito and Tol colours); every figure has a
caption line with the data set and the budget.
"""

from bench.reports.figures.accuracy import figure_bytes, figure_sparsity
from bench.reports.figures.captions import caption_text
from bench.reports.figures.command import (
    DEFAULT_OUT,
    DRAW,
    PAPERS,
    PaperFigure,
    add_arguments,
    command,
    reduced_figure,
)
from bench.reports.figures.kinds import DEFAULT_KINDS, DEFAULT_TITLES, FILE_NAMES, KINDS, Kind
from bench.reports.figures.layout import save
from bench.reports.figures.pemn import figure_pemn_bars, figure_pemn_curves
from bench.reports.figures.placement import merge_close, pareto_front
from bench.reports.figures.series import Series, series_of
from bench.reports.figures.style import EXTRA_COLOURS, EXTRA_MARKERS, METHOD_STYLES, method_style
from bench.reports.labels import pemn_name

__all__ = [
    "DEFAULT_KINDS", "DEFAULT_OUT", "DEFAULT_TITLES", "DRAW", "EXTRA_COLOURS", "EXTRA_MARKERS",
    "FILE_NAMES", "KINDS", "METHOD_STYLES", "PAPERS", "Kind", "PaperFigure", "Series",
    "add_arguments", "caption_text", "command", "figure_bytes", "figure_pemn_bars",
    "figure_pemn_curves", "figure_sparsity", "merge_close", "method_style", "pareto_front",
    "pemn_name", "reduced_figure", "save", "series_of",
]
