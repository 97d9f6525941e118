"""``python -m bench figures``: PNG and PDF figures from the run store; nothing trains.

``--paper px|pemn|all`` draws exactly the figures of that protocol from the runs of its
presets, and lists every run the store lacks with the ``bench run`` command that makes it;
``--paper px --preset NAME`` draws it from a reduced version of one of those presets.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from bench.defaults import results_root
from bench.errors import BenchError
from bench.fsutil import check_writable_folder
from bench.grid import GridOptions
from bench.presets import PRESETS, get_preset
from bench.reports.figures.accuracy import figure_bytes, figure_sparsity
from bench.reports.figures.kinds import DEFAULT_KINDS, DEFAULT_TITLES, FILE_NAMES, KINDS
from bench.reports.figures.layout import save
from bench.reports.figures.pemn import figure_pemn_bars, figure_pemn_curves
from bench.reports.frames import filter_frame, store_frame
from bench.reports.missing import missing_groups, missing_report, preset_frame, reference_gaps
from bench.reports.stats import summary_table
from bench.reports.tables_cli import add_common_filters, check_grid_options, options_of
from bench.wording import counted

DEFAULT_OUT = Path("results/figures")


@dataclass(frozen=True)
class PaperFigure:
    """One figure of a paper protocol: its kind, the presets it reads, reference methods."""

    name: str
    kind: str
    presets: tuple[str, ...]
    reference: tuple[str, ...] = ()
    note: str = ""
    title: str = ""
    """The figure's title; empty: its paper title (``TITLES``) or its kind's default."""


PAPERS: dict[str, tuple[PaperFigure, ...]] = {
    "px": (PaperFigure("px-fig2", "sparsity", ("px-cifar10-resnet20", "px-cifar100-vgg16"),
                       reference=("dense",)),),
    "pemn": (
        PaperFigure("pemn-bars", "pemn-bars", ("pemn-convmixer",)),
        PaperFigure("pemn-curves", "pemn-curves", ("pemn-resnet",), reference=("dense",),
                    note="The PEMN paper gives no ResNet recipe: the trained-weight baselines "
                    "use px-cifar10-resnet20's recipe, the mask learners Edge-Popup's."),
    ),
}
PAPERS["all"] = PAPERS["px"] + PAPERS["pemn"]
DRAW = {"bytes": figure_bytes, "sparsity": figure_sparsity, "pemn-bars": figure_pemn_bars,
        "pemn-curves": figure_pemn_curves}
TITLES = {"px-fig2": "PX protocol (Fig. 2 layout): accuracy vs. sparsity"}
REDUCED_TITLE = " (reduced budget)"
"""Appended to the title of a figure drawn from a preset with a reduced budget."""


def figure_title(figure: PaperFigure) -> str:
    """What ``figure``'s title reads."""
    return figure.title or TITLES.get(figure.name) or DEFAULT_TITLES[figure.kind]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m bench figures``."""
    add_common_filters(parser)
    parser.add_argument("--paper", choices=tuple(PAPERS),
                        help="draw exactly the figures of a paper protocol from its presets' "
                        "runs (px: Fig. 2; pemn: bars and compression curves) and list the "
                        "runs it lacks with the commands that make them; exit 1 if any")
    parser.add_argument("--kind", default=",".join(DEFAULT_KINDS),
                        help=f"without --paper: comma-separated figures from {', '.join(KINDS)} "
                        f"(default {','.join(DEFAULT_KINDS)})")
    parser.add_argument("--preset", choices=sorted(PRESETS), metavar="NAME",
                        help="only runs of this preset's grid; with --paper, a reduced "
                        "version of one of the paper's presets drawn in its place (e.g. "
                        "px-cifar10-resnet20-reduced), its figures marked 'reduced budget'")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"folder for the PNG and PDF files (default {DEFAULT_OUT})")


def _kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise BenchError(f"--kind: unknown figure {', '.join(unknown) or repr(text)}; "
                         f"choose from {', '.join(KINDS)}")
    return kinds


def _filtered(frame: pd.DataFrame, args: argparse.Namespace) -> pd.DataFrame:
    return filter_frame(frame, methods=args.methods, models=args.models,
                        datasets=args.datasets)


def _presets_note(names: tuple[str, ...] | list[str], options: GridOptions) -> str:
    """``Presets a, b (budget scale x0.1).``: a caption's last sentence."""
    described = options.describe()
    return (f"Preset{'s' if len(names) > 1 else ''} {', '.join(names)}"
            + (f" ({described})" if described else "") + ".")


