"""The layout's rules, checked on the source: sizes, one-way imports, the plugin surface."""

from __future__ import annotations

import subprocess
import sys

import pytest
from structure import MAX_FUNCTION_LINES, MAX_MODULE_LINES, ROOT, cycles, scan

MODULES = scan()


def test_no_module_is_over_the_size_limit():
    big = {m.name: m.lines for m in MODULES.values() if m.lines > MAX_MODULE_LINES}
    assert not big, f"split these modules (over {MAX_MODULE_LINES} lines): {big}"


def test_no_function_is_over_the_size_limit():
    long = {f"{m.name}.{f}": n for m in MODULES.values() for f, n in m.functions.items()
            if n > MAX_FUNCTION_LINES}
    assert not long, f"split these functions (over {MAX_FUNCTION_LINES} lines): {long}"


def test_the_import_graph_has_no_cycle():
    assert cycles(MODULES) == []


def test_plugins_import_only_the_plugin_surface():
    reaching = {m.name: sorted(i for i in m.imports if i.startswith("bench") and i != "bench.api")
                for m in MODULES.values() if m.name.split(".")[0] in ("methods", "baselines")}
    assert not {k: v for k, v in reaching.items() if v}, reaching


def test_bench_never_imports_a_plugin():
    upward = {m.name: sorted(i for i in m.imports if i.split(".")[0] in ("methods", "baselines"))
              for m in MODULES.values() if m.name.split(".")[0] == "bench"}
    assert not {k: v for k, v in upward.items() if v}, upward


def test_only_the_command_line_imports_it():
    importers = sorted(m.name for m in MODULES.values() if "bench.cli" in m.imports)
    assert importers == ["bench.__main__"]


def test_the_structure_checker_sees_a_cycle(tmp_path):
    for pkg in ("bench", "methods", "baselines"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "bench" / "a.py").write_text("from bench import b\n")
    (tmp_path / "bench" / "b.py").write_text("import bench.a\n")
    assert cycles(scan(tmp_path)) == [["bench.a", "bench.b"]]


def test_the_layering_contracts_hold():
    pytest.importorskip("importlinter", reason="import-linter is not installed (.[lint])")
    done = subprocess.run([sys.executable, "-c", "from importlinter.cli import "
                           "lint_imports_command; lint_imports_command()"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_every_module_has_a_layer():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    placed = {name.strip().strip("()") for layer in layers
              for group in layer.split("|") for name in group.split(":")}
    top = {".".join(m.split(".")[:2]) for m in MODULES if m.startswith("bench.")}
    assert top - placed == set(), "give these modules a layer in pyproject.toml"
    assert {"methods", "baselines"} <= placed
