"""The statistics engine behind `harness check` verdicts (harness.report.stats) and the metrics'
sufficient statistics it resamples with."""

import itertools
import json

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.metrics import MetricSpec, get_metric
from harness.metrics import classification as cls
from harness.report.stats import (Comparison, bootstrap_p_value, detection_rate, false_alarm_rate, holm,
                                  minimum_detectable_effect, paired_bootstrap, verdict, wilson_interval)

ACCURACY = get_metric("accuracy")


def noisy(labels, accuracy, rng, n_classes=2):
    """Predictions that are right with probability ``accuracy``, else a random other class."""
    wrong = (labels + rng.integers(1, n_classes, len(labels))) % n_classes
    return np.where(rng.random(len(labels)) < accuracy, labels, wrong)


# ---------------------------------------------------------------------------------------------
# Sufficient statistics


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("name,n_classes", [("accuracy", 3), ("f1", 2), ("matthews_corr", 2),
                                            ("matthews_corr", 3)])
def test_from_stats_of_summed_stats_is_the_metric(name, n_classes, seed):
    rng = np.random.default_rng(seed)
    spec = get_metric(name)
    labels = rng.integers(0, n_classes, 300)
    preds = noisy(labels, 0.7, rng, n_classes)
    # integer counts: exactly the metric, not just close
    assert spec.from_stats(spec.stats(preds, labels).sum(0)) == spec.fn(preds, labels)


@pytest.mark.parametrize("seed", range(5))
def test_pearson_from_stats_matches(seed):
    rng = np.random.default_rng(seed)
    spec = get_metric("pearson")
    labels = rng.uniform(0, 5, 400).round(1) + 1e3  # an offset: the centred statistics must not cancel
    preds = labels + rng.normal(0, 1, 400)
    assert spec.from_stats(spec.stats(preds, labels).sum(0)) == pytest.approx(spec.fn(preds, labels), rel=1e-12)


@pytest.mark.parametrize("name", ["accuracy", "f1", "matthews_corr", "pearson"])
def test_from_stats_is_vectorised_and_degenerate_cases_match(name):
    spec = get_metric(name)
    labels = np.array([0, 1, 1, 0, 1])
    constant = np.ones(5, dtype=int)  # MCC and Pearson undefined: 0, as the functions return
    for preds in (constant, np.zeros(5, dtype=int), labels):
        assert spec.from_stats(spec.stats(preds, labels).sum(0)) == pytest.approx(spec.fn(preds, labels), abs=1e-12)
    # a (2, 3) batch of resamples in one call equals the metric on each resample
    rng = np.random.default_rng(0)
    preds = noisy(labels, 0.6, rng)
    idx = rng.integers(0, 5, (2, 3, 5))
    weights = np.stack([np.stack([np.bincount(row, minlength=5) for row in block]) for block in idx])
    batched = spec.from_stats(weights @ spec.stats(preds, labels))
    assert batched.shape == (2, 3)
    expected = [[spec.fn(preds[row], labels[row]) for row in block] for block in idx]
    assert batched == pytest.approx(np.array(expected), abs=1e-12)


def test_spearman_has_no_stats_and_the_fn_path_matches_the_stats_path():
    assert get_metric("spearman").stats is None
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 60)
    cand, ref = [noisy(labels, 0.8, rng) for _ in range(2)], [noisy(labels, 0.7, rng) for _ in range(3)]
    for name in ("accuracy", "f1", "matthews_corr"):
        spec = get_metric(name)
        by_stats = paired_bootstrap(spec, labels, cand, ref, n_boot=50, seed=3)
        by_fn = paired_bootstrap(spec.fn, labels, cand, ref, n_boot=50, seed=3)  # same draws, no stats
        np.testing.assert_allclose(by_stats.samples, by_fn.samples, atol=1e-12)
        assert by_stats.delta == by_fn.delta
    x = rng.normal(size=60)
    result = paired_bootstrap(get_metric("spearman"), x, [x + rng.normal(size=60)], [x + 2 * rng.normal(size=60)],
                              n_boot=30)
    assert result.n_boot == 30 and result.delta > 0


# ---------------------------------------------------------------------------------------------
# sacrebleu BLEU / chrF


