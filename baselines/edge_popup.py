"""Edge-Popup (Ramanujan et al. 2020): a top-k mask learned on signed-constant random weights."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from bench.api import MaskLearner, RandomWeights, fan_in, prunable_layers, register


@dataclass(frozen=True)
class EdgePopupHparams:
    # The paper's BatchNorm is non-affine: gamma 1 and beta 0 frozen is exactly that.
    train_norm: bool = False


@register("edge-popup")
class EdgePopup(MaskLearner):
    """Each weight is +-sqrt(2/fan_in) with a random sign (the paper's best setting)."""

    description = "mask learning on signed-constant random weights (Ramanujan et al. 2020)"
    Hparams = EdgePopupHparams
    version = 2  # 2: exactly numel - int((1-d) numel) kept at ties, as the authors' GetSubnet

    def weight_sources(self, model: nn.Module, seed: int) -> dict[str, RandomWeights]:
        return {name: RandomWeights("signed-constant", seed, stream=i, fan_in=fan_in(layer))
                for i, (name, layer) in enumerate(prunable_layers(model))}
