"""`bench report` on a store of real smoke runs: numbers against the records, every format."""

import argparse
import io
import json
import re
import shutil
import statistics
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from bench import reports as report
from bench.cli import build_parser, main
from bench.errors import BenchError
from bench.presets import PX_METHODS, get_preset
from bench.registry import _REGISTRY, get_method, register
from bench.reports import tables_cli
from bench.store import RunStore

# A tiny real grid: ResNet-20 at quarter width, 500/200 real CIFAR-10 images, 1 epoch.
TINY = ["--width", "0.25", "--train-subset", "500", "--test-subset", "200", "--device", "cpu",
        "--no-progress"]
GRID = ["--preset", "smoke", "--methods", "dense,snip,pemn-mp", "--densities", "0.5,0.2",
        "--seeds", "0,1", "--epochs", "1", *TINY]
# One run of the PX protocol at 1 of its 160 epochs, on the same tiny setup.
PX_SCALE = "0.00625"
PX_MATCH = ["--budget-scale", PX_SCALE, "--width", "0.25", "--train-subset", "500",
            "--test-subset", "200"]
PX_RUN = ["--preset", "px-cifar10-resnet20", "--methods", "snip", "--densities", "0.64",
          "--seeds", "0", *PX_MATCH, "--device", "cpu", "--no-progress"]


def _run(cifar10_dir: Path, results: Path, args: list[str]) -> int:
    return main(["run", *args, "--data-dir", str(cifar10_dir), "--results", str(results)])


def build_stores(tmp_path_factory, cifar10_dir: Path) -> dict[str, Path]:
    """Real runs, built once per session and shared by test_report and test_figures.

    - ``clean``: dense, snip and pemn-mp at densities 0.5 and 0.2, seeds 0 and 1;
    - ``faulty``: a copy plus a method that fails for seed 1 (finished for seed 0) and a
      dense run at another budget (2 epochs);
    - ``px``: one run of the px-cifar10-resnet20 grid at budget scale 1/160.
    """
    base = tmp_path_factory.getbasetemp() / "report-stores"
    stores = {name: base / name for name in ("clean", "faulty", "px")}
    if (base / "done").exists():
        return stores
    assert _run(cifar10_dir, stores["clean"], GRID) == 0
    shutil.copytree(stores["clean"], stores["faulty"])
    random_cls = get_method("random")

    class Flaky(random_cls):
        description = "test only: random pruning that fails for seed 1"

        def run(self, ctx):
            if ctx.seed == 1:
                raise RuntimeError("flaky on purpose")
            return super().run(ctx)

    register("test-flaky")(Flaky)
    try:
        assert _run(cifar10_dir, stores["faulty"],
                    ["--preset", "smoke", "--methods", "test-flaky", "--densities", "0.5",
                     "--seeds", "0,1", "--epochs", "1", *TINY]) == 1
    finally:
        _REGISTRY.pop("test-flaky", None)
    assert _run(cifar10_dir, stores["faulty"],
                ["--preset", "smoke", "--methods", "dense", "--seeds", "0", "--epochs", "2",
                 *TINY]) == 0
    assert _run(cifar10_dir, stores["px"], PX_RUN) == 0
    (base / "done").touch()
    return stores


@pytest.fixture(scope="module")
def stores(tmp_path_factory, cifar10_dir):
    return build_stores(tmp_path_factory, cifar10_dir)


def build_spend_store(tmp_path_factory, cifar10_dir: Path) -> Path:
    """Methods that spend beyond their budget, on the tiny setup at 2 epochs, seeds 0 and 1:
    LTH (5 trainings at density 0.5), magnitude (dense + fine-tune share B) and snip
    (scoring passes before training). Built once per session."""
    root = tmp_path_factory.getbasetemp() / "spend-store"
    if (root / "done").exists():
        return root
    assert _run(cifar10_dir, root, ["--preset", "smoke", "--methods", "lth,magnitude,snip",
                                    "--densities", "0.5", "--seeds", "0,1", "--epochs", "2",
                                    *TINY]) == 0
    (root / "done").touch()
    return root


