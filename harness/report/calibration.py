"""How far `harness check` verdicts can be trusted, measured on real runs (reports/check_calibration.md).

The calibration grid (experiments/cpu-mini/check_calibration.yaml) trains one setting (the
reference) and a truly worse one (the regression) with many seeds each. From them:

(a) false alarms: disjoint groups of k seeds of the reference setting compared with each other (A/A,
    no true difference); every `better` or `worse` is a false alarm. Goal: <= 5% at the default
    k = 3. For k = 1 and 2 the rate without the 3-seed rule shows why fewer seeds are inconclusive.
(b) detection: k regression seeds against k reference seeds; how often `worse` comes out, beside
    the effect measured with all seeds.
(c) what a 1-point effect needs: the median minimum detectable effect over random draws for several
    seed counts and fractions of the dev examples.
(d) `check --pair-seeds`: its false-alarm rate where pairs share nothing (disjoint seeds paired at
    random), its power on the regression paired by seed, and, given reruns of the reference's seeds
    with other numerics (``--reruns``: the release-check case), how often each mode calls them
    equivalent.

Everything works with however many seeds have finished and says how many were used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harness.errors import HarnessError
from harness.fingerprint import describe, differences
from harness.report.check import (ALPHA, MIN_SEEDS, Side, metric_spec, seed_pairs, select, side_from_runs,
                                  truth_difference)
from harness.report.results import RunRecord
from harness.report.stats import (VERDICTS, detection_rate, false_alarm_rate, minimum_detectable_effect,
                                  crossed_comparison, take, verdict, wilson_interval)

COMMAND = ("harness check calibrate --runs results/cpu-mini/check_calibration/runs "
           "--experiment experiments/cpu-mini/check_calibration.yaml "
           "--reruns results/cpu-mini/check_calibration_avx2/runs --out reports/check_calibration.md")
REFERENCE = {"learning_rate": 3e-3}
REGRESSED = {"learning_rate": 1.5e-3}


def _sides(reference_runs, regressed_runs) -> tuple[Side, Side | None]:
    """Both settings as check builds sides (one setting each, one run per seed), on the same examples."""
    if not any(r.status == "finished" for r in reference_runs):
        raise HarnessError("no finished runs of the reference setting to calibrate on; run the calibration grid.")
    first = next(r for r in reference_runs if r.status == "finished")
    ref = side_from_runs("reference", first.task, first.model, list(reference_runs))
    reg = side_from_runs("regression", first.task, first.model, list(regressed_runs)) if regressed_runs else None
    if reg is not None and reg.finished:
        why = truth_difference(ref.kind, ref.truth, reg.truth) if (ref.task, ref.kind) == (reg.task, reg.kind) \
            else f"tasks {ref.task} vs {reg.task}"
        if why:
            raise HarnessError(f"the reference and regression runs were scored on different dev examples ({why}).")
    return ref, (reg if reg is not None and reg.finished else None)


def _splits(n: int, k: int) -> int:
    """Ordered pairs of disjoint k-seed groups out of n seeds (distinct A/A draws)."""
    return math.comb(n, k) * math.comb(n - k, k) if n >= 2 * k else 0


def false_alarms(ref: Side, spec, ks, draws, n_boot, alpha, margin, seed) -> list[dict]:
    """(a) A/A rates per k, under check's rule and, for k below it, without the seed rule."""
    rows = []
    for k in ks:
        n = len(ref.seeds)
        if n < 2 * k:
            rows.append({"k": k, "skipped": f"needs {2 * k} seeds, {n} finished"})
            continue
        options = dict(rng_seed=seed + k, n_boot=n_boot, margin=margin, alpha=alpha)
        row = false_alarm_rate(ref.outputs, ref.truth, spec, k, draws, min_reference_seeds=MIN_SEEDS, **options)
        row["distinct_splits"] = _splits(n, k)
        if k < MIN_SEEDS:
            row["without_seed_rule"] = false_alarm_rate(ref.outputs, ref.truth, spec, k, draws, min_reference_seeds=1,
                                                        **options)
        rows.append(row)
    return rows


