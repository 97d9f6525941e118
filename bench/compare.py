"""Regression tracking: export result sets and compare two of them.

``python -m bench export --out FILE`` writes the records of a selection into one versioned
JSON snapshot meant to be committed; ``python -m bench compare BASELINE [CANDIDATE]`` matches
runs by spec (method, hyperparameters, model, dataset, density, budget; seeds pooled) and
says, per match, whether accuracy moved more than noise and whether artifact bytes changed.
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
from datetime import datetime, timezone
from pathlib import Path
from statistics import NormalDist
from typing import Any

from tabulate import tabulate

from bench.errors import BenchError
from bench.fsutil import write_json_atomic
from bench.store import UnreadableRecord, read_record_file, validate_record

SNAPSHOT_FORMAT = "bench-results"
SNAPSHOT_VERSION = 1
EXIT_OK, EXIT_REGRESSION, EXIT_CANNOT_COMPARE = 0, 1, 2
# Bulky per-run detail a snapshot leaves out; the numbers compared are all kept.
DROPPED_FROM_SNAPSHOT = ("phases",)
DROPPED_METRICS = ("artifact_layers", "density_per_tensor")


@dataclass(frozen=True)
class Tolerances:
    """When a difference counts: Welch's test at ``alpha`` and at least ``min_effect`` points;
    with a single seed on either side (no variance), a drop beyond ``single_seed_drop``
    points; artifact growth beyond ``bytes_growth`` (a fraction, 0 = any growth)."""

    alpha: float = 0.05
    min_effect: float = 1.0
    single_seed_drop: float = 1.0
    bytes_growth: float = 0.0
    allow_missing: bool = False
    exact: str = "auto"  # "auto": exact where environments match; "never": statistics only

    def __post_init__(self) -> None:
        def finite(x: float) -> bool:
            return isinstance(x, (int, float)) and math.isfinite(x)

        if not (finite(self.alpha) and 0.0 < self.alpha < 1.0):
            raise BenchError(f"--alpha is a significance level in (0, 1), got {self.alpha}")
        for name in ("min_effect", "single_seed_drop", "bytes_growth"):
            value = getattr(self, name)
            if not (finite(value) and value >= 0):
                raise BenchError(f"--{name.replace('_', '-')} must be a number >= 0, got {value}")
        if self.exact not in ("auto", "never"):
            raise BenchError(f"--exact must be auto or never, got {self.exact!r}")


# ------------------------------------------------------------------ result sets


def _selected(record: dict[str, Any], methods: list[str] | None, models: list[str] | None,
              datasets: list[str] | None) -> bool:
    spec = record["spec"]
    return ((not methods or spec["method"] in methods) and (not models or spec["model"] in models)
            and (not datasets or spec["dataset"] in datasets))


def load_result_set(path: Path) -> list[dict[str, Any]]:
    """Records of a results folder (``results/runs`` or its parent) or of a snapshot file."""
    path = Path(path)
    if path.is_dir():
        root = path / "runs" if (path / "runs").is_dir() else path
        files = sorted(root.glob("*/record.json"))
        if not files:
            raise BenchError(f"no run records in {root}")
        return [_read_or_explain(f) for f in files]
    if not path.exists():
        raise BenchError(f"no such result set: {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchError(f"unreadable snapshot {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
        raise BenchError(f"unreadable snapshot {path}: not a {SNAPSHOT_FORMAT} file")
    if data.get("version") != SNAPSHOT_VERSION:
        raise BenchError(f"snapshot {path} has version {data.get('version')}; this suite reads "
                         f"version {SNAPSHOT_VERSION}")
    records = data.get("records")
    if not isinstance(records, list):
        raise BenchError(f"unreadable snapshot {path}: malformed records")
    for i, record in enumerate(records):
        try:
            key = record.get("key", "?") if isinstance(record, dict) else "?"
            validate_record(record, f"{i} (key {key}) of snapshot {path}")
        except UnreadableRecord as exc:
            raise BenchError(str(exc)) from None
    return records


def _read_or_explain(path: Path) -> dict[str, Any]:
    try:
        return read_record_file(path)
    except UnreadableRecord as exc:
        raise BenchError(f"{exc} (move it aside or rerun that run)") from None


def export(results: Path, out: Path, methods: list[str] | None = None,
           models: list[str] | None = None, datasets: list[str] | None = None) -> int:
    """Write the selected records of ``results`` into one snapshot file; returns the count.

    An unreadable record stops the export (a snapshot silently missing a run would hide it).
    """
    out = Path(out)
    if out.is_dir():
        raise BenchError(f"--out {out} is a folder; give the snapshot file's path")
    root = Path(results)
    files = sorted(root.glob("*/record.json")) if root.is_dir() else []
    records = [r for r in map(_read_or_explain, files) if _selected(r, methods, models, datasets)]
    if not records:
        raise BenchError(f"no run records selected in {results}")
    slim = []
    for record in sorted(records, key=lambda r: r["key"]):
        r = {k: v for k, v in record.items() if k not in DROPPED_FROM_SNAPSHOT}
        if "metrics" in r:
            r["metrics"] = {k: v for k, v in r["metrics"].items() if k not in DROPPED_METRICS}
        slim.append(r)
    write_json_atomic(out, {
        "format": SNAPSHOT_FORMAT,
        "version": SNAPSHOT_VERSION,
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": str(results),
        "records": slim,
    })
    return len(slim)


# ------------------------------------------------------------------ matching


def match_key(spec: dict[str, Any]) -> str:
    """Everything that defines a run except its seed and the method's version number."""
    ignored = ("seed", "method_version")
    return json.dumps({k: v for k, v in spec.items() if k not in ignored}, sort_keys=True)


