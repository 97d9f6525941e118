"""Regression tracking on real records: unchanged passes, a broken method fails, bad input is 2."""

import json
import shutil

import pytest

from baselines.magnitude_init import MagnitudeAtInit
from bench.cli import main
from bench.reports.compare import betainc, welch_p_value

RUN = ["run", "--methods", "magnitude-init", "--preset", "smoke", "--width", "0.25",
       "--train-subset", "1000", "--test-subset", "500", "--densities", "0.05", "--epochs", "2",
       "--seeds", "0,1", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def baseline(cifar10_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("baseline")
    assert main([*RUN, "--data-dir", str(cifar10_dir), "--results", str(root)]) == 0
    return root


def test_t_test_matches_known_values():
    assert betainc(5, 0.5, 10 / 14) == pytest.approx(0.0733880348, abs=1e-9)  # t=2, df=10
    assert welch_p_value([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0
    assert welch_p_value([1.0, 1.0], [2.0, 2.0]) == 0.0


def test_an_unchanged_method_passes_through_an_exported_snapshot(baseline, cifar10_dir, tmp_path,
                                                                  capsys):
    snapshot = tmp_path / "reference.json"
    assert main(["export", "--results", str(baseline), "--out", str(snapshot)]) == 0
    data = json.loads(snapshot.read_text())
    assert data["format"] == "bench-results" and data["version"] == 1
    assert len(data["records"]) == 2
    again = tmp_path / "again"
    assert main([*RUN, "--data-dir", str(cifar10_dir), "--results", str(again)]) == 0
    capsys.readouterr()
    assert main(["compare", str(snapshot), str(again), "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "0 regressions" in out
    rows = json.loads((tmp_path / "c.json").read_text())["rows"]
    assert rows[0]["delta_points"] == 0.0 and rows[0]["bytes_change"] == 0  # deterministic CPU


def test_a_broken_method_fails_and_is_named(baseline, cifar10_dir, tmp_path, capsys,
                                            monkeypatch):
    # The same method, broken: its mask is inverted (it keeps the smallest |theta|).
    original = MagnitudeAtInit.importance
    monkeypatch.setattr(MagnitudeAtInit, "importance",
                        lambda self, model, ctx: {k: -v for k, v in original(self, model,
                                                                               ctx).items()})
    broken = tmp_path / "broken"
    assert main([*RUN, "--data-dir", str(cifar10_dir), "--results", str(broken)]) == 0
    capsys.readouterr()
    assert main(["compare", str(baseline), str(broken), "--min-effect", "0.5"]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "magnitude-init resnet20 cifar10 d=0.05" in out


def test_missing_runs_and_grown_artifacts_are_regressions(baseline, tmp_path, capsys):
    snapshot = tmp_path / "s.json"
    assert main(["export", "--results", str(baseline), "--out", str(snapshot)]) == 0
    data = json.loads(snapshot.read_text())
    grown = json.loads(json.dumps(data))
    for record in grown["records"]:
        record["metrics"]["artifact_bytes"] += 10
    (tmp_path / "grown.json").write_text(json.dumps(grown))
    capsys.readouterr()
    assert main(["compare", str(snapshot), str(tmp_path / "grown.json")]) == 1
    assert "artifact grew by 10 B" in capsys.readouterr().out
    assert main(["compare", str(snapshot), str(tmp_path / "grown.json"),
                 "--bytes-growth", "0.01"]) == 1  # same environment: exact, no tolerance
    assert main(["compare", str(snapshot), str(tmp_path / "grown.json"),
                 "--bytes-growth", "0.01", "--exact", "never"]) == 0

    # a partial candidate (README's first run against a whole reference): one summary line
    # naming what is missing and how to run it, not a failure unless --require-all
    extra = json.loads(json.dumps(data["records"]))
    for record in extra:
        record["spec"]["density"] = 0.02
    (tmp_path / "wider.json").write_text(json.dumps(dict(data, records=data["records"] + extra)))
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "wider.json"), str(snapshot)]) == 0
    out = capsys.readouterr().out
    assert "REGRESSION" not in out and "missing in candidate" not in out
    summary = [line for line in out.splitlines() if line.startswith("missing: ")]
    assert len(summary) == 1 and "1 of the baseline's 2 specs" in summary[0]
    assert "not a failure (--require-all makes them one" in summary[0]
    assert summary[0].endswith("python -m bench run --methods magnitude-init --densities 0.02 "
                               "--seeds 0,1 --models resnet20 --datasets cifar10")
    assert main(["compare", str(tmp_path / "wider.json"), str(snapshot), "--require-all"]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION missing in candidate" in out and "regressions (--require-all)" in out

    one_seed = dict(data, records=[r for r in data["records"] if r["spec"]["seed"] == 0])
    (tmp_path / "one.json").write_text(json.dumps(one_seed))
    assert main(["compare", str(snapshot), str(tmp_path / "one.json")]) == 0  # a seed fewer
    shutil.copytree(baseline, tmp_path / "partial")
    for record in (tmp_path / "partial").glob("*/record.json"):
        spec = json.loads(record.read_text())["spec"]
        record.write_text(record.read_text().replace('"density": 0.05', '"density": 0.06'))
        assert spec["density"] == 0.05
    capsys.readouterr()
    assert main(["compare", str(snapshot), str(tmp_path / "partial")]) == 2  # nothing matched


@pytest.mark.parametrize("content, message", [
    ('{"format": "bench-results", "version": 1, "records": [', "unreadable snapshot"),
    ('{"format": "other"}', "not a bench-results file"),
    ('{"format": "bench-results", "version": 99, "records": []}', "version 99"),
    ('{"format": "bench-results", "version": 1, "records": [{"x": 1}]}', "not a run record"),
])
def test_a_corrupt_snapshot_exits_2_with_one_line(baseline, tmp_path, capsys, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["compare", str(bad), str(baseline)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert main(["compare", str(tmp_path / "nope.json"), str(baseline)]) == 2


def _finished(seed: int, accuracy: float, env: str, nbytes: int = 1000) -> dict:
    spec = {"method": "random", "model": "resnet20", "dataset": "cifar10", "density": 0.5,
            "seed": seed, "recipe": {"epochs": 2}, "method_version": 1}
    return {"status": "finished", "key": f"k{seed}{env}", "spec": spec,
            "environment": {"fingerprint": env},
            "metrics": {"test_accuracy": accuracy, "test_loss": 2.0, "artifact_bytes": nbytes,
                        "artifact_file": "m.bpa"}}


BASE = [_finished(0, 30.0, "A"), _finished(1, 32.0, "A"), _finished(2, 34.0, "A")]


def test_same_environment_is_exact_and_another_is_judged_by_the_seed_spread():
    from statistics import NormalDist

    from bench.reports.compare import Tolerances, compare

    tol = Tolerances(single_seed_drop=0.5)
    (row,) = compare(BASE, [_finished(0, 30.0, "A")], tol)
    assert (row.mode, row.regression, row.verdict) == ("exact", False, "unchanged")
    assert (row.baseline_accuracy, row.delta_points) == (30.0, 0.0)  # seed 0 against seed 0
    (row,) = compare(BASE, [_finished(0, 30.1, "A")], tol)  # better, but not reproduced
    assert row.mode == "exact" and row.regression and "same environment" in row.verdict
    (row,) = compare(BASE, [_finished(0, 30.0, "A", nbytes=1001)], tol)
    assert row.regression and "grew by 1 B" in row.note
    # another machine: the seed spread (sd 2 over seeds 0-2) allows z*2*sqrt(1/3+1)
    allowed = NormalDist().inv_cdf(1 - 0.05) * 2.0 * (1 / 3 + 1) ** 0.5
    assert 3.7 < allowed < 3.9
    (row,) = compare(BASE, [_finished(0, 32.0 - allowed + 0.01, "B")], tol)
    assert (row.mode, row.regression) == ("seed spread", False)
    (row,) = compare(BASE, [_finished(0, 32.0 - allowed - 0.01, "B")], tol)
    assert (row.mode, row.regression, row.verdict) == ("seed spread", True, "worse")
    (row,) = compare(BASE, [_finished(0, 30.1, "A")], Tolerances(exact="never"))
    assert row.mode == "seed spread" and not row.regression
    (row,) = compare(BASE, [{**_finished(0, 30.1, "A"),
                             "spec": {**_finished(0, 30.1, "A")["spec"], "method_version": 2}}],
                     tol)
    assert row.mode == "seed spread"  # a new method version is meant to move results


def test_records_from_before_a_recipe_field_was_added_match_their_new_twins():
    """Records store every recipe field; older ones lack fields added since (drop_last,
    bias_init). They are the same spec when the new fields hold their defaults."""
    from bench.presets import RECIPES
    from bench.reports.compare import match_key

    recipe = RECIPES["smoke"].as_dict()
    new = {"method": "random", "density": 0.5, "seed": 0, "recipe": recipe}
    old = dict(new, seed=1, recipe={k: v for k, v in recipe.items()
                                    if k not in ("drop_last", "bias_init")})
    assert match_key(old) == match_key(new)
    other = dict(new, recipe=dict(recipe, drop_last=False))
    assert match_key(other) != match_key(new)