def reduced_figure(figure: PaperFigure, preset: str) -> PaperFigure | None:
    """``figure`` drawn from ``preset``, a reduced version of one of its presets, alone and
    marked so in its title and name; None when ``preset`` reduces none of them."""
    stands_in = get_preset(preset).reduces
    if stands_in not in figure.presets:
        return None
    note = (f"Reduced budget: preset {preset} stands in for {stands_in}, whose other "
            "runs are not drawn; the paper's figure used the full budget.")
    return replace(figure, name=f"{figure.name}-reduced", presets=(preset,),
                   note=" ".join(n for n in (figure.note, note) if n),
                   title=figure_title(figure) + REDUCED_TITLE)


def _draw_paper_figure(figure: PaperFigure, args: argparse.Namespace, root: Path,
                       store: pd.DataFrame, options: GridOptions) -> bool:
    """Draw one figure of a protocol from what the store has; True when runs are missing."""
    frames = [preset_frame(store, get_preset(p), options, figure.reference)
              for p in figure.presets]
    frame = pd.concat(frames, ignore_index=True)
    if any(v is not None for v in (args.methods, args.models, args.datasets)):
        frame = _filtered(frame, args)
    table = summary_table(frame)
    groups = missing_groups(frame)
    extra = [_presets_note(figure.presets, options)]
    if figure.note:
        extra.append(figure.note)
    fig = DRAW[figure.kind](table, title=figure_title(figure), extra=extra)
    done = int((frame["status"] == "finished").sum())
    if fig is None:
        print(f"{figure.name}: nothing to draw, no finished run of "
              f"{', '.join(figure.presets)} in {root}")
    else:
        suffix = "" if options.budget_scale == 1.0 else f"-x{options.budget_scale:g}"
        paths = save(fig, args.out, figure.name + suffix)
        print(f"{figure.name}: {done} of {counted(len(frame), 'run')} finished; wrote "
              + ", ".join(map(str, paths)))
    if groups:
        print(f"{figure.name}: runs not finished, with the commands that make them:")
        print("\n".join(missing_report(groups, options, args.results)))
    for preset_name in figure.presets:
        for item in figure.reference:
            group, lacking, of = reference_gaps(get_preset(preset_name), options, item,
                                                set(store["key"]))
            if group is not None:
                print(f"{figure.name}: optional {item} reference line for {preset_name}, "
                      f"{lacking} of {counted(of, 'run')} missing:\n"
                      f"    {group.command(options, args.results)}")
    return bool(groups)


def _draw_paper(args: argparse.Namespace, root: Path, options: GridOptions) -> int:
    store = store_frame(root, required=False)
    figures = list(PAPERS[args.paper])
    if args.preset:
        figures = [f for f in (reduced_figure(f, args.preset) for f in figures) if f]
        if not figures:
            papers = sorted({p for f in PAPERS[args.paper] for p in f.presets})
            raise BenchError(f"--preset {args.preset} is not a reduced version of a preset "
                             f"of paper {args.paper} ({', '.join(papers)}); drop --preset")
    incomplete = False
    for figure in figures:
        incomplete |= _draw_paper_figure(figure, args, root, store, options)
    return 1 if incomplete else 0


def _draw_kinds(args: argparse.Namespace, root: Path, options: GridOptions) -> int:
    kinds = _kinds(args.kind)
    if args.preset:
        frame = preset_frame(store_frame(root, required=False), get_preset(args.preset),
                             options)
    else:
        frame = store_frame(root, required=True)
    frame = _filtered(frame, args)
    if not (frame["status"] == "finished").any():
        raise BenchError("no finished runs match the filters: nothing to draw")
    table = summary_table(frame)
    prefix = f"{args.preset}-" if args.preset else ""
    extra = [_presets_note([args.preset], options)] if args.preset else []
    reduced = bool(args.preset) and get_preset(args.preset).reduced_budget
    drawn = 0
    for kind in kinds:
        title = DEFAULT_TITLES[kind] + (REDUCED_TITLE if reduced else "")
        fig = DRAW[kind](table, title=title, extra=extra)
        if fig is None:
            print(f"{kind}: nothing to draw from these runs")
            continue
        paths = save(fig, args.out, prefix + FILE_NAMES[kind])
        print(f"{kind}: wrote " + ", ".join(map(str, paths)))
        drawn += 1
    if not drawn:
        raise BenchError(f"none of the figures {', '.join(kinds)} can be drawn from these runs")
    return 0


def command(args: argparse.Namespace) -> int:
    """``python -m bench figures``: write PNG + PDF files; 0 on success.

    With ``--paper``, exit status 1 says the protocol's grid is not complete (what is there
    is drawn, what is missing is listed).
    """
    check_writable_folder(args.out, "--out")
    check_grid_options(args, bool(args.paper or args.preset), "--paper or --preset")
    options = options_of(args)
    root = results_root(args.results)
    if not args.paper:
        return _draw_kinds(args, root, options)
    if args.kind != ",".join(DEFAULT_KINDS):
        raise BenchError("--paper draws its protocol's figures; drop --kind")
    return _draw_paper(args, root, options)