def one_candidate_seed(ref: Side, spec, draws, n_boot, alpha, margin, seed, k_ref: int = MIN_SEEDS) -> dict:
    """A/A with 1 candidate seed against k_ref reference seeds: the baseline use (only the candidate
    runs, once). The candidate's seed spread is then borrowed from the reference; this measures the cost."""
    n = len(ref.seeds)
    if n < k_ref + 1:
        return {"k_candidate": 1, "k_reference": k_ref, "skipped": f"needs {k_ref + 1} seeds, {n} finished"}
    rng = np.random.default_rng(seed + 100)
    verdicts = []
    for _ in range(draws):
        order = rng.permutation(n)
        base = [ref.outputs[i] for i in order[1:1 + k_ref]]
        comparison = crossed_comparison(spec, ref.truth, [ref.outputs[order[0]]], base, n_boot=n_boot,
                                      seed=int(rng.integers(2**32)))
        verdicts.append(verdict(comparison, spec, comparison.p_value, margin, alpha, MIN_SEEDS)[0])
    alarms = sum(v in ("better", "worse") for v in verdicts)
    lo, hi = wilson_interval(alarms, len(verdicts))
    return {"k_candidate": 1, "k_reference": k_ref, "draws": draws, "distinct_splits": n * math.comb(n - 1, k_ref),
            "counts": {v: verdicts.count(v) for v in VERDICTS}, "hits": alarms, "rate": alarms / draws,
            "rate_lo": lo, "rate_hi": hi}


def _seed_values(side: Side, spec, outputs: list | None = None) -> np.ndarray:
    """Each seed's metric on the whole dev set (of ``outputs`` if given, scored against the side's truth)."""
    outputs = side.outputs if outputs is None else outputs
    if spec.fn is not None:
        return np.asarray([spec.fn(o, side.truth) for o in outputs], dtype=np.float64)
    return np.asarray([spec.from_stats(np.asarray(spec.stats(o, side.truth)).sum(0)) for o in outputs])


def se_check(ref: Side, spec, ks, draws, n_boot, seed, bootstraps: int = 40) -> list[dict]:
    """The check's se of Δ against the spread of Δ over random A/A splits of the same dev set:
    a ratio above 1 means the test is conservative (its MDE overstated) by about that factor."""
    values, rng = _seed_values(ref, spec), np.random.default_rng(seed + 200)
    rows = []
    for k in ks:
        if len(values) < 2 * k:
            continue
        deltas, ses = [], []
        for i in range(draws):
            order = rng.permutation(len(values))
            deltas.append(values[order[:k]].mean() - values[order[k:2 * k]].mean())
            if i < bootstraps:
                ses.append(crossed_comparison(spec, ref.truth, [ref.outputs[j] for j in order[:k]],
                                            [ref.outputs[j] for j in order[k:2 * k]], n_boot=n_boot, seed=i).se)
        sd, se = float(np.std(deltas, ddof=1)) * spec.scale, float(np.mean(ses)) * spec.scale
        rows.append({"k": k, "splits_sd": sd, "bootstrap_se": se, "ratio": se / sd if sd > 0 else None,
                     "draws": draws, "bootstraps": len(ses)})
    return rows


def detection(ref: Side, reg: Side | None, spec, ks, draws, n_boot, alpha, margin, seed) -> dict:
    """(b) the effect with all seeds (Δ and its CI) and the rate of `worse` at k seeds per side."""
    if reg is None:
        return {"effect": None, "rates": [], "skipped": "no finished runs of the regression setting yet"}
    effect = crossed_comparison(spec, ref.truth, reg.outputs, ref.outputs, n_boot=n_boot, seed=seed).to_dict()
    rates = []
    for k in ks:
        if min(len(ref.seeds), len(reg.seeds)) < k:
            rates.append({"k": k, "skipped": f"needs {k} seeds per side, have {len(ref.seeds)}/{len(reg.seeds)}"})
            continue
        rate = detection_rate(ref.outputs, reg.outputs, ref.truth, spec, k, draws, rng_seed=seed + k, n_boot=n_boot,
                              margin=margin, alpha=alpha, min_reference_seeds=MIN_SEEDS)
        rate["distinct_draws"] = math.comb(len(ref.seeds), k) * math.comb(len(reg.seeds), k)
        rates.append(rate)
    return {"effect": effect, "rates": rates}