@pytest.fixture(scope="module")
def spend_store(tmp_path_factory, cifar10_dir):
    return build_spend_store(tmp_path_factory, cifar10_dir)


def records(root: Path) -> list[dict]:
    return [r for _, r in RunStore(root).records()]


class Parser(argparse.ArgumentParser):
    """As bench.cli's: a mistake is a BenchError (one ``error:`` line), not usage text."""

    def error(self, message):
        raise BenchError(message)


def report_cli(capsys, *argv: str) -> tuple[int, str]:
    """``python -m bench report ARGS`` through the module's own parser hooks."""
    parser = Parser(prog="bench report")
    tables_cli.add_arguments(parser)
    capsys.readouterr()
    code = tables_cli.command(parser.parse_args(list(argv)))
    return code, capsys.readouterr().out


def expected_cells(root: Path) -> dict[tuple[str, float, int], dict]:
    """What every cell must say, computed straight from the record files."""
    cells: dict[tuple[str, float, int], dict] = {}
    for r in records(root):
        spec = r["spec"]
        key = (spec["method"], spec["density"], spec["recipe"]["epochs"])
        cell = cells.setdefault(key, {"acc": [], "bytes": [], "seeds": [], "statuses": []})
        cell["seeds"].append(spec["seed"])
        cell["statuses"].append(r["status"])
        if r["status"] == "finished":
            cell["acc"].append(r["metrics"]["test_accuracy"])
            cell["bytes"].append(r["metrics"]["artifact_bytes"])
    return cells


def test_summary_matches_the_records(stores):
    table = report.summary_table(report.records_frame(stores["clean"]))
    cells = expected_cells(stores["clean"])
    assert len(table) == len(cells) == 5  # dense once, snip and pemn-mp at two densities
    for row in table.itertuples():
        cell = cells[(row.method, row.density, row.epochs)]
        assert row.n == len(cell["acc"]) == 2
        assert row.seeds == "0,1"
        assert row.accuracy_mean == pytest.approx(statistics.mean(cell["acc"]))
        assert row.accuracy_std == pytest.approx(statistics.stdev(cell["acc"]))
        assert row.artifact_bytes_mean == pytest.approx(statistics.mean(cell["bytes"]))
        assert row.failed == row.missing == 0
        assert row.budget == "smoke, 1 of 2 ep"


def test_csv_parses_and_has_every_statistic(stores, capsys):
    code, out = report_cli(capsys, "--results", str(stores["clean"]), "--format", "csv")
    assert code == 0
    table = pd.read_csv(io.StringIO(out))
    cells = expected_cells(stores["clean"])
    assert len(table) == len(cells)
    for row in table.itertuples():
        cell = cells[(row.method, row.density, row.epochs)]
        assert row.accuracy_mean == pytest.approx(statistics.mean(cell["acc"]))
        assert row.accuracy_std == pytest.approx(statistics.stdev(cell["acc"]))
        assert row.artifact_bytes_mean == pytest.approx(statistics.mean(cell["bytes"]))
        assert row.n == 2 and row.budget == "smoke, 1 of 2 ep"


def _cell(mean: float, std: float, n: int) -> str:
    return f"{mean:.2f} ± {std:.2f} (n={n})"