def _corpus(n=120, seed=0):
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(40)]

    def sentence(length):
        return " ".join(rng.choice(vocab, length))

    refs = [[sentence(rng.integers(2, 15)) for _ in range(rng.integers(1, 4))] for _ in range(n)]

    def system(keep):
        return [" ".join(t if rng.random() < keep else rng.choice(vocab) for t in rs[0].split()) for rs in refs]

    return refs, system(0.7), system(0.6)


def _streams(refs):
    return [[rs[j] if j < len(rs) else None for rs in refs] for j in range(max(map(len, refs)))]


@pytest.mark.parametrize("name", ["bleu", "chrf"])
def test_sacrebleu_stats_give_the_corpus_score(name):
    sacrebleu = pytest.importorskip("sacrebleu")
    from harness.metrics.nlg import sacrebleu_from_stats, sacrebleu_metric, sacrebleu_stats

    refs, hyps, _ = _corpus()
    hyps[0], hyps[1] = "", "w1"  # an empty and a one-word output
    metric = sacrebleu_metric(name)
    stats = sacrebleu_stats(hyps, refs, metric)
    expected = {"bleu": sacrebleu.BLEU, "chrf": sacrebleu.CHRF}[name]().corpus_score(hyps, _streams(refs)).score
    assert sacrebleu_from_stats(metric)(stats.sum(0)) == pytest.approx(expected, rel=1e-12)