def _groups(ref: Side, reg: Side | None, k: int, rng) -> tuple[list, list, str] | None:
    """Two k-seed groups: disjoint reference seeds (A/A) when there are 2k, else reference vs regression."""
    n = len(ref.seeds)
    if n >= 2 * k:
        order = rng.permutation(n)
        return [ref.outputs[i] for i in order[:k]], [ref.outputs[i] for i in order[k:2 * k]], "A/A"
    if reg is not None and min(n, len(reg.seeds)) >= k:
        cand = [reg.outputs[i] for i in rng.choice(len(reg.seeds), k, replace=False)]
        return cand, [ref.outputs[i] for i in rng.choice(n, k, replace=False)], "regression vs reference"
    return None


def mde_grid(ref: Side, reg: Side | None, spec, ks, fractions, draws, n_boot, alpha, seed) -> list[dict]:
    """(c) median MDE (printed units) per seed count k and fraction of the dev examples (subsampled)."""
    rng = np.random.default_rng(seed)
    n = len(ref.truth)
    cells = []
    for k in ks:
        for fraction in fractions:
            m = max(2, round(fraction * n))
            values, source = [], None
            for _ in range(draws):
                groups = _groups(ref, reg, k, rng)
                if groups is None:
                    break
                cand, base, source = groups
                idx = np.sort(rng.choice(n, m, replace=False))
                comparison = crossed_comparison(spec, take(ref.truth, idx), [take(o, idx) for o in cand],
                                              [take(o, idx) for o in base], n_boot=n_boot,
                                              seed=int(rng.integers(2**32)))
                values.append(minimum_detectable_effect(comparison.se, alpha, df=comparison.df) * spec.scale)
            cells.append({"k": k, "fraction": fraction, "examples": m, "draws": len(values), "source": source,
                          "median_mde": float(np.median(values)) if values else None})
    return cells


def _identical(a, b) -> bool:
    return bool(np.array_equal(a, b)) if isinstance(a, np.ndarray) else list(a) == list(b)


def _rerun_rates(ref: Side, rerun: Side, spec, k, draws, n_boot, alpha, margin, seed) -> dict:
    """Reruns of the reference's seeds (other numerics, no intended change) against them, k seed pairs
    per draw, compared as `check` does with and without --pair-seeds."""
    seeds, base, again = seed_pairs(ref, rerun)
    if len(seeds) < k:
        return {"k": k, "skipped": f"needs {k} rerun seeds that the reference also ran, have {len(seeds)}"}
    shifts = np.abs(_seed_values(ref, spec, again) - _seed_values(ref, spec, base)) * spec.scale
    rates = {mode: detection_rate(base, again, ref.truth, spec, k, draws, rng_seed=seed + 400, n_boot=n_boot,
                                  margin=margin, alpha=alpha, min_reference_seeds=MIN_SEEDS, detect="equivalent",
                                  paired=mode == "paired") for mode in ("paired", "unpaired")}
    return {"k": k, "seeds": seeds, "identical": sum(_identical(a, b) for a, b in zip(base, again)),
            "max_shift": float(shifts.max()), "distinct_draws": math.comb(len(seeds), k), **rates}


def seed_pairing(ref: Side, reg: Side | None, rerun: Side | None, spec, ks, draws, n_boot, alpha, margin,
                 seed) -> dict:
    """(d) `check --pair-seeds`, calibrated: its A/A rate on pairs that share nothing, its power on the
    regression paired by seed (beside (b), unpaired), and reruns of the same seeds if given."""
    options = dict(n_boot=n_boot, margin=margin, alpha=alpha, min_reference_seeds=MIN_SEEDS, paired=True)
    out = {"false_alarms": [false_alarm_rate(ref.outputs, ref.truth, spec, k, draws, rng_seed=seed + 300 + k,
                                             **options) for k in ks if len(ref.seeds) >= 2 * k],
           "detection": [], "correlation": None, "rerun": None}
    if reg is not None:
        seeds, base, worse = seed_pairs(ref, reg)
        if len(seeds) > 2:
            r = np.corrcoef(_seed_values(ref, spec, base), _seed_values(ref, spec, worse))[0, 1]
            out["correlation"] = {"seeds": len(seeds), "r": float(r)}
        out["detection"] = [detection_rate(base, worse, ref.truth, spec, k, draws, rng_seed=seed + 350 + k, **options)
                            for k in ks if len(seeds) >= k]
    if rerun is not None:
        out["rerun"] = _rerun_rates(ref, rerun, spec, MIN_SEEDS, draws, n_boot, alpha, margin, seed)
    return out


