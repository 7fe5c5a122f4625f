"""The statistics behind `harness check` verdicts: a candidate method's runs against a reference's.

Per entry (task x model) both methods are scored on the same dev examples by several training seeds.
Two things make a difference between them noisy, and the bootstrap here resamples both:

* which dev examples were drawn: each resample draws example indices with replacement, the SAME
  indices for both sides (paired: an example that is hard for one method is usually hard for the
  other, and pairing cancels that shared difficulty instead of counting it twice);
* which training seeds were drawn: independently per side, each resample draws that side's seeds
  with replacement. With few seeds this term often dominates (seed spread of LoRA/FT on small GLUE
  tasks is of the order of a point), so a CI over examples alone would be overconfident.

A side's value on a resample is the mean over its drawn seeds of the metric recomputed on the
resampled examples; Δ* is candidate minus reference. Metrics with per-example sufficient statistics
(``MetricSpec.stats``/``from_stats``) are resampled with one matrix product (multinomial count
weights x statistics); others (spearman) call ``fn`` on each resample.

Everything here is a pure function of its inputs; the CLI wiring lives in harness.report.check.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from statistics import NormalDist

import numpy as np

from harness.errors import HarnessError

VERDICTS = ("better", "equivalent", "inconclusive", "worse")
_CHUNK_CELLS = 4_000_000  # resample rows x examples per count-weight block (32 MB of float64)


@dataclass(frozen=True)
class Comparison:
    """One paired bootstrap comparison; Δ is candidate - reference in stored units (not oriented)."""

    delta: float  # mean over seeds of the candidate's metric - the same for the reference, full set
    lo: float  # percentile interval of Δ*
    hi: float
    p_value: float  # two-sided bootstrap p of Δ = 0, (count + 1) / (n_boot + 1) corrected
    se: float  # standard deviation of Δ*
    n_examples: int
    n_candidate: int  # seeds
    n_reference: int
    candidate_value: float  # the two means behind delta
    reference_value: float
    n_boot: int
    confidence: float = 0.95
    df: float | None = None  # degrees of freedom of a t interval (crossed_comparison); None: percentile bootstrap
    samples: np.ndarray = field(default=None, repr=False, compare=False)  # Δ*, (n_boot,)
    candidate_samples: np.ndarray = field(default=None, repr=False, compare=False)  # each side's value
    reference_samples: np.ndarray = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """The scalar fields (what a report stores); the resample arrays are left out."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.compare}


@dataclass(frozen=True)
class _Fns:
    name: str
    fn: Callable | None
    stats: Callable | None
    from_stats: Callable | None


def _resolve(spec_or_fns) -> _Fns:
    """A MetricSpec (or anything with fn/stats/from_stats), a bare ``fn``, or a (stats, from_stats) pair."""
    if isinstance(spec_or_fns, tuple) and len(spec_or_fns) == 2:
        resolved = _Fns("metric", None, *spec_or_fns)
    elif callable(spec_or_fns) and not hasattr(spec_or_fns, "fn"):
        resolved = _Fns(getattr(spec_or_fns, "__name__", "metric"), spec_or_fns, None, None)
    else:
        resolved = _Fns(getattr(spec_or_fns, "name", "metric"), getattr(spec_or_fns, "fn", None),
                        getattr(spec_or_fns, "stats", None), getattr(spec_or_fns, "from_stats", None))
    if resolved.fn is None and (resolved.stats is None or resolved.from_stats is None):
        raise HarnessError(f"metric '{resolved.name}' has neither a per-example function nor sufficient statistics, "
                           f"so it cannot be recomputed on bootstrap resamples.")
    return resolved


def _as_column(values):
    """Numeric or boolean 1-D data as an array (fast fancy indexing); anything else (text) as a list."""
    try:
        array = np.asarray(values)
    except ValueError:  # ragged, e.g. lists of references
        return list(values)
    return array if array.ndim == 1 and array.dtype.kind in "biuf" else list(values)


def take(values, idx: np.ndarray):
    """The items of an array (fancy indexing) or a list (text) at ``idx``."""
    return values[idx] if isinstance(values, np.ndarray) else [values[i] for i in idx]


