"""The float16 path on CPU: float16 autocast with dynamic loss scaling (``precision=
"float16"``, the PX authors' precision): it runs, scales the loss, skips a step whose
gradients overflow, and a run interrupted between epochs resumes to the same bits."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from float64_training import opened
from torch import nn

import bench.engine.loop as loop
from bench.data import load_data
from bench.engine import EngineOptions, train
from bench.engine.update import Update
from bench.integrity import load_torch
from bench.models import build_model, prunable_layers
from bench.recipe import Recipe

HALF = EngineOptions(precision="float16", eval_every=0)
PLAIN = EngineOptions(eval_every=0)
RECIPE = Recipe(epochs=3, batch_size=50, schedule="multistep", milestones=(2,),
                weight_decay=5e-4)


@pytest.fixture(scope="module")
def data(cifar10_dir):
    return load_data("cifar10", cifar10_dir, train_subset=200, test_subset=100, download=False)


def small_model() -> nn.Module:
    model = build_model("resnet20", 10, seed=0, width=0.25)
    g = torch.Generator().manual_seed(1)
    for _, layer in prunable_layers(model):
        layer.set_mask(torch.rand(layer.weight.shape, generator=g) < 0.5)
    return model


def test_float16_training_runs_in_float16_and_logs_its_loss_scale(data):
    model = small_model()
    kinds = set()
    model.conv.register_forward_hook(lambda m, i, out: kinds.add(out.dtype))
    before = copy.deepcopy(model.state_dict())
    result = train(model, data, RECIPE, seed=0, options=HALF)
    assert kinds == {torch.float16}  # the forward pass ran in float16 autocast
    for entry in result.log:
        assert math.isfinite(entry["train_loss"]) and 0 < entry["loss_scale"] <= 2.0 ** 16
    assert result.steps == 3 * 4
    assert not torch.equal(before["fc.weight"], model.state_dict()["fc.weight"])
    assert "loss_scale" not in train(small_model(), data, RECIPE, seed=0, options=PLAIN).log[0]


def linear_case(options: EngineOptions):
    """A linear layer, its loss on a fixed batch, and a scaled Update of it (SGD momentum)."""
    model = nn.Linear(6, 3)
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    return model, x, Update(optimizer, options, torch.amp.GradScaler("cpu"))


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["eager", "compiled"])
def test_the_loss_is_scaled_and_the_step_unscaled(compiled):
    model, x, update = linear_case(EngineOptions(compile=compiled))
    reference = copy.deepcopy(model)
    plain = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    F.cross_entropy(reference(x), torch.arange(8) % 3).backward()
    update.backward(F.cross_entropy(model(x), torch.arange(8) % 3))
    for p, q in zip(model.parameters(), reference.parameters()):
        assert torch.equal(p.grad, q.grad * 2.0 ** 16)  # scaled by the initial scale
    update(0.1)
    plain.step()
    for p, q in zip(model.parameters(), reference.parameters()):
        assert torch.allclose(p, q, rtol=0, atol=1e-7)  # unscaled before the step
    assert update.scaler.get_scale() == 2.0 ** 16


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["eager", "compiled"])
def test_a_step_with_overflowing_gradients_is_skipped_and_the_scale_halves(compiled):
    model, x, update = linear_case(EngineOptions(compile=compiled))
    before = copy.deepcopy(model.state_dict())
    update.backward(F.cross_entropy(model(x), torch.arange(8) % 3))
    model.weight.grad[0, 0] = float("inf")  # what a float16 overflow leaves
    update(0.1)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not update.optimizer.state or not any(update.optimizer.state.values())
    assert update.scaler.get_scale() == 2.0 ** 15
    update.optimizer.zero_grad()
    update.backward(F.cross_entropy(model(x), torch.arange(8) % 3))
    update(0.1)  # the next finite step steps
    assert not torch.equal(model.weight, before["weight"])
    assert update.scaler.get_scale() == 2.0 ** 15


def test_an_interrupted_float16_run_resumes_to_the_same_bits(data, tmp_path, monkeypatch):
    """A large initial scale (2**24) makes the first float16 steps overflow and skip, and a
    short growth interval (3) makes the scale move within each epoch, so the checkpoint
    must hold the scaler's scale and growth count for the resumed run to match."""
    monkeypatch.setattr(loop, "grad_scaler", lambda options: torch.amp.GradScaler(
        "cpu", init_scale=2.0 ** 24, growth_interval=3))
    straight_model = small_model()
    straight = train(straight_model, data, RECIPE, seed=0, options=HALF)
    scales = [e["loss_scale"] for e in straight.log]
    assert scales[0] < 2.0 ** 24 and len(set(scales)) > 1  # skipped, then grew again

    real = type(data).train_batches

    def stop_in_epoch_three(self, batch_size, seed, epoch, augment="crop-flip", **kwargs):
        if epoch == 2:
            raise KeyboardInterrupt
        return real(self, batch_size, seed, epoch, augment, **kwargs)

    checkpoint = tmp_path / "half.ckpt"
    monkeypatch.setattr(type(data), "train_batches", stop_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        train(small_model(), data, RECIPE, seed=0, options=HALF, checkpoint=checkpoint)
    monkeypatch.setattr(type(data), "train_batches", real)
    assert "scaler" in load_torch(checkpoint)  # a checked file (bench.integrity)
    resumed_model = small_model()
    phase = opened(resumed_model, data, RECIPE, 0, HALF, checkpoint=checkpoint)
    assert phase.start_epoch == 2 and phase.update.scaler.get_scale() == scales[1]
    resumed = loop.run_phase(phase)
    strip = [{k: v for k, v in e.items() if "seconds" not in k} for e in straight.log]
    assert strip == [{k: v for k, v in e.items() if "seconds" not in k} for e in resumed.log]
    for (name, a), b in zip(straight_model.state_dict().items(),
                            resumed_model.state_dict().values()):
        assert torch.equal(a, b), name