def describe(spec: dict[str, Any]) -> str:
    hp = "".join(f":{k}={v}" for k, v in sorted((spec.get("hparams") or {}).items()))
    return (f"{spec['method']}{hp} {spec['model']} {spec['dataset']} d={spec['density']:g} "
            f"ep={spec['recipe']['epochs']}")


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


# ------------------------------------------------------------------ statistics


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                    -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def welch_p_value(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of Welch's t-test; needs two or more values on each side."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.fmean(b) - statistics.fmean(a)
    if va + vb == 0.0:
        return 1.0 if diff == 0.0 else 0.0
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return betainc(df / 2.0, 0.5, df / (df + t * t))


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
            rows.append(Row(name, "missing in candidate", not tol.allow_missing,
                            len(side.accuracy), 0))
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


def run_compare(baseline: Path, candidate: Path, tol: Tolerances, json_out: Path | None) -> int:
    """The ``compare`` command: prints the table, optionally writes JSON, returns the exit code."""
    base_records, cand_records = load_result_set(baseline), load_result_set(candidate)
    rows = compare(base_records, cand_records, tol)
    noise = noise_of(group(base_records), group(cand_records), tol)
    print(render(rows))
    regressions = [r for r in rows if r.regression]
    modes = {m: sum(r.mode == m for r in rows) for m in dict.fromkeys(r.mode for r in rows) if m}
    spread = (f"baseline seed spread {noise.seed_sd:.2f} points pooled over "
              f"{noise.specs_pooled} specs, z {noise.z:.2f}" if noise.seed_sd is not None
              else "no seed spread in the baseline")
    print(f"{len(rows)} specs compared: {len(regressions)} regressions; judged "
          + ", ".join(f"{n} {m}" for m, n in modes.items())
          + f" ({spread}; alpha {tol.alpha}, min effect {tol.min_effect} points, single-seed "
          f"drop {tol.single_seed_drop} points, bytes growth {tol.bytes_growth:.1%})")
    if json_out is not None:
        write_json_atomic(json_out, {"baseline": str(baseline), "candidate": str(candidate),
                                     "tolerances": asdict(tol), "noise": asdict(noise),
                                     "regressions": len(regressions),
                                     "rows": [asdict(r) for r in rows]})
    return EXIT_REGRESSION if regressions else EXIT_OK
