"""The ``update`` section: the optimiser's update of a ResNet-20 step, as the engine runs it
without ``--compile`` (torch's ``optimizer.step()``: fused on CUDA) and with it (the
compiled update of :mod:`bench.engine.update`). Host time included: at CIFAR sizes on a
GPU the host's per-step work, not the kernels, sets the pace."""

from __future__ import annotations

from typing import Any

import torch

from bench.engine import EngineOptions, make_optimizer, prepare_model
from bench.engine.update import Update
from bench.models import build_model
from bench.perf.timing import PerfConfig, repeat, summary
from bench.recipe import Recipe

RECIPES = {"sgd nesterov": Recipe(optimizer="nesterov", lr=0.1, weight_decay=5e-4),
           "adamw": Recipe(optimizer="adamw", lr=0.01, weight_decay=5e-4)}


def update_rows(cfg: PerfConfig) -> list[dict[str, Any]]:
    """Seconds per update of ResNet-20's parameters (gradients set once), each optimiser
    eager and compiled, and the compiled update's ratio to the eager one."""
    steps = 50
    rows = []
    for name, recipe in RECIPES.items():
        eager_s = None
        for compiled in (False, True):
            options = EngineOptions(device=cfg.device, compile=compiled)
            model = prepare_model(build_model("resnet20", 10, seed=0), options)
            for p in model.parameters():
                p.grad = torch.randn_like(p) * 1e-3
            update = Update(make_optimizer(model.parameters(), recipe, options), options)

            def run(update: Update = update, lr: float = recipe.lr) -> None:
                for step in range(steps):
                    update(lr * (1 - step / (2 * steps)))

            samples = [s / steps for s in repeat(run, cfg.device, cfg.warmup + 1, cfg.repeats)]
            row = {"optimizer": name, "update": "compiled" if compiled else "torch step",
                   "fused": options.use_fused_optimizer, **summary(samples, cfg.warmup + 1)}
            eager_s = eager_s or row["median_s"]
            row["vs_torch_step"] = row["median_s"] / eager_s
            rows.append(row)
    return rows
