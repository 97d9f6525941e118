"""What a record reports about a model besides accuracy: density, parameters, MACs, bytes.

Every method is measured by these same functions, from the model alone; bytes come
from the artifact file (bench.artifact) and are added by the harness.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bench.models import prunable_layers


def inference_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state an inference needs: parameters and running statistics, no masks or scores."""
    skip = ("mask", "scores", "num_batches_tracked")
    return {k: v for k, v in model.state_dict().items() if k.rsplit(".", 1)[-1] not in skip}


def dense_bytes(model: nn.Module) -> int:
    """float32 size of the architecture with every tensor stored densely."""
    return 4 * sum(t.numel() for t in inference_tensors(model).values())


def layer_positions(model: nn.Module, input_shape: tuple[int, ...] = (1, 3, 32, 32)
                    ) -> dict[nn.Module, int]:
    """How many times each conv/linear weight is applied to one image (output positions)."""
    counts: dict[nn.Module, int] = {}

    def hook(module: nn.Module, _: Any, output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            counts[module] = output.shape[-2] * output.shape[-1]
        else:  # Linear: every leading position (tokens) of one image
            counts[module] = output.numel() // output.shape[0] // module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(input_shape, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return counts


def model_metrics(model: nn.Module) -> dict[str, Any]:
    """Density (overall and per tensor), parameter counts, MACs, speedup and layer collapse.

    MACs count conv and linear layers at one 32x32 image (attention's own matrix products
    in a ViT are not counted); a kept weight costs one multiply-add per output position,
    so sparse MACs are exact for unstructured masks.
    """
    positions = layer_positions(model)
    prunable = prunable_layers(model)
    prunable_modules = {m for _, m in prunable}
    per_tensor: dict[str, float] = {}
    kept_total = prunable_total = 0
    macs_dense = macs_sparse = 0
    collapsed = []
    for name, layer in prunable:
        numel = layer.weight.numel()
        kept = layer.kept()
        per_tensor[f"{name}.weight"] = kept / numel
        kept_total += kept
        prunable_total += numel
        macs_dense += numel * positions.get(layer, 0)
        macs_sparse += kept * positions.get(layer, 0)
        if kept == 0:
            collapsed.append(f"{name}.weight")
    for module, count in positions.items():
        if module not in prunable_modules:
            macs_dense += module.weight.numel() * count
            macs_sparse += module.weight.numel() * count
    values = sum(t.numel() for t in inference_tensors(model).values())
    parameters = sum(p.numel() for n, p in model.named_parameters() if not n.endswith("scores"))
    return {
        "density": kept_total / prunable_total if prunable_total else 1.0,
        "density_per_tensor": per_tensor,
        "parameters_total": parameters,
        "parameters_prunable": prunable_total,
        "parameters_kept": kept_total,
        "values_dense": values,
        "values_stored": values - prunable_total + kept_total,
        "macs_dense": macs_dense,
        "macs_sparse": macs_sparse,
        "theoretical_speedup": macs_dense / macs_sparse if macs_sparse else float("inf"),
        "layer_collapse": bool(collapsed),
        "collapsed_tensors": collapsed,
    }


@dataclass(frozen=True)
class PaperFormula:
    """A paper's byte accounting: its name in records, what it counts, and the count for a
    model's metrics. A method names a built-in one or carries its own (``paper_bytes_formula``)."""

    name: str
    definition: str
    compute: Callable[[nn.Module, dict[str, Any]], int]


BUILTIN_FORMULAS: tuple[PaperFormula, ...] = (
    PaperFormula(
        "nonzeros-x32",
        "32 bits per kept prunable weight and per other stored value, no index cost "
        "(ShrinkBench's convention)",
        lambda model, m: 4 * m["values_stored"],
    ),
    PaperFormula(
        "csr-2x",
        "nonzeros-x32 plus a 32-bit index per kept weight (CSR-style accounting)",
        lambda model, m: 4 * m["values_stored"] + 4 * m["parameters_kept"],
    ),
)


def mask_bitmap_bytes(prunable: int) -> int:
    """A 1-bit mask over ``prunable`` weights, in whole bytes: PEMN's cost of the positions."""
    return -(-prunable // 8)


def pemn_sparse_bytes(kept: int, prunable: int) -> int:
    """PEMN's count for trained sparse weights: 32 bits per kept prunable weight plus the
    1-bit mask of their positions (none when nothing is pruned); norm and bias tensors are
    not counted, as PEMN's eq. 10 counts none for its own networks."""
    return 4 * kept + (mask_bitmap_bytes(prunable) if kept < prunable else 0)


PEMN_SPARSE = PaperFormula(
    "pemn-sparse",
    "PEMN's count for trained weights: 32 bits per kept prunable weight plus a 1-bit mask "
    "over every prunable weight (none when dense); norm and bias tensors not counted",
    lambda model, m: pemn_sparse_bytes(m["parameters_kept"], m["parameters_prunable"]),
)


PAPER_FORMULAS: dict[str, PaperFormula] = {f.name: f for f in (*BUILTIN_FORMULAS, PEMN_SPARSE)}
"""The formulas a method may name; a plugin's own formula travels on its class instead."""


def paper_bytes(model: nn.Module, formula: str | PaperFormula, metrics: dict[str, Any]
                ) -> dict[str, Any]:
    """A paper's own byte accounting, named, to sit beside the artifact's real size."""
    if isinstance(formula, str):
        if formula not in PAPER_FORMULAS:
            known = ", ".join(PAPER_FORMULAS)
            raise KeyError(f"unknown paper byte formula {formula!r}; known: {known}")
        formula = PAPER_FORMULAS[formula]
    return {"formula": formula.name, "bytes": formula.compute(model, metrics),
            "definition": formula.definition}
