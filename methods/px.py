"""PX, Path eXclusion (Iurada, Ciccone & Tommasi, CVPR 2024, arXiv 2406.01820).

PX keeps the weights that contribute most to an upper bound on the trace of the
network's NTK. The bound comes from writing a ReLU network as a sum over its
input-to-output paths. Each round of the iterative schedule (100 rounds, exponential,
global threshold; see :mod:`bench.pruning`) uses three private copies of the current
masked network:

1. **gate network**: the live weights in eval mode, run on the pruning batch ``x``.
   Forward hooks on the activation modules record whether each pre-activation is
   ``> 0`` (the 0/1 activation pattern of every sample), and are removed afterwards.
2. **path-activation network** (no gradient): prunable weights set to 1 (masked ones
   stay 0 because the layer multiplies by its mask), each activation replaced by a
   multiplication with the gate that (1) recorded for that sample, input ``x ** 2``.
   Its output ``z1 [batch, classes]`` sums, for each output, the input-squared
   activity of every active path.
3. **path-kernel network**: prunable weights squared, every activation the identity,
   input all ones. Its output ``z2`` sums the product of squared weights along each
   path (the path kernel).

The objective is ``R = sum(z1 * z2)`` summed over the pruning batches. The score of a
weight is ``|dR/d(theta^2)| * theta^2`` (non-negative). Max pooling stays a max in
both copies; average pooling is linear and needs nothing.

Three variants share this code, and :class:`PXVariant` lists how they differ:

- ``px`` reproduces the authors' current code (iurada/px-ntk-pruning, ``lib/pruners.py``,
  HEAD ed6c40e of Feb 2025). Copies 2 and 3 are in train mode, so BatchNorm normalises
  with batch statistics. Their weight transform loops over ``state_dict`` names and
  leaves out every entry whose name contains ``"bn"`` or ``"fc"``. As a result:
  (a) the classifier ``fc`` keeps its signed weights and bias in both copies, so its
  score is ``|dR/dtheta| * theta^2``; (b) a BatchNorm whose module name lacks
  ``"bn"`` (the ResNet shortcut's ``shortcut.1``) is transformed like a conv: its
  affine parameters are set to 1 in copy 2 (so beta becomes 1) and squared in copy 3.
  Copy 3 runs on ``ones_like(x)`` for every batch, with one backward per batch. Global
  pooling is ``F.avg_pool2d(x, x.size(-1))`` as in the authors' models, and masks are cut
  the authors' way (``kthvalue``, ties at the threshold pruned; :mod:`bench.pruning`).
  **The objective is degenerate on BatchNorm nets.** Train-mode BN on identical all-ones
  samples gives every channel a spatial mean of beta = 0, the features reaching the
  global pool are sums of BN outputs, so copy 3's pooled features are 0 in exact
  arithmetic (2.7e-7 in float32, 8.9e-15 in float64, measured on ResNet-20) and so is
  the gradient of R: float64 scores are about 1e9 smaller, and the float32 masks are
  made by rounding. Which rounding decides: the model's ``AdaptiveAvgPool2d(1)`` returns
  exactly 0.0 on up to 7 of 64 channels where ``F.avg_pool2d`` returns none, the
  classifier's scores there are 0, and with the model's pooling 3, 11 and 18 layers
  emptied at densities 0.5, 0.1, 0.02 (10 % accuracy). With the authors' pooling and
  cut, the seed-0 ResNet-20's per-layer kept counts equal the authors' code's at all
  three densities (``tests/test_conformance.py``), no layer emptied. A reader of the
  paper should know that this code does not compute the paper's bound on such nets:
  ``px-2024`` is what the paper ran, ``px-clean`` is the bound itself.
- ``px-2024`` reproduces the release that came with the paper (commit 82ce2bf, April
  2024, auxiliary model ``resnet20_no_act``, as ``launch_scripts/cifar10.sh`` runs it)
  as it computes, which is not what it appears to compute. All three copies are in
  train mode, the gates included. Copy 2 is meant to set the prunable weights to 1, but
  ``p[m > 0].fill_(1.0)`` fills the copy that boolean indexing makes, so copy 2 keeps
  the live weights, biases and BatchNorms and runs on ``x``: with its own gates it is
  the live network, ``z1`` its train-mode logits. Copy 3 squares every ``state_dict``
  entry whose name lacks ``"bn"`` (the classifier's weight and bias too, the shortcut
  BN's affine parameters) and runs on the images, not on ones. The score
  ``|grad * p1 * p2 * theta^2|`` with ``p1 = theta^2`` and copy 2's ``p2 = theta`` is
  ``|dR/d(theta^2)| * |theta|^5``. Its objective does not vanish. Its masks are cut the
  authors' way too. The PX protocol presets use it as the paper's PX. Checked against
  that code run here on the fixture's weights and batch: R equal, copy 3's gradients
  bit-identical.
- ``px-clean`` implements the paper's equations. BatchNorm is the identity in both
  auxiliary copies: the module is swapped for ``nn.Identity``, so neither the
  normalisation nor the affine map takes part. At initialisation (gamma 1, beta 0,
  running mean 0 and variance 1), eval-mode BN is ``x / sqrt(1 + eps)``, so this
  drops only that constant. The classifier is treated like every other prunable
  layer. Copy 3 runs once, on a single all-ones image:
  ``R = sum_k (sum_n z1[n, k]) * z2[k]``.
  Without normalisation, path sums grow roughly with the product of fan-ins. Copy 2's
  output at initialisation is about 1e41 for ResNet-20 and 1e39 for VGG-16, beyond
  float32's 3.4e38, so copies 2 and 3 run in float64, as SynFlow does.
  Known behaviour at high sparsity: copy 3's squared weights give a Kaiming conv that
  keeps a fraction d of its weights a gain of about 2d. So a ResNet residual branch at
  low density carries almost none of the path kernel next to its shortcut, and its
  weights score lowest. At 2 % on ResNet-20, the last stage's residual-branch convs
  empty out, and ``layer_collapse`` flags them. The network stays connected through
  the shortcuts.

Biases (VGG's convs, the classifier) are edges from a constant unit of value 1. In
copy 2 (weights 1, input squared) they become 1; in copy 3 (weights squared, input 1)
they are squared. The authors' code does the same, except for the classifier in ``px``.

Activations: ReLU gates as above. ConvMixer's GELU is treated like a ReLU: its gate is
``pre-activation > 0`` and it becomes the identity in copy 3 (PX's path decomposition
needs a 0/1 gate; GELU(x) = x * Phi(x), and thresholding at 0 is its ReLU limit).
Activations must be ``nn.ReLU`` / ``nn.GELU`` modules: a functional call cannot be
seen by the hooks, so only the model zoo's conv nets (ResNet, VGG, ConvMixer) and
networks built from the same module types are accepted.

ViT is refused with a ``BenchError``. Attention multiplies two weight-dependent
quantities inside a softmax, and LayerNorm divides by a weight-dependent norm, so the
output is not a sum over paths of weight products times 0/1 gates. One could freeze
the attention probabilities from the gate network as extra "gates". Then the query
and key weights would not enter copies 2 and 3 at all: their gradient is zero, so all
of them would be pruned and attention would collapse. That is not a defensible PX.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from bench.api import (
    PRUNABLE_TYPES,
    BenchError,
    Cut,
    PruneAtInit,
    PruneAtInitHparams,
    RunContext,
    Scores,
    ShortcutA,
    VisionTransformer,
    classifier_name,
    prunable_layers,
    pruning_batches,
    register,
    scoring_copy,
    shortcut_norm_names,
    weight_gradients,
)

ACTIVATIONS: tuple[type[nn.Module], ...] = (nn.ReLU, nn.GELU)
# Leaf modules whose behaviour the path decomposition covers (containers are free).
_PATH_LEAVES: tuple[type[nn.Module], ...] = (
    *PRUNABLE_TYPES, _BatchNorm, *ACTIVATIONS, nn.MaxPool2d, nn.AvgPool2d,
    nn.AdaptiveAvgPool2d, nn.Identity, nn.Flatten, ShortcutA,
)  # fmt: skip
# The authors filter state_dict names: "fc" (the classifier of every zoo model) and "bn"
# (every BatchNorm but the ResNet shortcut's `shortcut.1`). The suite selects the same
# layers by structure: bench.api.classifier_name and shortcut_norm_names.
Role = Literal["activation", "kernel"]


@dataclass(frozen=True)
class PXVariant:
    """What distinguishes the PX codes: ``px`` (authors' HEAD), ``px-2024``, ``px-clean``."""

    gate_mode: Literal["eval", "train"]
    """BatchNorm of copy 1 (the gate network): running statistics, or the batch's."""
    batchnorm: Literal["train", "identity"]
    """BatchNorm in copies 2 and 3: batch statistics (train mode), or swapped for Identity."""
    signed_classifier: bool
    """The classifier (the authors: layers named ``fc``) keeps signed weights and bias in 2
    and 3."""
    activation_weights: Literal["one", "kept"]
    """Copy 2's prunable weights and biases: set to 1, or left as they are (the 2024
    release's ``p[m > 0].fill_(1.0)`` fills a copy made by the indexing: a no-op)."""
    shortcut_norms_as_weights: frozenset[Role]
    """Copies in which the shortcut BatchNorms (the authors: names lacking ``bn``) are
    transformed like weights."""
    activation_input: Literal["squared", "images"]
    """Copy 2 runs on ``x ** 2`` (HEAD, the paper) or on ``x`` (the 2024 release)."""
    kernel_input: Literal["ones-per-batch", "images-per-batch", "single"]
    """Copy 3 per batch on ``ones_like(x)`` or on ``x`` (backward each), or once on one image."""
    weight_power: int
    """Score = ``|dR/d(theta^2)| * |theta| ** weight_power``: 2; the 2024 release computes
    ``grad * theta^2 * p2 * theta^2`` with copy 2's weight ``p2 = theta`` (see above): 5."""
    pooling: Literal["adaptive", "window"]
    """Global pooling in copies 2 and 3: the model's own, or ``F.avg_pool2d`` over the whole
    map as the authors' models do (their rounding keeps the all-ones features non-zero)."""
    dtype: torch.dtype
    """Of copies 2 and 3 (the gate network always runs the live model's dtype)."""


FAITHFUL = PXVariant(gate_mode="eval", batchnorm="train", signed_classifier=True,
                     activation_weights="one",
                     shortcut_norms_as_weights=frozenset({"activation", "kernel"}),
                     activation_input="squared", kernel_input="ones-per-batch", weight_power=2,
                     pooling="window", dtype=torch.float32)
RELEASE_2024 = PXVariant(gate_mode="train", batchnorm="train", signed_classifier=False,
                         activation_weights="kept",
                         shortcut_norms_as_weights=frozenset({"kernel"}),
                         activation_input="images", kernel_input="images-per-batch",
                         weight_power=5, pooling="window", dtype=torch.float32)
CLEAN = PXVariant(gate_mode="eval", batchnorm="identity", signed_classifier=False,
                  activation_weights="one", shortcut_norms_as_weights=frozenset(),
                  activation_input="squared", kernel_input="single", weight_power=2,
                  pooling="adaptive", dtype=torch.float64)


def check_supported(model: nn.Module) -> None:
    """BenchError unless ``model`` is built only from modules PX's path decomposition covers."""
    if isinstance(model, VisionTransformer) or any(
        isinstance(m, (nn.LayerNorm, nn.MultiheadAttention)) for m in model.modules()
    ):
        raise BenchError(
            "px is defined for ReLU-gated conv nets (ResNet, VGG, ConvMixer); ViT has attention "
            "(a softmax of products of weights) and LayerNorm, which do not decompose into "
            "input-to-output paths with 0/1 gates"
        )
    for name, module in model.named_modules():
        has_children = next(module.children(), None) is not None
        if has_children:
            own = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
            if not own:
                continue
        elif isinstance(module, _PATH_LEAVES):
            continue
        raise BenchError(
            f"px cannot score {name or 'the model'} ({type(module).__name__}): only prunable "
            "conv/linear layers, BatchNorm, ReLU/GELU modules, pooling and identities decompose "
            "into paths (px is defined for ReLU-gated conv nets: ResNet, VGG, ConvMixer)"
        )


# ---------------------------------------------------------------- the three copies


def _record_gate(store: list[Tensor], module: nn.Module, inputs: tuple[Tensor, ...],
                 output: Tensor) -> None:
    store.append(inputs[0].detach() > 0)


def record_gates(gate_net: nn.Module, x: Tensor) -> dict[str, list[Tensor]]:
    """Copy 1's activation pattern on ``x``: per activation module, its ``input > 0`` per call.

    Hooks are attached for this forward pass only and always removed.
    """
    gates: dict[str, list[Tensor]] = {}
    handles = []
    try:
        for name, module in gate_net.named_modules():
            if isinstance(module, ACTIVATIONS):
                gates[name] = []
                handles.append(module.register_forward_hook(partial(_record_gate, gates[name])))
        with torch.no_grad():
            gate_net(x)
    finally:
        for handle in handles:
            handle.remove()
    return gates


class GateBank:
    """The gates of the current batch, handed out per activation module in call order."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Tensor]] = {}

    def load(self, gates: dict[str, list[Tensor]]) -> None:
        self._queues = {name: deque(calls) for name, calls in gates.items()}

    def take(self, name: str) -> Tensor:
        queue = self._queues.get(name)
        if not queue:
            raise RuntimeError(f"px: no recorded gate left for activation {name!r}")
        return queue.popleft()

    def check_consumed(self) -> None:
        left = [name for name, queue in self._queues.items() if queue]
        if left:
            raise RuntimeError(f"px: recorded gates of {left} were not used by copy 2")


class FixedGate(nn.Module):
    """Copy 2's stand-in for an activation: multiply by the gate copy 1 recorded."""

    def __init__(self, name: str, bank: GateBank) -> None:
        super().__init__()
        self.source = name
        self.bank = bank

    def forward(self, x: Tensor) -> Tensor:
        gate = self.bank.take(self.source)
        if gate.shape != x.shape:
            raise RuntimeError(f"px: gate of {self.source!r} has shape {tuple(gate.shape)}, "
                               f"activation input {tuple(x.shape)}")
        return x * gate.to(x.dtype)


def _replace(net: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(net.get_submodule(parent_name) if parent_name else net, child, new)


def _to_path_values(tensors: Iterable[Tensor | None], role: Role) -> None:
    """Copy 2: 1 (masks still apply in the layer's forward); copy 3: squared."""
    for t in tensors:
        if t is None:
            continue
        if role == "activation":
            t.fill_(1.0)
        else:
            t.square_()


class WindowAvgPool(nn.Module):
    """Global average pooling as the authors' models write it: ``F.avg_pool2d(x, width)``."""

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, x.shape[-1])


def _transform_prunable(module: nn.Module, is_classifier: bool, variant: PXVariant, role: Role
                        ) -> None:
    if variant.signed_classifier and is_classifier:
        return
    if role == "activation" and variant.activation_weights == "kept":
        return
    _to_path_values((module.weight, module.bias), role)


def auxiliary_copy(model: nn.Module, variant: PXVariant, role: Role,
                   bank: GateBank | None = None) -> nn.Module:
    """Copy 2 (``role="activation"``, gates from ``bank``) or copy 3 (``"kernel"``) of ``model``.

    Only the prunable weights of copy 3 require grad; the run's model is not touched.
    """
    if role == "activation" and bank is None:
        raise ValueError("the path-activation copy needs a GateBank")
    net = scoring_copy(model, dtype=variant.dtype)
    for p in net.parameters():
        p.requires_grad_(False)
    net.train(variant.batchnorm == "train")
    classifier, shortcut_norms = classifier_name(net), shortcut_norm_names(net)
    with torch.no_grad():
        for name, module in list(net.named_modules()):
            if isinstance(module, PRUNABLE_TYPES):
                _transform_prunable(module, name == classifier, variant, role)
                if role == "kernel":
                    module.weight.requires_grad_(True)
            elif isinstance(module, _BatchNorm):
                if variant.batchnorm == "identity":
                    _replace(net, name, nn.Identity())
                elif role in variant.shortcut_norms_as_weights and name in shortcut_norms:
                    _to_path_values((module.weight, module.bias), role)
            elif isinstance(module, ACTIVATIONS):
                gate = FixedGate(name, bank) if role == "activation" else nn.Identity()
                _replace(net, name, gate)
            elif (isinstance(module, nn.AdaptiveAvgPool2d) and variant.pooling == "window"
                  and module.output_size in (1, (1, 1))):
                _replace(net, name, WindowAvgPool())
    return net


# ---------------------------------------------------------------- scores


@dataclass
class _Copies:
    """The three networks of one scoring pass."""

    gate: nn.Module
    bank: GateBank
    activation: nn.Module
    kernel: nn.Module


def _copies(model: nn.Module, variant: PXVariant) -> _Copies:
    gate = copy.deepcopy(model).train(variant.gate_mode == "train")
    bank = GateBank()
    return _Copies(gate, bank, auxiliary_copy(model, variant, "activation", bank),
                   auxiliary_copy(model, variant, "kernel"))


def _objective(nets: _Copies, batches: Iterable[Tensor], variant: PXVariant,
               count: Callable[[int, int], None], backward: bool) -> Tensor:
    """R summed over ``batches``; with ``backward`` its gradient lands in copy 3's weights."""
    total: Tensor | None = None
    z1_total: Tensor | None = None
    shape = None
    for x in batches:
        shape = x.shape[1:]
        nets.bank.load(record_gates(nets.gate, x))
        count(len(x), 0)
        x2 = x.to(variant.dtype)
        with torch.no_grad():
            z1 = nets.activation(x2.square() if variant.activation_input == "squared" else x2)
        nets.bank.check_consumed()
        count(len(x), 0)
        if variant.kernel_input == "single":
            z1_total = z1.sum(0) if z1_total is None else z1_total + z1.sum(0)
            continue
        z2 = nets.kernel(torch.ones_like(x2) if variant.kernel_input == "ones-per-batch" else x2)
        r = (z1 * z2).sum()
        if backward:
            r.backward()
        count(len(x), int(backward))
        total = r.detach() if total is None else total + r.detach()
    if shape is None:
        raise BenchError("px needs at least one pruning batch")
    if z1_total is not None:
        device = next(nets.kernel.parameters()).device
        z2 = nets.kernel(torch.ones(1, *shape, dtype=variant.dtype, device=device))
        total = (z1_total * z2).sum()
        if backward:
            total.backward()
        count(1, int(backward))
    assert total is not None
    return total.detach()


def px_scores(
    model: nn.Module,
    batches: Iterable[Tensor],
    variant: PXVariant,
    count: Callable[[int, int], None] | None = None,
) -> Scores:
    """``|dR/d(theta^2)| * |theta|^p`` for every prunable weight of ``model`` (left untouched).

    ``batches`` yields input batches ``x``. ``count(images, backward)`` is told every
    forward pass (the search cost). With ``variant.signed_classifier`` the classifier's
    gradient is taken with respect to its signed weight, as the authors' code does.
    """
    check_supported(model)
    nets = _copies(model, variant)
    _objective(nets, batches, variant, count or (lambda images, backward: None), backward=True)
    grads = weight_gradients(nets.kernel)
    live = dict(prunable_layers(model))
    return {name: grads[name].detach().abs() * _weight_factor(live[name].weight, variant)
            for name in grads}


def _weight_factor(weight: Tensor, variant: PXVariant) -> Tensor:
    theta = weight.detach().to(variant.dtype)
    if variant.weight_power == 2:
        return theta.square()
    return theta.abs().pow(variant.weight_power)


def px_objective(model: nn.Module, batches: Iterable[Tensor], variant: PXVariant) -> float:
    """The objective R itself (no gradient), in ``variant``'s dtype."""
    check_supported(model)
    nets = _copies(model, variant)
    with torch.no_grad():
        return float(_objective(nets, batches, variant, lambda i, b: None, backward=False))


@dataclass(frozen=True)
class PXHparams(PruneAtInitHparams):
    """The authors' schedule and cut: 100 rounds, ``kthvalue`` (ties at the cut pruned).

    Their objective's scores tie a lot (float32 residue, exact zeros): with the suite's
    ``exact`` cut the tie-break by position moved single layers by up to 7 % of their size
    at density 0.5; with their cut the per-layer counts equal theirs.
    """

    rounds: int = 100
    cut: Cut = "kthvalue"


@dataclass(frozen=True)
class PXCleanHparams(PruneAtInitHparams):
    """100 rounds with the suite's exact cut (the paper's equations rarely tie)."""

    rounds: int = 100


class _PX(PruneAtInit):
    """Shared plugin: ``variant`` says which PX."""

    Hparams: ClassVar[type] = PXHparams
    rounds: ClassVar[int] = 100
    variant: ClassVar[PXVariant]
    uses_pruning_set = True

    def scores(self, model: nn.Module, ctx: RunContext) -> Scores:
        batches = (x for x, _ in pruning_batches(ctx))
        return px_scores(model, batches, self.variant,
                         lambda images, backward: ctx.search.count(images, backward=backward))

    def explain_degenerate(self, model: nn.Module, ctx: RunContext) -> dict[str, Any]:
        """The objective in the run's dtype and in float64: a vanished objective shows there."""
        batches = [x for x, _ in pruning_batches(ctx)]
        wide = replace(self.variant, dtype=torch.float64)
        return {"objective": px_objective(model, batches, self.variant),
                "objective_float64": px_objective(model, batches, wide)}


@register("px")
class PX(_PX):
    """PX as the authors' current code computes it (iurada/px-ntk-pruning HEAD, Feb 2025)."""

    description = ("pruning at init by path exclusion, NTK-trace bound (Iurada et al. 2024), "
                   "as the authors' current code")
    variant = FAITHFUL
    version = 2  # 2: the authors' window pooling in copies 2 and 3 (1 emptied layers)


@register("px-2024")
class PX2024(_PX):
    """PX as the release that came with the paper computes it (commit 82ce2bf, April 2024)."""

    description = ("pruning at init by path exclusion, NTK-trace bound (Iurada et al. 2024), "
                   "as the paper's release")
    variant = RELEASE_2024


@register("px-clean")
class PXClean(_PX):
    """PX as the paper's equations state it (BN as identity, every layer alike, float64)."""

    description = ("pruning at init by path exclusion, NTK-trace bound (Iurada et al. 2024), "
                   "as the paper's equations")
    variant = CLEAN
    Hparams = PXCleanHparams
