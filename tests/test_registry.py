"""Plugins: registration, typed hyperparameters, CLI options and entry-point discovery."""

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from bench.errors import BenchError
from bench.registry import (
    Method,
    get_method,
    make_hparams,
    methods,
    non_default_hparams,
    parse_method_item,
    register,
)

ROOT = Path(__file__).resolve().parents[1]


class Toy(Method):
    @dataclass(frozen=True)
    class Hparams:
        rate: float = 0.2
        rounds: int = 3
        mode: Literal["global", "layerwise"] = "global"
        rewind: bool = True


def test_builtin_dense_is_registered():
    assert "dense" in methods()
    assert get_method("dense").uses_density is False


def test_unknown_method_lists_valid_names():
    with pytest.raises(BenchError, match="unknown method 'nope'; valid methods: .*dense"):
        get_method("nope")


def test_hparams_are_typed_from_strings():
    Toy.name = "toy"
    hp = make_hparams(Toy, {"rate": "0.5", "rounds": "7", "mode": "layerwise", "rewind": "no"})
    assert hp == Toy.Hparams(rate=0.5, rounds=7, mode="layerwise", rewind=False)
    assert non_default_hparams(hp) == {"rate": 0.5, "rounds": 7, "mode": "layerwise",
                                       "rewind": False}
    assert non_default_hparams(Toy.Hparams()) == {}


@pytest.mark.parametrize("overrides, message", [
    ({"nope": "1"}, "no hyperparameter 'nope'; valid: rate, rounds, mode, rewind"),
    ({"rounds": "x"}, "'x' is not a valid int"),
    ({"mode": "both"}, "not one of global, layerwise"),
    ({"rewind": "maybe"}, "not a valid bool"),
])
def test_bad_hparams_are_one_line_errors(overrides, message):
    Toy.name = "toy"
    with pytest.raises(BenchError, match=message):
        make_hparams(Toy, overrides)


def test_method_item_syntax():
    assert parse_method_item("lth:rewind_epoch=0:rate=0.1") == ("lth", {"rewind_epoch": "0",
                                                                      "rate": "0.1"})
    assert parse_method_item(" dense ") == ("dense", {})
    with pytest.raises(BenchError, match="name:key=value"):
        parse_method_item("lth:rewind")


def test_register_rejects_a_second_class_under_one_name():
    with pytest.raises(TypeError, match="registered twice"):
        register("dense")(type("Other", (Method,), {}))


def test_entry_point_plugin_runs_without_touching_the_suite(tmp_path):
    # A third-party package: a module plus an installed distribution declaring the entry point.
    site = tmp_path / "site"
    site.mkdir()
    (site / "their_plugin.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass
        from bench.registry import Method

        class Theirs(Method):
            description = "a third-party method"
            uses_density = False

            @dataclass(frozen=True)
            class Hparams:
                strength: float = 1.0

            def run(self, ctx):
                return ctx.model
    '''))
    dist = site / "their_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: their-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[bench.methods]\ntheirs = their_plugin:Theirs\n")
    out = subprocess.run(
        [sys.executable, "-m", "bench", "list"], cwd=ROOT, capture_output=True, text=True,
        env={**_env(), "PYTHONPATH": f"{site}:{ROOT}"},
    )
    assert out.returncode == 0, out.stderr
    assert "theirs" in out.stdout and "a third-party method" in out.stdout
    helped = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--help"], cwd=ROOT, capture_output=True,
        text=True, env={**_env(), "PYTHONPATH": f"{site}:{ROOT}"},
    )
    assert "--theirs-strength" in helped.stdout


def _env():
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
