"""The CI regression gate: the committed smoke reference holds for the unchanged suite on
this machine and fails for a real regression (a codec that inverts every mask)."""

from pathlib import Path

import pytest
import torch

from bench import artifact
from bench.cli import main
from bench.models import prunable_layers

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "results" / "reference" / "smoke-cpu.json"
SMOKE = ["run", "--methods", "random", "--preset", "smoke", "--densities", "0.5", "--seeds", "0",
         "--device", "cpu", "--no-progress"]


def gate(candidate: Path, *extra: str) -> int:
    return main(["compare", str(REFERENCE), str(candidate),
                 "--single-seed-drop", "0.5", "--bytes-growth", "0.01", *extra])


def inverted_load(path):
    """``artifact.load`` with the bug of a codec that swaps kept and pruned positions."""
    model = REAL_LOAD(path)
    with torch.no_grad():
        for _, layer in prunable_layers(model):
            if layer.mask is None:
                continue
            kept = layer.mask.bool()
            values = layer.weight[kept]
            swapped = torch.zeros_like(layer.weight)
            slots = (~kept).nonzero(as_tuple=True)
            n = min(len(values), len(slots[0]))
            swapped[tuple(s[:n] for s in slots)] = values[:n]
            layer.weight.copy_(swapped)
            layer.mask = (~kept).to(layer.mask.dtype)
    return model


REAL_LOAD = artifact.load


@pytest.mark.long  # CI's own gate step runs exactly this after the tests (and 15 more methods)
def test_gate_holds_for_the_unchanged_suite(cifar10_dir, tmp_path, capsys):
    assert main([*SMOKE, "--data-dir", str(cifar10_dir), "--results", str(tmp_path / "ok")]) == 0
    capsys.readouterr()
    assert gate(tmp_path / "ok") == 0
    assert gate(tmp_path / "ok", "--exact", "never") == 0
    out = capsys.readouterr().out
    assert "1 regressions" not in out and "0 regressions" in out


@pytest.mark.slow
def test_gate_catches_an_inverted_mask(cifar10_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(artifact, "load", inverted_load)
    assert main([*SMOKE, "--data-dir", str(cifar10_dir), "--results", str(tmp_path / "bad")]) == 0
    capsys.readouterr()
    assert gate(tmp_path / "bad") == 1  # exact here, seed spread on another machine
    assert "REGRESSION" in capsys.readouterr().out
    assert gate(tmp_path / "bad", "--exact", "never") == 1  # and by the seed spread alone


AVX2 = ROOT / "results" / "reference" / "smoke-cpu-avx2.json"


def test_the_reference_admits_the_same_suite_run_on_another_cpu_type():
    """The smoke grid's seed 0 as an AVX2-only machine computed it (the previous committed
    reference, same code path and data, keys from before the data fingerprint) passes the
    gate against the AVX-512/AMX reference by the seed-spread rule, with no exact match."""
    from bench.reports.compare import Tolerances, compare, load_result_set

    baseline = load_result_set(REFERENCE)
    for record in baseline:
        record["spec"].pop("data")  # the older records name no data fingerprint
    candidate = load_result_set(AVX2)
    assert {r["environment"]["device"] for r in candidate} == {"cpu (x86_64, 2 threads)"}
    # only the methods that compute what they computed then (px, edge-popup and pemn-* have
    # new versions since: a changed method is not "the same suite on another CPU")
    versions = {(r["spec"]["method"], r["spec"]["method_version"]) for r in baseline}
    same = [r for r in candidate if (r["spec"]["method"], r["spec"]["method_version"]) in versions]
    baseline = [r for r in baseline if (r["spec"]["method"], r["spec"]["method_version"])
                in {(c["spec"]["method"], c["spec"]["method_version"]) for c in same}]
    assert len(same) >= 9 and len(same) < len(candidate)
    rows = compare(baseline, same, Tolerances(single_seed_drop=0.5, bytes_growth=0.01))
    assert len(rows) == len(same) and {r.mode for r in rows} == {"seed spread"}
    assert not [r for r in rows if r.regression]
    assert any(r.delta_points != 0 for r in rows)  # the machines really differ