def seeds_needed(cells: list[dict], target: float, alpha: float) -> dict:
    """The smallest k whose median MDE at 100% of the examples is <= target; else an extrapolation
    from a fit se^2 = a + b / k (example noise + seed noise), or why seeds alone cannot reach it."""
    full = [c for c in cells if c["fraction"] == 1.0 and c["median_mde"] is not None]
    reached = [c["k"] for c in full if c["median_mde"] <= target]
    if reached:
        return {"k": min(reached), "how": "measured"}
    # Below the check's 3 seeds the t interval has so few degrees of freedom that its MDE follows no
    # se^2 = a + b/k law (and k = 1 measures no seed spread at all): fit on k >= 3 only.
    full = [c for c in full if c["k"] >= MIN_SEEDS]
    if len(full) < 2:
        return {"k": None, "how": f"not measured, and too few seed counts >= {MIN_SEEDS} to extrapolate"}
    z = minimum_detectable_effect(1.0, alpha)
    ks = np.asarray([c["k"] for c in full], dtype=float)
    se2 = (np.asarray([c["median_mde"] for c in full]) / z) ** 2
    b, a = np.polyfit(1 / ks, se2, 1)
    need = (target / z) ** 2 - a
    fit = f"fit se^2 = {a:.3g} + {b:.3g}/k on k = {', '.join(str(int(k)) for k in ks)}"
    if b <= 0 or need <= 0:
        floor = z * math.sqrt(max(a, 0.0))
        return {"k": None, "how": f"not reachable by seeds alone at this dev-set size: the term that does not "
                                  f"shrink with seeds gives an MDE of ~{floor:.2f} ({fit})"}
    k = max(int(math.ceil(b / need)), int(ks.max()) + 1)  # more than every k measured (none reached it)
    far = f"; far beyond the measured k <= {int(ks.max())}, so read it as 'many more'" if k > 2 * ks.max() else ""
    return {"k": k, "how": f"extrapolated, {fit}{far}"}


def calibration_report(reference_runs: Sequence[RunRecord], regressed_runs: Sequence[RunRecord] = (),
                       rerun_runs: Sequence[RunRecord] = (), *, draws: int = 1000, n_boot: int = 1000,
                       alpha: float = ALPHA, margin: float | None = None,
                       false_alarm_ks=(1, 2, 3, 5), detection_ks=(3, 5, 8), mde_ks=(1, 2, 3, 5, 8, 10),
                       fractions=(0.25, 0.5, 1.0), mde_draws: int = 30, target: float = 1.0, seed: int = 0,
                       command: str = COMMAND) -> tuple[str, dict]:
    """(markdown, data) of the calibration; ``margin`` and ``target`` in printed units (points)."""
    ref, reg = _sides(reference_runs, regressed_runs)
    spec = metric_spec(ref)
    stored_margin = spec.margin if margin is None else margin / spec.scale
    data = {"task": ref.task, "model": ref.model, "metric": spec.label, "scale": spec.scale, "n_boot": n_boot,
            "alpha": alpha, "margin": stored_margin * spec.scale, "draws": draws, "mde_draws": mde_draws,
            "seed": seed, "target": target, "command": command, "examples": len(ref.truth),
            "reference": {"seeds": ref.seeds, "runs": ref.runs, "unfinished": ref.unfinished, "failed": ref.failed},
            "regression": None if reg is None else {"seeds": reg.seeds, "runs": reg.runs},
            "setting_difference": describe(differences(reg.fingerprint, ref.fingerprint)) if reg else None}
    if reg is None and regressed_runs:
        data["regression"] = {"seeds": [], "runs": [], "unfinished": len(regressed_runs)}
    data["false_alarms"] = false_alarms(ref, spec, false_alarm_ks, draws, n_boot, alpha, stored_margin, seed)
    data["se_check"] = se_check(ref, spec, false_alarm_ks, draws, n_boot, seed)
    data["one_candidate_seed"] = one_candidate_seed(ref, spec, draws, n_boot, alpha, stored_margin, seed)
    data["detection"] = detection(ref, reg, spec, detection_ks, draws, n_boot, alpha, stored_margin, seed)
    data["mde"] = mde_grid(ref, reg, spec, mde_ks, fractions, mde_draws, n_boot, alpha, seed)
    data["seeds_needed"] = seeds_needed(data["mde"], target, alpha)
    rerun = _rerun_side(ref, rerun_runs)
    data["reruns"] = None if rerun is None else {"seeds": rerun.seeds, "runs": rerun.runs}
    data["pairing"] = seed_pairing(ref, reg, rerun, spec, (MIN_SEEDS, 5, 8), draws, n_boot, alpha, stored_margin, seed)
    return render_markdown(data), data


