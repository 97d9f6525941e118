"""Regression tracking: compare two result sets (``python -m bench compare``).

``python -m bench compare BASELINE [CANDIDATE]`` reads two result sets (folders or
``bench export`` snapshots, bench.reports.snapshots), matches runs by spec (method,
hyperparameters, model, dataset, density, budget; seeds pooled) and says, per match,
whether accuracy moved more than noise and whether artifact bytes changed.
Exit status: 0 no regression, 1 a regression beyond tolerance, 2 could not compare.

Where a spec's seeds ran in the same numeric environment on both sides (the records'
``environment.fingerprint``: device, instruction set, threads, library versions) and the
method's version is unchanged, the comparison is exact: any change of accuracy, loss or
bytes is a regression, since the same code there reproduces a run to the bit. Elsewhere
rounding differs and at smoke scale moves accuracy as much as another seed would, so a
drop counts when it passes what the baseline's own seed spread allows (pooled over its
specs, Bonferroni-corrected over the specs compared), or Welch's test where both sides
have seeds to spare.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal, get_args

from tabulate import tabulate

from bench.errors import BenchError
from bench.fsutil import write_json_atomic
from bench.recipe import Recipe
from bench.reports.labels import method_label
from bench.reports.significance import betainc, welch_p_value
from bench.reports.snapshots import (
    SNAPSHOT_FORMAT,
    SNAPSHOT_VERSION,
    export,
    load_result_set,
)

__all__ = ["EXIT_CANNOT_COMPARE", "EXIT_OK", "EXIT_REGRESSION", "EXACT_MODES", "SNAPSHOT_FORMAT",
           "SNAPSHOT_VERSION", "Noise", "Row", "Side", "Tolerances", "betainc", "compare",
           "describe", "export", "group", "load_result_set", "match_key", "noise_of",
           "pooled_seed_sd", "render", "run_compare", "welch_p_value"]

EXIT_OK, EXIT_REGRESSION, EXIT_CANNOT_COMPARE = 0, 1, 2
Exact = Literal["auto", "never"]  # auto: exact where environments match; never: statistics
EXACT_MODES: tuple[Exact, ...] = get_args(Exact)


@dataclass(frozen=True)
class Tolerances:
    """When a difference counts: Welch's test at ``alpha`` and at least ``min_effect`` points;
    with a single seed on either side (no variance), a drop beyond ``single_seed_drop``
    points; artifact growth beyond ``bytes_growth`` (a fraction, 0 = any growth)."""

    alpha: float = 0.05
    min_effect: float = 1.0
    single_seed_drop: float = 1.0
    bytes_growth: float = 0.0
    require_all: bool = False
    exact: Exact = "auto"

    def __post_init__(self) -> None:
        def finite(x: float) -> bool:
            return isinstance(x, (int, float)) and math.isfinite(x)

        if not (finite(self.alpha) and 0.0 < self.alpha < 1.0):
            raise BenchError(f"--alpha is a significance level in (0, 1), got {self.alpha}")
        for name in ("min_effect", "single_seed_drop", "bytes_growth"):
            value = getattr(self, name)
            if not (finite(value) and value >= 0):
                raise BenchError(f"--{name.replace('_', '-')} must be a number >= 0, got {value}")
        if self.exact not in EXACT_MODES:
            raise BenchError(f"--exact must be {' or '.join(EXACT_MODES)}, got {self.exact!r}")


# ------------------------------------------------------------------ matching


def match_key(spec: dict[str, Any]) -> str:
    """Everything that defines a run except its seed and the method's version number; the
    recipe by its fields that differ from the defaults, as run keys take it (records store
    every field, and older ones lack fields added since, such as ``drop_last``)."""
    ignored = ("seed", "method_version")
    fields = {k: v for k, v in spec.items() if k not in ignored}
    try:
        fields["recipe"] = Recipe.from_dict(spec["recipe"]).canonical()
    except (BenchError, KeyError, TypeError, ValueError):
        pass  # an unknown recipe stays as written: it matches only itself
    return json.dumps(fields, sort_keys=True)


def describe(spec: dict[str, Any]) -> str:
    """``snip:beta=2 resnet20 cifar10 d=0.5 ep=2``: a matched spec, as a table line names it."""
    return (f"{method_label(spec['method'], spec.get('hparams'))} {spec['model']} "
            f"{spec['dataset']} d={spec['density']:g} ep={spec['recipe']['epochs']}")


@dataclass
class Side:
    """One spec's runs on one side, by seed: finished accuracies, losses, artifact sizes,
    the numeric environment each ran in and the method's version."""

    accuracy: dict[int, float] = field(default_factory=dict)
    loss: dict[int, float] = field(default_factory=dict)
    bytes: dict[int, int] = field(default_factory=dict)
    environment: dict[int, str | None] = field(default_factory=dict)
    method_version: dict[int, int] = field(default_factory=dict)
    not_finished: dict[int, str] = field(default_factory=dict)


