"""Pruning at initialisation against the authors' code: the reference-mask fixtures.

``../shared/fixtures/reference-masks/`` and the suite's own ``tests/fixtures/reference-masks/``
hold what the authors' pruning code computed on the suite's seed-0 ResNet-20 and its seed-0
pruning set of the full CIFAR-10 (their READMEs say how). Each test prunes the same weights
with the suite's method (bench.conformance) and compares the masks (Jaccard index over all
prunable weights) and the per-layer kept counts: exact masks on the machine kind that made
the fixture, per-layer counts within a stated tolerance on any other (float32 kernels round
differently on AVX2, AVX-512 and AMX). NTK-SAP, random by design, is held to the authors'
seeds' per-layer allocation. The PX checks take a minute or two each: two run with ``--slow``
(CI), all six with ``--conformance``.
"""

from __future__ import annotations

import re

import pytest
import torch

import bench.conformance.fixtures as fixtures_module
from bench.conformance import (
    CHECKS,
    DEFAULT_FIXTURES,
    SIGMAS,
    SUITE_FIXTURES,
    compare,
    exact_here,
    fixture_counts,
    fixture_masks,
    jaccard,
    seed_spread,
    spread_compare,
    suite_masks,
)
from bench.data import load_data
from bench.provenance import machine_kind
from bench.registry import load_plugins

# Largest |suite - authors| kept count per layer, as a share of the layer's size.
MAX_LAYER_GAP = 0.02
# One-shot float32 methods on another machine kind than the fixture's: near-ties at the cut
# break the other way. Measured on an AMD AVX2 machine against the (AVX-512/AMX) shared
# fixtures: SNIP Jaccard 0.9982, GraSP 0.9965, worst layer gaps 0.09 % and 0.16 %.
OTHER_KIND_MIN_JACCARD = 0.99
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


def check(fixture: str, data, min_jaccard: float | None, allowed: float | None = None,
          **hparams: str) -> None:
    c = compare(fixture, data, hparams=hparams or None)
    layer, gap = c.worst()
    if allowed is None:
        allowed = PX_LAYER_GAP if fixture.startswith("px") else MAX_LAYER_GAP
    assert gap <= allowed, (f"{c.method} vs {fixture}: {layer} keeps {c.kept[layer]} of "
                            f"{c.total[layer]}, the authors' code {c.reference_kept[layer]}")
    assert c.emptied() == [], f"{c.method} empties {c.emptied()}, which the authors' code keeps"
    assert c.degenerate_rounds == []
    if min_jaccard is not None:
        assert c.jaccard >= min_jaccard, f"{c.method} vs {fixture}: Jaccard {c.jaccard:.4f}"


# One-shot gradient scores in float32 (SNIP, GraSP) round differently where oneDNN picks other
# kernels: on a 2-core AMD EPYC (Zen 3, AVX2 only) SNIP 0.9982 and GraSP 0.9965, every layer
# within 0.16 % of the authors' count: near-ties at the global cut flip.


@pytest.mark.parametrize("fixture", ["snip-d0.1-f32", "grasp-d0.1-f32", "mag-d0.1-f32"])
def test_one_shot_methods_match_the_authors_masks(pruning_data, fixture):
    """Exact (Jaccard >= 0.999) on the fixtures' machine kind, nearly so on any other."""
    exact = exact_here(fixtures_module.fixture_machine(fixture_counts(DEFAULT_FIXTURES)[fixture]))
    check(fixture, pruning_data, min_jaccard=0.999 if exact else OTHER_KIND_MIN_JACCARD)


def test_synflow_with_the_authors_cut_matches_their_float64_masks(pruning_data):
    check("synflow-d0.1-f64", pruning_data, min_jaccard=0.999, cut="kthvalue")


def test_synflow_default_cut_differs_only_by_the_kept_count_rule(pruning_data):
    """The suite's own cut (exactly round(d n), ties by position) moves masks, not scores."""
    c = compare("synflow-d0.1-f64", pruning_data, hparams={"cut": "exact"})
    assert 0.9 <= c.jaccard < 0.999  # 0.916 measured: the gap is the cut alone
    assert c.worst()[1] <= MAX_LAYER_GAP


