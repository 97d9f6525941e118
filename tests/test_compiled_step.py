"""The compiled training step (``--compile``): the loss inside the model's graph and the
optimiser's update as one compiled function give torch's eager numbers, and a new run of a
known architecture reuses the compiled code instead of compiling again.

The update is checked exactly (float64, 1e-15) against torch's own ``optimizer.step()``;
whole trainings in float64 against plain ones, where the compiled forward's other
summation order stays below 1e-6 over two epochs."""

from __future__ import annotations

import copy

import pytest
import torch
from float64_training import RECIPE, assert_same_state, masked_models, opened
from torch import nn
from torch._dynamo.utils import counters

from bench.engine import EngineOptions
from bench.engine.loop import train
from bench.engine.step import loss_function
from bench.engine.update import Update
from bench.recipe import Recipe

COMPILED = EngineOptions(compile=True, eval_every=0)
PLAIN = EngineOptions(eval_every=0)


def tiny(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)).double()


def optimizer(kind: str, model: nn.Module) -> torch.optim.Optimizer:
    if kind == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=5e-4)
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4,
                           nesterov=kind == "nesterov")


def steps(model: nn.Module, update: Update, seed: int, n: int = 4) -> None:
    """``n`` steps on random batches, the learning rate changing at every one."""
    g = torch.Generator().manual_seed(seed)
    for step in range(n):
        x = torch.randn(8, 5, dtype=torch.float64, generator=g)
        update.optimizer.zero_grad(set_to_none=True)
        model(x).pow(2).mean().backward()
        update(0.1 * 0.8 ** step)


def graphs() -> int:
    return counters["stats"]["unique_graphs"]


@pytest.mark.parametrize("kind", ["nesterov", "adamw"])
def test_compiled_update_is_torchs_step_exactly(kind):
    eager, compiled = tiny(0), tiny(0)
    eager_update = Update(optimizer(kind, eager), PLAIN)
    compiled_update = Update(optimizer(kind, compiled), COMPILED)
    steps(eager, eager_update, seed=1)
    steps(compiled, compiled_update, seed=1)
    assert_same_state(eager, compiled, atol=1e-15)
    for p, q in zip(eager.parameters(), compiled.parameters()):
        ours, torchs = compiled_update.optimizer.state[q], eager_update.optimizer.state[p]
        assert ours.keys() == torchs.keys()
        for key, value in torchs.items():
            assert torch.allclose(ours[key].cpu().double(), value.double(), rtol=0, atol=1e-15)
    # torch's own optimiser takes over the state the compiled update made (a resume)
    resumed = optimizer(kind, compiled)
    resumed.load_state_dict(compiled_update.optimizer.state_dict())
    steps(eager, eager_update, seed=2, n=1)
    steps(compiled, Update(resumed, PLAIN), seed=2, n=1)
    assert_same_state(eager, compiled, atol=1e-15)


def test_a_compiled_update_refuses_what_it_would_compute_differently():
    model = tiny(0)
    damped = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, dampening=0.1)
    with pytest.raises(ValueError, match="dampening 0"):
        Update(damped, COMPILED)
    Update(damped, PLAIN)  # torch's own step does it
    with pytest.raises(TypeError, match="RMSprop"):
        Update(torch.optim.RMSprop(model.parameters()), COMPILED)


def test_a_new_run_reuses_the_compiled_update_and_loss(data64):
    loss = loss_function(Recipe(epochs=1), COMPILED, data64)
    x, y = torch.randn(8, 5, dtype=torch.float64), torch.arange(8) % 3

    def run(seed: int) -> None:
        model = tiny(seed)
        update = Update(optimizer("nesterov", model), COMPILED)
        for step in range(3):
            update.optimizer.zero_grad(set_to_none=True)
            value, hits = loss(model, x, y)
            value.backward()
            update(0.1 / (step + 1))

    run(0)
    before = graphs()
    run(1)  # another model and optimiser, new learning rates: no graph compiled
    assert graphs() == before


def test_compiled_loss_from_uint8_pixels_is_the_eager_loss(data64):
    """The compiled loss normalises the batch's uint8 pixels inside its graph: the same
    loss and count as the model on the data's own normalised images."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 30 * 30, 10)).double()
    recipe = Recipe(epochs=1, label_smoothing=0.1)
    before = graphs()
    for batch in (slice(0, 16), slice(16, 32)):  # views at other offsets: one graph
        x, y = data64.train_x[batch], data64.train_y[batch]
        value, hits = loss_function(recipe, COMPILED, data64)(model, x, y)
        logits = model(data64.normalize(x))
        expected = torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.1)
        assert value.dtype == torch.float64
        assert torch.allclose(value, expected, rtol=0, atol=1e-14)
        assert hits.item() == (logits.argmax(1) == y).sum().item()
    assert graphs() - before == 1


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["nesterov", "adamw"])
def test_compiled_training_equals_plain_training_in_float64(data64, kind):
    recipe = Recipe(epochs=2, batch_size=100, lr=0.1 if kind == "nesterov" else 0.01,
                    schedule="cosine", weight_decay=5e-4, optimizer=kind)
    plain = masked_models(1)[0]
    compiled = copy.deepcopy(plain)
    a = train(plain, data64, recipe, seed=0, options=PLAIN)
    b = train(compiled, data64, recipe, seed=0, options=COMPILED)
    assert_same_state(plain, compiled, atol=1e-9)
    assert b.log[-1]["train_loss"] == pytest.approx(a.log[-1]["train_loss"], rel=1e-6)
    assert a.log[-1]["train_accuracy"] == b.log[-1]["train_accuracy"]


@pytest.mark.long  # 60 s in CI, which keeps under 30 minutes without it (--long)
def test_packed_compiled_training_equals_plain_training_in_float64(data64):
    from bench.engine.packed import train_packed

    models = masked_models(2)
    copies = [copy.deepcopy(m) for m in models]
    for model in models:
        train(model, data64, RECIPE, seed=0, options=PLAIN)
    phases = [opened(m, data64, RECIPE, 0, COMPILED) for m in copies]
    train_packed(phases)
    for model, packed in zip(models, copies):
        assert_same_state(model, packed, atol=1e-9)