def _check_runs(side: str, runs: Sequence, n: int) -> list:
    runs = [_as_column(r) for r in runs]
    if not runs:
        raise HarnessError(f"no {side} runs to compare; every side needs at least one seed's predictions.")
    for i, run in enumerate(runs):
        if len(run) != n:
            raise HarnessError(f"{side} seed {i} has {len(run)} predictions but there are {n} labels; "
                               f"compare runs scored on the same dev examples.")
    return runs


def _draws(rng, n_boot: int, n: int, n_cand: int, n_ref: int, indices, seed_draws):
    """Example indices (n_boot, n), then each side's seed indices; injected ones are checked and used.

    Example indices come first from ``rng`` with the call sacrebleu.significance makes, so the same
    seed and n_boot give the resamples of sacrebleu's paired bootstrap.
    """
    if indices is None:
        indices = rng.choice(n, size=(n_boot, n), replace=True)
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 2 or indices.shape[1] != n or indices.size and (indices.min() < 0 or indices.max() >= n):
        raise HarnessError(f"resample indices must be an (n_boot, {n}) array of example indices in [0, {n}).")
    n_boot = len(indices)
    if seed_draws is None:
        seed_draws = (rng.integers(0, n_cand, size=(n_boot, n_cand)), rng.integers(0, n_ref, size=(n_boot, n_ref)))
    cand, ref = (np.asarray(d, dtype=np.int64) for d in seed_draws)
    for draw, count, side in ((cand, n_cand, "candidate"), (ref, n_ref, "reference")):
        if draw.ndim != 2 or len(draw) != n_boot or draw.size and (draw.min() < 0 or draw.max() >= count):
            raise HarnessError(f"{side} seed draws must be an ({n_boot}, m) array of seed indices in [0, {count}).")
    return indices, cand, ref


def _row_counts(indices: np.ndarray, n: int) -> np.ndarray:
    """How often each example occurs in each resample: multinomial count weights (rows, n)."""
    rows = len(indices)
    flat = (indices + n * np.arange(rows)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)


