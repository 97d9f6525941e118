"""Cuts: which entries of one flat score tensor a density keeps.

Already-pruned weights arrive at -inf: they count among the ``n`` weights, as the authors'
zero scores do, and are never kept. The suite's own rule and those of the authors' codes
the conformance fixtures hold:

- ``exact``: keep round(d n); ties at the cut broken by position (the earlier wins).
- ``exact-ceil``: keep ceil(d n), ties by position (ProsPr's ``torch.topk`` of ceil(d n)).
- ``kthvalue``: prune the int((1 - d) n) smallest and every score tied with the largest of
  them (Synaptic-Flow's ``_global_mask``, used by the PX, SNIP, GraSP, SynFlow, SynFlow-L2
  and NTK-SAP reference code).
- ``keep-ties``: keep the int(d n) largest and every score tied with the smallest of them
  (FORCE's ``get_mask``: the authors' iterative SNIP and FORCE).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

from bench.counts import kept_count, pruned_count

Cut = Literal["exact", "exact-ceil", "kthvalue", "keep-ties"]
CUTS: tuple[str, ...] = get_args(Cut)


def top(flat: Tensor, k: int) -> Tensor:
    """The ``k`` highest entries; among equal scores the earlier position wins (stable)."""
    keep = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if k > 0:
        order = torch.sort(flat, descending=True, stable=True).indices
        keep[order[:k]] = True
    return keep


def _above_kthvalue(flat: Tensor, density: float) -> Tensor:
    """The Synaptic-Flow cut: prune the ``int((1-density) n)`` smallest and all tied with
    them. With fewer than one weight to prune, the mask stays as it is."""
    pruned = pruned_count(flat.numel(), density)
    if pruned < 1:
        return flat > float("-inf")
    return flat > flat.kthvalue(pruned).values


def _keep_ties(flat: Tensor, density: float) -> Tensor:
    """FORCE's cut: the ``int(density n)``-th largest score is the threshold and every live
    score at or above it is kept (nothing at all when ``int(density n)`` is 0)."""
    kept = kept_count(flat.numel(), density, "floor")
    if kept < 1:
        return torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    threshold = flat.kthvalue(flat.numel() - kept + 1).values
    return (flat >= threshold) & (flat > float("-inf"))


def cut(flat: Tensor, density: float, rule: Cut) -> Tensor:
    """Boolean keep-mask of ``flat`` (float64 scores, pruned ones at -inf) under ``rule``."""
    if rule == "exact":
        return top(flat, kept_count(flat.numel(), density))
    if rule == "exact-ceil":
        return top(flat, kept_count(flat.numel(), density, "ceil"))
    if rule == "kthvalue":
        return _above_kthvalue(flat, density)
    if rule == "keep-ties":
        return _keep_ties(flat, density)
    raise ValueError(f"unknown cut {rule!r}; valid: {', '.join(CUTS)}")
