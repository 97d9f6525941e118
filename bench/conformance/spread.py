"""NTK-SAP against the authors' seeds: per-layer allocation within sampling noise.

NTK-SAP scores random networks on random inputs, so another random stream gives another
mask: the authors' own seeds agree only as well as random masks with the same per-layer
counts do (``ntksap-spread.json`` in the shared fixtures; its README). What a faithful
implementation must match is the allocation: the overall kept count (the authors' cut),
no emptied layer, and each layer's kept fraction p within ``SIGMAS`` binomial standard
deviations sqrt(p (1 - p) / n) of the authors' mean over their seeds (each of their seeds
is within 3.0 of the mean of the other two). Other methods' masks miss by far more.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from bench.conformance.fixtures import Masks
from bench.errors import BenchError

SPREAD_FILE = "ntksap-spread.json"
SIGMAS = 4.0


@dataclass(frozen=True)
class SeedSpread:
    """The authors' NTK-SAP runs at one density: per layer, each seed's kept count."""

    density: float
    total: dict[str, int]
    kept: dict[str, dict[str, int]]
    """layer -> seed -> kept count."""

    def kept_total(self) -> int:
        """The authors' overall kept count (the same for every seed: their cut's)."""
        counts = {sum(k[seed] for k in self.kept.values()) for seed in self.seeds()}
        if len(counts) != 1:
            raise BenchError(f"the authors' seeds keep different totals: {sorted(counts)}")
        return counts.pop()

    def seeds(self) -> list[str]:
        return sorted(next(iter(self.kept.values())))

    def mean(self, exclude: str | None = None) -> dict[str, float]:
        """Per layer, the mean kept fraction over the seeds (less ``exclude``)."""
        seeds = [s for s in self.seeds() if s != exclude]
        return {n: sum(self.kept[n][s] for s in seeds) / len(seeds) / self.total[n]
                for n in self.total}


def seed_spread(folder: Path, density: float) -> SeedSpread:
    """The authors' seeds at ``density`` from ``folder``'s :data:`SPREAD_FILE`."""
    path = folder / SPREAD_FILE
    try:
        entry = json.loads(path.read_text())["densities"][f"{density:g}"]
        layers = entry["layers"]
    except (OSError, ValueError, KeyError) as e:
        raise BenchError(f"cannot read the NTK-SAP seed spread at density {density:g} from "
                         f"{path}: {e!r}") from None
    return SeedSpread(density, {n: v["total"] for n, v in layers.items()},
                      {n: v["kept"] for n, v in layers.items()})


@dataclass(frozen=True)
class SpreadComparison:
    """Masks against the authors' seeds: per-layer deviation in binomial standard deviations."""

    kept: dict[str, int]
    total: dict[str, int]
    reference_mean: dict[str, float]
    reference_kept_total: int

    def fraction(self, layer: str) -> float:
        return self.kept[layer] / self.total[layer]

    def sigmas(self) -> dict[str, float]:
        """|p - authors' mean| / sqrt(mean (1 - mean) / n) per layer (p: the kept fraction)."""
        out = {}
        for n, mean in self.reference_mean.items():
            sd = max(math.sqrt(mean * (1 - mean) / self.total[n]), 0.5 / self.total[n])
            out[n] = abs(self.fraction(n) - mean) / sd
        return out

    def worst(self) -> tuple[str, float]:
        sigmas = self.sigmas()
        name = max(sigmas, key=lambda n: sigmas[n])
        return name, sigmas[name]

    def emptied(self) -> list[str]:
        return [n for n, k in self.kept.items() if k == 0]

    def failures(self) -> list[str]:
        """What is wrong, one phrase each (empty: within the authors' spread)."""
        out = []
        if sum(self.kept.values()) != self.reference_kept_total:
            out.append(f"keeps {sum(self.kept.values())} weights, the authors' code "
                       f"{self.reference_kept_total}")
        if self.emptied():
            out.append(f"empties {', '.join(self.emptied())}")
        out += [f"{n} keeps {100 * self.fraction(n):.2f} %, the authors' mean "
                f"{100 * self.reference_mean[n]:.2f} % ({s:.1f} sd)"
                for n, s in self.sigmas().items() if s > SIGMAS]
        return out


def spread_compare(masks: Masks | dict[str, int], spread: SeedSpread,
                   exclude: str | None = None) -> SpreadComparison:
    """``masks`` (or their per-layer kept counts) against the mean of the authors' seeds
    (less seed ``exclude``)."""
    if set(masks) != set(spread.total):
        raise BenchError(f"the masks' layers {sorted(masks)} are not the fixtures' "
                         f"{sorted(spread.total)}")
    kept = {n: m if isinstance(m, int) else int(m.sum()) for n, m in masks.items()}
    return SpreadComparison(kept, spread.total, spread.mean(exclude), spread.kept_total())