def group(records: list[dict[str, Any]]) -> dict[str, tuple[str, Side]]:
    out: dict[str, tuple[str, Side]] = {}
    for record in records:
        spec = record["spec"]
        _, side = out.setdefault(match_key(spec), (describe(spec), Side()))
        seed = int(spec["seed"])
        if record["status"] == "finished":
            metrics = record["metrics"]
            side.accuracy[seed] = float(metrics["test_accuracy"])
            side.loss[seed] = float(metrics["test_loss"])
            side.bytes[seed] = int(metrics["artifact_bytes"])
            side.environment[seed] = (record.get("environment") or {}).get("fingerprint")
            side.method_version[seed] = int(spec.get("method_version", 1))
        else:
            side.not_finished[seed] = record["status"]
    return out


def pooled_seed_sd(groups: dict[str, tuple[str, Side]]) -> tuple[float | None, int]:
    """The within-spec standard deviation of accuracy pooled over every spec with two or
    more finished seeds, and the number of such specs (None, 0 when there is none)."""
    ss, dof, specs = 0.0, 0, 0
    for _, side in groups.values():
        values = list(side.accuracy.values())
        if len(values) >= 2:
            ss += statistics.variance(values) * (len(values) - 1)
            dof += len(values) - 1
            specs += 1
    return (math.sqrt(ss / dof), specs) if dof else (None, 0)


# ------------------------------------------------------------------ comparison


@dataclass
class Row:
    """The comparison of one spec; ``mode`` says how it was judged (exact, Welch,
    seed spread, single seed)."""

    run: str
    verdict: str
    regression: bool
    baseline_seeds: int
    candidate_seeds: int
    baseline_accuracy: float | None = None
    candidate_accuracy: float | None = None
    delta_points: float | None = None
    p_value: float | None = None
    baseline_bytes: int | None = None
    candidate_bytes: int | None = None
    bytes_change: int | None = None
    mode: str = ""
    note: str = ""


@dataclass(frozen=True)
class Noise:
    """What chance alone moves accuracy by: the baseline's pooled seed spread and the
    one-sided z that a drop must pass (Bonferroni over the specs compared)."""

    seed_sd: float | None
    specs_pooled: int
    z: float


def _exact_seeds(base: Side, cand: Side) -> list[int]:
    """Seeds run in one numeric environment on both sides with one method version."""
    return [s for s in sorted(set(base.accuracy) & set(cand.accuracy))
            if base.environment.get(s) is not None
            and base.environment.get(s) == cand.environment.get(s)
            and base.method_version.get(s) == cand.method_version.get(s)]


def _compare_exact(row: Row, base: Side, cand: Side, seeds: list[int]) -> None:
    """Seed against same seed; the row shows the means of those seeds only."""
    row.mode = "exact"
    row.baseline_accuracy = statistics.fmean(base.accuracy[s] for s in seeds)
    row.candidate_accuracy = statistics.fmean(cand.accuracy[s] for s in seeds)
    row.delta_points = row.candidate_accuracy - row.baseline_accuracy
    changed = [s for s in seeds if (base.accuracy[s], base.loss.get(s), base.bytes[s])
               != (cand.accuracy[s], cand.loss.get(s), cand.bytes[s])]
    if changed:
        row.verdict, row.regression = "changed in the same environment", True
        row.note = "seeds " + ", ".join(map(str, changed)) + " differ: the same code and " \
            "environment should reproduce them to the bit"