def _rerun_side(ref: Side, rerun_runs: Sequence[RunRecord]) -> Side | None:
    """The reruns as one side: the reference's setting (refused if they differ in more than the seed)."""
    if not rerun_runs:
        return None
    rerun = side_from_runs("rerun", ref.task, ref.model, list(rerun_runs))
    if not rerun.finished:
        return None
    why = differences(rerun.fingerprint, ref.fingerprint)
    if why or truth_difference(ref.kind, ref.truth, rerun.truth):
        raise HarnessError(f"the reruns are not the reference setting on its dev examples "
                           f"({describe(why) if why else 'other dev examples'}); rerun its seeds unchanged.")
    return rerun


# ---------------------------------------------------------------------------------------------
# The report


def _rate(row: dict) -> str:
    return f"{100 * row['rate']:.1f}% [{100 * row['rate_lo']:.1f}, {100 * row['rate_hi']:.1f}]"


def _counts(row: dict) -> str:
    return ", ".join(f"{n} {v}" for v, n in row["counts"].items() if n)


def _seeds(seeds: list) -> str:
    return f"{len(seeds)} seed" + ("" if len(seeds) == 1 else "s")


def _setup_lines(data: dict) -> list[str]:
    ref, reg = data["reference"], data["regression"] or {"seeds": []}
    return [
        f"# `harness check` calibration: {data['task']} / {data['model']}, {data['metric']}", "",
        f"Regenerate: `{data['command']}`", "",
        f"Runs used: reference setting {_seeds(ref['seeds'])} ({', '.join(map(str, ref['seeds']))})"
        + (f", {ref['unfinished']} not finished" if ref.get("unfinished") else "")
        + f"; regression setting {_seeds(reg['seeds'])} ({', '.join(map(str, reg['seeds'])) or 'none'})"
        + (f", differing from the reference in {data['setting_difference']}" if data["setting_difference"] else "")
        + f". Each run is scored on the same {data['examples']} dev examples.", "",
        f"How: every comparison is `harness check`'s for one entry: Δ with a t interval whose variance adds each "
        f"side's seed spread and a paired bootstrap over dev examples, their interaction counted once "
        f"(harness.report.stats.crossed_comparison; n_boot {data['n_boot']}), verdict at alpha {data['alpha']:g} without multiple-testing adjustment "
        f"(one entry), equivalence margin +-{data['margin']:g} points, a reference needs {MIN_SEEDS} seeds. "
        f"Rates are over {data['draws']} random draws (random seed {data['seed']}) with 95% Wilson intervals; "
        f"draws repeat when few distinct ones exist, and then the interval understates the uncertainty.", ""]


def _false_alarm_lines(data: dict) -> list[str]:
    lines = ["## (a) False alarms: A/A, disjoint seed groups of the reference setting", "",
             "| k per side | distinct splits | draws | verdicts | false alarms (better or worse) "
             "| without the 3-seed rule |",
             "|---|---|---|---|---|---|"]
    for row in data["false_alarms"]:
        if "skipped" in row:
            lines.append(f"| {row['k']} | - | - | {row['skipped']} | - | - |")
            continue
        raw = row.get("without_seed_rule")
        lines.append(f"| {row['k']} | {row['distinct_splits']:,} | {row['draws']} | {_counts(row)} | {_rate(row)} | "
                     f"{_rate(raw) + ' (' + _counts(raw) + ')' if raw else 'same'} |")
    one = data.get("one_candidate_seed")
    if one:
        shown = (f"| 1 vs {one['k_reference']} | - | - | {one['skipped']} | - | - |" if "skipped" in one else
                 f"| 1 vs {one['k_reference']} | {one['distinct_splits']:,} | {one['draws']} | {_counts(one)} | "
                 f"{_rate(one)} | same |")
        lines.append(shown)
    default = next((r for r in data["false_alarms"] if r["k"] == MIN_SEEDS and "skipped" not in r), None)
    if default:
        met = "met" if default["rate"] <= 0.05 else "NOT met"
        lines += ["", f"At the default k = {MIN_SEEDS}: {_rate(default)} false alarms; goal <= 5%: {met}."]
    checks = [r for r in data.get("se_check", []) if r["ratio"] is not None]
    if checks:
        shown = "; ".join(f"k = {r['k']}: se {r['bootstrap_se']:.2f} vs sd {r['splits_sd']:.2f} (x{r['ratio']:.2f})"
                          for r in checks)
        lines += ["", f"The check's standard error of Δ against the spread of Δ over {checks[0]['draws']} random "
                  f"A/A splits (se: mean over {checks[0]['bootstraps']} comparisons; points): {shown}. A ratio near "
                  "1 means the interval is as wide as the seed noise on this dev set needs; above 1, conservative "
                  "(fewer false alarms, larger MDE)."]
    lines += ["", f"1 vs {MIN_SEEDS} is the baseline use (one new candidate run against a {MIN_SEEDS}-seed "
              "baseline): a verdict is given; the candidate's one seed is assumed to vary as the reference's seeds do.",
              "", f"With fewer than {MIN_SEEDS} reference seeds `check` says inconclusive by rule: with one seed per "
              "side no seed spread can be measured, so the interval covers only the dev-example noise. "
              + _without_rule_reading(data["false_alarms"]), ""]
    return lines