def test_vectorised_bleu_equals_sacrebleu_on_resamples_and_edge_cases():
    pytest.importorskip("sacrebleu")
    from harness.metrics.nlg import sacrebleu_from_stats, sacrebleu_metric, sacrebleu_stats

    refs, hyps, _ = _corpus(40)
    hyps[:3] = ["", "w1", "w1 w2"]
    rng = np.random.default_rng(1)
    stats = sacrebleu_stats(hyps, refs)
    sums = np.stack([stats[rng.integers(0, 40, 40)].sum(0) for _ in range(300)]
                    + [stats[i] for i in range(3)])  # one-sentence sums: zero matches / zero n-grams
    for smooth in ("exp", "none"):
        metric = sacrebleu_metric("bleu", smooth_method=smooth)
        expected = [metric._compute_score_from_stats(list(row)).score for row in sums]
        np.testing.assert_allclose(sacrebleu_from_stats(metric)(sums), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,key", [("bleu", "BLEU"), ("chrf", "chrF2")])
def test_paired_bootstrap_reproduces_sacrebleu_paired_bootstrap(name, key, monkeypatch):
    """Same seed and n_boot: the very resamples of sacrebleu.significance's paired bootstrap.

    sacrebleu's PairedTest draws ``default_rng(12345).choice(n, (n_boot, n))``; so does
    paired_bootstrap(seed=12345). We record the summed statistics sacrebleu scores on each resample
    and check that our scores of them are bit-for-bit our samples (same resamples, row by row).
    sacrebleu (2.x, under NumPy 2) then scores them from float32 sums, so its means and CIs agree to
    float32 precision, and its p-value exactly.
    """
    sacrebleu = pytest.importorskip("sacrebleu")
    from sacrebleu.significance import PairedTest, estimate_ci

    from harness.metrics.nlg import sacrebleu_spec

    monkeypatch.delenv("SACREBLEU_SEED", raising=False)
    base = {"bleu": sacrebleu.BLEU, "chrf": sacrebleu.CHRF}[name]

    class Recording(base):
        seen = []

        def _compute_score_from_stats(self, stats):
            score = super()._compute_score_from_stats(stats)
            self.seen.append((np.asarray(stats, dtype=np.float64), score.score))
            return score

    refs, cand, ref = _corpus(150)
    n_boot = 1000
    _, scores = PairedTest([("reference", ref), ("candidate", cand)], {key: Recording()}, _streams(refs),
                           test_type="bs", n_samples=n_boot)()
    baseline, system = scores[key]
    spec = sacrebleu_spec(name)
    ours = paired_bootstrap(spec, refs, [cand], [ref], n_boot=n_boot, seed=12345)

    # calls: baseline score, baseline CI resamples, system score, paired resamples (baseline, system)
    seen = Recording.seen
    assert len(seen) == 3 * n_boot + 2
    sys_sums = np.stack([s for s, _ in seen[2 * n_boot + 2:]])
    ref_sums = np.stack([s for s, _ in seen[n_boot + 2:2 * n_boot + 2]])
    assert np.array_equal(spec.from_stats(sys_sums), ours.candidate_samples)
    assert np.array_equal(spec.from_stats(ref_sums), ours.reference_samples)
    np.testing.assert_allclose(ours.candidate_samples, [v for _, v in seen[2 * n_boot + 2:]], rtol=1e-5)

    assert ours.candidate_value == pytest.approx(system.score, rel=1e-12)
    assert ours.reference_value == pytest.approx(baseline.score, rel=1e-12)
    for samples, result in ((ours.candidate_samples, system), (ours.reference_samples, baseline)):
        mean, ci = estimate_ci(samples)
        assert (mean, ci) == (pytest.approx(result.mean, rel=1e-6), pytest.approx(result.ci, rel=1e-5))
    assert ours.samples.mean() == pytest.approx(system.mean - baseline.mean, rel=1e-6)
    # sacrebleu's own p-value (Moses' "|Δ*| - mean|Δ*| > |Δ|" test) from our samples
    spread = np.abs(ours.samples)
    moses_p = (np.sum(spread - spread.mean() > abs(system.score - baseline.score)) + 1) / (n_boot + 1)
    assert moses_p == system.p_value


# ---------------------------------------------------------------------------------------------
# The paired bootstrap, by hand


def test_bootstrap_enumerating_all_resamples_of_four_examples():
    labels = np.ones(4, dtype=int)
    cand = np.array([1, 1, 1, 0])  # right on examples 0-2
    ref = np.array([1, 0, 0, 0])  # right on example 0
    every = np.array(list(itertools.product(range(4), repeat=4)))  # all 4^4 = 256 resamples
    result = paired_bootstrap(ACCURACY, labels, [cand], [ref], indices=every)
    # Δ* = (draws of example 1 or 2) / 4 ~ Binomial(4, 1/2) / 4 over the 256 equally likely resamples
    assert np.bincount(np.rint(result.samples * 4).astype(int)).tolist() == [16, 64, 96, 64, 16]
    assert result.delta == 0.5 and result.samples.mean() == 0.5
    assert result.se == pytest.approx(0.25 * np.sqrt(256 / 255))  # Var = 4 * 1/2 * 1/2 / 16, ddof=1
    # two-sided: P(Δ* <= 0) = 16/256 is the smaller tail -> 2 * (16 + 1) / (256 + 1)
    assert result.p_value == pytest.approx(34 / 257)
    # 2.5% / 97.5% at sorted positions 255 * q = 6.375 / 248.625: inside the 16 zeros / 16 ones
    assert (result.lo, result.hi) == (0.0, 1.0)
    assert (result.n_examples, result.n_candidate, result.n_reference, result.n_boot) == (4, 1, 1, 256)


def test_a_side_is_the_mean_over_its_drawn_seeds():
    labels = np.ones(4, dtype=int)
    cand = [np.array([1, 1, 1, 1]), np.array([0, 0, 1, 1])]  # accuracy 1 and 1/2
    ref = [np.array([1, 1, 0, 0])]  # accuracy 1/2
    indices = np.array([[0, 1, 2, 3], [0, 0, 0, 0]])
    draws = (np.array([[0, 0], [0, 1]]), np.zeros((2, 1), dtype=int))
    result = paired_bootstrap(ACCURACY, labels, cand, ref, indices=indices, seed_draws=draws)
    # resample 1: all examples, seeds (0, 0): 1 - 1/2; resample 2: example 0 four times, seeds (0, 1):
    # (1 + 0) / 2 - 1
    assert result.samples.tolist() == [0.5, -0.5]
    assert result.candidate_samples.tolist() == [1.0, 0.5] and result.reference_samples.tolist() == [0.5, 1.0]
    assert result.delta == 0.75 - 0.5


def test_identical_systems_differ_by_exactly_nothing():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    preds = noisy(labels, 0.8, rng)
    # one seed each, or three seeds that predict alike: every resample is paired, so Δ* = 0 exactly
    for runs in ([preds], [preds] * 3):
        result = paired_bootstrap(ACCURACY, labels, runs, runs, n_boot=500)
        assert (result.delta, result.lo, result.hi, result.p_value, result.se) == (0.0, 0.0, 0.0, 1.0, 0.0)
    assert verdict(result, ACCURACY, result.p_value)[0] == "equivalent"


def test_pairing_sees_a_small_consistent_gain():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 872)
    ref = noisy(labels, 0.85, rng)
    cand = ref.copy()
    wrong = np.flatnonzero(ref != labels)[:15]
    cand[wrong] = labels[wrong]  # fixes 15 errors (1.7 points), breaks nothing
    result = paired_bootstrap(ACCURACY, labels, [cand] * 3, [ref] * 3, n_boot=1000)
    # unpaired, two accuracies near 0.86 on 872 examples each have se ~1.2 points; paired, the
    # difference only varies with how often the 15 fixed examples are drawn
    assert result.lo > 0 and result.se < 0.005
    assert verdict(result, ACCURACY, result.p_value)[0] == "better"