PX_FIXTURES = [f"{p}-d{d}-f32" for p in ("px", "px2024") for d in (0.5, 0.1, 0.02)]
# px2024 at 0.1 takes about 110 s: --long runs it (CI measured 30 min 23 s with it), the
# other five run with --conformance; CI checks PX's scores by unit tests (tests/test_px.py).
WITH_LONG = {"px2024-d0.1-f32"}


@pytest.mark.parametrize("fixture", [
    pytest.param(f, marks=pytest.mark.long if f in WITH_LONG else pytest.mark.conformance)
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


# ---------------------------------------------------------------------------- the suite's fixtures

SUITE_OWN = [name for name, c in CHECKS.items() if c.suite_fixture]
IN_DEFAULT = {"synflow-l2-d0.1-f32", "prospr-d0.1-f32"}  # about 15 and 25 s on one thread
# About 90 s each, so --conformance runs them, not CI. At 0.02 the per-layer counts tell FORCE
# from iterative SNIP (60 % of fc apart) where the masks cannot be exact; at 0.1 they are
# only 12 % apart (blocks.0.conv1). Their scores are unit-tested in tests/test_pai_field.py.
IN_CI_TOO: set[str] = set()
# Largest per-layer gap (share of the layer) allowed where the machine kind differs from the
# fixture's. Other kernels' rounding, emulated on the fixtures' AMD AVX2 machine with
# ATEN_CPU_CAPABILITY=default and ONEDNN_MAX_CPU_ISA=SSE41 (one thread): SynFlow-L2 still
# exact; ProsPr Jaccard 0.73 / 0.66 at 0.1 / 0.02, worst layer 2.3 / 4.6 %; iterative SNIP
# 0.21 / 0.14, 3.7 / 4.6 %; FORCE 0.17 / 0.11, 10.5 / 7.2 % (60 float32 steps: a near-tie
# broken the other way changes every later step, as PX's 100 rounds do across CPUs).
OTHER_KIND_GAP = {"synflow-l2": 0.08, "iter-snip": 0.08, "prospr": 0.08, "force": 0.15}


@pytest.mark.parametrize("fixture", [
    pytest.param(f, marks=[] if f in IN_DEFAULT else pytest.mark.slow if f in IN_CI_TOO
                 else pytest.mark.conformance) for f in SUITE_OWN])
def test_the_fields_deterministic_baselines_match_the_authors_code(pruning_data, fixture):
    """SynFlow-L2, iterative SNIP, FORCE and ProsPr on the fixture's inputs: the authors'
    masks bit for bit (Jaccard >= 0.999) on the machine kind that made the fixture; on
    another, each layer within OTHER_KIND_GAP of the authors' count. No layer emptied that
    the authors' code keeps (SynFlow-L2's, like theirs, empties blocks.6.conv1 at 0.1)."""
    c = compare(fixture, pruning_data)
    assert c.degenerate_rounds == [] and c.emptied() == []
    if c.exact_here:
        assert c.jaccard >= 0.999, f"{c.method} vs {fixture}: Jaccard {c.jaccard:.4f}"
    else:
        layer, gap = c.worst()
        assert gap <= OTHER_KIND_GAP[c.method], (
            f"{c.method} vs {fixture} on {machine_kind()}: {layer} keeps {c.kept[layer]} of "
            f"{c.total[layer]}, the authors' code {c.reference_kept[layer]}")


def test_the_suites_fixtures_are_small_complete_and_record_their_machine():
    counts = fixture_counts(SUITE_FIXTURES)
    assert sorted(counts) == sorted(SUITE_OWN)
    size = sum(p.stat().st_size for p in SUITE_FIXTURES.iterdir() if p.is_file())
    assert size < 1_000_000
    for name, entry in counts.items():
        masks = fixture_masks(SUITE_FIXTURES, name)
        assert {n: int(m.sum()) for n, m in masks.items()} == entry["kept"]
        assert {n: m.size for n, m in masks.items()} == entry["total"]
        assert set(entry["machine"]) == {"kind", "threads", "torch"}
        assert entry["machine"]["threads"] == 1
        assert entry["authors"]["commit"] in {"ed6c40e", "7494eed", "a921779"}
        assert f"d{entry['density']:g}-" in name


def test_exact_masks_are_due_only_on_the_fixtures_machine_kind(monkeypatch):
    assert re.fullmatch(r"[a-z0-9_]+-(avx512-amx|avx512-bf16|avx512|avx2|baseline)",
                        machine_kind())
    monkeypatch.setattr(fixtures_module, "machine_kind", lambda: "amd-avx2")
    here = {"kind": "amd-avx2", "threads": 1, "torch": torch.__version__}
    assert exact_here(here)
    assert not exact_here({**here, "kind": "intel-avx512-amx"})
    assert not exact_here({**here, "threads": 2})
    assert not exact_here({**here, "torch": "1.13.0"})
    assert not exact_here(fixtures_module.SHARED_MACHINE)


# ---------------------------------------------------------------------------- NTK-SAP


@pytest.mark.parametrize("density", [0.1, 0.02])
def test_the_ntk_sap_criterion_admits_each_of_the_authors_seeds(density):
    """Each seed of the authors' code against the mean of the other two: the allocation a
    faithful implementation must reproduce (largest deviation 3.0 sd, README)."""
    if not DEFAULT_FIXTURES.is_dir():
        pytest.skip(f"no reference masks at {DEFAULT_FIXTURES}")
    spread = seed_spread(DEFAULT_FIXTURES, density)
    assert spread.kept_total() == {0.1: 27090, 0.02: 5418}[density]
    for seed in spread.seeds():
        kept = {n: spread.kept[n][seed] for n in spread.total}
        c = spread_compare(kept, spread, exclude=seed)
        assert c.failures() == [], (seed, c.failures())
        assert c.worst()[1] <= 3.1


@pytest.mark.parametrize("fixture, density", [
    ("snip-d0.1-f32", 0.1), ("grasp-d0.1-f32", 0.1), ("synflow-d0.1-f64", 0.1),
    ("mag-d0.1-f32", 0.1), ("px2024-d0.1-f32", 0.1), ("px-d0.02-f32", 0.02),
    ("px2024-d0.02-f32", 0.02)])
def test_the_ntk_sap_criterion_rejects_the_other_methods_masks(fixture, density):
    """The same overall count, other allocations: every one fails, far outside the spread."""
    if not DEFAULT_FIXTURES.is_dir():
        pytest.skip(f"no reference masks at {DEFAULT_FIXTURES}")
    c = spread_compare(fixture_masks(DEFAULT_FIXTURES, fixture),
                       seed_spread(DEFAULT_FIXTURES, density))
    assert c.failures()
    assert c.worst()[1] > 3 * SIGMAS


# About 5 minutes a density: --conformance runs them (CI's 30 minutes do not hold them).
@pytest.mark.conformance
@pytest.mark.parametrize("density", [0.1, 0.02])
def test_ntk_sap_keeps_the_authors_per_layer_allocation(pruning_data, density):
    """The suite's NTK-SAP (seed 0, its own random stream): the authors' overall count, no
    layer emptied, every layer within 4 sd of the authors' mean, and a Jaccard index with
    their seed-0 masks like that of random masks with the same per-layer counts (their own
    seeds: 0.11 at 0.1, 0.05 at 0.02). About 5 minutes on one thread."""
    masks, degenerate = suite_masks("ntk-sap", density, pruning_data, {})
    c = spread_compare(masks, seed_spread(DEFAULT_FIXTURES, density))
    assert degenerate == [] and c.failures() == [], c.failures()
    overlap = jaccard(masks, fixture_masks(DEFAULT_FIXTURES, f"ntksap-d{density:g}-s0-f32"))
    assert overlap < {0.1: 0.13, 0.02: 0.06}[density]
