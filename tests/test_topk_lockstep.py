"""Edge-Popup / PEMN top-k masks in lockstep with the authors' ``GetSubnet``.

The reference below follows allenai/hidden-networks ``utils/conv_type.py`` (``GetSubnet``,
``SubnetConv``); PEMN's ``src/convmixer/models.py`` (yueb17/PEMN) has the same
``GetSubnet`` and applies it the same way (``GetSubnet.apply(self.scores.abs(), k)``) in its
conv and linear layers. The authors' function sorts the flattened scores ascending, zeroes
the first ``j = int((1 - k) * numel)`` and sets the rest to one, so exactly ``numel - j`` are
kept whatever the ties. Their ``sort()`` is the default, unstable one, whose order among
exact ties is the sorting algorithm's (it differs from a stable sort from a few dozen
entries on); the suite fixes it to the stable order (on an exact tie the earlier flattened
position is pruned first), so the reference uses ``sort(stable=True)``, and a second check
compares with the literal unstable ``sort()`` on everything but the order within the tie.
Every test puts deliberate ties at the cut.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from baselines.edge_popup import EdgePopup
from bench.models import PrunableConv2d, PrunableLinear, build_model, prunable_layers
from bench.models.masked_weights import RandomWeights, pruned_count, topk_mask
from bench.supermasks import make_supermask, supermask_parameters
from methods.pemn import PEMNMask, PEMNRandomVectorPadding, RandomVectorHparams


class GetSubnet(torch.autograd.Function):
    """The authors' ``GetSubnet``, with the sort made stable (the suite's documented rule)."""

    @staticmethod
    def forward(ctx, scores, k, stable=True):  # noqa: ARG004
        out = scores.clone()
        _, idx = scores.flatten().sort(stable=stable)
        j = int((1 - k) * scores.numel())
        flat_out = out.flatten()  # a view: ``out`` is contiguous
        flat_out[idx[:j]] = 0
        flat_out[idx[j:]] = 1
        return out

    @staticmethod
    def backward(ctx, g):  # noqa: ARG004
        return g, None, None


class SubnetConv(nn.Conv2d):
    """The authors' ``SubnetConv``: frozen weights, trainable scores, mask of ``|scores|``."""

    def __init__(self, *args, prune_rate: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.scores = nn.Parameter(torch.empty(self.weight.size()))
        self.weight.requires_grad_(False)
        self.prune_rate = prune_rate  # the authors' name for the keep ratio k

    def forward(self, x):
        subnet = GetSubnet.apply(self.scores.abs(), self.prune_rate)
        w = self.weight * subnet
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


def reference_mask(scores: torch.Tensor, k: float, stable: bool = True) -> torch.Tensor:
    return GetSubnet.apply(scores.detach().abs().contiguous(), k, stable)


def kept_expected(numel: int, k: float) -> int:
    return numel - int((1 - k) * numel)


def tied_scores(shape, k: float, seed: int = 0) -> torch.Tensor:
    """Scores whose |value| at the cut is shared by many entries, with random signs.

    Magnitudes take 8 levels; the level holding the cut is shared by a block of entries on
    both sides of it, so the cut splits a tie (the kthvalue-and-``>`` rule keeps fewer).
    """
    g = torch.Generator().manual_seed(seed)
    n = math.prod(shape)
    levels = torch.randint(0, 8, (n,), generator=g).to(torch.float32)
    j = int((1 - k) * n)
    order = levels.sort(stable=True).values
    cut = order[j - 1] if j > 0 else order[0]
    levels[torch.randperm(n, generator=g)[: n // 8]] = cut  # widen the tie at the cut
    signs = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    return (signs * (levels + 1) / 16).reshape(shape)


def assert_ties_at_cut(scores: torch.Tensor, k: float) -> None:
    m = scores.abs().flatten()
    j = pruned_count(m.numel(), k)
    t = m.kthvalue(j).values
    assert int((m < t).sum()) < j < int((m <= t).sum()), "the cut must split a tie"
    assert int((m > t).sum()) < kept_expected(m.numel(), k)  # what the old rule kept


SHAPES = [(16, 8, 3, 3), (10, 64), (7, 5, 1, 1), (3, 3, 3, 3)]
DENSITIES = [0.5, 0.3, 0.1, 0.02, 0.77]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("k", DENSITIES)
def test_topk_equals_the_authors_getsubnet_at_ties(shape, k):
    scores = tied_scores(shape, k)
    if pruned_count(scores.numel(), k) > 0 and kept_expected(scores.numel(), k) > 0:
        assert_ties_at_cut(scores, k)
    mask = topk_mask(scores, k)
    ref = reference_mask(scores, k)
    assert mask.dtype == scores.dtype and mask.shape == scores.shape
    assert torch.equal(mask, ref)
    assert int(mask.sum()) == kept_expected(scores.numel(), k)
    # The authors' literal (unstable) sort agrees on the count and on every entry not tied
    # with the cut value; only which of the tied entries survive is the algorithm's.
    literal = reference_mask(scores, k, stable=False)
    assert int(literal.sum()) == int(mask.sum())
    m = scores.abs()
    j = pruned_count(m.numel(), k)
    if j > 0:
        untied = m != m.flatten().kthvalue(j).values
        assert torch.equal(literal[untied], mask[untied])


def test_ties_prune_the_earlier_position_first():
    scores = torch.tensor([0.5, -0.5, 0.5, 0.1, 0.5, 0.9])  # |.| ties at the cut
    mask = topk_mask(scores, 0.5)  # prune 3: 0.1 and the first two 0.5s in flat order
    assert mask.tolist() == [0, 0, 1, 0, 1, 1]
    assert torch.equal(mask, reference_mask(scores, 0.5))
    assert topk_mask(torch.zeros(10), 0.3).tolist() == [0] * 7 + [1] * 3  # all tied
    assert int(topk_mask(torch.ones(5), 0.1).sum()) == 5 - int(0.9 * 5)  # 1 kept
    assert torch.equal(topk_mask(torch.ones(5), 1.0), torch.ones(5))
    assert int(topk_mask(torch.rand(7), 0.01).sum()) == kept_expected(7, 0.01)


def test_channels_last_scores_tie_in_logical_order_and_keep_their_layout():
    scores = tied_scores((8, 6, 3, 3), 0.4)
    cl = scores.contiguous(memory_format=torch.channels_last)
    mask = topk_mask(cl, 0.4)
    assert mask.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(mask, reference_mask(scores, 0.4))


@pytest.mark.parametrize("layer_type", ["conv", "linear"])
def test_freeze_scores_current_mask_and_the_forward_agree_at_ties(layer_type):
    layer = (PrunableConv2d(6, 8, 3, padding=1, bias=False) if layer_type == "conv"
             else PrunableLinear(40, 12, bias=False))
    fan_in = layer.weight[0].numel()
    layer.set_random_weights(RandomWeights("signed-constant", seed=3, stream=0, fan_in=fan_in))
    layer.use_scores(0.35, torch.Generator().manual_seed(0))
    with torch.no_grad():
        layer.scores.copy_(tied_scores(tuple(layer.weight.shape), 0.35, seed=1))
    assert_ties_at_cut(layer.scores, 0.35)
    ref = reference_mask(layer.scores, 0.35)
    current = layer.current_mask()
    assert current.dtype == torch.bool and torch.equal(current, ref.bool())
    # signed constants are never zero, so the forward's weight shows its mask
    assert torch.equal(layer.effective_weight().detach() != 0, ref.bool())
    assert layer.kept() == kept_expected(layer.weight.numel(), 0.35)
    x = torch.randn(2, 6, 5, 5) if layer_type == "conv" else torch.randn(2, 40)
    before = layer(x).detach()
    layer.freeze_scores()
    assert torch.equal(layer.mask, ref) and torch.equal(layer(x), before)


def _dead_channel_scores(shape, k, seed):
    """Scores where half the input channels read zeros: their scores never get a gradient
    (weight decay shrinks |s| and -|s| alike), so a large tie straddles the cut every step."""
    g = torch.Generator().manual_seed(seed)
    out_c, in_c = shape[:2]
    live = torch.rand(shape, generator=g) * 0.2
    live = (live * 64).round() / 64 + 1 / 64  # a grid: ties among live weights at step 0
    s = live.clone()
    s[:, : in_c // 2] = 0.1  # the dead half, all tied (the median of the live ones)
    signs = torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0)
    return s * signs


def test_sgd_steps_in_lockstep_with_the_authors_subnetconv():
    k, shape = 0.5, (8, 8, 3, 3)
    suite = PrunableConv2d(8, 8, 3, padding=1, bias=False)
    suite.set_random_weights(RandomWeights("signed-constant", seed=5, stream=2, fan_in=72))
    suite.use_scores(k, torch.Generator().manual_seed(0))
    ref = SubnetConv(8, 8, 3, padding=1, bias=False, prune_rate=k)
    scores = _dead_channel_scores(shape, k, seed=2)
    with torch.no_grad():
        suite.scores.copy_(scores)
        ref.scores.copy_(scores)
        ref.weight.copy_(suite.weight)
    opts = [torch.optim.SGD([m.scores], lr=0.1, momentum=0.9, weight_decay=5e-4)
            for m in (suite, ref)]
    g = torch.Generator().manual_seed(3)
    target = torch.randn(4, 8, 6, 6, generator=g)
    for step in range(6):
        x = torch.randn(4, 8, 6, 6, generator=g)
        x[:, :4] = 0  # the dead input channels
        assert_ties_at_cut(suite.scores, k)
        outs = []
        for m, opt in zip((suite, ref), opts):
            opt.zero_grad()
            out = m(x)
            F.mse_loss(out, target).backward()
            outs.append(out.detach())
        mask = suite.current_mask()
        assert torch.equal(mask, reference_mask(ref.scores, k).bool()), step
        assert int(mask.sum()) == kept_expected(mask.numel(), k)
        assert torch.equal(outs[0], outs[1]), step
        assert torch.equal(suite.scores.grad, ref.scores.grad), step
        assert suite.weight.grad is None  # frozen: only the scores learn
        for opt in opts:
            opt.step()
        assert torch.equal(suite.scores, ref.scores), step
    assert not torch.equal(suite.scores, scores)  # the scores did move


@pytest.mark.parametrize("method", [EdgePopup(), PEMNMask(),
                                    PEMNRandomVectorPadding(RandomVectorHparams(ratio=1e-2))],
                         ids=lambda m: type(m).__name__)
def test_every_layer_of_a_resnet20_mask_learner_matches_the_reference(method):
    k = 0.3
    model = build_model("resnet20", 10, seed=0, width=0.25)
    make_supermask(model, method.weight_sources(model, 7), k, score_seed=1)
    params = supermask_parameters(model, train_norm=True)
    layers = prunable_layers(model)
    with torch.no_grad():
        for i, (_, layer) in enumerate(layers):
            layer.scores.copy_(tied_scores(tuple(layer.weight.shape), k, seed=i))
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for _ in range(2):
        for name, layer in layers:
            ref = reference_mask(layer.scores, k)
            assert torch.equal(layer.current_mask(), ref.bool()), name
            assert layer.kept() == kept_expected(layer.weight.numel(), k), name
            assert torch.equal(layer.effective_weight().detach(), layer.weight * ref), name
        opt.zero_grad()
        F.cross_entropy(model(x), torch.arange(4)).backward()
        opt.step()
    for name, layer in layers:
        ref = reference_mask(layer.scores, k)
        layer.freeze_scores()
        assert torch.equal(layer.mask, ref), name


def test_the_methods_that_changed_their_masks_bumped_their_versions():
    assert EdgePopup.version >= 2 and PEMNMask.version >= 2
    assert PEMNRandomVectorPadding.version >= 2