def test_plain_table_shows_mean_std_seed_count_and_bytes(stores, capsys):
    code, out = report_cli(capsys, "--results", str(stores["clean"]))
    assert code == 0
    assert out.startswith("CIFAR-10, ResNet-20 (width 0.25), 500/200 train/test images")
    lines = {line.split()[0]: line for line in out.splitlines() if line.split()
             and line.split()[0] in ("dense", "snip", "pemn-mp")}
    for (method, _, _), cell in expected_cells(stores["clean"]).items():
        text = _cell(statistics.mean(cell["acc"]), statistics.stdev(cell["acc"]), 2)
        assert text in lines[method], (text, lines[method])
        assert report.sig3(statistics.mean(cell["bytes"]) / 1000) in lines[method]
    header = next(line for line in out.splitlines() if line.startswith("method"))
    assert "budget" in header and "d=1 acc. %" in header and "d=0.5 kB" in header
    assert "mean ± sample std over seeds" in out


def test_markdown_is_one_well_formed_table_per_dataset_and_model(stores, capsys):
    code, out = report_cli(capsys, "--results", str(stores["clean"]), "--format", "md",
                           "--group-by", "sparsity")
    assert code == 0
    rows = [line for line in out.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + 3  # header, rule, one row per method
    widths = {line.count("|") for line in rows}
    assert widths == {2 + 4 * 3 + 1}  # method, budget, (acc, kB, ep, search s) x 3 columns
    assert re.fullmatch(r"\|(-+\|)+", rows[1].replace(" ", ""))
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    assert header[:2] == ["method", "budget"]
    assert header[2:] == [f"{s} {sub}" for s in ("s=0%", "s=50%", "s=80%")
                          for sub in ("acc. %", "kB", "ep", "search s")]
    snip = next(line for line in rows if line.startswith("| snip"))
    cells = [c.strip() for c in snip.strip("|").split("|")]
    assert cells[2] == "–"  # snip has no dense (density 1) run
    acc = expected_cells(stores["clean"])[("snip", 0.2, 1)]["acc"]
    assert cells[10] == _cell(statistics.mean(acc), statistics.stdev(acc), 2)


def _latex_balanced(text: str) -> None:
    body = re.sub(r"\\[{}%&$#_]", "", text)  # escaped specials are not structure
    body = "\n".join(line for line in body.splitlines() if not line.startswith("%"))
    depth = 0
    for ch in body:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    assert body.count("$") % 2 == 0
    envs = re.findall(r"\\(begin|end)\{(\w+)\}", body)
    stack = []
    for kind, name in envs:
        if kind == "begin":
            stack.append(name)
        else:
            assert stack.pop() == name
    assert not stack


def test_latex_is_booktabs_and_balanced(stores, capsys, tmp_path):
    code, out = report_cli(capsys, "--results", str(stores["faulty"]), "--format", "latex")
    assert code == 0
    _latex_balanced(out)
    for word in (r"\toprule", r"\midrule", r"\bottomrule", r"\cmidrule(lr){3-6}",
                 r"\begin{tabular}{ll", r"\caption{"):
        assert word in out
    ncols = len(re.search(r"\\begin\{tabular\}\{(\w+)\}", out).group(1))
    rows = [line for line in out.splitlines() if line.endswith(r"\\")]
    for line in rows[2:]:  # after the two header rows every row has one cell per column
        assert line.count(" & ") == ncols - 1, line
    assert r"$\pm$" in out and "% not finished: test-flaky d=0.5 seed 1: failed" in out
    if shutil.which("pdflatex"):
        doc = tmp_path / "t.tex"
        doc.write_text("\\documentclass{article}\\usepackage{booktabs}\\usepackage[utf8]"
                       "{inputenc}\\begin{document}\n" + out + "\n\\end{document}\n")
        done = subprocess.run(["pdflatex", "-interaction=nonstopmode", doc.name],
                              cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-2000:]


def test_failed_runs_and_other_budgets_are_shown_not_pooled(stores, capsys):
    code, out = report_cli(capsys, "--results", str(stores["faulty"]))
    assert code == 0
    flaky = next(line for line in out.splitlines() if line.startswith("test-flaky"))
    (finished,) = [r for r in records(stores["faulty"])
                   if r["spec"]["method"] == "test-flaky" and r["status"] == "finished"]
    assert f"{finished['metrics']['test_accuracy']:.2f} (n=1) [1 failed]" in flaky
    assert "Not finished:" in out
    assert "- test-flaky d=0.5 seed 1: failed (RuntimeError: flaky on purpose)" in out
    dense = [line for line in out.splitlines() if line.startswith("dense")]
    assert len(dense) == 2  # one row per budget, never averaged together
    assert any("smoke, 2 ep" in line for line in dense)
    assert any("smoke, 1 of 2 ep" in line for line in dense)
    # seed 1 was never run at 2 epochs: the cell says so
    assert "(n=1) [1 seed not run]" in next(line for line in dense if "smoke, 2 ep" in line)
    code, out = report_cli(capsys, "--results", str(stores["faulty"]), "--format", "csv")
    table = pd.read_csv(io.StringIO(out))
    row = table[table["method"] == "test-flaky"].iloc[0]
    assert row["n"] == 1 and row["failed"] == 1 and row["seeds"] == "0,1"
    assert "flaky on purpose" in row["not_finished"]


def test_filters_metric_and_group_by(stores, capsys):
    code, out = report_cli(capsys, "--results", str(stores["clean"]), "--methods", "snip",
                           "--group-by", "compression", "--metric", "artifact_bytes",
                           "--size", "ratio")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[4:-2] if line.strip()] == ["snip"]
    header = next(line for line in out.splitlines() if line.startswith("method"))
    assert "2x artifact size (kB)" in header and "5x ratio" in header
    for (method, _, _), cell in expected_cells(stores["clean"]).items():
        if method == "snip":
            mean = statistics.mean(cell["bytes"]) / 1000
            std = statistics.stdev(cell["bytes"]) / 1000
            assert f"{mean:.2f} ± {std:.2f} (n=2)" in out
    code, out = report_cli(capsys, "--results", str(stores["clean"]), "--models", "resnet20",
                           "--datasets", "cifar10", "--methods", "pemn-mp,dense",
                           "--size", "stored")
    assert "stored kB" in out and "snip" not in out


