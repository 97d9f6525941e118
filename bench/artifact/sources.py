"""Random weights in the artifact: recipes (``seeded``) and prototype groups (``stored``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from bench.artifact.codecs import pack, unpack
from bench.artifact.format import U64, Corrupt, header_int
from bench.errors import BenchError
from bench.models.masked_weights import SCHEMES, RandomWeights

_RECIPE_FIELDS = ("scheme", "seed", "stream", "fan_in", "period")
_GroupKey = tuple[str, int, int, int]  # scheme, seed, stream, fan_in


def needed(source: RandomWeights, numel: int) -> int:
    """How many leading stream values a layer of ``numel`` weights reads."""
    return numel if source.period is None else min(source.period, numel)


def from_prototype(proto: Tensor, period: int | None, numel: int) -> Tensor:
    """A layer's flat weights from its group's prototype, as ``RandomWeights.materialize``."""
    if period is None:
        return proto[:numel].clone()
    p = min(period, numel)
    if p == 0:
        return proto[:0].clone()
    return proto[:p].repeat(-(-numel // p))[:numel]


# ---------------------------------------------------------------- writing


@dataclass
class PrototypeGroups:
    """The shared streams of ``stored`` layers, numbered in order of first use."""

    index: dict[_GroupKey, int] = field(default_factory=dict)
    lengths: list[int] = field(default_factory=list)

    def add(self, source: RandomWeights, numel: int) -> int:
        """The group of ``source``'s stream, grown to what a layer of ``numel`` needs."""
        key = (source.scheme, source.seed, source.stream, source.fan_in)
        group = self.index.setdefault(key, len(self.index))
        if group == len(self.lengths):
            self.lengths.append(0)
        self.lengths[group] = max(self.lengths[group], needed(source, numel))
        return group

    def header(self) -> list[list[Any]]:
        """The header's ``prototypes`` list."""
        return [[*key, length] for key, length in zip(self.index, self.lengths)]

    def payloads(self) -> list[bytes]:
        """Each group's leading stream values, float32, in group order."""
        return [
            pack(RandomWeights(key[0], key[1], key[2], key[3]).values(length), "float32")
            for key, length in zip(self.index, self.lengths)
        ]


def weight_entry(
    name: str, source: Any, weight: Tensor, mask: Tensor | None, convention: str,
    groups: PrototypeGroups,
) -> Any:
    """The header's weight entry of a random-weight layer, its weights checked first."""
    if not isinstance(source, RandomWeights):
        raise BenchError(f"layer {name}: weight_source is {type(source).__name__}, "
                         "not RandomWeights")
    flat = weight.reshape(-1)
    expected = source.materialize(tuple(weight.shape)).reshape(-1)
    kept, want = (flat, expected) if mask is None else (flat[mask], expected[mask])
    if not torch.equal(kept.to(torch.float32), want):
        raise BenchError(f"layer {name}: weights differ from their random-weight recipe "
                         f"{source.as_dict()} (were they trained or rescaled?)")
    if convention == "seeded":
        return source.as_dict()
    return {"group": groups.add(source, flat.numel()), "period": source.period}


# ---------------------------------------------------------------- reading


def recipe(value: Any, what: str) -> RandomWeights:
    """A RandomWeights from its header dict, every field checked."""
    if not isinstance(value, dict) or set(value) != set(_RECIPE_FIELDS):
        raise Corrupt(f"{what}: bad random-weight recipe {value!r}")
    if value["scheme"] not in SCHEMES:
        raise Corrupt(f"{what}: unknown weight scheme {value['scheme']!r}")
    period = value["period"]
    return RandomWeights(
        value["scheme"],
        header_int(value["seed"], f"{what} seed", 0, U64),
        header_int(value["stream"], f"{what} stream", 0, U64),
        header_int(value["fan_in"], f"{what} fan_in", 1),
        None if period is None else header_int(period, f"{what} period", 1),
    )


def stored_entry(weight: Any, what: str, n_groups: int) -> tuple[int, int | None]:
    """A ``stored`` layer's ``(group, period)``, checked."""
    if not isinstance(weight, dict) or set(weight) != {"group", "period"}:
        raise Corrupt(f"{what}: bad weight entry {weight!r}")
    group = header_int(weight["group"], f"{what} prototype group", 0, n_groups)
    period = weight["period"]
    period = None if period is None else header_int(period, f"{what} period", 1)
    return group, period


Prototype = tuple[RandomWeights, Tensor]  # the group's recipe (no period) and its values


def read_prototypes(groups: list[Any], take: Callable[[int, str], bytes]) -> list[Prototype]:
    """Each group's recipe and values; ``take(n, what)`` reads the next ``n`` body bytes."""
    prototypes: list[Prototype] = []
    for g, spec in enumerate(groups):
        if not isinstance(spec, list) or len(spec) != 5:
            raise Corrupt(f"bad prototype entry {spec!r}")
        scheme, seed, stream, fan_in, length = spec
        source = recipe({"scheme": scheme, "seed": seed, "stream": stream, "fan_in": fan_in,
                         "period": None}, f"prototype {g}")
        length = header_int(length, f"prototype {g} length")
        raw = take(4 * length, f"prototype {g}")
        prototypes.append((source, unpack(raw, length, "float32")))
    return prototypes


def set_from_prototype(
    layer: nn.Module, group: int, period: int | None, prototypes: list[Prototype]
) -> None:
    """Give ``layer`` its weights from prototype ``group`` (under ``torch.no_grad``)."""
    shape = tuple(layer.weight.shape)
    numel = layer.weight.numel()
    base, proto = prototypes[group]
    if len(proto) < (numel if period is None else min(period, numel)):
        raise Corrupt(f"prototype {group} is too short for a layer of {shape}")
    layer.weight.copy_(from_prototype(proto, period, numel).reshape(shape))
    layer.weight.requires_grad_(False)
    layer.weight_source = RandomWeights(base.scheme, base.seed, base.stream, base.fan_in, period)
