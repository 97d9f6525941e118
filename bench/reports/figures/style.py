"""How each method looks in every figure: one colour and marker per method, dash patterns
for variants, and the seed error bars' softening."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Okabe & Ito (2008) and Paul Tol's muted scheme: distinguishable with colour-vision
# deficiencies; every method also has its own marker, so colour is never the only cue.
METHOD_STYLES: dict[str, tuple[str, str]] = {
    "dense": ("#000000", "*"),
    "px": ("#D55E00", "o"),
    "snip": ("#0072B2", "s"),
    "grasp": ("#009E73", "^"),
    "synflow": ("#CC79A7", "v"),
    "magnitude-init": ("#E69F00", "P"),
    "random": ("#7F7F7F", "X"),
    "magnitude": ("#56B4E9", "p"),
    "lth": ("#AA4499", "8"),
    "edge-popup": ("#882255", "H"),
    "pemn-mask": ("#44AA99", "<"),
    "pemn-one-layer": ("#999933", ">"),
    "pemn-mp": ("#332288", "h"),
    "pemn-rp": ("#CC6677", "D"),
    "px-clean": ("#117733", "d"),
    "px-2024": ("#BB5566", "x"),
    "ntk-sap": ("#EE7733", "D"),
    "synflow-l2": ("#EE3377", "v"),
    "iter-snip": ("#33BBEE", "s"),
    "force": ("#009988", "^"),
    "prospr": ("#CC3311", "p"),
    "random-erk": ("#BBBBBB", "X"),
}
EXTRA_COLOURS = ("#661100", "#6699CC", "#AA4466", "#4477AA", "#DDCC77", "#88CCEE")
EXTRA_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "p")
VARIANT_LINES = ("-", "--", ":", "-.")


def method_style(name: str) -> tuple[str, str]:
    """(colour, marker) of a method name: fixed for built-ins, stable for plugins.

    Plugins take the extra colours in the sorted order of every registered name the table
    does not fix, so a method has the same colour in every figure.
    """
    if name in METHOD_STYLES:
        return METHOD_STYLES[name]
    from bench.registry import methods

    others = sorted((set(methods()) | {name}) - set(METHOD_STYLES))
    i = others.index(name)
    return EXTRA_COLOURS[i % len(EXTRA_COLOURS)], EXTRA_MARKERS[i % len(EXTRA_MARKERS)]


def line_styles(names: Sequence[str]) -> dict[int, str]:
    """Variants (or budgets) of one method get distinct dash patterns, in series order
    (``names``: each series' method name)."""
    seen: dict[str, int] = {}
    out = {}
    for i, name in enumerate(names):
        k = seen.get(name, 0)
        seen[name] = k + 1
        out[i] = VARIANT_LINES[k % len(VARIANT_LINES)]
    return out


def soften(container: Any) -> Any:
    """Seed error bars half-transparent and thin, so overlapping ones stay readable."""
    _, caps, bars = container.lines
    for artist in (*caps, *bars):
        artist.set_alpha(0.55)
    for bar in bars:
        bar.set_linewidth(0.9)
    return container


def marker_edge(marker: str, colour: str) -> dict[str, Any]:
    """A marker's edge: a thin white rim around a filled marker (it stands out from the
    lines beneath); a line-drawn one such as ``x`` is all edge, drawn in the method's colour
    and thicker, or it would vanish."""
    from matplotlib.markers import MarkerStyle

    if MarkerStyle(marker).is_filled():
        return {"markeredgecolor": "white", "markeredgewidth": 0.6}
    return {"markeredgecolor": colour, "markeredgewidth": 1.6}
