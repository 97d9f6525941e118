"""Scoring copies kept across pruning rounds: a model's private copies, refreshed with its
new masks each round instead of copied again (PX copies three networks a round)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from bench.models import prunable_layers


class ScoringCopies:
    """A model's private scoring copies, made once and kept across pruning rounds.

    ``build(model)`` returns what the scorer needs and the networks in it. In each later
    round :meth:`get` brings the model's current masks into every copy's prunable layers
    (which zeroes the weights they prune, as a fresh copy of the masked model would have
    them) and clears their gradients, instead of copying the model again: the same numbers
    as a fresh copy every round, without rebuilding the modules (PX deep-copies three
    networks a round). When the model changed otherwise since the copies were made (a
    weight or buffer differs from the copies' source outside the masks, a pruned weight
    was revived, another model), the copies are made anew.
    """

    def __init__(self, build: Callable[[nn.Module], tuple[Any, list[nn.Module]]]) -> None:
        self._build = build
        self._model: weakref.ref[nn.Module] | None = None
        self._value: Any = None
        self._networks: list[nn.Module] = []
        self._source: dict[str, Tensor] = {}

    def get(self, model: nn.Module) -> Any:
        """The copies for ``model`` as it is now."""
        if self._model is None or self._model() is not model or not self._refresh(model):
            self._value, self._networks = self._build(model)
            self._model = weakref.ref(model)
            self._source = _unmasked_state(model)
        return self._value

    def release(self) -> None:
        """Drop the copies (they hold device memory the training needs)."""
        self._model, self._value, self._networks, self._source = None, None, [], {}

    def _refresh(self, model: nn.Module) -> bool:
        masks = {name: layer.current_mask() for name, layer in prunable_layers(model)}
        layers = [dict(prunable_layers(net)) for net in self._networks]
        state = _unmasked_state(model, clone=False)
        if state.keys() != self._source.keys():
            return False
        ok = torch.ones((), dtype=torch.bool, device=_device(model))
        with torch.no_grad():
            for key, value in state.items():
                source = self._source[key]
                mask = masks.get(key.removesuffix(".weight")) if key.endswith(".weight") else None
                if value.shape != source.shape:
                    return False
                ok &= (value == (source if mask is None else source * mask)).all()
            for copy_layers in layers:  # a weight pruned in a copy must be pruned still
                for name, mask in masks.items():
                    held = copy_layers[name].current_mask()
                    if mask is None and held is not None:  # the model's mask was cleared
                        return False
                    if mask is not None and held is not None:
                        ok &= ~(mask & ~held.to(mask.device)).any()
        if not bool(ok):  # one value to the host
            return False
        for copy_layers in layers:
            for name, mask in masks.items():
                if mask is not None:
                    copy_layers[name].set_mask(mask)
        for net in self._networks:
            for param in net.parameters():
                param.grad = None
        return True


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _unmasked_state(model: nn.Module, clone: bool = True) -> dict[str, Tensor]:
    """The model's parameters and buffers without its masks and mask scores (detached)."""
    return {key: value.detach().clone() if clone else value.detach()
            for key, value in model.state_dict().items()
            if not key.endswith((".mask", ".scores"))}