def test_spread_between_seeds_widens_the_interval():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 872)
    ref = [noisy(labels, 0.85, rng) for _ in range(3)]
    same = noisy(labels, 0.87, rng)
    tight = [same] * 3
    spread = [noisy(labels, acc, rng) for acc in (0.82, 0.87, 0.92)]  # same mean accuracy, wide seeds
    narrow = paired_bootstrap(ACCURACY, labels, tight, ref, n_boot=2000, seed=1)
    wide = paired_bootstrap(ACCURACY, labels, spread, ref, n_boot=2000, seed=1)
    assert wide.hi - wide.lo > 1.5 * (narrow.hi - narrow.lo)
    assert wide.se > 1.5 * narrow.se


def test_user_errors_are_one_line_harness_errors():
    labels = np.array([0, 1, 1])
    with pytest.raises(HarnessError, match="candidate seed 1 has 2 predictions but there are 3 labels"):
        paired_bootstrap(ACCURACY, labels, [labels, labels[:2]], [labels])
    with pytest.raises(HarnessError, match="no reference runs"):
        paired_bootstrap(ACCURACY, labels, [labels], [])
    with pytest.raises(HarnessError, match="cannot be recomputed"):
        paired_bootstrap(get_metric("bleu"), labels, [labels], [labels])
    with pytest.raises(HarnessError, match="resample indices"):
        paired_bootstrap(ACCURACY, labels, [labels], [labels], indices=np.array([[0, 1, 3]]))
    with pytest.raises(HarnessError, match="no dev examples"):
        paired_bootstrap(ACCURACY, [], [[]], [[]])
    with pytest.raises(HarnessError, match="at least 6 runs"):
        false_alarm_rate([labels] * 5, labels, ACCURACY, k=3, draws=1)


def test_comparison_serialises_without_its_samples():
    result = paired_bootstrap(ACCURACY, [0, 1, 1, 0], [[0, 1, 0, 0]], [[0, 1, 1, 1]], n_boot=20)
    data = json.loads(json.dumps(result.to_dict()))
    assert "samples" not in data and data["n_boot"] == 20 and data["delta"] == 0.0


# ---------------------------------------------------------------------------------------------
# p-values, Holm, MDE


def test_bootstrap_p_value_by_hand():
    assert bootstrap_p_value(np.array([1.0, 2.0, 3.0])) == 2 * 1 / 4  # no Δ* <= 0: 2 * (0 + 1) / (3 + 1)
    assert bootstrap_p_value(np.array([-1.0, 1.0, 2.0, 3.0])) == 2 * 2 / 5
    assert bootstrap_p_value(np.zeros(9)) == 1.0  # both tails count the ties; capped at 1


def test_holm_by_hand():
    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> monotone 0.06)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.4]) == pytest.approx([0.8, 0.8])  # 0.4 x 2 = 0.8; 0.5 x 1 -> monotone 0.8
    assert holm([0.9, 0.6, 0.7]) == [1.0, 1.0, 1.0]  # capped
    assert holm([0.02]) == [0.02] and holm([]) == []
    with pytest.raises(HarnessError):
        holm([1.5])


