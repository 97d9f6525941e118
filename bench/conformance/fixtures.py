"""Reference-mask fixtures: where they are, how to read them, and on which machine they
hold bit for bit.

Two folders: ``shared/fixtures/reference-masks`` beside the repository (its README says
how the authors' code made them) and the suite's own ``tests/fixtures/reference-masks``
(made by its ``make_fixtures.py`` from the authors' repositories; its README). Masks are
stored per layer as ``NAME::shape`` and ``NAME::bits`` (``np.packbits``, row-major);
``kept-counts.json`` holds per fixture the per-layer ``kept`` and ``total`` counts, and in
the suite's folder the ``machine`` (kind, threads, torch) that computed it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.errors import BenchError
from bench.provenance import machine_kind

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FIXTURES = ROOT.parent / "shared/fixtures/reference-masks"
"""The shared fixtures (the suite cannot commit there): PX, SNIP, GraSP, SynFlow, magnitude,
NTK-SAP."""
SUITE_FIXTURES = ROOT / "tests/fixtures/reference-masks"
"""The suite's own fixtures: SynFlow-L2, iterative SNIP, FORCE, ProsPr."""
SHARED_MACHINE: dict[str, Any] = {"kind": "intel-avx512-amx", "threads": 1}
"""The shared fixtures record no machine. The suite's PX masks equal them bit for bit on a
2-core AVX-512/AMX machine and on no other kind tried (tests/test_conformance.py), and its
SNIP and GraSP masks equalled them (Jaccard >= 0.9999) where they were made: taken as
theirs. On an AMD AVX2 machine SNIP's Jaccard is 0.998, GraSP's 0.997."""
Masks = dict[str, np.ndarray]


def fixture_masks(folder: Path, name: str) -> Masks:
    """The authors' boolean masks of fixture ``name`` (e.g. ``px-d0.1-f32``) by layer."""
    try:
        packed = np.load(folder / f"{name}.npz")
    except OSError as e:
        raise BenchError(f"cannot read the reference masks {folder / name}.npz: {e}") from None
    out = {}
    for layer in {key.split("::")[0] for key in packed.files}:
        shape = tuple(int(s) for s in packed[f"{layer}::shape"])
        bits = np.unpackbits(packed[f"{layer}::bits"])[: int(np.prod(shape))]
        out[layer] = bits.reshape(shape).astype(bool)
    return out


def fixture_counts(folder: Path) -> dict[str, dict]:
    path = folder / "kept-counts.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BenchError(f"cannot read the reference counts {path}: {e}") from None


def fixture_machine(entry: dict[str, Any]) -> dict[str, Any]:
    """The machine a fixture's ``kept-counts.json`` entry was computed on."""
    return entry.get("machine", SHARED_MACHINE)


def exact_here(machine: dict[str, Any]) -> bool:
    """Whether this machine should reproduce a fixture of ``machine`` bit for bit: the same
    machine kind and torch version (the checks run on one thread, as the fixtures were)."""
    return (machine.get("kind") == machine_kind() and machine.get("threads", 1) == 1
            and machine.get("torch", torch.__version__) == torch.__version__)


def jaccard(a: Masks, b: Masks) -> float:
    """|A and B| / |A or B| over all layers pooled."""
    both = sum(int((a[n] & b[n]).sum()) for n in a)
    either = sum(int((a[n] | b[n]).sum()) for n in a)
    return both / either if either else 1.0