@pytest.mark.parametrize("argv, message", [
    (["--methods", "snpi"], "--methods: no runs of snpi in the store; present: "),
    (["--models", "vgg16"], "--models: no runs of vgg16"),
    (["--budget-scale", "0.1"], "--budget-scale only select a preset's runs: add --preset"),
    (["--preset", "px-cifar10-resnet20", "--budget-scale", "0"],
     "must be a positive finite number"),
    (["--format", "docx"], "invalid choice: 'docx'"),
    (["--preset", "huge"], "invalid choice: 'huge'"),
])
def test_user_mistakes_are_one_line_errors(stores, argv, message, capsys):
    with pytest.raises(BenchError) as info:
        report_cli(capsys, "--results", str(stores["clean"]), *argv)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_empty_or_absent_store_is_an_error(tmp_path, capsys):
    with pytest.raises(BenchError, match="no results in"):
        report_cli(capsys, "--results", str(tmp_path / "none"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchError, match="no run records in"):
        report_cli(capsys, "--results", str(tmp_path / "empty"))


def test_preset_filter_matches_runs_and_lists_missing_ones(stores, capsys):
    code, out = report_cli(capsys, "--results", str(stores["px"]), "--preset",
                           "px-cifar10-resnet20", *PX_MATCH, "--group-by", "sparsity")
    assert code == 0
    (run,) = records(stores["px"])
    snip = next(line for line in out.splitlines() if line.startswith("snip"))
    assert f"{run['metrics']['test_accuracy']:.2f} (n=1) [2 missing]" in snip
    assert "px-resnet20, 1 of 160 ep" in snip
    methods = [line.split()[0] for line in out.splitlines()
               if line.split() and line.split()[0] in PX_METHODS]
    assert methods == list(PX_METHODS)
    assert "s=98.2%" in out and "3 missing" in out
    commands = [line.strip() for line in out.splitlines()
                if line.strip().startswith("python -m bench run")]
    assert commands == ["python -m bench run --preset px-cifar10-resnet20 --methods "
                        f"{','.join(PX_METHODS)} --budget-scale 0.00625 "
                        "--width 0.25 --train-subset 500 --test-subset 200 --results "
                        f"{stores['px']}"]
    args = build_parser().parse_args(commands[0].split()[3:])  # a valid `bench run` line
    assert args.preset == "px-cifar10-resnet20" and args.budget_scale == float(PX_SCALE)
    # the same runs without the overrides are another budget and setup: all missing
    code, out = report_cli(capsys, "--results", str(stores["px"]), "--preset",
                           "px-cifar10-resnet20", "--format", "csv")
    table = pd.read_csv(io.StringIO(out))
    assert table["n"].sum() == 0 and table["missing"].sum() == len(PX_METHODS) * 9 * 3


def test_missing_groups_narrow_to_what_is_missing(stores):
    preset = get_preset("px-cifar10-resnet20")
    options = report.GridOptions(float(PX_SCALE), 0.25, 500, 200)
    frame = report.preset_frame(report.records_frame(stores["px"]), preset, options)
    snip_only = frame[frame["method"] == "snip"]
    finished = snip_only[snip_only["status"] == "finished"]
    assert len(finished) == 1 and finished.iloc[0]["seed"] == 0
    # drop every missing run but those of density 0.64: the command asks for only them
    part = snip_only[snip_only["density"] == 0.64]
    (group,) = report.missing_groups(part)
    assert group.items == ["snip"] and group.seeds == [1, 2] and group.densities is None
    assert group.statuses == {"missing": 2}
    assert "--seeds 1,2" in group.command(options)


def test_records_frame_keeps_the_existing_api(stores):
    frame = report.records_frame(stores["clean"])
    assert {"method", "model", "dataset", "density", "seed", "status", "accuracy",
            "artifact_bytes", "budget", "group"} <= set(frame.columns)
    text = report.render(report.summary_table(frame), "md")
    assert text.count("**CIFAR-10") == 1
    assert json.loads(frame["setup"].iloc[0])["model_kwargs"] == {"width": 0.25}


# ----------------------------------------------------------------------------- spend


def spent_by_hand(root: Path) -> dict[str, dict]:
    """Per method (one density here): what its records say it trained and searched."""
    out: dict[str, dict] = {}
    for r in records(root):
        cell = out.setdefault(r["spec"]["method"], {"epochs": [], "seconds": [], "fwd": [],
                                                    "bwd": [], "trainings": []})
        cell["epochs"].append(sum(p["epochs"] for p in r["phases"]))
        cell["trainings"].append(len(r["phases"]))
        search = r["budget"]["search"]
        cell["seconds"].append(search["seconds"])
        cell["fwd"].append(search["forward_images"])
        cell["bwd"].append(search["backward_images"])
    return out


def test_summary_has_total_epochs_and_search_cost(spend_store):
    table = report.summary_table(report.records_frame(spend_store))
    spent = spent_by_hand(spend_store)
    rows = {r.method: r for r in table.itertuples()}
    assert set(rows) == {"lth", "magnitude", "snip"}
    # exact epochs: LTH at d=0.5 prunes ceil(log 0.5 / log 0.8) = 4 times, so trains 5 x 2;
    # magnitude splits its 2 epochs into dense 1 + fine-tune 1; snip trains its 2 once
    assert rows["lth"].total_epochs_mean == 10 and rows["lth"].trainings_mean == 5
    assert rows["lth"].search_extra_epochs_mean == 8 and rows["lth"].final_epochs_mean == 2
    assert rows["magnitude"].total_epochs_mean == 2 and rows["magnitude"].trainings_mean == 2
    assert rows["snip"].total_epochs_mean == 2 and rows["snip"].trainings_mean == 1
    for method, row in rows.items():
        assert spent[method]["epochs"] == [row.total_epochs_mean] * 2
        assert row.search_seconds_mean == pytest.approx(statistics.mean(spent[method]["seconds"]))
        assert row.search_seconds_std == pytest.approx(statistics.stdev(spent[method]["seconds"]))
        assert row.search_forward_images_mean == statistics.mean(spent[method]["fwd"])
        assert row.search_backward_images_mean == statistics.mean(spent[method]["bwd"])
    assert rows["snip"].search_forward_images_mean > 0  # the pruning set's scoring pass
    assert rows["lth"].search_forward_images_mean == 0
    # exports (bench export) drop the phases: the trainings follow from the search's epochs
    bare = [(p, {k: v for k, v in r.items() if k != "phases"})
            for p, r in RunStore(spend_store).records()]
    exported = report.summary_table(report.frame_from_records(bare)).set_index("method")
    assert exported.loc["lth", "trainings_mean"] == 5
    assert exported.loc["lth", "total_epochs_mean"] == 10


def test_tables_show_epochs_and_search_beside_accuracy(spend_store, capsys):
    code, out = report_cli(capsys, "--results", str(spend_store), "--format", "md")
    assert code == 0
    rows = [line for line in out.splitlines() if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    assert header == ["method", "budget", "d=0.5 acc. %", "d=0.5 kB", "d=0.5 ep",
                      "d=0.5 search s"]
    spent = spent_by_hand(spend_store)
    cells = {c[0]: c for c in ([x.strip() for x in line.strip("|").split("|")]
                               for line in rows[2:])}
    assert [c[0] for c in cells.values()] == ["lth", "magnitude", "snip"]  # ordering kept
    assert cells["lth"][4] == "10" and cells["magnitude"][4] == "2" and cells["snip"][4] == "2"
    for method, c in cells.items():
        assert c[5] == report.sig3(statistics.mean(spent[method]["seconds"]))
        assert c[2].endswith("(n=2)")  # the accuracy cell is still first
    caption = out.split("\n\n")[-1]
    assert "ep: epochs trained in all" in caption
    assert "not trained exactly the budget in all: lth: 5 trainings of 2 ep (10 ep in all) " \
           "at d=0.5" in caption
    assert "magnitude:" not in caption and "snip:" not in caption
    # the CSV carries every spend statistic
    code, out = report_cli(capsys, "--results", str(spend_store), "--format", "csv")
    table = pd.read_csv(io.StringIO(out)).set_index("method")
    assert table.loc["lth", "total_epochs_mean"] == 10
    assert table.loc["snip", "search_forward_images_mean"] == statistics.mean(spent["snip"]["fwd"])


def test_pemn_size_column_counts_every_method_alike(stores, capsys):
    code, out = report_cli(capsys, "--results", str(stores["clean"]), "--size", "pemn",
                           "--format", "csv")
    table = pd.read_csv(io.StringIO(out))
    for row in table.itertuples():
        mine = [r["metrics"] for r in records(stores["clean"])
                if r["spec"]["method"] == row.method and r["spec"]["density"] == row.density]
        if row.method == "pemn-mp":  # PEMN's own eq. 10, as recorded
            expected = [m["paper_bytes"]["bytes"] for m in mine]
            assert all(m["paper_bytes"]["formula"] == "pemn-eq10" for m in mine)
        elif row.method == "dense":  # 32 bits per weight, no mask, no BatchNorm
            expected = [4 * m["parameters_prunable"] for m in mine]
        else:  # 32 bits per kept weight + a 1-bit mask over every prunable weight
            expected = [4 * m["parameters_kept"] + -(-m["parameters_prunable"] // 8)
                        for m in mine]
        assert row.pemn_bytes_mean == pytest.approx(statistics.mean(expected))
    code, out = report_cli(capsys, "--results", str(stores["clean"]), "--size", "pemn")
    assert "d=0.5 PEMN kB" in out and "PEMN kB: PEMN's count for every method alike" in out


def test_report_reads_an_exported_snapshot(capsys):
    """The committed reference is a `bench export` file: report draws its table from it."""
    snapshot = Path(__file__).resolve().parents[1] / "results/reference/smoke-cpu.json"
    frame = report.records_frame(snapshot)
    data = json.loads(snapshot.read_text())
    assert len(frame) == len(data["records"])
    assert set(frame["method"]) == {r["spec"]["method"] for r in data["records"]}
    code, out = report_cli(capsys, "--results", str(snapshot), "--format", "md")
    assert code == 0 and "| dense" in out
    # runs its preset lacks are made in a run store, never "into" the read-only export
    code, out = report_cli(capsys, "--results", str(snapshot), "--preset", "smoke")
    commands = [line for line in out.splitlines() if "python -m bench run" in line]
    assert commands and not any("--results" in c for c in commands)
    assert f"({snapshot} is a `bench export` file: run them into a run store)" in out


def test_degenerate_pruning_rounds_are_flagged_in_tables():
    snapshot = Path(__file__).resolve().parents[1] / "results/reference/smoke-cpu.json"
    records = [r for r in json.loads(snapshot.read_text())["records"]
               if r["spec"]["method"] == "synflow"]
    records[0]["method_notes"] = {"degenerate_rounds": [{"round": 61}, {"round": 62}]}
    frame = report.frame_from_records((f"x#{r['key']}", r) for r in records)
    assert sorted(frame["degenerate_rounds"]) == [0] * (len(records) - 1) + [2]
    table = report.summary_table(frame)
    assert list(table["degenerate"]) == [1]
    text = report.render(table, "md")
    assert "1 degenerate" in text and "degenerate: finished runs with pruning rounds" in text


def test_the_precision_is_named_beside_the_budget():
    """A record's environment names its precision; tables add a 16-bit one to the budget and
    figure captions say it (float32 records, as the committed reference, stay as they were)."""
    from bench.reports.figures.captions import caption_text

    snapshot = Path(__file__).resolve().parents[1] / "results/reference/smoke-cpu.json"
    records = [r for r in json.loads(snapshot.read_text())["records"]
               if r["spec"]["method"] == "dense"]
    plain = report.summary_table(report.frame_from_records(
        (f"x#{r['key']}", r) for r in records))
    assert list(plain["precision"]) == ["float32"]
    assert "float16" not in report.render(plain, "md")
    assert "Precision" not in caption_text(plain)
    for record in records:
        record["environment"].update(fp16=True, precision="float16")
    half = report.summary_table(report.frame_from_records((f"x#{r['key']}", r) for r in records))
    text = report.render(half, "md")
    assert "smoke, 2 ep, float16" in text and "the training precision where" in text
    assert "Precision: float16 autocast with loss scaling." in caption_text(half)


def test_markdown_and_latex_write_the_seed_count_alike_and_say_what_it_is(stores, capsys):
    _, md = report_cli(capsys, "--results", str(stores["clean"]), "--format", "md")
    _, latex = report_cli(capsys, "--results", str(stores["clean"]), "--format", "latex")
    assert "(n=2)" in md and "(n=2)" in latex
    assert not re.search(r"\$ \(\d+\)", latex)  # no bare (2) after a LaTeX value
    for out in (md, latex):
        assert "how many of the seeds" not in out
    assert ("mean ± sample std over seeds 0, 1 (their finished runs); (n=k): k of these 2 "
            "seeds finished") in md
    frame = report.records_frame(stores["clean"])
    one = report.summary_table(frame[frame["seed"] == 0])
    text = report.render(one, "md")
    assert "of seed 0 (one seed, no spread); (n=1): its run finished" in text
    assert "mean ± sample std" not in text
    assert "(n=1)" in report.render(one, "latex")