def test_minimum_detectable_effect():
    assert minimum_detectable_effect(1.0) == pytest.approx(1.959964 + 0.841621, abs=1e-6)
    assert minimum_detectable_effect(0.01, alpha=0.05, power=0.5) == pytest.approx(0.0195996, abs=1e-7)
    assert minimum_detectable_effect(0.0) == 0.0


# ---------------------------------------------------------------------------------------------
# Verdicts: the decision boundary


def comparison(delta, lo, hi, p=0.5, n_reference=3):
    return Comparison(delta=delta, lo=lo, hi=hi, p_value=p, se=(hi - lo) / 4, n_examples=872, n_candidate=3,
                      n_reference=n_reference, candidate_value=0.9 + delta, reference_value=0.9, n_boot=2000)


def test_equivalent_only_when_the_whole_interval_is_inside_the_margin():
    margin = ACCURACY.margin  # 0.005: half a point
    assert verdict(comparison(0.0, -0.0049, 0.0049), ACCURACY, 0.9)[0] == "equivalent"
    assert verdict(comparison(0.0, -0.0049, 0.0051), ACCURACY, 0.9)[0] == "inconclusive"
    assert verdict(comparison(0.0, -0.0051, 0.0049), ACCURACY, 0.9)[0] == "inconclusive"
    assert verdict(comparison(0.0, -margin, 0.001), ACCURACY, 0.9)[0] == "inconclusive"  # open interval
    # an explicit margin overrides the spec's
    assert verdict(comparison(0.0, -0.0049, 0.0051), ACCURACY, 0.9, margin=0.006)[0] == "equivalent"
    # equivalence wins over significance: a tiny but certain difference is still "equivalent"
    assert verdict(comparison(0.002, 0.001, 0.003, p=0.001), ACCURACY, 0.001)[0] == "equivalent"


def test_significance_decides_better_and_worse_at_alpha():
    gain, loss = comparison(0.02, 0.01, 0.03), comparison(-0.02, -0.03, -0.01)
    assert verdict(gain, ACCURACY, 0.049)[0] == "better"
    assert verdict(gain, ACCURACY, 0.05)[0] == "inconclusive"  # p must be below alpha
    assert verdict(loss, ACCURACY, 0.049)[0] == "worse"
    assert verdict(loss, ACCURACY, 0.2)[0] == "inconclusive"
    assert verdict(loss, ACCURACY, 0.2, alpha=0.25)[0] == "worse"


@pytest.mark.parametrize("name", ["ter", "dev_loss"])
def test_lower_is_better_flips_the_verdict(name):
    spec = get_metric(name)
    lower = comparison(-0.05, -0.08, -0.02)  # the candidate's TER / loss went down
    assert verdict(lower, spec, 0.001)[0] == "better"
    assert verdict(lower, ACCURACY, 0.001)[0] == "worse"
    higher = comparison(0.05, 0.02, 0.08)
    assert verdict(higher, spec, 0.001)[0] == "worse"
    reason = verdict(lower, get_metric("ter"), 0.001)[1]
    assert "improvement +0.050" in reason and "[+0.020, +0.080]" in reason  # interval flipped, too


def test_too_few_reference_seeds_is_never_a_verdict():
    for p in (0.9, 0.001):
        for box in ((0.0, -0.001, 0.001), (0.1, 0.05, 0.15), (-0.1, -0.15, -0.05)):
            got, reason = verdict(comparison(*box, n_reference=1), ACCURACY, p)
            assert got == "inconclusive" and "only 1 reference seed" in reason
    assert verdict(comparison(0.1, 0.05, 0.15, n_reference=2), ACCURACY, 0.001, min_reference_seeds=2)[0] == "better"


def test_clear_gains_and_losses_from_real_bootstraps():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 872)
    ref = [noisy(labels, 0.85, rng) for _ in range(3)]
    good = [noisy(labels, 0.92, rng) for _ in range(3)]
    bad = [noisy(labels, 0.78, rng) for _ in range(3)]
    up = paired_bootstrap(ACCURACY, labels, good, ref)
    down = paired_bootstrap(ACCURACY, labels, bad, ref)
    ps = holm([up.p_value, down.p_value])
    assert verdict(up, ACCURACY, ps[0])[0] == "better"
    assert verdict(down, ACCURACY, ps[1])[0] == "worse"
    assert up.lo > 0 and down.hi < 0
    lonely = paired_bootstrap(ACCURACY, labels, good, ref[:1])
    assert verdict(lonely, ACCURACY, lonely.p_value)[0] == "inconclusive"


