"""PEMN (Bai et al., NeurIPS 2022): masks learned on random weights with few unique values.

All variants learn Edge-Popup masks (per-layer top-k, straight-through) on frozen
Kaiming-normal weights, N(0, 2/fan_in); they differ in where the weights come from:

- ``pemn-mask``: every layer its own random weights (the family's upper bound);
- ``pemn-one-layer``: prunable convs grouped by exact weight shape; the first of each shape
  keeps its weights and every later one gets an exact copy (its own mask); linears keep
  their own weights;
- ``pemn-mp`` (max-layer padding): the first layer with the most weights is the prototype;
  every layer takes the first numel(l) values of it, flattened row-major;
- ``pemn-rp`` (random-vector padding, ratio r): the first int(d_max * r) + 1 values of the
  prototype's draw, tiled to every layer's size, restarting at v[0] in each layer.

No per-layer rescaling unless ``rescale`` is set (then each layer's values are scaled to its
own fan-in). Prototypes are shared Philox streams (bench.api.RandomWeights), so the
artifact stores a seed; PEMN's own accounting (``pemn-eq10``) is reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from bench.api import (
    MaskLearner,
    PaperFormula,
    PrunableConv2d,
    RandomWeights,
    fan_in,
    prunable_layers,
    register,
)

SCHEME = "kaiming-normal"


def own_weights(model: nn.Module, seed: int) -> dict[str, RandomWeights]:
    """Every prunable layer draws its own stream (pemn-mask)."""
    return {name: RandomWeights(SCHEME, seed, stream=i, fan_in=fan_in(layer))
            for i, (name, layer) in enumerate(prunable_layers(model))}


def one_layer_weights(model: nn.Module, seed: int) -> dict[str, RandomWeights]:
    """Convs of one exact shape share the first such layer's weights; linears keep their own."""
    first_of_shape: dict[tuple[int, ...], RandomWeights] = {}
    sources = own_weights(model, seed)
    for name, layer in prunable_layers(model):
        if isinstance(layer, PrunableConv2d):
            shape = tuple(layer.weight.shape)
            sources[name] = first_of_shape.setdefault(shape, sources[name])
    return sources


def prototype_index(model: nn.Module) -> int:
    """Index of the first prunable layer with the most weights (d_max)."""
    sizes = [layer.weight.numel() for _, layer in prunable_layers(model)]
    return sizes.index(max(sizes))


def padded_weights(model: nn.Module, seed: int, period: int | None = None, rescale: bool = False
                   ) -> dict[str, RandomWeights]:
    """Every layer takes a prefix of the prototype's draw (tiled with ``period`` values)."""
    layers = prunable_layers(model)
    proto = prototype_index(model)
    proto_fan_in = fan_in(layers[proto][1])
    return {name: RandomWeights(SCHEME, seed, stream=proto, period=period,
                                fan_in=fan_in(layer) if rescale else proto_fan_in)
            for name, layer in layers}


def rp_period(model: nn.Module, ratio: float) -> int:
    """Length of PEMN's random vector: int(d_max * ratio) + 1."""
    d_max = max(layer.weight.numel() for _, layer in prunable_layers(model))
    return int(d_max * ratio) + 1


def unique_values(model: nn.Module) -> int:
    """Distinct random values the prunable weights are built from (PEMN's prototype size)."""
    needed: dict[tuple[str, int, int], int] = {}
    for _, layer in prunable_layers(model):
        src = layer.weight_source
        if src is None:
            raise ValueError("unique_values needs random-weight layers")
        numel = layer.weight.numel()
        length = min(src.period, numel) if src.period is not None else numel
        key = (src.scheme, src.seed, src.stream)
        needed[key] = max(needed.get(key, 0), length)
    return sum(needed.values())


PEMN_EQ10 = PaperFormula(
    "pemn-eq10",
    "PEMN's accounting: 32 bits per unique prototype value plus 1 bit per masked weight "
    "(norm and bias tensors not counted)",
    lambda model, m: 4 * unique_values(model) + -(-m["parameters_prunable"] // 8),
)


@dataclass(frozen=True)
class PEMNHparams:
    train_norm: bool = True


@dataclass(frozen=True)
class PaddingHparams(PEMNHparams):
    rescale: bool = False


@dataclass(frozen=True)
class RandomVectorHparams(PaddingHparams):
    ratio: float = 1e-1

    def __post_init__(self) -> None:
        if not 0.0 < self.ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")


class PEMN(MaskLearner):
    """Shared by the PEMN variants: the paper's byte accounting and hyperparameters."""

    paper_bytes_formula = PEMN_EQ10
    Hparams = PEMNHparams
    version = 2  # 2: exactly numel - int((1-d) numel) kept at ties, as the authors' GetSubnet


@register("pemn-mask")
class PEMNMask(PEMN):
    description = "PEMN masks only: a mask learned on each layer's own random weights"

    def weight_sources(self, model: nn.Module, seed: int) -> dict[str, RandomWeights]:
        return own_weights(model, seed)


@register("pemn-one-layer")
class PEMNOneLayer(PEMN):
    description = "PEMN one-layer: convs of one shape share one random layer, each its own mask"

    def weight_sources(self, model: nn.Module, seed: int) -> dict[str, RandomWeights]:
        return one_layer_weights(model, seed)


@register("pemn-mp")
class PEMNMaxLayerPadding(PEMN):
    description = "PEMN max-layer padding: every layer a prefix of the largest layer's weights"
    Hparams = PaddingHparams

    def weight_sources(self, model: nn.Module, seed: int) -> dict[str, RandomWeights]:
        return padded_weights(model, seed, rescale=self.hparams.rescale)


@register("pemn-rp")
class PEMNRandomVectorPadding(PEMN):
    description = "PEMN random-vector padding: int(d_max*ratio)+1 values tiled into every layer"
    Hparams = RandomVectorHparams

    def weight_sources(self, model: nn.Module, seed: int) -> dict[str, RandomWeights]:
        period = rp_period(model, self.hparams.ratio)
        return padded_weights(model, seed, period=period, rescale=self.hparams.rescale)
