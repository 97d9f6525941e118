"""A table's views as text: plain (terminal, tabulate), Markdown, LaTeX (booktabs), or the
whole summary as CSV (one row per cell, every statistic in its own column, for pandas)."""

from __future__ import annotations

import math

import pandas as pd
from tabulate import tabulate

import bench.reports.spend as spend
from bench.errors import BenchError
from bench.reports.choices import BYTE_COMPRESSION_RATIO, FORMATS
from bench.reports.labels import sig3
from bench.reports.views import Cell, TableView, build_views


def _value_text(cell: Cell, decimals: int, scale: float, latex: bool) -> str:
    if cell.empty:
        return "--" if latex else "–"
    if cell.n == 0:
        return ", ".join(cell.notes) if cell.notes else "no result"
    if math.isnan(cell.mean):
        text = f"n/a (n={cell.n})"
    else:
        mean = f"{cell.mean / scale:.{decimals}f}"
        if cell.n > 1 and not math.isnan(cell.std):
            std = f"{cell.std / scale:.{decimals}f}"
            text = f"${mean} \\pm {std}$" if latex else f"{mean} ± {std}"
        else:
            text = mean
        text += f" (n={cell.n})"  # Markdown, plain text and LaTeX alike
    if cell.notes:
        text += " [" + ", ".join(cell.notes) + "]"
    return text


def _size_text(cell: Cell, kind: str, scale: float) -> str:
    if cell.empty or math.isnan(cell.size):
        return ""
    if kind == BYTE_COMPRESSION_RATIO:
        return f"{cell.size:.2f}x"
    return sig3(cell.size / scale)


def _header(view: TableView) -> tuple[list[str], list[str]]:
    if view.value_title.endswith("accuracy"):
        value = "top-5 %" if view.value_title.startswith("top-5") else "acc. %"
    else:
        value = view.value_title.split(" (")[0] + (f" ({view.value_unit})"
                                                   if view.value_unit else "")
    subs = [value] + ([view.size_title] if view.size_title else []) + ["ep", "search s"]
    return subs, [f"{c} {s}" for c in view.column_titles for s in subs]


def _body(view: TableView, latex: bool) -> list[list[str]]:
    out = []
    for label, budget, cells in view.rows:
        line = [_latex_escape(label) if latex else label,
                _latex_escape(budget) if latex else budget]
        for cell in cells:
            text = _value_text(cell, view.decimals, view.scale, latex)
            if latex and not cell.empty:
                # escape the notes, keep the math
                head, sep, tail = text.partition(" [")
                text = head + (_latex_escape(sep + tail) if sep else "")
            line.append(text)
            if view.size_title:
                line.append(_size_text(cell, view.size_kind, view.size_scale))
            line += ["", ""] if cell.empty else [spend.epochs_cell(cell.epochs),
                                                 sig3(float(cell.search))]
        out.append(line)
    return out


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", "±": r"$\pm$", "–": "--"}


def _latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def _render_latex(view: TableView) -> str:
    subs, _ = _header(view)
    k = len(subs)
    ncols = 2 + k * len(view.columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             r"\caption{" + _latex_escape(view.title + ". " + view.caption) + "}",
             r"\begin{tabular}{ll" + "r" * (ncols - 2) + "}", r"\toprule"]
    top = ["Method", "Budget"] + [
        (rf"\multicolumn{{{k}}}{{c}}{{{_latex_escape(t)}}}" if k > 1 else _latex_escape(t))
        for t in view.column_titles]
    lines.append(" & ".join(top) + r" \\")
    if k > 1:
        lines.append(" ".join(rf"\cmidrule(lr){{{3 + i * k}-{2 + (i + 1) * k}}}"
                              for i in range(len(view.columns))))
        lines.append(" & ".join(["", ""] + [_latex_escape(s) for s in subs] * len(view.columns))
                     + r" \\")
    lines.append(r"\midrule")
    for line in _body(view, latex=True):
        lines.append(" & ".join(line) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    for entry in view.unfinished:
        lines.append("% not finished: " + entry.replace("\n", " "))
    return "\n".join(lines)


def _render_text(view: TableView, fmt: str) -> str:
    """A view as a plain (tabulate ``simple``) or Markdown table with title and caption."""
    _, headers = _header(view)
    body = _body(view, latex=False)
    text = tabulate(body, headers=["method", "budget", *headers],
                    tablefmt="github" if fmt == "md" else "simple", disable_numparse=True)
    title = f"**{view.title}**" if fmt == "md" else view.title
    parts = [title, "", text, "", view.caption]
    if view.unfinished:
        parts += ["", "Not finished:"] + [f"- {u}" for u in view.unfinished]
    return "\n".join(parts)


def render(table: pd.DataFrame, fmt: str = "plain", *, group_by: str = "density",
           metric: str = "accuracy", size: str = "artifact") -> str:
    """The summary as text: per-(dataset, model) tables, or the whole summary as CSV."""
    if fmt not in FORMATS:
        raise BenchError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "csv":
        return table.to_csv(index=False)
    views = build_views(table, group_by=group_by, metric=metric, size=size)
    return "\n\n".join(_render_latex(v) if fmt == "latex" else _render_text(v, fmt)
                       for v in views) + "\n"