def _values_by_stats(fns: _Fns, labels, runs: list, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed metric on every resample (n_boot, seeds) and on the full set (seeds,), by statistics."""
    blocks = [np.asarray(fns.stats(run, labels), dtype=np.float64) for run in runs]
    stats = np.concatenate(blocks, axis=1)
    summed = np.empty((len(indices), stats.shape[1]))
    step = max(1, _CHUNK_CELLS // max(1, stats.shape[0]))
    for start in range(0, len(indices), step):
        summed[start:start + step] = _row_counts(indices[start:start + step], stats.shape[0]) @ stats
    edges = np.cumsum([0] + [b.shape[1] for b in blocks])
    boot = np.stack([fns.from_stats(summed[:, a:b]) for a, b in zip(edges[:-1], edges[1:])], axis=1)
    full = [fns.fn(run, labels) if fns.fn else fns.from_stats(block.sum(0)) for run, block in zip(runs, blocks)]
    return boot, np.asarray(full, dtype=np.float64)


def _values_by_fn(fns: _Fns, labels, runs: list, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """As ``_values_by_stats``, calling ``fn`` on each resample (metrics whose parts do not add up)."""
    boot = np.empty((len(indices), len(runs)))
    for b, idx in enumerate(indices):
        resampled_labels = take(labels, idx)
        boot[b] = [fns.fn(take(run, idx), resampled_labels) for run in runs]
    return boot, np.asarray([fns.fn(run, labels) for run in runs], dtype=np.float64)


def _inputs(spec_or_fns, labels, candidate: Sequence, reference: Sequence, confidence: float):
    """The metric's functions and the checked labels and runs that every comparison starts from."""
    fns, labels = _resolve(spec_or_fns), _as_column(labels)
    n = len(labels)
    if n == 0:
        raise HarnessError("no dev examples to compare on.")
    if not 0 < confidence < 1:
        raise HarnessError(f"confidence must be between 0 and 1 (e.g. 0.95), not {confidence}.")
    return fns, labels, _check_runs("candidate", candidate, n), _check_runs("reference", reference, n)


def _values(fns: _Fns, labels, runs: list, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed metric on every resample and on the full set: by statistics when the metric has them."""
    by = _values_by_stats if fns.stats is not None and fns.from_stats is not None else _values_by_fn
    return by(fns, labels, runs, indices)


def _example_bootstrap(fns: _Fns, labels, runs: list, n_boot: int, seed: int | None):
    """Each run's metric on ``n_boot`` (at least 2) resamples of the examples, the same for every run, and
    on the examples themselves: (n_boot, runs) and (runs,)."""
    n = len(labels)
    return _values(fns, labels, runs, np.random.default_rng(seed).choice(n, size=(max(2, n_boot), n), replace=True))


def paired_bootstrap(spec_or_fns, labels, candidate: Sequence, reference: Sequence, n_boot: int = 2000,
                     seed: int | None = 0, confidence: float = 0.95, *, indices=None,
                     seed_draws=None) -> Comparison:
    """Compare per-seed predictions of two methods on the same examples (see the module doc).

    ``candidate``/``reference``: one prediction array per seed, each aligned with ``labels``.
    ``indices`` (n_boot, n) and ``seed_draws`` ((n_boot, a), (n_boot, b)) replace the random example
    and seed draws, so tests can enumerate resamples; ``n_boot`` is then ``len(indices)``.
    """
    fns, labels, candidate, reference = _inputs(spec_or_fns, labels, candidate, reference, confidence)
    n = len(labels)
    if indices is None and n_boot < 1:
        raise HarnessError(f"n_boot must be at least 1, not {n_boot}.")
    rng = np.random.default_rng(seed)
    indices, cand_draws, ref_draws = _draws(rng, n_boot, n, len(candidate), len(reference), indices, seed_draws)
    boot, full = _values(fns, labels, candidate + reference, indices)
    cand_boot, ref_boot = boot[:, :len(candidate)], boot[:, len(candidate):]
    cand_side = np.take_along_axis(cand_boot, cand_draws, axis=1).mean(axis=1)
    ref_side = np.take_along_axis(ref_boot, ref_draws, axis=1).mean(axis=1)
    samples = cand_side - ref_side
    cand_value, ref_value = float(full[:len(candidate)].mean()), float(full[len(candidate):].mean())
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(samples, [tail, 1 - tail])
    return Comparison(
        delta=cand_value - ref_value, lo=float(lo), hi=float(hi), p_value=bootstrap_p_value(samples),
        se=float(samples.std(ddof=1)) if len(samples) > 1 else 0.0, n_examples=n, n_candidate=len(candidate),
        n_reference=len(reference), candidate_value=cand_value, reference_value=ref_value, n_boot=len(samples),
        confidence=confidence, samples=samples, candidate_samples=cand_side, reference_samples=ref_side)


def _interaction(resampled: np.ndarray) -> float:
    """The seed-by-example interaction that both a side's seed spread and the example bootstrap of its
    seed mean hold: (v1 − v_S) / (S − 1), from resampled per-seed values (n_boot, S)."""
    return (resampled.var(axis=0, ddof=1).mean() - resampled.mean(axis=1).var(ddof=1)) / (resampled.shape[1] - 1)


def _satterthwaite(terms: Sequence[tuple[float, float]], confidence: float, fallback_df: float
                   ) -> tuple[float, float, float]:
    """(se, df, t) of a sum of independent variance parts, each with its degrees of freedom: the t
    quantile at Satterthwaite's df (``fallback_df`` when there is no spread)."""
    from scipy import stats as scipy_stats

    variance = sum(part for part, _ in terms)
    se = math.sqrt(max(variance, 0.0))
    denominator = sum(part ** 2 / max(dof, 1) for part, dof in terms)
    df = variance ** 2 / denominator if se > 0 and denominator > 0 else fallback_df
    t = float(scipy_stats.t.ppf(1 - (1 - confidence) / 2, df)) if se > 0 else 0.0
    return se, float(df), t


def _t_p_value(delta: float, se: float, df: float) -> float:
    """Two-sided p of Δ = 0 for a t interval; with no spread, 1 for Δ = 0 and 0 otherwise."""
    from scipy import stats as scipy_stats

    return min(1.0, float(2 * scipy_stats.t.sf(abs(delta) / se, df))) if se > 0 else (1.0 if delta == 0 else 0.0)


def crossed_comparison(spec_or_fns, labels, candidate: Sequence, reference: Sequence, n_boot: int = 2000,
                       seed: int | None = 0, confidence: float = 0.95) -> Comparison:
    """Δ with an interval whose variance counts each source of noise once: the default of `check`.

    Seeds and dev examples are crossed (every seed is scored on every example), and resampling both
    at once (``paired_bootstrap``) counts their interaction, the seed-by-example disagreement, twice
    more than it occurs: on SST-2 its interval was 1.55 times the spread of Δ between seed groups.
    Here, as in a two-way random-effects analysis of variance:

        Var(Δ) = s²_cand/S_cand + s²_ref/S_ref          the seeds' spread of each side's metric
               + Var_examples(Δ*)                        the paired bootstrap over examples, seeds fixed
               − Σ_side (v1 − v_S) / (S − 1)             the interaction, which both terms hold

    where v1 is the example-bootstrap variance of one seed's metric (averaged over seeds) and v_S that
    of the seeds' mean. The interval is Δ ± t·√Var with Satterthwaite's degrees of freedom (few seeds
    give few degrees of freedom, a wide t). A side with one seed borrows the other side's seed spread.
    """
    fns, labels, candidate, reference = _inputs(spec_or_fns, labels, candidate, reference, confidence)
    n = len(labels)
    boot, full = _example_bootstrap(fns, labels, candidate + reference, n_boot, seed)
    sides = [(boot[:, :len(candidate)], full[:len(candidate)]), (boot[:, len(candidate):], full[len(candidate):])]
    samples = sides[0][0].mean(axis=1) - sides[1][0].mean(axis=1)
    delta = float(sides[0][1].mean() - sides[1][1].mean())
    seed_var = [float(values.var(ddof=1)) if len(values) > 1 else None for _, values in sides]
    known = [(v, len(values)) for v, (_, values) in zip(seed_var, sides) if v is not None]
    # The example part estimates the methods' per-example difference; it cannot be negative.
    example_part = float(samples.var(ddof=1))
    for resampled, values in sides:
        if len(values) > 1:  # the interaction, present in both the seed spread and the example resampling
            example_part -= _interaction(resampled)
    example_part = max(example_part, 0.0)
    terms = [(example_part, n - 1)]
    for spread, (_, values) in zip(seed_var, sides):
        # A side with one seed has no spread of its own: it borrows the other side's (and its degrees of freedom).
        spread_used, dof = (spread, len(values) - 1) if spread is not None else (known[0][0], known[0][1] - 1) \
            if known else (0.0, 1)
        terms.append((spread_used / len(values), dof))
    se, df, t = _satterthwaite(terms, confidence, float(n - 1))
    p = _t_p_value(delta, se, df)
    return Comparison(
        delta=delta, lo=delta - t * se, hi=delta + t * se, p_value=p, se=se, n_examples=n,
        n_candidate=len(candidate), n_reference=len(reference), candidate_value=float(sides[0][1].mean()),
        reference_value=float(sides[1][1].mean()), n_boot=len(samples), confidence=confidence, df=float(df),
        samples=samples, candidate_samples=sides[0][0].mean(axis=1), reference_samples=sides[1][0].mean(axis=1))


@dataclass(frozen=True)
class Interval:
    """One setting's mean score over seeds with a t interval (stored units)."""

    value: float
    lo: float
    hi: float
    se: float
    df: float
    n_seeds: int
    n_examples: int


def _one_sample(boot: np.ndarray, full: np.ndarray, n: int, confidence: float) -> tuple[float, float, float]:
    """(se, df, t) of the mean over seeds of one per-seed quantity (a score, or a seed-paired
    difference), from its example resamples (n_boot, S) and full-set values (S,): the seeds' spread / S
    plus the example bootstrap of the seed mean, less the interaction both hold. One seed: the
    examples' part only (no seed noise is known)."""
    seeds = len(full)
    example_part = float(boot.mean(axis=1).var(ddof=1))
    terms = []
    if seeds > 1:
        example_part = max(example_part - _interaction(boot), 0.0)
        terms.append((float(full.var(ddof=1)) / seeds, seeds - 1))
    terms.append((example_part, n - 1))
    return _satterthwaite(terms, confidence, float(n - 1))


def score_interval(spec_or_fns, labels, runs: Sequence, n_boot: int = 2000, seed: int | None = 0,
                   confidence: float = 0.95) -> Interval:
    """The interval of one setting's score (mean over its seeds), its noise counted as in
    ``crossed_comparison`` (``_one_sample``). With a MetricSpec, the interval is cut at the metric's
    bounds (the mean cannot lie beyond them)."""
    fns, labels, runs, _ = _inputs(spec_or_fns, labels, runs, runs[:1] or [[]], confidence)
    n, seeds = len(labels), len(runs)
    boot, full = _example_bootstrap(fns, labels, runs, n_boot, seed)
    se, df, t = _one_sample(boot, full, n, confidence)
    value = float(full.mean())
    clip = getattr(spec_or_fns, "clipped", float)  # a MetricSpec cuts it at the metric's bounds
    return Interval(value, clip(value - t * se), clip(value + t * se), se, df, seeds, n)


def seed_paired_comparison(spec_or_fns, labels, candidate: Sequence, reference: Sequence, n_boot: int = 2000,
                           seed: int | None = 0, confidence: float = 0.95) -> Comparison:
    """Δ when candidate run i and reference run i share their training seed (`check --pair-seeds`).

    The per-seed difference d_s = metric(candidate_s) − metric(reference_s) is one sample per seed,
    treated as ``score_interval`` treats a score: Var(Δ) = s²_d/S + the example bootstrap of the mean
    d (the same resampled examples for both sides) − the interaction both hold, with S − 1 degrees of
    freedom for the seed part. A valid test whenever the pairs are exchangeable; it gains power when a
    shared seed makes the two runs alike (a library upgrade, a refactor: identical runs give Δ = 0 with
    a zero-width interval) and loses a little (fewer degrees of freedom) when it does not.
    """
    fns, labels, candidate, reference = _inputs(spec_or_fns, labels, candidate, reference, confidence)
    if len(candidate) != len(reference):
        raise HarnessError(f"a seed-paired comparison needs one reference run per candidate run (same seeds); got "
                           f"{len(candidate)} candidate and {len(reference)} reference runs.")
    n, seeds = len(labels), len(candidate)
    boot, full = _example_bootstrap(fns, labels, candidate + reference, n_boot, seed)
    diff_boot, diff_full = boot[:, :seeds] - boot[:, seeds:], full[:seeds] - full[seeds:]
    se, df, t = _one_sample(diff_boot, diff_full, n, confidence)
    delta = float(diff_full.mean())
    p = _t_p_value(delta, se, df)
    return Comparison(
        delta=delta, lo=delta - t * se, hi=delta + t * se, p_value=p, se=se, n_examples=n,
        n_candidate=seeds, n_reference=seeds, candidate_value=float(full[:seeds].mean()),
        reference_value=float(full[seeds:].mean()), n_boot=len(boot), confidence=confidence, df=float(df),
        samples=diff_boot.mean(axis=1), candidate_samples=boot[:, :seeds].mean(axis=1),
        reference_samples=boot[:, seeds:].mean(axis=1))


def mean_of(values: Sequence[float], ses: Sequence[float], dfs: Sequence[float], confidence: float = 0.95
            ) -> tuple[float, float, float, float, float]:
    """(mean, lo, hi, se, df) of the mean of independent estimates (tasks of a suite), Satterthwaite's df."""
    k = len(values)
    se, df, t = _satterthwaite([((se / k) ** 2, d) for se, d in zip(ses, dfs)], confidence, float("inf"))
    mean = sum(values) / k
    return mean, mean - t * se, mean + t * se, se, df


def bootstrap_p_value(samples: np.ndarray) -> float:
    """Two-sided p of "no difference": 2 min(P(Δ* <= 0), P(Δ* >= 0)), each (count + 1) / (n + 1).

    The +1 keeps a finite bootstrap from reporting p = 0 (and the test from rejecting more often
    than alpha); Δ* that are all exactly 0 (identical systems) give p = 1.
    """
    samples = np.asarray(samples)
    below, above = int(np.sum(samples <= 0)), int(np.sum(samples >= 0))
    return min(1.0, 2 * (min(below, above) + 1) / (len(samples) + 1))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order (monotone in the sorted order, <= 1).

    `harness check` tests many entries at once; Holm controls the chance of any false verdict
    (family-wise error) without assuming the entries are independent, and is uniformly more
    powerful than Bonferroni.
    """
    p = np.asarray(list(p_values), dtype=np.float64)
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise HarnessError(f"p-values must be between 0 and 1; got {p.tolist()}.")
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()


def minimum_detectable_effect(se: float, alpha: float = 0.05, power: float = 0.8, df: float | None = None) -> float:
    """The true |Δ| a two-sided level-alpha test detects with probability ``power``, given its se
    (and, for a t interval, its degrees of freedom: few seeds, a larger MDE).

    Printed next to an inconclusive verdict it says what the runs could have seen: "no difference
    found" with an MDE of 3 points is not evidence that the methods are equal.
    """
    if df is not None:
        from scipy import stats as scipy_stats

        return float(scipy_stats.t.ppf(1 - alpha / 2, df) + scipy_stats.t.ppf(power, df)) * se
    normal = NormalDist()
    return (normal.inv_cdf(1 - alpha / 2) + normal.inv_cdf(power)) * se


def _fmt(spec, value: float, signed: bool = True) -> str:
    scale, decimals = getattr(spec, "scale", 1.0), getattr(spec, "decimals", 3) + 1
    return f"{value * scale:{'+' if signed else ''}.{decimals}f}"


def verdict(comparison: Comparison, spec, p_adjusted: float, margin: float | None = None, alpha: float = 0.05,
            min_reference_seeds: int = 3) -> tuple[str, str]:
    """One of VERDICTS and a one-line reason, from the candidate's point of view.

    Oriented by ``spec.higher_is_better`` (for TER or a loss a negative Δ is an improvement).
    Rules, in order: too few reference seeds -> inconclusive (never a pass); the whole interval
    within (-margin, +margin) -> equivalent (``margin`` in stored units, default ``spec.margin``);
    adjusted p < alpha -> worse or better by the sign of the improvement; else inconclusive.
    """
    margin = spec.margin if margin is None else margin
    sign = 1.0 if spec.higher_is_better else -1.0
    improvement = sign * comparison.delta
    lo, hi = sorted((sign * comparison.lo, sign * comparison.hi))
    level = f"{100 * comparison.confidence:g}%"
    shown = f"improvement {_fmt(spec, improvement)}, {level} CI [{_fmt(spec, lo)}, {_fmt(spec, hi)}]"
    if comparison.n_reference < min_reference_seeds:
        return "inconclusive", (f"only {comparison.n_reference} reference seed(s), fewer than the "
                                f"{min_reference_seeds} a verdict needs; run more seeds of the reference.")
    if -margin < lo and hi < margin:
        return "equivalent", f"{shown} lies within +-{_fmt(spec, margin, signed=False)}."
    if p_adjusted < alpha and improvement < 0:
        return "worse", f"{shown}, adjusted p {p_adjusted:.3g} < {alpha:g}."
    if p_adjusted < alpha and improvement > 0:
        return "better", f"{shown}, adjusted p {p_adjusted:.3g} < {alpha:g}."
    mde = _fmt(spec, minimum_detectable_effect(comparison.se, alpha, df=comparison.df), signed=False)
    return "inconclusive", (f"{shown}, adjusted p {p_adjusted:.3g} >= {alpha:g} and not within "
                            f"+-{_fmt(spec, margin, signed=False)}; detectable effect ~{mde}.")


# ---------------------------------------------------------------------------------------------
# Calibration on real runs: how often does a verdict fire when it should not, or when it should?


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial rate: sensible at 0 or 1 events, unlike the Wald interval."""
    if trials <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    rate, z2 = successes / trials, z * z
    denom = 1 + z2 / trials
    center = (rate + z2 / (2 * trials)) / denom
    half = z * math.sqrt(rate * (1 - rate) / trials + z2 / (4 * trials * trials)) / denom
    # at 0 (or all) events the bound is exactly 0 (or 1); the formula leaves rounding residue there
    lo = 0.0 if successes <= 0 else max(0.0, center - half)
    hi = 1.0 if successes >= trials else min(1.0, center + half)
    return lo, hi


def _rate_report(verdicts: list[str], hits: tuple[str, ...], k: int) -> dict:
    counts = {v: verdicts.count(v) for v in VERDICTS}
    n_hits = sum(counts[v] for v in hits)
    lo, hi = wilson_interval(n_hits, len(verdicts))
    return {"k": k, "draws": len(verdicts), "counts": counts, "counted": list(hits), "hits": n_hits,
            "rate": n_hits / len(verdicts) if verdicts else 0.0, "rate_lo": lo, "rate_hi": hi}


def _draw_verdict(spec, labels, candidate, reference, rng, n_boot, margin, alpha, min_reference_seeds,
                  paired: bool = False) -> str:
    """One comparison as `check` makes it for a single entry (no multiple-testing adjustment);
    ``paired``: as `check --pair-seeds`, candidate[i] paired with reference[i]."""
    compare = seed_paired_comparison if paired else crossed_comparison
    comparison = compare(spec, labels, candidate, reference, n_boot=n_boot, seed=int(rng.integers(2**32)))
    return verdict(comparison, spec, comparison.p_value, margin, alpha, min_reference_seeds)[0]


def false_alarm_rate(runs: Sequence, labels, spec, k: int, draws: int, rng_seed: int = 0, n_boot: int = 1000, *,
                     margin: float | None = None, alpha: float = 0.05, min_reference_seeds: int = 3,
                     paired: bool = False) -> dict:
    """How often two disjoint groups of k seeds of the SAME setting get `better` or `worse`.

    Each draw splits ``runs`` (per-seed predictions of one method) at random into a candidate and a
    reference group of k seeds each; with no true difference every such verdict is a false alarm,
    so the rate should stay near or below alpha. Returns verdict counts and the rate with a 95%
    Wilson interval. With ``k < min_reference_seeds`` every verdict is inconclusive, as in `check`.
    ``paired``: the groups' i-th runs are compared as a seed pair (`--pair-seeds` on pairs that share
    nothing, the case where pairing cannot help and must not hurt).
    """
    runs = list(runs)
    if k < 1 or len(runs) < 2 * k:
        raise HarnessError(f"a false-alarm draw needs two disjoint groups of k={k} seeds, so at least {2 * k} "
                           f"runs; got {len(runs)}.")
    if draws < 1:
        raise HarnessError(f"draws must be at least 1, not {draws}.")
    rng = np.random.default_rng(rng_seed)
    verdicts = []
    for _ in range(draws):
        order = rng.permutation(len(runs))
        cand, ref = [runs[i] for i in order[:k]], [runs[i] for i in order[k:2 * k]]
        verdicts.append(_draw_verdict(spec, labels, cand, ref, rng, n_boot, margin, alpha, min_reference_seeds,
                                      paired))
    return _rate_report(verdicts, ("better", "worse"), k)


def detection_rate(reference_runs: Sequence, candidate_runs: Sequence, labels, spec, k: int, draws: int,
                   rng_seed: int = 0, n_boot: int = 1000, *, margin: float | None = None, alpha: float = 0.05,
                   min_reference_seeds: int = 3, detect: str = "worse", paired: bool = False) -> dict:
    """How often k seeds of a candidate that truly differs get the ``detect`` verdict against k
    reference seeds (the power of `check` at k seeds): each draw picks k of each side without
    replacement. Returns verdict counts and the rate with a 95% Wilson interval. ``paired``: the two
    lists are aligned by seed; each draw picks k seeds and compares them as seed pairs (`--pair-seeds`).
    """
    reference_runs, candidate_runs = list(reference_runs), list(candidate_runs)
    if k < 1 or len(reference_runs) < k or len(candidate_runs) < k:
        raise HarnessError(f"a detection draw needs k={k} seeds of each side; got {len(reference_runs)} reference "
                           f"and {len(candidate_runs)} candidate runs.")
    if detect not in VERDICTS:
        raise HarnessError(f"detect must be one of {', '.join(VERDICTS)}, not '{detect}'.")
    if paired and len(reference_runs) != len(candidate_runs):
        raise HarnessError(f"paired draws need both sides aligned by seed; got {len(reference_runs)} reference and "
                           f"{len(candidate_runs)} candidate runs.")
    if draws < 1:
        raise HarnessError(f"draws must be at least 1, not {draws}.")
    rng = np.random.default_rng(rng_seed)
    verdicts = []
    for _ in range(draws):
        cand_idx = rng.choice(len(candidate_runs), k, replace=False)
        ref_idx = cand_idx if paired else rng.choice(len(reference_runs), k, replace=False)
        cand, ref = [candidate_runs[i] for i in cand_idx], [reference_runs[i] for i in ref_idx]
        verdicts.append(_draw_verdict(spec, labels, cand, ref, rng, n_boot, margin, alpha, min_reference_seeds,
                                      paired))
    return _rate_report(verdicts, (detect,), k)
