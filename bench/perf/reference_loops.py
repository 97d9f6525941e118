"""The loops the engine is timed against (``bench perf``): a minimal hand-written loop and
the conventional DataLoader loop of the reference repositories.

Both train the same model with the same augmentation (zero-pad 4, random 32x32 crop,
random horizontal flip, per-channel normalisation) and batch size as the engine; they
exist to be measured, never to produce results.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from bench.data import CROP_PAD, DeviceData, augment_batch, make_generator
from bench.engine import EngineOptions, autocast, make_optimizer, model_input, step_begin
from bench.recipe import Recipe


def minimal_step(forward: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor,
                 options: EngineOptions) -> None:
    """One optimiser step as the engine takes it, with no bookkeeping: ``x`` in the model's
    layout, CUDA-graph step mark, autocast forward, float32 loss, backward, step."""
    step_begin(options)
    with autocast(options):
        loss = F.cross_entropy(forward(x).float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def minimal_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, data: DeviceData,
                  batch_size: int, seed: int, epoch: int, options: EngineOptions) -> None:
    """One epoch of the shortest loop that trains like the engine: on-device data and
    augmentation, the same speed switches, fixed learning rate, no bookkeeping."""
    g = make_generator(data.device, seed, epoch)
    order = torch.randperm(len(data.train_y), generator=g, device=data.device)
    for step in range(len(order) // batch_size):
        idx = order[step * batch_size:(step + 1) * batch_size]
        x = model_input(data.normalize(augment_batch(data.train_x[idx], g)), options)
        minimal_step(model, optimizer, x, data.train_y[idx], options)


class PerImageCifar(Dataset):
    """CIFAR images as HWC uint8 arrays, transformed one at a time in the worker, as
    torchvision's ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip()``,
    ``ToTensor()`` and ``Normalize(mean, std)`` do (without torchvision)."""

    def __init__(self, images_hwc: np.ndarray, labels: np.ndarray,
                 mean: tuple[float, float, float], std: tuple[float, float, float]) -> None:
        self.images, self.labels = images_hwc, labels
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        pad = CROP_PAD
        image = np.pad(self.images[i], ((pad, pad), (pad, pad), (0, 0)))
        top, left = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,)))
        image = image[top:top + 32, left:left + 32]
        if torch.rand(()) < 0.5:
            image = image[:, ::-1]
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255)
        return (x - self.mean) / self.std, int(self.labels[i])


@dataclass
class ConventionalLoop:
    """A torch DataLoader over :class:`PerImageCifar` with ``workers`` processes (restarted
    every epoch, as the reference code's loaders are), float32 NCHW model, an unfused
    optimiser and a ``loss.item()`` per step for the running average they print."""

    model: nn.Module
    loader: DataLoader
    optimizer: torch.optim.Optimizer
    device: torch.device

    @classmethod
    def build(cls, model: nn.Module, data: DeviceData, recipe: Recipe, device: torch.device,
              workers: int = 4) -> ConventionalLoop:
        images = data.train_x.permute(0, 2, 3, 1).cpu().numpy()
        labels = data.train_y.cpu().numpy()
        dataset = PerImageCifar(images, labels, data.info.mean, data.info.std)
        # 4 workers is the references' setting even where torch suggests fewer
        warnings.filterwarnings("ignore", message="This DataLoader will create")
        loader = DataLoader(dataset, batch_size=recipe.batch_size, shuffle=True,
                            num_workers=workers, pin_memory=device.type == "cuda",
                            drop_last=True)
        options = EngineOptions(device=device).plain()
        return cls(model.to(device), loader,
                   make_optimizer(model.parameters(), recipe, options), device)

    def epoch(self) -> float:
        """Train one epoch; the mean training loss (read per step, as the references do)."""
        self.model.train()
        total, steps = 0.0, 0
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            loss = F.cross_entropy(self.model(x), y)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            total += loss.item()
            steps += 1
        return total / max(steps, 1)