def _compare_statistically(row: Row, a: list[float], b: list[float], tol: Tolerances,
                           noise: Noise) -> None:
    if len(a) >= 2 and len(b) >= 2:
        row.mode = "welch"
        row.p_value = welch_p_value(a, b)
        significant = row.p_value < tol.alpha and abs(row.delta_points) >= tol.min_effect
        if significant:
            row.verdict = "worse" if row.delta_points < 0 else "better"
            row.regression = row.delta_points < 0
        elif row.delta_points != 0:
            row.verdict = "within noise"
        return
    if noise.seed_sd is not None:
        row.mode = "seed spread"
        allowed = max(tol.single_seed_drop,
                      noise.z * noise.seed_sd * math.sqrt(1 / len(a) + 1 / len(b)))
        row.note = f"allowed drop {allowed:.2f} points"
    else:
        row.mode = "single seed"
        allowed = tol.single_seed_drop
    if row.delta_points < -allowed:
        row.verdict, row.regression = "worse", True
    elif row.delta_points != 0:
        row.verdict = "better" if row.delta_points > 0 else "within tolerance"


def _compare_side(name: str, base: Side, cand: Side, tol: Tolerances, noise: Noise) -> Row:
    a, b = list(base.accuracy.values()), list(cand.accuracy.values())
    row = Row(name, "unchanged", False, len(a), len(b))
    if cand.not_finished and not cand.accuracy:
        row.verdict, row.regression = "not finished in candidate", True
        row.note = ", ".join(f"seed {s}: {st}" for s, st in sorted(cand.not_finished.items()))
        return row
    if not a or not b:
        row.verdict = "no finished baseline run" if b else "no finished run"
        return row
    row.baseline_accuracy, row.candidate_accuracy = statistics.fmean(a), statistics.fmean(b)
    row.delta_points = row.candidate_accuracy - row.baseline_accuracy
    exact = _exact_seeds(base, cand) if tol.exact == "auto" else []
    if exact:
        _compare_exact(row, base, cand, exact)
    else:
        _compare_statistically(row, a, b, tol, noise)
    shared = sorted(set(base.bytes) & set(cand.bytes))
    if shared:
        row.baseline_bytes = round(statistics.fmean(base.bytes[s] for s in shared))
        row.candidate_bytes = round(statistics.fmean(cand.bytes[s] for s in shared))
        row.bytes_change = row.candidate_bytes - row.baseline_bytes
        growth = 0.0 if exact else tol.bytes_growth
        note = ""
        if row.bytes_change > growth * row.baseline_bytes:
            row.regression = True
            note = f"artifact grew by {row.bytes_change} B"
        elif row.bytes_change:
            note = f"artifact changed by {row.bytes_change} B"
        row.note = "; ".join(x for x in (row.note, note) if x)
    if cand.not_finished:
        row.regression = True
        row.note = (row.note + "; " if row.note else "") + ", ".join(
            f"seed {s}: {st}" for s, st in sorted(cand.not_finished.items()))
    return row


def compare(baseline: list[dict[str, Any]], candidate: list[dict[str, Any]], tol: Tolerances
            ) -> list[Row]:
    """One row per spec on either side, regressions and the most significant first."""
    base, cand = group(baseline), group(candidate)
    noise = noise_of(base, cand, tol)
    rows = []
    for key in base.keys() | cand.keys():
        if key not in cand:
            name, side = base[key]
            rows.append(Row(name, MISSING, tol.require_all, len(side.accuracy), 0))
        elif key not in base:
            name, side = cand[key]
            rows.append(Row(name, "new in candidate", False, 0, len(side.accuracy)))
        else:
            rows.append(_compare_side(base[key][0], base[key][1], cand[key][1], tol, noise))
    if not any(r.baseline_seeds and r.candidate_seeds for r in rows):
        raise BenchError("nothing matched: no spec has finished runs on both sides")
    rows.sort(key=lambda r: (not r.regression, r.p_value if r.p_value is not None else 2.0,
                             -abs(r.delta_points or 0.0), r.run))
    return rows


def noise_of(base: dict[str, tuple[str, Side]], cand: dict[str, tuple[str, Side]],
             tol: Tolerances) -> Noise:
    """The noise model of one comparison (grouped records of each side)."""
    sd, pooled = pooled_seed_sd(base)
    return Noise(sd, pooled, NormalDist().inv_cdf(
        1.0 - tol.alpha / max(1, len(base.keys() & cand.keys()))))


