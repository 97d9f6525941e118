"""ProsPr (Alizadeh et al., ICLR 2022, "Prospect Pruning"): the meta-gradient of the loss
after a few training steps with respect to a mask at initialisation.

As the authors' code computes it (mil-ad/prospr a921779, ``prospr/prospr.py`` ``prune``
with ``cli.py``'s defaults): every prunable weight is gated by m = 1 at step 0 only; M = 3
plain SGD steps (lr 0.1, momentum 0, no weight decay) of every parameter (BatchNorm affine
included, batch statistics) on one augmented training batch of 128, keeping the graph; the
cross-entropy on that batch at the last iterate is differentiated with respect to m through
the whole unroll. Score = |dL/dm| (M = 0 is SNIP's); one shot; their cut keeps exactly
ceil(d N) (``exact-ceil``). ``data=pruning-set`` uses the seed's pruning set as the batch.

Its float32 meta-gradient is mostly rounding on BatchNorm ResNets: on the seed-0 ResNet-20
the authors' own code gives scores 20 % (M = 1) to 70 % (M = 3) away from its float64 ones
(largest difference over the largest score, first layers), and masks at density 0.1 that
agree with its float64 masks at Jaccard 0.70. So the suite unrolls with the authors' very
operations (the update ``p.add(g, alpha=-lr)``, not ``p - lr * g``, whose different rounding
alone swapped one in twenty kept weights) and equals their float32 scores bit for bit on the
same machine; ``float64`` unrolls in float64, the method without the rounding.

Memory grows with M: the graph of every step and its backward is kept for the double
backward. Search cost: M + 1 forward passes, M backward passes, and the meta-gradient's
backward counted as 1 plus 2 per unrolled step (GraSP's convention: a backward through a
backward counts twice).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from baselines.iter_snip import ScoringData
from bench.api import (
    PRUNING_IMAGES_PER_CLASS,
    Cut,
    Importance,
    PruneAtInit,
    PruneAtInitHparams,
    RunContext,
    prunable_layers,
    register,
    scoring_copy,
    training_batches,
)

PROSPR_BATCH_STREAM = 0x50524F53  # "PROS": the one training batch


@dataclass(frozen=True)
class ProsPrHparams(PruneAtInitHparams):
    steps: int = 3
    """M: unrolled SGD steps (0 gives SNIP's score)."""
    lr: float = 0.1
    momentum: float = 0.0
    batch_size: int = 128
    data: ScoringData = "training"
    """``training``: one fresh augmented training batch; ``pruning-set``: the seed's."""
    cut: Cut = "exact-ceil"
    float64: bool = False
    """Unroll in float64 (the authors: float32, whose meta-gradients are mostly rounding)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError("steps must be >= 0 and batch_size >= 1")


def meta_gradient(net: nn.Module, x: Tensor, y: Tensor, hp: ProsPrHparams) -> dict[str, Tensor]:
    """dL(theta_M)/dm of every prunable layer, theta_0 = theta * m at m = 1 (train mode)."""
    net.train()
    gates = {name: torch.ones_like(layer.weight, requires_grad=True)
             for name, layer in prunable_layers(net)}
    fast = {}
    for name, param in net.named_parameters():
        layer = name.removesuffix(".weight")
        fast[name] = param * gates[layer] if layer in gates and name.endswith(".weight") \
            else param.clone()
    trained = [name for name, value in fast.items() if value.requires_grad]
    velocity: dict[str, Tensor] = {}
    for _ in range(hp.steps):
        loss = F.cross_entropy(functional_call(net, fast, (x,)), y)
        grads = torch.autograd.grad(loss, [fast[n] for n in trained], create_graph=True)
        for name, grad in zip(trained, grads):
            if hp.momentum:  # the authors' first buffer is a detached copy of the gradient
                grad = velocity[name] = (velocity[name] * hp.momentum + grad
                                         if name in velocity else grad.detach().clone())
            fast[name] = fast[name].add(grad, alpha=-hp.lr)  # their op: rounding matters
    loss = F.cross_entropy(functional_call(net, fast, (x,)), y)
    return dict(zip(gates, torch.autograd.grad(loss, list(gates.values()))))


@register("prospr")
class ProsPr(PruneAtInit):
    """One shot: |dL/dm| through M = 3 unrolled SGD steps on one batch of 128."""

    description = ("pruning at init by the meta-gradient of the loss after 3 SGD steps "
                   "(Alizadeh et al. 2022)")
    Hparams = ProsPrHparams

    def __init__(self, hparams: ProsPrHparams | None = None) -> None:
        super().__init__(hparams)
        self.uses_pruning_set = self.hparams.data == "pruning-set"  # checked up front

    def batch(self, ctx: RunContext) -> tuple[Tensor, Tensor]:
        """The one batch every step and the meta-loss use."""
        if self.hparams.data == "pruning-set":
            return ctx.data.pruning_batch(PRUNING_IMAGES_PER_CLASS, ctx.seed)
        return next(training_batches(ctx, self.hparams.batch_size, PROSPR_BATCH_STREAM))

    def importance(self, model: nn.Module, ctx: RunContext) -> Importance:
        x, y = self.batch(ctx)
        steps = self.hparams.steps
        dtype = torch.float64 if self.hparams.float64 else x.dtype
        grads = meta_gradient(scoring_copy(model, dtype), x.to(dtype), y, self.hparams)
        ctx.search.count(len(y) * (steps + 1), backward=0)
        ctx.search.backward_images += len(y) * (3 * steps + 1)
        return {name: grad.abs() for name, grad in grads.items()}
