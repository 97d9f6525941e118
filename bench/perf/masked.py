"""The ``masked`` section: one training step of ResNet-20 with a fixed mask and with top-k
scores, against the same step dense."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bench.engine import compile_model, make_optimizer, model_input, prepare_model
from bench.models import build_model, prunable_layers
from bench.models.masked_weights import trainable_parameters
from bench.perf.reference_loops import minimal_step
from bench.perf.timing import PerfConfig, repeat, summary
from bench.recipe import Recipe


def masked_variant(kind: str, seed: int = 0) -> nn.Module:
    """ResNet-20 with plain weights, a fixed 10% mask, or top-k scores at 50%."""
    model = build_model("resnet20", 10, seed=seed)
    g = torch.Generator().manual_seed(seed)
    for _, layer in prunable_layers(model):
        if kind == "fixed mask":
            layer.set_mask(torch.rand(layer.weight.shape, generator=g) < 0.1)
        elif kind == "top-k scores":
            layer.weight.requires_grad_(False)
            layer.use_scores(0.5, g)
    return model


def masked_rows(cfg: PerfConfig) -> list[dict[str, Any]]:
    """Seconds per training step of dense, fixed-mask and top-k ResNet-20, and the ratios."""
    options = cfg.options
    x = model_input(torch.randn(cfg.batch, 3, 32, 32, device=cfg.device), options)
    y = torch.randint(0, 10, (cfg.batch,), device=cfg.device)
    steps = 20 if options.cuda else 3
    rows = []
    for kind in ("dense", "fixed mask", "top-k scores"):
        model = prepare_model(masked_variant(kind), options).train()
        forward = compile_model(model, options)
        optimizer = make_optimizer(trainable_parameters(model), Recipe(lr=0.01), options)

        def run(forward: nn.Module = forward, optimizer: torch.optim.Optimizer = optimizer
                ) -> None:
            for _ in range(steps):
                minimal_step(forward, optimizer, x, y, options)

        samples = [s / steps for s in repeat(run, cfg.device, cfg.warmup + 1, cfg.repeats)]
        rows.append({"layers": kind, "batch": cfg.batch, **summary(samples, cfg.warmup + 1)})
    for row in rows:
        row["vs_dense"] = row["median_s"] / rows[0]["median_s"]
    return rows
