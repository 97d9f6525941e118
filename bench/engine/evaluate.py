"""Test-set accuracy (top-1, top-5 where there are more than 10 classes) and mean loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.data import DeviceData
from bench.engine.options import EngineOptions, autocast, model_input


@dataclass(frozen=True)
class Accuracy:
    """Test-set accuracy in percent (top-5 only where there are more than 10 classes)."""

    top1: float
    top5: float | None
    loss: float


@torch.no_grad()
def evaluate(model: nn.Module, data: DeviceData, options: EngineOptions) -> Accuracy:
    """Top-1 (and top-5) accuracy in percent and mean loss on the whole test split."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=options.device, dtype=torch.float64)
    top1 = torch.zeros((), device=options.device, dtype=torch.long)
    top5 = torch.zeros((), device=options.device, dtype=torch.long)
    seen = 0
    use_top5 = data.num_classes > 10
    for x, y in data.test_batches(options.eval_batch_size):
        with autocast(options):
            logits = model(model_input(x, options))
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        top1 += (logits.argmax(1) == y).sum()
        if use_top5:
            top5 += (logits.topk(5, dim=1).indices == y[:, None]).any(1).sum()
        seen += len(y)
    model.train(was_training)
    return Accuracy(
        top1=100.0 * top1.item() / seen,
        top5=100.0 * top5.item() / seen if use_top5 else None,
        loss=loss_sum.item() / seen,
    )
