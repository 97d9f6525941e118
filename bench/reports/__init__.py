"""Reports from the run store: tables, figures, regression comparisons; nothing here trains.

Records become a frame (``frames``), seeds are pooled per spec (``stats``), the summary is
laid out per (dataset, model) (``views``, in the order of ``ordering``, named by
``labels``) and written as text (``formats``); ``missing`` sets a preset's grid
(bench.grid) against the store. The commands: ``tables_cli`` (``bench report``),
``figures`` (``bench figures``), ``compare`` and ``snapshots`` (``bench compare``,
``bench export``). ``spend`` and ``paper_bytes`` are what runs spent and PEMN's byte count;
``bytes_table`` prints artifact against dense bytes.

The names below are the table side's API, importable from ``bench.reports``.
"""

from bench.grid import GridOptions, preset_grid
from bench.reports.choices import FORMATS, GROUP_BY, METRICS, SIZES, Metric
from bench.reports.formats import render
from bench.reports.frames import (
    FRAME_COLUMNS,
    filter_frame,
    frame_from_records,
    load_frame,
    records_frame,
)
from bench.reports.labels import (
    budget_label,
    dataset_title,
    method_label,
    model_title,
    pemn_name,
    setup_title,
    sig3,
)
from bench.reports.missing import MissingGroup, missing_groups, preset_frame
from bench.reports.ordering import method_order
from bench.reports.stats import NOT_FINISHED, summary_table
from bench.reports.views import Cell, TableView, build_views

__all__ = [
    "FORMATS", "FRAME_COLUMNS", "GROUP_BY", "METRICS", "NOT_FINISHED", "SIZES", "Cell",
    "GridOptions", "Metric", "MissingGroup", "TableView", "budget_label", "build_views",
    "dataset_title", "filter_frame", "frame_from_records", "load_frame", "method_label",
    "method_order", "missing_groups", "model_title", "pemn_name", "preset_frame", "preset_grid",
    "records_frame", "render", "setup_title", "sig3", "summary_table",
]