# ---------------------------------------------------------------------------------------------
# Calibration helpers


def test_wilson_interval_by_hand():
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1.959964**2 / (10 + 1.959964**2), abs=1e-6)  # z^2 / (n + z^2)
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(10, 10)[1] == 1.0


def test_false_alarm_and_detection_rates():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 872)
    same = [noisy(labels, 0.85, rng) for _ in range(8)]
    worse = [noisy(labels, 0.78, rng) for _ in range(4)]
    alarms = false_alarm_rate(same, labels, ACCURACY, k=3, draws=10, rng_seed=1, n_boot=1000)
    assert sum(alarms["counts"].values()) == alarms["draws"] == 10
    assert alarms["hits"] == alarms["counts"]["better"] + alarms["counts"]["worse"]
    assert alarms["rate_lo"] <= alarms["rate"] <= alarms["rate_hi"]
    detected = detection_rate(same, worse, labels, ACCURACY, k=3, draws=10, rng_seed=1, n_boot=1000)
    assert detected["counts"]["worse"] == detected["hits"] == 10 and detected["rate"] == 1.0
    assert detected["counted"] == ["worse"]
    few = false_alarm_rate(same, labels, ACCURACY, k=2, draws=3)  # 2 reference seeds: never a verdict
    assert few["counts"]["inconclusive"] == 3


def test_a_custom_spec_without_fn_uses_its_statistics():
    spec = MetricSpec("hits", "hits", stats=cls.accuracy_stats, from_stats=cls.accuracy_from_stats)
    labels = np.array([1, 0, 1, 1])
    result = paired_bootstrap(spec, labels, [labels], [1 - labels], n_boot=50)
    assert result.delta == 1.0 and result.lo == result.hi == 1.0


# --- crossed_comparison: the interval `harness check` uses (seeds x examples, interaction counted once) ---

def _flips(base: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """A seed's predictions: the base predictions with a fraction flipped (seed-by-example noise)."""
    rng = np.random.default_rng(seed)
    flip = rng.random(len(base)) < rate
    return np.where(flip, 1 - base, base)


def test_crossed_variance_is_seed_spread_plus_example_part_without_the_interaction():
    from harness.metrics import get_metric
    from harness.report.stats import crossed_comparison

    spec = get_metric("accuracy")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 600)
    cand = [_flips(labels, 0.25 + 0.02 * s, s) for s in range(4)]
    ref = [_flips(labels, 0.20 + 0.02 * s, 10 + s) for s in range(3)]
    c = crossed_comparison(spec, labels, cand, ref, n_boot=4000, seed=1)
    x_c = np.array([p == labels for p in cand], float)
    x_r = np.array([p == labels for p in ref], float)
    seed_part = x_c.mean(1).var(ddof=1) / 4 + x_r.mean(1).var(ddof=1) / 3
    # The example part, computed analytically: the variance of the seed-averaged per-example difference,
    # less each side's seed-by-example interaction (two-way ANOVA residual variance / (S E)).
    n = len(labels)
    d = x_c.mean(0) - x_r.mean(0)

    def interaction(x):
        residual = x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + x.mean()
        return (residual ** 2).sum() / ((x.shape[0] - 1) * (n - 1)) / (x.shape[0] * n)

    example_part = max(d.var(ddof=1) / n - interaction(x_c) - interaction(x_r), 0.0)
    assert c.delta == pytest.approx(x_c.mean() - x_r.mean())
    assert c.se ** 2 == pytest.approx(seed_part + example_part, rel=0.08)  # the bootstrap estimates the example part
    assert c.df is not None and 2 <= c.df < 50 and c.lo < c.delta < c.hi


