"""The issue's speed targets, each read off the measured sections, and whether each is met."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Target:
    """One of the issue's speed targets: ``figure(results) <= / >= bound`` on ``device``."""

    name: str
    device: str  # "cuda" or "cpu"
    bound: float
    at_most: bool
    figure: Callable[[dict[str, Any]], float | None]


def _row(rows: list[dict[str, Any]], key: str, value: str) -> dict[str, Any] | None:
    return next((r for r in rows if str(r.get(key, "")).startswith(value)), None)


def _epoch(results: dict[str, Any], loop: str) -> float | None:
    row = _row(results.get("epoch", []), "loop", loop)
    return None if row is None else row["s_per_full_epoch"]


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


def _field(section: str, key: str, value: str, field: str
           ) -> Callable[[dict[str, Any]], float | None]:
    def get(results: dict[str, Any]) -> float | None:
        row = _row(results.get(section, []), key, value)
        return None if row is None else row[field]
    return get


def _grid_minutes(preset: str) -> Callable[[dict[str, Any]], float | None]:
    """A preset grid's minutes at its fastest packing: measured, or projected from a
    scaled-down run (only grids run whole, every run finished, on the preset's data)."""
    def get(results: dict[str, Any]) -> float | None:
        rows = [r for r in results.get("grid", []) if r.get("preset") == preset
                and r["finished"] == r["runs"] and r.get("train_images") == "preset"]
        minutes = [r.get("projected_minutes", r["minutes"]) for r in rows]
        return min(minutes) if minutes else None
    return get


TARGETS = (
    Target("dense ResNet-20 s/epoch (full CIFAR-10)", "cuda", 1.0, True,
           lambda r: _epoch(r, "engine")),
    Target("engine speed-up over conventional loop", "cuda", 8.0, False,
           lambda r: _ratio(_epoch(r, "conventional"), _epoch(r, "engine"))),
    Target("fixed-mask step / dense step", "cuda", 1.15, True,
           _field("masked", "layers", "fixed", "vs_dense")),
    Target("top-k step / dense step", "cuda", 1.3, True,
           _field("masked", "layers", "top-k", "vs_dense")),
    Target("PX 100 rounds, 100 images (s)", "cuda", 10.0, True,
           _field("scoring", "method", "px", "median_s")),
    Target("SynFlow 100 rounds (s)", "cuda", 5.0, True,
           _field("scoring", "method", "synflow", "median_s")),
    Target("--methods all --preset quick (min)", "cuda", 30.0, True, _grid_minutes("quick")),
    Target("PX ResNet-20 figure, 3 seeds, full budget (min)", "cuda", 60.0, True,
           _grid_minutes("px-cifar10-resnet20")),
    Target("engine time / minimal loop time", "cpu", 1.10, True,
           lambda r: _ratio(_epoch(r, "engine"), _epoch(r, "minimal"))),
    Target("engine speed-up over conventional loop", "cpu", 2.0, False,
           lambda r: _ratio(_epoch(r, "conventional"), _epoch(r, "engine"))),
)


def target_rows(results: dict[str, Any], device: torch.device) -> list[dict[str, Any]]:
    """Each target of this device type with its figure and whether it is met."""
    rows = []
    for target in TARGETS:
        if target.device != device.type:
            continue
        figure = target.figure(results)
        met = None if figure is None else (
            figure <= target.bound if target.at_most else figure >= target.bound)
        rows.append({"target": target.name,
                     "bound": f"{'<=' if target.at_most else '>='} {target.bound:g}",
                     "figure": figure,
                     "met": {None: "not measured", True: "yes", False: "NO"}[met]})
    return rows
