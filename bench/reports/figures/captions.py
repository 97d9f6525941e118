"""The caption line under every figure: data set, budgets, seeds and what is not finished."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

import bench.reports.spend as spend
from bench.reports.figures.resolution import resolution_note
from bench.reports.labels import dataset_title, precision_note, subsets_text
from bench.reports.stats import NOT_FINISHED, seeds_of
from bench.wording import counted


def seeds_text(done: pd.DataFrame, seeds: list[int], seeds_word: str) -> str:
    """What a point is: ``one seed (0), no spread: each point is one run`` where no point
    pools two runs, else the mean ± sample std over the seeds, drawn as ``seeds_word``."""
    names = ", ".join(map(str, seeds))
    if done.empty or int(done["n"].max()) <= 1:
        if len(seeds) == 1:
            return f"one seed ({names}), no spread: each point is one run"
        return (f"one finished run per point (of seeds {names}), no spread: no point "
                "pools two seeds")
    text = f"mean ± sample std over seeds {names} ({seeds_word})"
    if int(done["n"].min()) <= 1:
        text += "; a point from one finished run has none"
    return text


def caption_text(table: pd.DataFrame, *, extra: Sequence[str] = (),
                 seeds_word: str = "error bars") -> str:
    """Data set, budgets per method, seeds, and what is not finished: one caption line."""
    done = table[table["n"] > 0]
    setups = sorted({(r.dataset, r.train_subset, r.test_subset) for r in table.itertuples()},
                    key=str)
    data = []
    for dataset, train, test in setups:
        train = None if pd.isna(train) else int(train)
        test = None if pd.isna(test) else int(test)
        images = subsets_text(dataset, train, test) or "full train/test sets"
        data.append(f"{dataset_title(dataset)} ({images})")
    budgets: dict[str, list[str]] = {}
    for r in table.drop_duplicates(["budget", "method"]).itertuples():
        budgets.setdefault(r.budget, []).append(r.method)
    spent = spend.caption_note(table)
    if len(budgets) == 1:  # the same total only where no method trained beyond its budget
        budget_text = (f"{next(iter(budgets))} for every method" if not spent else
                       f"{next(iter(budgets))} for every method's final training")
    else:
        budget_text = "; ".join(f"{b} for {', '.join(sorted(ms))}"
                                for b, ms in sorted(budgets.items()))
    seeds = seeds_of(table)
    resolution = resolution_note(table)
    precision = precision_note(done["precision"]) if "precision" in done else None
    parts = [f"Data: {', '.join(data)}.", f"Budget: {budget_text}.", *([spent] if spent else []),
             *([precision] if precision else []),
             f"Final-epoch test accuracy of the decoded artifact, "
             f"{seeds_text(done, seeds, seeds_word)}; {len(done)} of {len(table)} cells have "
             "a finished run.",
             *([resolution] if resolution else [])]
    not_done = int(table[list(NOT_FINISHED)].to_numpy().sum())
    if not_done:
        parts.append(f"{counted(not_done, 'run')} not finished (failed, "
                     "diverged, running or missing; see `bench report`).")
    nseeds = len(seeds)
    partial = bool(((done["n"] < done["runs"]) | (done["n"] < nseeds)).any())
    if partial or done["layer_collapse"].sum():
        parts.append("Red notes by a point: n = finished of expected seeds; collapsed = runs "
                     "whose pruning left a layer with no weight (a plain network is cut; in a "
                     "residual block the shortcut still carries the signal past it).")
    parts.extend(extra)
    return " ".join(parts)
