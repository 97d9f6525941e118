"""Float64 training cases shared by the exactness tests (packing, the compiled step):
ResNet-20s with random masks on real CIFAR-10 images, compared at 1e-10 where only the
summation order differs (the ``data64`` fixture is in conftest)."""

from __future__ import annotations

import torch

from bench.engine.loop import TrainRequest, open_phase
from bench.models import build_model
from bench.pruning import prunable_layers
from bench.recipe import Recipe


def opened(*args, **kwargs):
    """A phase opened as engine.train would open it with these arguments."""
    return open_phase(TrainRequest(*args, **kwargs))


RECIPE = Recipe(epochs=2, batch_size=100, lr=0.1, schedule="cosine", weight_decay=5e-4)


def masked_models(n: int = 3) -> list[torch.nn.Module]:
    """``n`` float64 ResNet-20s (width 0.25) of different seeds and random masks."""
    models = []
    for seed in range(n):
        model = build_model("resnet20", 10, seed=seed, width=0.25).double()
        g = torch.Generator().manual_seed(100 + seed)
        for _, layer in prunable_layers(model):
            layer.set_mask(torch.rand(layer.weight.shape, generator=g) < 0.3 + 0.2 * seed)
        models.append(model)
    return models


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module, atol: float = 1e-10) -> None:
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(x.double(), y.double(), rtol=0, atol=atol), name