def test_crossed_with_one_seed_per_side_is_the_paired_example_bootstrap():
    from harness.metrics import get_metric
    from harness.report.stats import crossed_comparison, paired_bootstrap

    spec = get_metric("accuracy")
    labels = np.random.default_rng(3).integers(0, 2, 500)
    cand, ref = [_flips(labels, 0.3, 1)], [_flips(labels, 0.2, 2)]
    crossed = crossed_comparison(spec, labels, cand, ref, n_boot=3000, seed=5)
    paired = paired_bootstrap(spec, labels, cand, ref, n_boot=3000, seed=5)
    assert crossed.se == pytest.approx(paired.se, rel=1e-9)  # same resamples, no seed part to add
    assert crossed.df == pytest.approx(len(labels) - 1)


def test_crossed_identical_sides_have_delta_zero_and_p_one_and_one_candidate_seed_borrows_the_spread():
    from harness.metrics import get_metric
    from harness.report.stats import crossed_comparison

    spec = get_metric("accuracy")
    labels = np.random.default_rng(4).integers(0, 2, 400)
    runs = [_flips(labels, 0.2 + 0.03 * s, s) for s in range(3)]
    same = crossed_comparison(spec, labels, runs, runs, n_boot=1000)
    assert same.delta == 0 and same.p_value == pytest.approx(1.0) and same.se > 0  # new seeds would differ
    single = crossed_comparison(spec, labels, runs[:1], runs, n_boot=1000)
    spread = np.array([(r == labels).mean() for r in runs]).var(ddof=1)
    assert single.se ** 2 >= spread / 1 + spread / 3 - 1e-12  # the lone seed varies like the reference's


def test_crossed_false_alarms_stay_near_alpha_on_synthetic_seeds():
    """Many same-setting seeds (true Δ = 0): two disjoint groups of 3 are called different about 5%
    of the time or less, and a real 5-point drop is caught most of the time with 8 seeds."""
    from harness.metrics import get_metric
    from harness.report.stats import detection_rate, false_alarm_rate

    spec = get_metric("accuracy")
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 800)
    good = [_flips(labels, 0.18 + rng.normal(0, 0.006), 100 + s) for s in range(20)]
    worse = [_flips(labels, 0.23 + rng.normal(0, 0.006), 200 + s) for s in range(20)]
    alarms = false_alarm_rate(good, labels, spec, 3, 300, rng_seed=1, n_boot=300)
    assert alarms["rate"] <= 0.08
    caught = detection_rate(good, worse, labels, spec, 8, 100, rng_seed=2, n_boot=300)
    assert caught["rate"] >= 0.8


def test_a_score_interval_stays_within_the_metrics_bounds():
    """Seeds far apart near 100% accuracy: the t interval (t = 4.3 at 2 df) passes 1; the metric's is cut there."""
    from harness.report.stats import score_interval

    labels = np.array([1, 0] * 50)
    runs = [labels.copy(), labels.copy(), np.where(np.arange(100) < 40, 1 - labels, labels)]  # 100%, 100%, 60%
    spec = get_metric("accuracy")
    cut = score_interval(spec, labels, runs)
    bare = score_interval((spec.stats, spec.from_stats), labels, runs)  # the same statistics, no bounds known
    assert bare.hi > 1.0 and cut.hi == 1.0
    assert (cut.value, cut.lo, cut.se, cut.df) == (bare.value, bare.lo, bare.se, bare.df)
    assert spec.clipped(-0.2) == 0.0 and get_metric("dev_loss").clipped(7.5) == 7.5


# ---------------------------------------------------------------------------------------------
# Seed-paired comparisons (`check --pair-seeds`)


def _fixed(preds, labels, count: int, seed: int):
    """The same predictions with ``count`` of the wrong ones made right."""
    preds = preds.copy()
    wrong = np.random.default_rng(seed).permutation(np.flatnonzero(preds != labels))[:count]
    preds[wrong] = labels[wrong]
    return preds


