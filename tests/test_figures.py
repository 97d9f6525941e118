"""`bench figures` on the real smoke stores of test_report: every kind is written and opens."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_report import PX_MATCH, Parser, build_spend_store, build_stores, records

from bench import reports as report
from bench.cli import build_parser, main
from bench.errors import BenchError
from bench.presets import PX_METHODS, get_preset
from bench.registry import methods
from bench.reports import figures


@pytest.fixture(scope="module")
def stores(tmp_path_factory, cifar10_dir):
    return build_stores(tmp_path_factory, cifar10_dir)


@pytest.fixture(scope="module")
def spend_store(tmp_path_factory, cifar10_dir):
    return build_spend_store(tmp_path_factory, cifar10_dir)


def figures_cli(capsys, *argv: str) -> tuple[int, str]:
    parser = Parser(prog="bench figures")
    figures.add_arguments(parser)
    capsys.readouterr()
    code = figures.command(parser.parse_args(list(argv)))
    return code, capsys.readouterr().out


def assert_picture(path) -> None:
    """The PNG exists, opens, is figure-sized and is not blank; its PDF twin exists."""
    assert path.is_file() and path.stat().st_size > 20_000
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width >= 800 and height >= 500
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.std() > 10  # something is drawn
    assert (pixels < 128).mean() > 0.01  # lines and text, not a white page
    pdf = path.with_suffix(".pdf")
    assert pdf.is_file() and pdf.read_bytes()[:5] == b"%PDF-"


def test_every_kind_is_written_as_png_and_pdf(stores, capsys, tmp_path):
    code, out = figures_cli(capsys, "--results", str(stores["faulty"]), "--out", str(tmp_path),
                            "--kind", ",".join(figures.KINDS))
    assert code == 0
    for name in ("accuracy-vs-bytes", "accuracy-vs-sparsity", "pemn-bars", "pemn-curves"):
        assert f"wrote {tmp_path / name}.png" in out
        assert_picture(tmp_path / f"{name}.png")


def test_paper_mode_draws_what_is_there_and_lists_the_rest(stores, capsys, tmp_path):
    code, out = figures_cli(capsys, "--results", str(stores["px"]), "--out", str(tmp_path),
                            "--paper", "px", *PX_MATCH)
    assert code == 1  # the protocol's grid is not complete
    assert_picture(tmp_path / "px-fig2-x0.00625.png")
    assert f"px-fig2: 1 of {2 * len(PX_METHODS) * 9 * 3} runs finished" in out
    commands = [line.strip() for line in out.splitlines()
                if line.strip().startswith("python -m bench run")]
    presets = [c.split()[5] for c in commands]
    assert presets == ["px-cifar10-resnet20", "px-cifar100-vgg16",  # the grids
                       "px-cifar10-resnet20", "px-cifar100-vgg16"]  # the dense references
    for command in commands:
        args = build_parser().parse_args(command.split()[3:])
        assert args.budget_scale == 0.00625 and args.width == 0.25
        assert args.train_subset == 500 and args.test_subset == 200
    # PEMN's protocol has no run in this store: nothing drawn, everything listed
    code, out = figures_cli(capsys, "--results", str(stores["px"]), "--out", str(tmp_path),
                            "--paper", "pemn", *PX_MATCH)
    assert code == 1 and "pemn-bars: nothing to draw" in out
    assert "--preset pemn-convmixer --methods dense,pemn-mask,pemn-one-layer,pemn-mp," in out
    assert not (tmp_path / "pemn-bars-x0.00625.png").exists()


REDUCED = "px-cifar10-resnet20-reduced"
REDUCED_MATCH = ["--budget-scale", "0.25", "--width", "0.25", "--train-subset", "500",
                 "--test-subset", "200"]


def test_paper_figure_from_a_reduced_preset_is_marked_and_lists_its_own_grid(
        cifar10_dir, capsys, tmp_path):
    results = tmp_path / "runs"
    assert main(["run", "--preset", REDUCED, "--methods", "dense,random", "--densities", "0.1",
                 "--seeds", "0", *REDUCED_MATCH, "--device", "cpu", "--no-progress",
                 "--data-dir", str(cifar10_dir), "--results", str(results)]) == 0
    out_dir = tmp_path / "figures"
    code, out = figures_cli(capsys, "--results", str(results), "--out", str(out_dir),
                            "--paper", "px", "--preset", REDUCED, *REDUCED_MATCH)
    assert code == 1  # the reduced grid is not complete either
    assert_picture(out_dir / "px-fig2-reduced-x0.25.png")
    grid = len(report.preset_grid(get_preset(REDUCED)))
    assert f"px-fig2-reduced: 2 of {grid} runs finished" in out  # dense once, not twice
    commands = [line.split() for line in out.splitlines()
                if line.strip().startswith("python -m bench run")]
    assert commands and all(c[c.index("--preset") + 1] == REDUCED for c in commands)
    assert "px-cifar100-vgg16" not in out  # only the preset it stands in for is replaced
    code, out = figures_cli(capsys, "--results", str(results), "--out", str(out_dir),
                            "--preset", REDUCED, *REDUCED_MATCH, "--kind", "bytes")
    assert code == 0 and f"{REDUCED}-accuracy-vs-bytes.png" in out
    assert_picture(out_dir / f"{REDUCED}-accuracy-vs-bytes.png")
    # the figure's title and caption say so; the budget line names the reduced epochs
    figure = figures.reduced_figure(figures.PAPERS["px"][0], REDUCED)
    assert figure.title == "PX protocol (Fig. 2 layout): accuracy vs. sparsity (reduced budget)"
    assert figure.presets == (REDUCED,)
    assert "stands in for px-cifar10-resnet20" in figure.note
    frame = report.preset_frame(report.records_frame(results), get_preset(REDUCED),
                                report.GridOptions(0.25, 0.25, 500, 200), ("dense",))
    caption = figures.caption_text(report.summary_table(frame))
    assert "Budget: edge-popup, 1 of 100 ep for pemn-mp; px-resnet20 with drop_last=True, " \
        "bias_init=zero, 1 of 160 ep for " \
        "dense, force, iter-snip, ntk-sap, prospr, px-2024, px-clean, random, random-erk, " \
        "snip, synflow, synflow-l2." in caption
    assert figures.reduced_figure(figures.PAPERS["pemn"][0], REDUCED) is None
    with pytest.raises(BenchError, match="is not a reduced version of a preset of paper pemn"):
        figures_cli(capsys, "--results", str(results), "--out", str(out_dir),
                    "--paper", "pemn", "--preset", REDUCED, *REDUCED_MATCH)


def test_preset_filter_names_the_budget_in_the_caption(stores, capsys, tmp_path):
    code, out = figures_cli(capsys, "--results", str(stores["px"]), "--out", str(tmp_path),
                            "--preset", "px-cifar10-resnet20", *PX_MATCH, "--kind", "sparsity")
    assert code == 0
    assert_picture(tmp_path / "px-cifar10-resnet20-accuracy-vs-sparsity.png")
    table = report.summary_table(report.preset_frame(
        report.records_frame(stores["px"]), get_preset("px-cifar10-resnet20"),
        report.GridOptions(0.00625, 0.25, 500, 200)))
    caption = figures.caption_text(table)
    assert "Budget: px-resnet20, 1 of 160 ep for every method." in caption
    assert "CIFAR-10 (500/200 train/test images)" in caption
    assert f"{len(PX_METHODS) * 9 * 3 - 1} runs not finished" in caption


def test_pareto_front_follows_its_definition(stores):
    table = report.summary_table(report.records_frame(stores["clean"]))
    points = list(zip(table["artifact_bytes_mean"], table["accuracy_mean"]))
    front = figures.pareto_front(points)
    for (b, a), on in zip(points, front):
        beaten = any(b2 <= b and a2 >= a and (b2 < b or a2 > a) for b2, a2 in points)
        assert on == (not beaten)
    assert any(front)
    smallest = min(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    assert front[smallest]  # the smallest model is always on the front
    # ties: equal points are both on the front, a strictly worse one is not
    assert figures.pareto_front([(1, 5), (1, 5), (2, 5), (2, 6)]) == [True, True, False, True]


def test_every_method_has_one_distinct_colour_and_marker():
    styles = {name: figures.method_style(name) for name in methods()}
    builtin = {n: s for n, s in styles.items() if n in figures.METHOD_STYLES}
    assert len({s[0] for s in builtin.values()}) == len(builtin)  # distinct colours
    assert len(set(builtin.values())) == len(builtin)
    assert figures.method_style("snip") == figures.method_style("snip")
    assert figures.method_style("not-a-method")[0] in figures.EXTRA_COLOURS


def test_pemn_names():
    assert figures.pemn_name("pemn-rp", "{}") == "RP 1e-1"
    assert figures.pemn_name("pemn-rp", '{"ratio": 1e-05}') == "RP 1e-5"
    assert figures.pemn_name("pemn-one-layer", "{}") == "one-layer"
    assert figures.pemn_name("snip", "{}") == "snip"


@pytest.mark.parametrize("argv, message", [
    (["--kind", "pie"], "--kind: unknown figure pie"),
    (["--paper", "px", "--kind", "bytes"], "drop --kind"),
    (["--paper", "px", "--preset", "smoke"], "drop --preset"),
    (["--width", "0.5"], "--width only select a preset's runs: add --paper or --preset"),
    (["--paper", "lth"], "invalid choice: 'lth'"),
    (["--methods", "nope"], "--methods: no runs of nope"),
])
def test_user_mistakes_are_one_line_errors(stores, capsys, tmp_path, argv, message):
    with pytest.raises(BenchError) as info:
        figures_cli(capsys, "--results", str(stores["clean"]), "--out", str(tmp_path), *argv)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not list(tmp_path.iterdir())


def test_a_store_without_finished_runs_draws_nothing(stores, capsys, tmp_path):
    with pytest.raises(BenchError, match="no finished runs"):
        figures_cli(capsys, "--results", str(stores["px"]), "--out", str(tmp_path),
                    "--preset", "px-cifar100-vgg16", *PX_MATCH)
    assert len(records(stores["px"])) == 1


def _caption(fig) -> str:
    return " ".join(t.get_text().replace("\n", " ") for t in fig.texts)


def test_captions_say_same_budget_only_where_totals_agree(stores, spend_store):
    clean = report.summary_table(report.records_frame(stores["clean"]))
    assert "Budget: smoke, 1 of 2 ep for every method." in figures.caption_text(clean)
    assert "Not the same total" not in figures.caption_text(clean)
    table = report.summary_table(report.records_frame(spend_store))
    lth = table[table["method"] == "lth"].iloc[0]
    assert lth["total_epochs_mean"] == 10 and lth["trainings_mean"] == 5
    caption = _caption(figures.figure_bytes(table))
    assert "for every method." not in caption
    assert "Budget: smoke, 2 ep for every method's final training." in caption
    assert "Not the same total: lth: 5 trainings of 2 ep (10 ep in all) at d=0.5" in caption
    assert "magnitude:" not in caption and "snip:" not in caption
    assert "Not the same total: lth" in _caption(figures.figure_sparsity(table))


def _xdata(ax) -> set[float]:
    return {round(float(x), 3) for line in ax.lines for x in line.get_xdata()
            if np.isfinite(x)}


def test_pemn_curves_count_baselines_the_pemn_way_beside_artifact_bytes(stores, monkeypatch):
    # exact x values: no coincident point set aside (pemn-mp's two densities overlap here;
    # test_coincident_points_stay_visible_and_the_caption_says_so checks the setting aside)
    monkeypatch.setattr("bench.reports.figures.pemn.dodge",
                        lambda ax, groups, size_pt=6.0: ([np.asarray(x, float)
                                                          for x, _ in groups], False))
    table = report.summary_table(report.records_frame(stores["clean"]))
    fig = figures.figure_pemn_curves(table)
    left, right = fig.axes[0], fig.axes[1]
    expected_left, expected_right, paper_convention = set(), set(), set()
    for (method, _), runs in _by_cell(records(stores["clean"])).items():
        if method == "dense":
            continue  # a reference line, not a point
        if method == "pemn-mp":  # PEMN's eq. 10: unique values + 1-bit mask, no BatchNorm
            pemn = [m["paper_bytes"]["bytes"] for m in runs]
        else:  # 32-bit kept values + the same 1-bit mask, no BatchNorm
            pemn = [4 * m["parameters_kept"] + -(-m["parameters_prunable"] // 8) for m in runs]
            paper_convention.add(round(float(np.mean(
                [m["paper_bytes"]["bytes"] for m in runs])), 3))
        expected_left.add(round(float(np.mean(pemn)), 3))
        expected_right.add(round(float(np.mean([m["artifact_bytes"] for m in runs])), 3))
    assert expected_left <= _xdata(left)
    assert expected_right <= _xdata(right)
    assert not paper_convention & _xdata(left)  # snip's nonzeros-x32 count is not drawn
    caption = _caption(fig)
    assert "PEMN's count, weights only: 32 bits per stored weight value" in caption
    assert "BatchNorm, LayerNorm and bias tensors counted on neither side" in caption
    assert "Right: the real artifact file" in caption


def _by_cell(recs: list[dict]) -> dict[tuple[str, float], list[dict]]:
    out: dict[tuple[str, float], list[dict]] = {}
    for r in recs:
        if r["status"] == "finished":
            out.setdefault((r["spec"]["method"], r["spec"]["density"]), []).append(r["metrics"])
    return out


# --- figures that hide nothing: coincident points, chance level, resolution, seeds ---------

def _axes(dpi: int = 100):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig.add_subplot()


def _part(dataset: str = "cifar10", test_subset=100):
    return pd.DataFrame({"dataset": [dataset], "test_subset": [test_subset], "n": [1]})


def test_dodge_sets_coincident_points_side_by_side_and_leaves_the_others():
    from bench.reports.figures.placement import dodge

    ax = _axes()
    ax.set_xscale("log")
    ax.set_xlim(1e3, 1e6)
    ax.set_ylim(0, 100)
    # LTH and SNIP both 12.00 % at ~40 kB (the smoke grid), random far away
    groups = [([4.0e4, 2e5], [12.0, 30.0]), ([4.01e4], [12.0]), ([5e3], [12.0])]
    xs, moved = dodge(ax, groups)
    assert moved
    screen = [ax.transData.transform((x, y)) for x, y in ((xs[0][0], 12.0), (xs[1][0], 12.0))]
    gap = abs(screen[0][0] - screen[1][0])
    assert gap >= 6 * ax.figure.dpi / 72  # a marker's size apart at least
    assert screen[0][0] < screen[1][0]  # the order of their x is kept
    assert xs[0][1] == 2e5 and xs[2][0] == 5e3  # points that overlap nothing stay put
    again, _ = dodge(ax, groups)  # deterministic
    assert all(np.array_equal(a, b) for a, b in zip(xs, again))
    alone, moved = dodge(ax, [([4.0e4], [12.0]), ([4.0e4], [60.0])])
    assert not moved and alone[0][0] == 4.0e4


def test_chance_line_where_the_axis_comes_near_it_and_a_span_of_images():
    from bench.reports.figures.resolution import accuracy_limits

    ax = _axes()
    entries: dict = {}
    lo, hi = accuracy_limits(ax, [11.0, 12.0], _part("cifar10", 100), entries)
    assert hi - lo >= 10  # 10 images' worth at 1 point an image, not a 10-12 % zoom
    assert lo <= 10 <= hi
    chance = [line for line in ax.lines if line.get_gid() == "chance-level"]
    assert len(chance) == 1 and list(chance[0].get_ydata()) == [10, 10]
    assert any("chance 10%" in t.get_text() for t in ax.texts)
    assert "chance level (100 / classes)" in entries
    # far above chance on the full test set: no line, and a range the data sets
    ax = _axes()
    lo, hi = accuracy_limits(ax, [88.0, 91.0], _part("cifar10", None), {})
    assert not [line for line in ax.lines if line.get_gid() == "chance-level"]
    assert 10 < lo < 88 and 91 < hi <= 100 and hi - lo < 5
    # CIFAR-100: chance is 1 %
    ax = _axes()
    accuracy_limits(ax, [2.0, 3.5], _part("cifar100", None), {})
    (chance,) = [line for line in ax.lines if line.get_gid() == "chance-level"]
    assert list(chance.get_ydata()) == [1, 1]


def test_resolution_note_says_what_one_image_is_worth():
    from bench.reports.figures.resolution import resolution_note

    assert resolution_note(_part("cifar10", 100)).startswith(
        "Tested on 100 images: one image = 1 point")
    assert "one image = 0.01 points" in resolution_note(_part("cifar10", None))
    both = pd.concat([_part("cifar10", 200), _part("cifar100", None)])
    note = resolution_note(both)
    assert "CIFAR-10 tested on 200 images: one image = 0.5 points" in note
    assert "CIFAR-100 tested on 10,000 images: one image = 0.01 points" in note


def _markers(ax) -> list[tuple[str, float, float]]:
    """Every drawn marker as (line colour, screen x, screen y)."""
    out = []
    for line in ax.lines:
        if line.get_marker() in (None, "None", "", " "):
            continue
        for x, y in zip(line.get_xdata(), line.get_ydata()):
            if np.isfinite(x) and np.isfinite(y):
                sx, sy = ax.transData.transform((x, y))
                out.append((str(line.get_color()), float(sx), float(sy)))
    return out


def _coincident(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with pemn-mp's points moved exactly onto snip's (same density, bytes,
    accuracy), one seed's worth of spread (none), near chance."""
    table = table.copy()
    for density in (0.5, 0.2):
        snip = (table["method"] == "snip") & (table["density"] == density)
        mp = (table["method"] == "pemn-mp") & (table["density"] == density)
        for column in ("artifact_bytes_mean", "pemn_bytes_mean"):
            table.loc[mp, column] = table.loc[snip, column].iloc[0]
    table["accuracy_mean"] = 12.0
    table["accuracy_std"] = np.nan
    return table