def _without_rule_reading(rows: list[dict]) -> str:
    """What the rates without the seed rule show, read from the measured numbers (not assumed)."""
    measured = [(r["k"], r["without_seed_rule"]) for r in rows if r.get("without_seed_rule")]
    if not measured:
        return "Too few seeds have finished to measure the rate without the rule."
    parts = [f"k = {k}: {_rate(raw)}" for k, raw in measured]
    over = [k for k, raw in measured if raw["rate"] > 0.05]
    verdict = (f"above 5% at k = {', '.join(map(str, over))}: there the example noise alone understates the "
               f"seed spread and same-setting runs are called different." if over else
               "within 5% here: on these runs the example noise covers the seed spread, but nothing guarantees that "
               "on another task, so the rule stays.")
    return f"Measured without the rule ({'; '.join(parts)}): {verdict}"


def _detection_lines(data: dict) -> list[str]:
    det = data["detection"]
    lines = ["## (b) Detection of a real regression (regression setting vs reference)", ""]
    if det["effect"] is None:
        return lines + [f"Skipped: {det['skipped']}.", ""]
    e, scale = det["effect"], data["scale"]
    lines += [f"Measured effect with all seeds ({e['n_candidate']} vs {e['n_reference']}): Δ = "
              f"{e['delta'] * scale:+.2f} points, 95% CI [{e['lo'] * scale:+.2f}, {e['hi'] * scale:+.2f}] "
              f"(the check's interval, all seeds).", "",
              "| k per side | distinct draws | draws | verdicts | detection rate (worse) |", "|---|---|---|---|---|"]
    for row in det["rates"]:
        if "skipped" in row:
            lines.append(f"| {row['k']} | - | - | {row['skipped']} | - |")
        else:
            lines.append(f"| {row['k']} | {row['distinct_draws']:,} | {row['draws']} | {_counts(row)} | {_rate(row)} |")
    return lines + [""]


def _mde_lines(data: dict) -> list[str]:
    fractions = sorted({c["fraction"] for c in data["mde"]})
    ks = sorted({c["k"] for c in data["mde"]})
    cells = {(c["k"], c["fraction"]): c for c in data["mde"]}
    head = [f"{100 * f:g}% ({cells[(ks[0], f)]['examples']} ex.)" for f in fractions]
    lines = [f"## (c) Seeds and examples a {data['target']:g}-point effect needs", "",
             f"Median minimum detectable effect (points, 80% power, alpha {data['alpha']:g}) over {data['mde_draws']} "
             f"draws per cell; examples subsampled without replacement, the same for both sides.", "",
             "| seeds per side | " + " | ".join(head) + " | groups |", "|---|" + "---|" * (len(fractions) + 1)]
    for k in ks:
        row = [cells[(k, f)] for f in fractions]
        values = ["-" if c["median_mde"] is None else f"{c['median_mde']:.2f}" for c in row]
        source = next((c["source"] for c in row if c["source"]), f"not enough seeds for {k} per side")
        lines.append(f"| {k} | " + " | ".join(values) + f" | {source} |")
    need = data["seeds_needed"]
    answer = f"k = {need['k']} ({need['how']})" if need["k"] is not None else need["how"]
    lines += ["", f"Smallest seeds per side with a median MDE <= {data['target']:g} point on all examples: {answer}. "
              "With Holm over m entries the effective alpha is smaller, so the MDE is larger.", ""]
    return lines


