"""Pruning at initialisation against the authors' code: the reference-mask fixtures.

``../shared/fixtures/reference-masks/`` holds what the authors' pruning code computed on
the suite's seed-0 ResNet-20 and its seed-0 pruning set of the full CIFAR-10 (its README
says how). Each test prunes the same weights with the suite's method (bench.conformance)
and compares the masks (Jaccard index over all prunable weights) and the per-layer kept
counts. The PX checks take a minute or two each: two run with ``--slow`` (CI), all six
with ``--conformance``.
"""

from __future__ import annotations

import pytest

from bench.conformance import DEFAULT_FIXTURES, compare
from bench.data import load_data
from bench.registry import load_plugins

# Largest |suite - authors| kept count per layer, as a share of the layer's size.
MAX_LAYER_GAP = 0.02
# PX's 100 float32 rounds amplify rounding: a near-tie that one CPU's kernels break one way
# and another's the other way changes the next round's network, and the masks drift from
# there (px's objective vanishes on BN nets, so its scores are rounding outright). Exact
# masks hold on one machine only. On a 2-core AVX-512/AMX machine the suite's PX masks
# equalled the fixtures' except px2024 at 0.5 (2.21 % on blocks.7.conv1, Jaccard 0.78); on
# an AVX-512 machine without AMX the six fixtures' worst layer gaps were 2.97, 2.97, 2.55
# (px at 0.5, 0.1, 0.02) and 7.42, 6.90, 3.24 % (px2024), Jaccard 0.33 to 0.76; on that
# machine with oneDNN and MKL held to AVX2 (ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS),
# px2024 at 0.1 against its own AVX-512 masks: 6.64 %, Jaccard 0.44. A wrong variant is
# far outside: px-2024 on the px-d0.02 fixture 68 % (fc), px-clean 50 % and six layers
# emptied; so the PX checks allow 10 % per layer, no emptied layer.
PX_LAYER_GAP = 0.10


@pytest.fixture(scope="module")
def pruning_data(cifar10_full_dir):
    if not DEFAULT_FIXTURES.is_dir():
        pytest.skip(f"no reference masks at {DEFAULT_FIXTURES}")
    load_plugins()
    return load_data("cifar10", cifar10_full_dir, download=False)


def check(fixture: str, data, min_jaccard: float | None, **hparams: str) -> None:
    c = compare(fixture, data, hparams=hparams or None)
    layer, gap = c.worst()
    allowed = PX_LAYER_GAP if fixture.startswith("px") else MAX_LAYER_GAP
    assert gap <= allowed, (f"{c.method} vs {fixture}: {layer} keeps {c.kept[layer]} of "
                            f"{c.total[layer]}, the authors' code {c.reference_kept[layer]}")
    assert c.emptied() == [], f"{c.method} empties {c.emptied()}, which the authors' code keeps"
    assert c.degenerate_rounds == []
    if min_jaccard is not None:
        assert c.jaccard >= min_jaccard, f"{c.method} vs {fixture}: Jaccard {c.jaccard:.4f}"


# One-shot gradient scores in float32 (SNIP, GraSP) round differently where oneDNN picks other
# kernels: on the AVX-512 machines these fixtures were checked on, Jaccard >= 0.9999; on a
# 2-core AMD EPYC (Zen 3, AVX2 only) SNIP 0.9982 and GraSP 0.9965, every layer within 0.16 %
# of the authors' count: near-ties at the global cut flip. Magnitude involves no arithmetic
# and is exact everywhere.
ONE_SHOT_MIN_JACCARD = {"snip-d0.1-f32": 0.99, "grasp-d0.1-f32": 0.99, "mag-d0.1-f32": 0.999}


@pytest.mark.parametrize("fixture", sorted(ONE_SHOT_MIN_JACCARD))
def test_one_shot_methods_match_the_authors_masks(pruning_data, fixture):
    check(fixture, pruning_data, min_jaccard=ONE_SHOT_MIN_JACCARD[fixture])


def test_synflow_with_the_authors_cut_matches_their_float64_masks(pruning_data):
    check("synflow-d0.1-f64", pruning_data, min_jaccard=0.999, cut="kthvalue")


def test_synflow_default_cut_differs_only_by_the_kept_count_rule(pruning_data):
    """The suite's own cut (exactly round(d n), ties by position) moves masks, not scores."""
    c = compare("synflow-d0.1-f64", pruning_data, hparams={"cut": "exact"})
    assert 0.9 <= c.jaccard < 0.999  # 0.916 measured: the gap is the cut alone
    assert c.worst()[1] <= MAX_LAYER_GAP


PX_FIXTURES = [f"{p}-d{d}-f32" for p in ("px", "px2024") for d in (0.5, 0.1, 0.02)]
IN_CI = {"px-d0.02-f32", "px2024-d0.1-f32"}


@pytest.mark.parametrize("fixture", [
    pytest.param(f, marks=pytest.mark.slow if f in IN_CI else pytest.mark.conformance)
    for f in PX_FIXTURES])
def test_px_keeps_the_authors_per_layer_counts(pruning_data, fixture):
    """Within 10 % of each layer's size of the authors' code (rounding across CPUs, see
    PX_LAYER_GAP), no layer emptied that the authors' code keeps, no degenerate round
    (100 rounds, float32, as they run it)."""
    check(fixture, pruning_data, min_jaccard=None)


def test_the_cli_refuses_a_subset_and_an_unknown_fixture(cifar10_dir, pruning_data,
                                                          cifar10_full_dir, capsys):
    from bench.conformance import main

    assert main(["--data-dir", str(cifar10_dir), "--only", "snip-d0.1-f32"]) == 2
    assert "training images" in capsys.readouterr().err  # another pruning set: refused
    assert main(["--data-dir", str(cifar10_full_dir), "--only", "nope"]) == 2
    assert "unknown fixture" in capsys.readouterr().err
    assert main(["--data-dir", str(cifar10_full_dir), "--only", "mag-d0.1-f32"]) == 0
    assert "| mag-d0.1-f32" in capsys.readouterr().out
