"""The suite's pruning-at-init masks against the authors' code: ``python -m bench.conformance``.

The reference-mask fixtures (``shared/fixtures/reference-masks``, its README says how they
were made) hold what the authors' pruning code keeps on the suite's seed-0 ResNet-20 with
the seed-0 pruning set of the full CIFAR-10. This prunes the same weights with the suite's
methods and prints, per fixture, the per-layer kept counts side by side, the largest gap
as a share of the layer's size, the Jaccard index of the masks, and emptied layers.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from tabulate import tabulate

from bench.context import SearchCost
from bench.data import DeviceData, load_data
from bench.errors import BenchError
from bench.models import build_model, prunable_layers
from bench.pruning import prune
from bench.registry import get_method, load_plugins, make_hparams

DEFAULT_FIXTURES = Path(__file__).resolve().parents[2] / "shared/fixtures/reference-masks"
Masks = dict[str, np.ndarray]
FULL_TRAIN_IMAGES = 50_000

# fixture -> (suite method, hyperparameters that reproduce the authors' protocol)
CHECKS: dict[str, tuple[str, dict[str, str]]] = {
    "snip-d0.1-f32": ("snip", {}),
    "grasp-d0.1-f32": ("grasp", {}),
    "mag-d0.1-f32": ("magnitude-init", {}),
    "synflow-d0.1-f64": ("synflow", {"cut": "kthvalue"}),
    "px-d0.5-f32": ("px", {}),
    "px-d0.1-f32": ("px", {}),
    "px-d0.02-f32": ("px", {}),
    "px2024-d0.5-f32": ("px-2024", {}),
    "px2024-d0.1-f32": ("px-2024", {}),
    "px2024-d0.02-f32": ("px-2024", {}),
}


@dataclass(frozen=True)
class Comparison:
    """One fixture against the suite: per-layer kept counts, sizes and the masks' overlap."""

    fixture: str
    method: str
    kept: dict[str, int]
    reference_kept: dict[str, int]
    total: dict[str, int]
    jaccard: float
    degenerate_rounds: list[int]

    def gaps(self) -> dict[str, float]:
        """|kept - reference| / layer size, per layer."""
        return {n: abs(self.kept[n] - self.reference_kept[n]) / self.total[n] for n in self.kept}

    def worst(self) -> tuple[str, float]:
        gaps = self.gaps()
        name = max(gaps, key=lambda n: gaps[n])
        return name, gaps[name]

    def emptied(self) -> list[str]:
        """Layers the suite empties that the authors' code keeps."""
        return [n for n in self.kept if self.kept[n] == 0 and self.reference_kept[n] > 0]


def fixture_masks(folder: Path, name: str) -> Masks:
    """The authors' boolean masks of fixture ``name`` (e.g. ``px-d0.1-f32``) by layer."""
    packed = np.load(folder / f"{name}.npz")
    out = {}
    for layer in {key.split("::")[0] for key in packed.files}:
        shape = tuple(int(s) for s in packed[f"{layer}::shape"])
        bits = np.unpackbits(packed[f"{layer}::bits"])[: int(np.prod(shape))]
        out[layer] = bits.reshape(shape).astype(bool)
    return out


def fixture_counts(folder: Path) -> dict[str, dict]:
    path = folder / "kept-counts.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BenchError(f"cannot read the reference counts {path}: {e}") from None


def jaccard(a: Masks, b: Masks) -> float:
    """|A and B| / |A or B| over all layers pooled."""
    both = sum(int((a[n] & b[n]).sum()) for n in a)
    either = sum(int((a[n] | b[n]).sum()) for n in a)
    return both / either if either else 1.0


def suite_masks(method: str, density: float, data: DeviceData, hparams: dict[str, str]
                ) -> tuple[Masks, list[int]]:
    """The masks ``method`` keeps on the seed-0 ResNet-20, one thread, and its degenerate
    rounds (the pruning loop of :class:`~bench.pruning.PruneAtInit` without the training)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cls = get_method(method)
        plugin = cls(make_hparams(cls, hparams))
        model = build_model("resnet20", data.num_classes, seed=0)
        ctx = SimpleNamespace(data=data, seed=0, search=SearchCost(), notes={})
        rounds = getattr(plugin.hparams, "rounds", plugin.rounds)
        degenerate = prune(model, lambda m: plugin.importance(m, ctx), density, rounds,
                           plugin.hparams.scope, plugin.hparams.cut)
        masks = {n: layer.current_mask().cpu().numpy() for n, layer in prunable_layers(model)}
        return masks, degenerate
    finally:
        torch.set_num_threads(threads)


def compare(fixture: str, data: DeviceData, folder: Path = DEFAULT_FIXTURES,
            method: str | None = None, hparams: dict[str, str] | None = None) -> Comparison:
    """Prune like fixture ``fixture`` with the suite (its :data:`CHECKS` entry by default)."""
    default_method, default_hparams = CHECKS[fixture]
    method = method or default_method
    hparams = default_hparams if hparams is None else hparams
    reference = fixture_counts(folder)[fixture]
    masks, degenerate = suite_masks(method, reference["density"], data, hparams)
    return Comparison(fixture, method, {n: int(m.sum()) for n, m in masks.items()},
                      reference["kept"], reference["total"],
                      jaccard(masks, fixture_masks(folder, fixture)), degenerate)


def layer_table(c: Comparison) -> str:
    rows = [(n, c.total[n], c.reference_kept[n], c.kept[n], f"{100 * c.gaps()[n]:.2f}")
            for n in c.kept]
    return tabulate(rows, headers=["layer", "size", "authors kept", "suite kept", "gap %"],
                    tablefmt="github")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.conformance", description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="folder holding all of CIFAR-10 (cifar-10-batches-py)")
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    parser.add_argument("--only", nargs="*", default=None, help="fixture names to check")
    parser.add_argument("--layers", action="store_true", help="print per-layer tables")
    args = parser.parse_args(argv)
    try:
        load_plugins()
        data = load_data("cifar10", args.data_dir, download=False)
        if len(data.train_y) != FULL_TRAIN_IMAGES:
            raise BenchError(f"the fixtures were made on all of CIFAR-10 ({FULL_TRAIN_IMAGES} "
                             f"training images); {args.data_dir} has {len(data.train_y)}, so "
                             "its pruning set differs")
        names = args.only or list(CHECKS)
        unknown = [n for n in names if n not in CHECKS]
        if unknown:
            raise BenchError(f"unknown fixture(s) {unknown}; valid: {', '.join(CHECKS)}")
        summary = []
        for name in names:
            c = compare(name, data, args.fixtures)
            layer, gap = c.worst()
            summary.append((name, c.method, f"{c.jaccard:.4f}", f"{100 * gap:.2f} ({layer})",
                            ", ".join(c.emptied()) or "-", len(c.degenerate_rounds)))
            if args.layers:
                print(f"\n{name} ({c.method})\n{layer_table(c)}")
            sys.stdout.flush()
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(tabulate(summary, headers=["fixture", "suite method", "Jaccard", "worst layer gap %",
                                     "emptied", "degenerate rounds"], tablefmt="github"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
