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

from methods.px.copies import (
    FixedGate,
    GateBank,
    WindowAvgPool,
    auxiliary_copy,
    record_gates,
)
from methods.px.plugin import PX, PX2024, PXClean, PXCleanHparams, PXHparams
from methods.px.scores import px_objective, px_scores
from methods.px.variants import CLEAN, FAITHFUL, RELEASE_2024, PXVariant, check_supported

__all__ = ["CLEAN", "FAITHFUL", "PX", "PX2024", "RELEASE_2024", "FixedGate", "GateBank",
           "PXClean", "PXCleanHparams", "PXHparams", "PXVariant", "WindowAvgPool",
           "auxiliary_copy", "check_supported", "px_objective", "px_scores", "record_gates"]