def render(rows: list[Row]) -> str:
    def num(x: float | None, fmt: str) -> str:
        return "" if x is None else format(x, fmt)

    table = [[("REGRESSION " if r.regression else "") + r.verdict, r.mode, r.run,
              f"{r.baseline_seeds}/{r.candidate_seeds}", num(r.baseline_accuracy, ".2f"),
              num(r.candidate_accuracy, ".2f"), num(r.delta_points, "+.2f"),
              num(r.p_value, ".3g"), num(r.bytes_change, "+d"), r.note] for r in rows]
    headers = ["verdict", "judged", "run", "seeds b/c", "acc base %", "acc cand %", "delta pts",
               "p (Welch)", "bytes change", "note"]
    return tabulate(table, headers=headers, disable_numparse=True)


MISSING = "missing in candidate"


def missing_specs(baseline: list[dict[str, Any]], candidate: list[dict[str, Any]]
                  ) -> list[dict[str, Any]]:
    """The baseline's specs (one per seed) whose match key the candidate has no record of."""
    have = {match_key(r["spec"]) for r in candidate}
    return [r["spec"] for r in baseline if match_key(r["spec"]) not in have]


def missing_summary(specs: list[dict[str, Any]], total: int, tol: Tolerances) -> str:
    """One line on the baseline's specs the candidate lacks: how many, whether that fails
    the comparison, and the ``bench run`` options that add them."""
    names = sorted({describe(s) for s in specs})
    methods = ",".join(dict.fromkeys(method_label(s["method"], s.get("hparams"))
                                     for s in specs))
    densities = ",".join(f"{d:g}" for d in sorted({float(s["density"]) for s in specs}
                                                     - {1.0}, reverse=True))
    seeds = ",".join(str(x) for x in sorted({int(s["seed"]) for s in specs}))
    command = f"python -m bench run --methods {methods}" + (
        f" --densities {densities}" if densities else "") + f" --seeds {seeds}"
    for option, field_name in (("--models", "model"), ("--datasets", "dataset")):
        values = sorted({str(s[field_name]) for s in specs})
        command += f" {option} {','.join(values)}"
    verdict = ("regressions (--require-all)" if tol.require_all else
               "not a failure (--require-all makes them one, as a gate over a whole grid "
               "should)")
    return (f"missing: {len(names)} of the baseline's {total} specs have no run in the "
            f"candidate: {verdict}; to run them, with the options the baseline was made with "
            f"(its preset, epochs, subsets): {command}")


def run_compare(baseline: Path, candidate: Path, tol: Tolerances, json_out: Path | None) -> int:
    """The ``compare`` command: prints the table, optionally writes JSON, returns the exit code.
    Specs the candidate lacks are one summary line (rows too with ``--require-all``)."""
    base_records, cand_records = load_result_set(baseline), load_result_set(candidate)
    rows = compare(base_records, cand_records, tol)
    noise = noise_of(group(base_records), group(cand_records), tol)
    missing = missing_specs(base_records, cand_records)
    shown = rows if tol.require_all else [r for r in rows if r.verdict != MISSING]
    print(render(shown))
    regressions = [r for r in rows if r.regression]
    modes = {m: sum(r.mode == m for r in rows) for m in dict.fromkeys(r.mode for r in rows) if m}
    spread = (f"baseline seed spread {noise.seed_sd:.2f} points pooled over "
              f"{noise.specs_pooled} specs, z {noise.z:.2f}" if noise.seed_sd is not None
              else "no seed spread in the baseline")
    print(f"{len(shown)} specs compared: {len(regressions)} regressions; judged "
          + ", ".join(f"{n} {m}" for m, n in modes.items())
          + f" ({spread}; alpha {tol.alpha}, min effect {tol.min_effect} points, single-seed "
          f"drop {tol.single_seed_drop} points, bytes growth {tol.bytes_growth:.1%})")
    if missing:
        print(missing_summary(missing, len(group(base_records)), tol))
    if json_out is not None:
        write_json_atomic(json_out, {"baseline": str(baseline), "candidate": str(candidate),
                                     "tolerances": asdict(tol), "noise": asdict(noise),
                                     "regressions": len(regressions),
                                     "missing_in_candidate": sorted({describe(m)
                                                                     for m in missing}),
                                     "rows": [asdict(r) for r in rows]})
    return EXIT_REGRESSION if regressions else EXIT_OK
