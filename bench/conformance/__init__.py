"""The suite's pruning-at-init masks against the authors' code: ``python -m bench.conformance``.

The reference-mask fixtures hold what the authors' pruning code keeps on the suite's seed-0
ResNet-20 with the seed-0 pruning set of the full CIFAR-10 (``shared/fixtures`` and the
suite's ``tests/fixtures/reference-masks``; their READMEs say how they were made). For the
deterministic methods this prunes the same weights with the suite and prints, per fixture,
the per-layer kept counts side by side, the largest gap as a share of the layer's size, the
Jaccard index of the masks, emptied layers, and whether this machine is the fixture's kind
(float32 masks are bit for bit only there). NTK-SAP, random by design, is held to the
authors' seeds' per-layer allocation instead (:mod:`bench.conformance.spread`).
"""

from bench.conformance.checks import CHECKS, Check, Comparison, compare, suite_masks
from bench.conformance.cli import SPREAD_CHECKS, main
from bench.conformance.fixtures import (
    DEFAULT_FIXTURES,
    SUITE_FIXTURES,
    exact_here,
    fixture_counts,
    fixture_masks,
    jaccard,
)
from bench.conformance.spread import SIGMAS, SeedSpread, seed_spread, spread_compare

__all__ = ["CHECKS", "DEFAULT_FIXTURES", "SIGMAS", "SPREAD_CHECKS", "SUITE_FIXTURES", "Check",
           "Comparison", "SeedSpread", "compare", "exact_here", "fixture_counts",
           "fixture_masks", "jaccard", "main", "seed_spread", "spread_compare", "suite_masks"]
