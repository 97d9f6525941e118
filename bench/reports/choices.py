"""What ``bench report`` can show: formats, what the columns are, size columns, cell metrics.

Two different things are called compression here. The ``--group-by compression`` columns
are the *weight compression* 1/density, a nominal number of the spec; the
``compression_ratio`` metric and the ``--size ratio`` column are the *byte compression
ratio*, dense float32 bytes over the artifact's measured bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Format = Literal["plain", "md", "latex", "csv"]
FORMATS: tuple[Format, ...] = get_args(Format)

GroupBy = Literal["density", "sparsity", "compression"]
GROUP_BY: tuple[GroupBy, ...] = get_args(GroupBy)
WEIGHT_COMPRESSION: GroupBy = "compression"  # columns by 1/density (not measured bytes)
GROUP_BY_CAPTIONS: dict[str, str] = {
    "density": "columns: density (kept fraction of prunable weights)",
    "sparsity": "columns: sparsity (pruned % of prunable weights)",
    WEIGHT_COMPRESSION: "columns: nominal compression 1/density",
}

Size = Literal["artifact", "paper", "pemn", "stored", "ratio", "none"]
SIZES: tuple[Size, ...] = get_args(Size)
BYTE_COMPRESSION_RATIO: Size = "ratio"  # dense float32 bytes / artifact bytes, measured
# the summary column each size shows beside a cell ("none": no size column)
SIZE_COLUMNS: dict[str, str] = {
    "artifact": "artifact_bytes_mean", "paper": "paper_bytes_mean", "pemn": "pemn_bytes_mean",
    "stored": "stored_bytes_mean", BYTE_COMPRESSION_RATIO: "compression_ratio_mean"}
SIZE_TITLES: dict[str, str] = {"artifact": "kB", "paper": "paper kB", "pemn": "PEMN kB",
                                "stored": "stored kB", BYTE_COMPRESSION_RATIO: "ratio"}


@dataclass(frozen=True)
class Metric:
    """A per-run number the tables can show: its frame column, name, unit and decimals."""

    column: str
    title: str
    unit: str
    decimals: int


METRICS: dict[str, Metric] = {
    "accuracy": Metric("accuracy", "top-1 test accuracy", "%", 2),
    "top5": Metric("top5", "top-5 test accuracy", "%", 2),
    "loss": Metric("loss", "test loss", "", 3),
    "artifact_bytes": Metric("artifact_bytes", "artifact size", "bytes", 0),
    "paper_bytes": Metric("paper_bytes", "paper-convention size", "bytes", 0),
    "stored_bytes": Metric("stored_bytes", "stored-convention size", "bytes", 0),
    "pemn_bytes": Metric("pemn_bytes", "PEMN-convention size", "bytes", 0),
    # the byte compression ratio, measured (not the weight compression 1/density)
    "compression_ratio": Metric("compression_ratio", "compression ratio dense/artifact", "x", 2),
    "speedup": Metric("speedup", "theoretical speedup (dense/sparse MACs)", "x", 2),
    "seconds": Metric("seconds", "training time", "s", 1),
}
BYTE_METRICS = ("artifact_bytes", "paper_bytes", "stored_bytes", "pemn_bytes")