def _rate_rows(rows: list[dict], label: str) -> list[str]:
    lines = [f"| k seed pairs | draws | verdicts | {label} |", "|---|---|---|---|"]
    return lines + [f"| {r['k']} | {r['draws']} | {_counts(r)} | {_rate(r)} |" for r in rows]


def _rerun_lines(data: dict) -> list[str]:
    rerun = data["pairing"].get("rerun")
    if rerun is None:
        return ["Reruns of the reference's seeds: none given (`--reruns DIR`).", ""]
    if "skipped" in rerun:
        return [f"Reruns of the reference's seeds: {rerun['skipped']}.", ""]
    alarms = {m: rerun[m]["counts"]["better"] + rerun[m]["counts"]["worse"] for m in ("paired", "unpaired")}
    runs = len(data["reruns"]["runs"])
    lines = [f"Reruns of the reference's {len(rerun['seeds'])} seeds with other numerics ({runs} "
             f"runs; {rerun['identical']} give predictions identical to the original seed's, the largest score "
             f"change is {rerun['max_shift']:.2f} points), {rerun['k']} seed pairs per draw "
             f"({rerun['distinct_draws']:,} distinct), each mode's verdicts:", "",
             "| mode | draws | verdicts | equivalent | false alarms (better or worse) |", "|---|---|---|---|---|"]
    for mode in ("paired", "unpaired"):
        row = rerun[mode]
        lo, hi = wilson_interval(alarms[mode], row["draws"])
        lines.append(f"| {'--pair-seeds' if mode == 'paired' else 'default'} | {row['draws']} | {_counts(row)} | "
                     f"{_rate(row)} | {100 * alarms[mode] / row['draws']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] |")
    return lines + [""]


def _pairing_lines(data: dict) -> list[str]:
    pairing = data["pairing"]
    lines = ["## (d) Seed-paired checks (`--pair-seeds`)", "",
             "Run i of each side shares its training seed; Δ's interval comes from the spread of the per-seed "
             "differences (harness.report.stats.seed_paired_comparison), S − 1 degrees of freedom for the seed part. "
             "A paired test is valid however alike the pairs are; it gains power only when a shared seed makes them "
             "alike.", "",
             "False alarms where the pairs share nothing (disjoint seeds of the reference setting, paired at random):",
             ""] + _rate_rows(pairing["false_alarms"], "false alarms (better or worse)") + [""]
    if pairing["detection"]:
        corr = pairing["correlation"]
        shown = f"; the two settings' scores correlate over the {corr['seeds']} shared seeds at r = {corr['r']:.2f}" \
            if corr else ""
        lines += [f"The regression paired by seed (same seed, other learning rate{shown}), against (b) unpaired:", ""]
        lines += _rate_rows(pairing["detection"], "detection rate (worse)") + [""]
    return lines + _rerun_lines(data)


def render_markdown(data: dict) -> str:
    """The report text: setup (how it was computed), then (a), (b), (c) and (d)."""
    return "\n".join(_setup_lines(data) + _false_alarm_lines(data) + _detection_lines(data) + _mde_lines(data)
                     + _pairing_lines(data))


def calibrate_command(records: list[RunRecord], out=None, *, where: dict | None = None,
                      reference_where: dict | None = None, regressed_where: dict | None = None,
                      rerun_records: Sequence[RunRecord] = (), **options) -> str:
    """`harness check calibrate`: the report text from the grid's runs (``where`` selects among them;
    the two settings are split by learning rate, 3e-3 and 1.5e-3, by default) and reruns of the
    reference's seeds (``rerun_records``), written to ``out`` if given. Exit code 0: the report is the
    result; no verdict here fails anything."""
    records = select(records, where)
    reference = select(records, reference_where or REFERENCE)
    try:
        regressed = select(records, regressed_where or REGRESSED)
    except HarnessError:
        regressed = []  # not started yet: (b) says so
    text, _ = calibration_report(reference, regressed, rerun_records, **options)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
    return text