@pytest.mark.parametrize("kind", ["bytes", "sparsity", "pemn-curves"])
def test_coincident_points_stay_visible_and_the_caption_says_so(stores, kind):
    table = _coincident(report.summary_table(report.records_frame(stores["clean"])))
    fig = figures.DRAW[kind](table)
    ax = fig.axes[0]
    snip, mp = figures.method_style("snip")[0], figures.method_style("pemn-mp")[0]
    snip_at = [(x, y) for c, x, y in _markers(ax) if c.lower() == snip.lower()]
    mp_at = [(x, y) for c, x, y in _markers(ax) if c.lower() == mp.lower()]
    assert snip_at and mp_at
    size = 6 * fig.dpi / 72
    for x, y in mp_at:  # no pemn-mp marker lies under a snip marker
        assert all(abs(x - x2) >= size or abs(y - y2) >= size for x2, y2 in snip_at)
    caption = _caption(fig)
    assert "Coincident points are offset sideways" in caption
    assert "positions are exact in the tables" in caption
    # 12 % on 200 test images: the chance line is drawn, the axis spans 10 images or more
    assert [line for line in ax.lines if line.get_gid() == "chance-level"]
    lo, hi = ax.get_ylim()
    assert lo <= 10 and hi - lo >= 5
    assert "Tested on 200 images: one image = 0.5 points" in caption


def test_captions_say_one_seed_no_spread_where_each_point_is_one_run(stores):
    frame = report.records_frame(stores["clean"])
    one = report.summary_table(frame[frame["seed"] == 0])
    for draw in (figures.figure_bytes, figures.figure_sparsity):
        caption = _caption(draw(one))
        assert "one seed (0), no spread: each point is one run" in caption
        assert "mean ± sample std" not in caption and "error bars" not in caption
    two = report.summary_table(frame)
    assert "mean ± sample std over seeds 0, 1 (error bars)" in _caption(
        figures.figure_bytes(two))
    assert "mean ± sample std over seeds 0, 1 (shaded bands)" in _caption(
        figures.figure_sparsity(two))
