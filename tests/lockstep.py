"""What the training lockstep tests share: a small set of already-augmented real images, the
suite's batches of each epoch as the authors' loops read them, masked models, the suite's
side of the comparison (its engine, opened as ``train`` opens it) and the comparison.

Both sides see the same images in the same order: the suite's engine draws its batches from
a :class:`DeviceData` holding images augmented once (``augment="none"`` in the recipe), and
the authors' loop iterates :class:`EpochBatches`, the same batches normalised the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from authors_code import relative_difference
from torch import Tensor, nn

from bench.data import DeviceData, load_data
from bench.data.transforms import CROP_PAD, crop_flip
from bench.engine import EngineOptions
from bench.engine.loop import Phase, TrainRequest, open_phase, run_phase
from bench.models import build_model, prunable_layers
from bench.recipe import Recipe

SEED = 0
PLAIN = EngineOptions(eval_every=0)  # CPU float32, NCHW, torch's optimizer.step()
EXACT = 1e-6
"""The largest relative difference two loops may show training copies of one model on the
same batches: a few float32 ulps (measured: 0). Training amplifies any difference far past
this within a few steps (the suite from weights one float32 ulp apart: 1e-2 after two
steps at learning rate 0.1), so a loop that differs in any detail fails."""


def augmented_images(data_dir: Path, images: int, classes: int = 10) -> DeviceData:
    """``images`` real CIFAR-10 training images, cropped and flipped once with fixed draws,
    as a data set whose own augmentation the recipes turn off; labels mod ``classes``."""
    data = load_data("cifar10", data_dir, train_subset=images, test_subset=100,
                     download=False)
    g = torch.Generator().manual_seed(7)
    offsets = torch.randint(0, 2 * CROP_PAD + 1, (images, 2), generator=g)
    flips = torch.rand(images, generator=g) < 0.5
    x = crop_flip(data.train_x, offsets, flips)
    return DeviceData(data.info, x, data.train_y % classes, data.test_x, data.test_y % classes)


class EpochBatches:
    """The suite's batches of epoch 0, 1, ... (normalised, the recipe's order), one epoch per
    ``iter()``: what the authors' loop takes for its DataLoader."""

    def __init__(self, data: DeviceData, recipe: Recipe) -> None:
        self.data, self.recipe, self.epoch = data, recipe, 0

    def __len__(self) -> int:
        return self.data.steps_per_epoch(self.recipe.batch_size, self.recipe.drop_last)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        return iter(list(self.data.train_batches(self.recipe.batch_size, SEED, epoch, "none",
                                                 drop_last=self.recipe.drop_last)))

    @property
    def iterations_per_epoch(self) -> int:  # open_lth's DataLoader
        return len(self)

    def shuffle(self, seed: int | None) -> None:  # open_lth's DataLoader: the order is ours
        pass


def masked(name: str, classes: int, density: float = 0.2, **kwargs) -> tuple[nn.Module,
                                                                              dict[str, Tensor]]:
    """The suite's seed-0 model with random masks, and its dense state before masking (the
    authors' pipelines mask in the forward pass and leave the pruned weights' values)."""
    model = build_model(name, classes, seed=SEED, **kwargs)
    dense = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(11)
    for _, layer in prunable_layers(model):
        layer.set_mask(torch.rand(layer.weight.shape, generator=g) < density)
    return model, dense


def suite_training(model: nn.Module, data: DeviceData, recipe: Recipe,
                   options: EngineOptions = PLAIN) -> Phase:
    """The suite's engine trains ``model``: the phase (model and optimiser) at its end."""
    phase = open_phase(TrainRequest(model, data, recipe, SEED, options, evaluate_last=False))
    assert isinstance(phase, Phase)
    run_phase(phase)
    return phase


@dataclass(frozen=True)
class Gaps:
    """The largest relative differences (:func:`relative_difference`) over every tensor."""

    weights: float
    state: float
    tensors: int

    def text(self) -> str:
        return (f"weights {self.weights:.2e}, optimiser state {self.state:.2e} "
                f"(over {self.tensors} parameter tensors)")


def compare(suite: Phase, theirs: nn.Module, their_optimizer: torch.optim.Optimizer,
            their_masks: dict[str, Tensor] | None = None, rename=lambda name: name) -> Gaps:
    """Every trained tensor of the suite against the other side's tensor of the same name
    (``rename`` maps a suite name to theirs): effective weights (pruned entries are zero in
    the suite, only masked out in the forward pass of the authors' code) and momentum
    buffers, both on the live entries. ``their_masks`` (by weight name; None: the suite's)
    must equal the suite's masks."""
    masks = {f"{n}.weight": layer.mask for n, layer in prunable_layers(suite.model)}
    their_params = dict(theirs.named_parameters())
    weights = state = 0.0
    for name, p in suite.model.named_parameters():
        q = their_params[rename(name)]
        live = masks.get(name, torch.ones_like(p))
        if their_masks is not None:
            other = their_masks.get(rename(name), torch.ones_like(q))
            assert torch.equal(live, other.to(live.dtype)), name
        weights = max(weights, relative_difference(p * live, q.detach() * live))
        mine = suite.optimizer.state[p]["momentum_buffer"]
        state = max(state, relative_difference(mine * live,
                                               their_optimizer.state[q]["momentum_buffer"] * live))
    return Gaps(weights, state, len(list(suite.model.parameters())))
