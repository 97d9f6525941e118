"""PEMN's byte count applied to every method alike, beside the artifact's real size.

PEMN (Bai et al. 2022, eq. 10) counts one of its networks as its unique random values at
32 bits plus a 1-bit mask over every prunable weight, and counts no norm or bias tensor
(``pemn-eq10``, registered by the PEMN plugin). A baseline is counted on the same terms:
32 bits per stored weight value plus the same 1-bit mask for the kept positions, weights
only: ``pemn-sparse`` (bench.metrics) for trained weights, every prunable weight as its
own 32-bit value for fixed random weights of their own (Edge-Popup, like ``pemn-mask``).
BatchNorm, LayerNorm and biases are left out on both sides. The suite's own measure stays
the artifact file (bytes.md); this count only redraws PEMN's figure on PEMN's terms.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from bench.metrics import mask_bitmap_bytes, pemn_sparse_bytes

PEMN_EQ10 = "pemn-eq10"
DEFINITION = (
    "PEMN's count, weights only: 32 bits per stored weight value (the kept weights of a "
    "trained method, the unique random values of a PEMN variant, every random weight of "
    "Edge-Popup) plus a 1-bit mask over every prunable weight for the kept positions (none "
    "for dense); BatchNorm, LayerNorm and bias tensors counted on neither side")


def own_random_bytes(prunable: int) -> int:
    """Masks on fixed random weights that are all distinct: every weight a 32-bit value."""
    return 4 * prunable + mask_bitmap_bytes(prunable)


def pemn_way_bytes(metrics: dict[str, Any] | None) -> int | None:
    """PEMN's count for one record's metrics (None when the record has none).

    PEMN variants keep their recorded ``pemn-eq10`` count; methods with random weights of
    their own (the record has a stored-convention size) count every prunable weight; the
    others count their kept weights.
    """
    if not metrics:
        return None
    paper = metrics.get("paper_bytes") or {}
    if paper.get("formula") == PEMN_EQ10 and paper.get("bytes") is not None:
        return int(paper["bytes"])
    kept, prunable = metrics.get("parameters_kept"), metrics.get("parameters_prunable")
    if kept is None or prunable is None:
        return None
    if metrics.get("artifact_bytes_stored_convention") is not None:
        return own_random_bytes(int(prunable))
    return pemn_sparse_bytes(int(kept), int(prunable))


def model_pemn_way_bytes(model: nn.Module, structure: dict[str, Any]) -> int:
    """The same count from a model: trained weights, or random weights each layer its own.

    Shared prototypes (PEMN's one-layer, MP, RP) are the plugin's ``pemn-eq10``: a
    ValueError here, so that this count never guesses their unique values.
    """
    from bench.models import prunable_layers

    sources = [getattr(layer, "weight_source", None) for _, layer in prunable_layers(model)]
    if all(src is None for src in sources):
        return pemn_sparse_bytes(structure["parameters_kept"], structure["parameters_prunable"])
    streams = [(src.scheme, src.seed, src.stream) for src in sources if src is not None]
    if (None in sources or len(set(streams)) < len(streams)
            or any(src.period is not None for src in sources if src is not None)):
        raise ValueError("shared or mixed random weights: count them with pemn-eq10")
    return own_random_bytes(structure["parameters_prunable"])
