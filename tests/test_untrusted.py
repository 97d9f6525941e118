"""Snapshots and records are untrusted input: parsed within limits (size, depth, integer
length, finite numbers in a result's ranges, names without control characters), and anything
past them is one ``error:`` line with exit 2, never a traceback or a number printed as a
result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import printable
from bench.recipe import Recipe
from bench.store import RunSpec
from bench.untrusted import UntrustedJSON, check_name, loads


def _record(seed: int = 0, accuracy: float = 40.0) -> dict:
    spec = RunSpec(method="random", model="resnet20", dataset="cifar10", density=0.5,
                   seed=seed, recipe=Recipe(epochs=2))
    return {"status": "finished", "key": spec.key, "spec": spec.to_record(),
            "environment": {"fingerprint": "abc"},
            "metrics": {"test_accuracy": accuracy, "test_loss": 2.0, "artifact_bytes": 1000,
                        "artifact_file": "model-0123456789abcdef.bpa"}}


def _snapshot(path: Path, records: list, raw: str | None = None) -> Path:
    text = json.dumps({"format": "bench-results", "version": 1, "records": records})
    path.write_text(text if raw is None else text.replace('"RAW"', raw))
    return path


@pytest.fixture
def good(tmp_path) -> Path:
    return _snapshot(tmp_path / "good.json", [_record(0), _record(1, 41.0)])


def _one_error(capsys, *needles: str) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "\x1b" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_a_good_snapshot_compares(good, capsys):
    assert main(["compare", str(good), str(good)]) == 0


@pytest.mark.parametrize("metric, raw, message", [
    ("artifact_bytes", "1" + "0" * 400, "an integer of 401 digits"),
    ("artifact_bytes", "1e400", "the number 1e400 is out of range"),
    ("test_accuracy", "1e300", "metric test_accuracy is 1e+300, outside [0, 100]"),
    ("test_accuracy", "-5", "metric test_accuracy is -5, outside [0, 100]"),
    ("test_loss", "Infinity", "Infinity is not a result"),
    ("test_loss", "-1", "metric test_loss is -1, outside"),
])
def test_numbers_outside_a_results_range_are_refused(tmp_path, good, capsys, metric, raw,
                                                     message):
    record = _record()
    record["metrics"][metric] = "RAW"
    bad = _snapshot(tmp_path / "bad.json", [record], raw)
    assert main(["compare", str(bad), str(good)]) == 2
    _one_error(capsys, str(bad), message)


def test_a_seed_of_5000_digits_is_refused(tmp_path, good, capsys):
    record = _record()
    record["spec"]["seed"] = "RAW"
    bad = _snapshot(tmp_path / "bad.json", [record], "9" * 5000)
    assert main(["compare", str(good), str(bad)]) == 2
    _one_error(capsys, "an integer of 5000 digits")


def test_a_snapshot_nested_100000_deep_is_refused(tmp_path, good, capsys):
    bad = tmp_path / "deep.json"
    bad.write_text('{"format": "bench-results", "version": 1, "records": '
                   + "[" * 100_000 + "]" * 100_000 + "}")
    assert main(["compare", str(bad), str(good)]) == 2
    _one_error(capsys, "nested deeper than 32 levels")


@pytest.mark.parametrize("name", ["random\x1b[31mRED\x1b[0m", "ran\ndom", "a\x00b"])
def test_a_method_name_with_control_characters_is_refused_and_never_printed_raw(
        tmp_path, good, capsys, name):
    record = _record()
    record["spec"]["method"] = name
    bad = _snapshot(tmp_path / "bad.json", [record])
    assert main(["compare", str(bad), str(good)]) == 2
    line = _one_error(capsys, "spec method", "holds control characters")
    assert printable(name) in line


def test_a_snapshot_past_the_size_limit_is_refused_before_parsing(tmp_path, good, capsys,
                                                                 monkeypatch):
    import bench.reports.snapshots as snapshots

    monkeypatch.setattr(snapshots, "SNAPSHOT_MAX_BYTES", 1000)
    big = _snapshot(tmp_path / "big.json", [_record(s) for s in range(20)])
    assert main(["compare", str(big), str(good)]) == 2
    _one_error(capsys, "larger than")


def test_names_and_json_limits():
    assert check_name("pemn-rp", "x") == "pemn-rp"
    for bad in ("", "a\tb", "x" * 201, 5, None, "\u2028"):
        with pytest.raises(UntrustedJSON):
            check_name(bad, "x")
    assert loads('{"a": NaN}', "t")["a"] != 0  # the suite writes NaN for unmeasured values
    for text in ('{"a": -Infinity}', b"\xff\xfe", "[" * 33 + "]" * 33):
        with pytest.raises(UntrustedJSON):
            loads(text, "t")
    assert loads("[" * 32 + "]" * 32, "t") is not None
