"""Every mistake a user can make on the command line ends in one clear line and exit 2."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("argv, message", [
    (["run", "--methods", "nope"], "unknown method 'nope'; valid methods: all, "),
    (["run", "--methods", "dense", "--models", "resnet21"], "unknown model 'resnet21'"),
    (["run", "--methods", "dense", "--datasets", "mnist"], "unknown dataset 'mnist'"),
    (["run", "--preset", "huge"], "unknown preset 'huge'; valid presets: smoke, quick"),
    (["run", "--methods", "dense", "--recipe", "fast"], "unknown recipe 'fast'"),
    (["run", "--methods", "dense", "--budget-scale", "0"], "must be a positive finite number"),
    (["run", "--methods", "dense", "--densities", "0.5,1.5"], "bad density 1.5"),
    (["run", "--methods", "dense", "--densities", "half"], "bad number list"),
    (["run", "--methods", "dense", "--seeds", "a"], "bad integer list"),
    (["run", "--methods", "dense", "--epochs", "0"], "--epochs must be between 1 and"),
    (["run", "--methods", "dense:foo=1"], "has no hyperparameter 'foo'"),
    (["run", "--methods", "dense", "--device", "tpu"], "device"),
    (["run", "--bogus"], "unrecognized arguments: --bogus"),
    (["run", "--methods", "dense", "--budget-scale", "inf"], "positive finite number"),
    (["run", "--methods", "dense", "--budget-scale", "nan"], "positive finite number"),
    (["run", "--methods", "dense", "--budget-scale", "1e308"], "past the limit"),
    (["run", "--methods", ","], "--methods ',' names nothing"),
    (["run", "--methods", ""], "--methods '' names nothing"),
    (["run", "--methods", "dense", "--densities", ","], "--densities ',' names nothing"),
    (["run", "--methods", "dense", "--densities", ""], "--densities '' names nothing"),
    (["run", "--methods", "random", "--densities", "nan"], "bad density nan"),
    (["run", "--methods", "dense", "--seeds", ","], "--seeds ',' names nothing"),
    (["run", "--methods", "dense", "--seeds", str(2**70)], "seeds must be integers from 0"),
    (["run", "--methods", "dense", "--seeds", "-1"], "seeds must be integers from 0"),
    (["run", "--methods", "dense", "--models", ","], "--models ',' names nothing"),
    (["run", "--methods", "dense", "--threads", "0"], "--threads must be between 1"),
    (["run", "--methods", "dense", "--threads", "two"], "whole number of threads"),
    (["run", "--methods", "dense", "--width", "-1"], "--width must be a positive number"),
    (["run", "--methods", "dense", "--train-subset", "0"], "--train-subset must be >= 1"),
    (["run", "--methods", "dense", "--workers", "2"],
     "--workers belongs to --executor local, not inprocess"),
    (["run", "--methods", "dense", "--wait"], "--wait belongs to --executor slurm, not "),
    (["run", "--methods", "dense", "--executor", "local", "--partition", "gpu"],
     "--partition belongs to --executor slurm, not local"),
    (["run", "--methods", "dense", "--executor", "local", "--workers", "0"],
     "--workers must be at least 1"),
    (["run", "--methods", "dense", "--executor", "local", "--devices", ","],
     "--devices is empty"),
    (["run", "--methods", "dense", "--executor", "slurm", "--array-tasks", "0"],
     "--array-tasks must be at least 1"),
    (["run", "--methods", "dense", "--executor", "slurm", "--sbatch", "mem"],
     "--sbatch takes KEY=VALUE"),
    (["run", "--methods", "dense", "--executor", "cloud"], "invalid choice: 'cloud'"),
    (["compare", "a", "b", "--alpha", "5"], "--alpha is a significance level in (0, 1)"),
    (["compare", "a", "b", "--bytes-growth", "-1"], "--bytes-growth must be a number >= 0"),
    (["compare", "a", "b", "--single-seed-drop", "nan"], "--single-seed-drop must be"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_user_mistakes_are_one_line(capsys, tmp_path, argv, message):
    code, out, err = run_cli(capsys, *argv, *(["--results", str(tmp_path)] if argv[0] == "run"
                                              and "--bogus" not in argv else []))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not list(tmp_path.iterdir())  # nothing ran, nothing written


def test_missing_data_dir_says_where_to_put_the_files(capsys, tmp_path):
    missing = tmp_path / "nowhere"
    code, _, err = run_cli(capsys, "run", "--methods", "dense", "--preset", "smoke",
                           "--data-dir", str(missing), "--results", str(tmp_path / "r"),
                           "--device", "cpu")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(missing / "cifar-10-batches-py") in lines[0], err
    assert not (tmp_path / "r").exists()


def test_report_without_results_is_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "report", "--results", str(tmp_path / "none"))
    assert code == 2 and err.startswith("error: no results in")


def test_list_shows_every_kind_of_name(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    for word in ("methods:", "dense", "models:", "resnet20", "vgg16", "convmixer-256-6",
                 "vit-256-6", "datasets:", "cifar100", "presets:", "smoke"):
        assert word in out, word
    presets = out.split("presets:")[1]
    lines = presets.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  quick "))
    end = next(i for i in range(start + 1, len(lines)) if lines[i][2] != " ")
    assert lines[end - 1].endswith("(default)")  # quick's last line (descriptions wrap)
    recipes = out.split("recipes:")[1].split("presets:")[0]
    assert "pemn-authors" in recipes and "augmentation pemn-authors" in " ".join(recipes.split())
    assert "augmentation crop-flip" in " ".join(recipes.split())


def test_list_fits_the_terminal(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= 80
    # a long preset name takes its own line; its description starts in the column below
    lines = out.splitlines()
    long_name = lines.index("  px-cifar10-resnet20-reduced")
    assert lines[long_name + 1].startswith(" " * 10) and "the suite's first" in lines[long_name + 1]


def test_module_runs_from_the_repository_root_without_install():
    out = subprocess.run([sys.executable, "-m", "bench", "run", "--methods", "nope"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: unknown method 'nope'")
    assert "Traceback" not in out.stderr


def test_slurm_executor_without_sbatch_says_so(tmp_path, cifar10_dir):
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # python, but no sbatch
    out = subprocess.run([sys.executable, "-m", "bench", "run", "--methods", "dense",
                          "--executor", "slurm", "--data-dir", str(cifar10_dir), "--results",
                          str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == ("error: --executor slurm: no sbatch on PATH (is this a Slurm "
                                  "login node?)")
