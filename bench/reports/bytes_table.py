"""Artifact bytes against dense bytes for a pruned model: ``python -m bench.reports.bytes_table``.

Encodes ResNet-20 with i.i.d. random masks at several densities, once with trained-style
float32 values and once with fixed seeded random weights, and prints the artifact's size
and breakdown next to dense float32 bytes, the nonzeros-x32 convention, PEMN's count
(bench.reports.paper_bytes: weights only, 32-bit values plus a 1-bit mask) and the masks'
Shannon bound. The artifact sizes are of real encoded files; no training is involved.
"""

from __future__ import annotations

import argparse

import torch
from tabulate import tabulate

from bench import artifact
from bench.artifact.maskcode import entropy_bits
from bench.counts import fan_in
from bench.metrics import dense_bytes, model_metrics, paper_bytes
from bench.models import build_model, prunable_layers
from bench.models.masked_weights import RandomWeights
from bench.reports.paper_bytes import DEFINITION, model_pemn_way_bytes


def pruned_resnet(density: float, weights: str, seed: int = 0, model: str = "resnet20"
                  ) -> torch.nn.Module:
    """The model with an i.i.d. mask at ``density`` per layer and trained or seeded weights."""
    net = build_model(model, 10, seed=seed)
    g = torch.Generator().manual_seed(seed)
    for i, (_, layer) in enumerate(prunable_layers(net)):
        if weights == "seeded":
            layer.set_random_weights(
                RandomWeights("kaiming-normal", seed=seed, stream=i, fan_in=fan_in(layer))
            )
        layer.set_mask(torch.rand(layer.weight.shape, generator=g) < density)
    return net


def rows(densities: list[float], model: str) -> list[dict]:
    out = []
    for weights, codec in (("trained", "float32"), ("trained", "float16"), ("seeded", "float32")):
        for density in densities:
            net = pruned_resnet(density, weights, model=model)
            data, info = artifact.encode(net, value_codec=codec)
            structure = model_metrics(net)
            bound = sum(entropy_bits(layer.weight.numel(), layer.kept())
                        for _, layer in prunable_layers(net)) / 8
            dense = dense_bytes(net)
            out.append({
                "weights": weights,
                "values": codec,
                "density": density,
                "dense B": dense,
                "artifact B": len(data),
                "ratio": dense / len(data),
                "masks B": info.breakdown["masks"],
                "mask bound B": round(bound),
                "kept values B": info.breakdown["values"],
                "other tensors B": info.breakdown["other_tensors"],
                "header+framing B": info.breakdown["header"] + info.breakdown["framing"],
                "nonzeros-x32 B": paper_bytes(net, "nonzeros-x32", structure)["bytes"],
                "PEMN-way B": model_pemn_way_bytes(net, structure),
            })
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reports.bytes_table",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--densities", default="0.5,0.1,0.02")
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--format", default="github", help="tabulate format (github, simple)")
    args = parser.parse_args(argv)
    densities = [float(d) for d in args.densities.split(",")]
    print(tabulate(rows(densities, args.model), headers="keys", tablefmt=args.format,
                   floatfmt=".2f", intfmt=","))
    print(f"\nartifact B: the real file. PEMN-way B: {DEFINITION}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
