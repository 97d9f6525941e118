"""What a training phase has done (:class:`TrainResult`, :class:`Progress`) and its
per-epoch checkpoint, from which a later call resumes exactly after the last finished epoch.

A checkpoint carries its checksum (:mod:`bench.integrity`): one that fails it is set aside
with a warning line and the phase starts again, as if there were none.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.integrity import DamagedFile, load_torch, save_torch, set_aside
from bench.recipe import Recipe


@dataclass
class TrainResult:
    """What one training phase did: per-epoch log and its cost."""

    log: list[dict[str, Any]]
    epochs: int
    steps: int
    seconds: float
    resumed_at_epoch: int = 0
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)


@dataclass
class Progress:
    """How far a phase got: what a checkpoint restores besides model and optimiser."""

    epoch: int = 0
    step: int = 0
    seconds: float = 0.0
    log: list[dict[str, Any]] = field(default_factory=list)
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)

    def result(self, epochs: int, resumed_at_epoch: int) -> TrainResult:
        return TrainResult(self.log, epochs, self.step, self.seconds, resumed_at_epoch,
                           self.snapshots)


def progress_path(checkpoint: Path) -> Path:
    """The small JSON beside a phase's checkpoint saying how many epochs it holds."""
    return checkpoint.with_name(checkpoint.stem + ".progress.json")


def state_snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the model's state (for rewinding)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def save_checkpoint(
    path: Path,
    recipe: Recipe,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    progress: Progress,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Write the phase's state after an epoch: recipe, progress, model and optimiser, and
    float16's loss scaler (its scale and the finite steps since it last grew)."""
    state = {
        "recipe": recipe.as_dict(),
        "progress": asdict(progress),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    save_torch(path, state)


def load_checkpoint(
    path: Path | None, recipe: Recipe, model: nn.Module, optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
) -> Progress:
    """Restore model, optimiser, loss scaler and progress from ``path``; a fresh start if
    absent, of another recipe, or damaged (then set aside, with a warning line); a scaler
    resumed from a checkpoint without one starts afresh."""
    if path is None or not path.exists():
        return Progress()
    try:
        state = load_torch(path)
        if not isinstance(state, dict):
            raise DamagedFile(path, "not a checkpoint")
    except FileNotFoundError:
        return Progress()
    except DamagedFile as exc:
        set_aside(path, exc.reason)
        return Progress()
    if state.get("recipe") != recipe.as_dict():
        return Progress()
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    return Progress(**state["progress"])