def test_seed_pairs_see_a_consistent_gain_that_the_seed_spread_hides():
    """Seeds 10 points apart; the candidate fixes 1.5% of the examples on every seed. Unpaired, the seed
    spread swamps it (inconclusive); paired by seed, Δ's interval excludes 0 (better)."""
    from harness.report.stats import crossed_comparison, seed_paired_comparison

    labels = np.random.default_rng(9).integers(0, 2, 800)
    ref = [_flips(labels, rate, 30 + s) for s, rate in enumerate((0.15, 0.25, 0.20, 0.10))]
    cand = [_fixed(p, labels, count, s) for s, (p, count) in enumerate(zip(ref, (10, 14, 12, 13)))]
    paired = seed_paired_comparison(ACCURACY, labels, cand, ref, n_boot=1000)
    unpaired = crossed_comparison(ACCURACY, labels, cand, ref, n_boot=1000)
    assert paired.delta == pytest.approx(49 / 4 / 800) == pytest.approx(unpaired.delta)
    assert paired.lo > 0 and verdict(paired, ACCURACY, paired.p_value)[0] == "better"
    assert unpaired.lo < 0 < unpaired.hi and verdict(unpaired, ACCURACY, unpaired.p_value)[0] == "inconclusive"
    assert 3 <= paired.df < 100  # the spread of the per-seed gains counts, with its S - 1 degrees of freedom


def test_identical_seed_pairs_are_equivalent_and_mismatched_sides_are_refused():
    from harness.report.stats import crossed_comparison, seed_paired_comparison

    labels = np.random.default_rng(4).integers(0, 2, 400)
    runs = [_flips(labels, 0.2 + 0.03 * s, s) for s in range(3)]
    same = seed_paired_comparison(ACCURACY, labels, runs, [r.copy() for r in runs], n_boot=500)
    assert (same.delta, same.lo, same.hi, same.se, same.p_value) == (0, 0, 0, 0, 1.0)
    assert verdict(same, ACCURACY, same.p_value)[0] == "equivalent"
    unpaired = crossed_comparison(ACCURACY, labels, runs, [r.copy() for r in runs], n_boot=500)
    assert verdict(unpaired, ACCURACY, unpaired.p_value)[0] == "inconclusive"  # new seeds would differ
    with pytest.raises(HarnessError, match="one reference run per candidate run"):
        seed_paired_comparison(ACCURACY, labels, runs, runs[:2])


def test_seed_paired_variance_is_the_spread_of_the_differences_when_examples_cancel():
    """Pairs of unrelated seeds of one setting: the example part cancels (same examples, same difficulty),
    so se^2 is the spread of the per-seed differences over S, within the bootstrap's error."""
    from harness.report.stats import seed_paired_comparison

    labels = np.random.default_rng(5).integers(0, 2, 600)
    cand = [_flips(labels, 0.20 + 0.02 * s, s) for s in range(5)]
    ref = [_flips(labels, 0.22 - 0.01 * s, 50 + s) for s in range(5)]
    c = seed_paired_comparison(ACCURACY, labels, cand, ref, n_boot=4000, seed=2)
    d = np.array([(a == labels).mean() - (b == labels).mean() for a, b in zip(cand, ref)])
    assert c.delta == pytest.approx(d.mean())
    assert c.se ** 2 == pytest.approx(d.var(ddof=1) / 5, rel=0.15)


def test_seed_paired_false_alarms_stay_near_alpha_and_pairing_finds_a_shared_seed_drop():
    """Disjoint same-setting seeds paired at random (pairing cannot help): about 5% false alarms.
    A drop that keeps each seed's errors and adds 2 points more: caught at 3 pairs nearly always."""
    spec = ACCURACY
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 800)
    good = [_flips(labels, 0.18 + rng.normal(0, 0.006), 100 + s) for s in range(20)]
    alarms = false_alarm_rate(good, labels, spec, 3, 300, rng_seed=1, n_boot=300, paired=True)
    assert 0.005 <= alarms["rate"] <= 0.09
    worse = [np.where(np.random.default_rng(s).random(800) < 0.02, 1 - labels, p) for s, p in enumerate(good)]
    caught = detection_rate(good, worse, labels, spec, 3, 100, rng_seed=2, n_boot=300, paired=True)
    missed = detection_rate(good, worse, labels, spec, 3, 100, rng_seed=2, n_boot=300)
    assert caught["rate"] >= 0.9 and missed["rate"] < caught["rate"]
    with pytest.raises(HarnessError, match="aligned by seed"):
        detection_rate(good, worse[:5], labels, spec, 3, 10, paired=True)
