"""What an accuracy axis may claim: the test set's resolution and the chance level.

Accuracy is measured on a finite test set, so it moves in steps of one image: 1 point on
100 test images, 0.01 points on 10,000. A y axis zoomed to 10-12 % on 100 images makes a
2-image difference fill the panel; here the y range spans at least
:data:`MIN_SPAN_IMAGES` images' worth, and the caption says what one image is worth. A
dashed grey line marks chance (100 / classes: 10 % on CIFAR-10, 1 % on CIFAR-100) where the
axis comes near it, so a point near chance reads as one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bench.data.datasets import DATASETS
from bench.reports.labels import DATASET_SIZES, dataset_title

if TYPE_CHECKING:
    from matplotlib.axes import Axes

MIN_SPAN_IMAGES = 10
"""The y axis of an accuracy panel spans at least this many test images' worth."""
CHANCE_MARGIN = 0.25
"""The chance line is drawn when chance lies within the y range, or outside it by at most
this fraction of the range or by chance itself (a CIFAR-10 axis that starts at 20 % or
lower, a CIFAR-100 one at 2 %); the range then grows to show it."""
CHANCE_COLOUR = "#888888"
CHANCE_LEGEND = "chance level (100 / classes)"


def chance_level(dataset: str) -> float | None:
    """Top-1 accuracy of guessing, in %: 100 / classes (None for an unknown data set)."""
    info = DATASETS.get(dataset)
    return 100.0 / info.num_classes if info else None


def test_images(dataset: str, test_subset: Any) -> int | None:
    """How many images a run of ``dataset`` was tested on (its subset, else the full set)."""
    if test_subset is not None and not pd.isna(test_subset):
        return int(test_subset)
    full = DATASET_SIZES.get(dataset)
    return full[1] if full else None


def image_points(images: int | None) -> float | None:
    """What one test image is worth in accuracy points."""
    return 100.0 / images if images else None


def points_text(value: float) -> str:
    """``1 point``, ``0.5 points``, ``0.01 points``, ``0.33 points``."""
    text = f"{value:.2g}" if value < 1 else f"{value:.3g}"
    return f"{text} point" + ("" if text == "1" else "s")


def _setup_of(part: pd.DataFrame) -> tuple[str | None, int | None]:
    """(dataset, test images) of a panel's rows (the smallest test set if they differ)."""
    if part.empty:
        return None, None
    dataset = str(part["dataset"].iloc[0])
    sizes = [test_images(str(d), t) for d, t in zip(part["dataset"], part["test_subset"])]
    known = [s for s in sizes if s]
    return dataset, (min(known) if known else None)


def accuracy_limits(ax: Axes, values: Iterable[float], part: pd.DataFrame,
                    entries: dict[str, Any] | None = None, *, floor: float | None = None,
                    label: bool = True) -> tuple[float, float]:
    """Set the y range of an accuracy panel from the values it shows (means, mean ± std,
    reference lines) and draw the chance line where the range comes near it.

    The range spans at least :data:`MIN_SPAN_IMAGES` test images' worth (centred on the
    data, kept inside 0-100 %), with 8 % padding; ``floor`` fixes its lower end (bars start
    at 0); ``label=False`` leaves the chance line's name to the legend (bars carry their
    values at their tops, where a label on the line would cover one). Returns the limits.
    """
    from matplotlib.lines import Line2D

    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    dataset, images = _setup_of(part)
    chance = chance_level(dataset) if dataset else None
    worth = image_points(images) or 0.0
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 100.0)
    if floor is not None:
        lo = floor
        hi = lo + max(hi - lo, MIN_SPAN_IMAGES * worth, 1.0) * 1.22
    else:
        span = max(hi - lo, MIN_SPAN_IMAGES * worth, 1e-6)
        centre = (lo + hi) / 2
        lo, hi = centre - 0.58 * span, centre + 0.58 * span  # 8 % padding each side
        if lo < 0:
            lo, hi = 0.0, hi - lo
        if hi > 100:
            lo, hi = max(0.0, lo - (hi - 100)), 100.0
    span = hi - lo
    near = max(CHANCE_MARGIN * span, chance or 0.0)
    show_chance = chance is not None and lo - near <= chance <= hi + near
    if show_chance:
        assert chance is not None
        lo = max(0.0, min(lo, chance - 0.06 * span))
        hi = min(100.0, max(hi, chance + 0.06 * span))
        ax.axhline(chance, color=CHANCE_COLOUR, linestyle=(0, (1, 2)), linewidth=1.2,
                   zorder=1, gid="chance-level")
        if label:
            ax.annotate(f"chance {chance:g}% (1 of {round(100 / chance)} classes)",
                        (1.0, chance), xycoords=("axes fraction", "data"), xytext=(-3, 2),
                        textcoords="offset points", ha="right", va="bottom", fontsize=7,
                        color="#555555", zorder=1, gid="chance-label")
        if entries is not None:
            entries.setdefault(CHANCE_LEGEND, Line2D(
                [], [], color=CHANCE_COLOUR, linestyle=(0, (1, 2)), linewidth=1.2))
    ax.set_ylim(lo, hi)
    return lo, hi


def shown_values(lines: Iterable[tuple[Any, Any]]) -> list[float]:
    """What an accuracy panel must show of its lines, given as (y, seed std) arrays: every
    mean and both ends of its error bar or band."""
    out: list[float] = []
    for y, err in lines:
        y, err = np.asarray(y, dtype=float), np.asarray(err, dtype=float)
        out += [*y, *(y - err), *(y + err)]
    return out


def resolution_note(table: pd.DataFrame) -> str | None:
    """``Tested on 100 images: one image = 1 point; ...``: the caption's sentence on what the
    test sets resolve, per data set, and the y axes' minimum span."""
    done = table[table["n"] > 0] if "n" in table else table
    seen: dict[tuple[str, int], None] = {}
    for dataset, test in zip(done["dataset"], done["test_subset"]):
        images = test_images(str(dataset), test)
        if images:
            seen[(str(dataset), images)] = None
    if not seen:
        return None
    several = len({d for d, _ in seen}) > 1
    parts = [(f"{dataset_title(d)} " if several else "")
             + f"tested on {n:,} images: one image = {points_text(image_points(n) or 0)}"
             for d, n in sorted(seen)]
    text = "; ".join(parts)
    return (text[0].upper() + text[1:]
            + f" (y axes span at least {MIN_SPAN_IMAGES} images' worth).")
