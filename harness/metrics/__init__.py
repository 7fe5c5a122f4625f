"""What a metric means, in one place: the metric spec registry.

Tables, plots, `harness check` and the loop's best-epoch choice read a metric's spec; nothing
else decides its direction, scale or how seeds aggregate. A spec's ``fn`` computes the metric from
one run's per-example predictions and labels (the GLUE metrics; `check` recomputes them on
bootstrap resamples); corpus metrics of generated text (BLEU, METEOR, ...) are computed by their
task's scorer and have no ``fn``.

Add a metric with ``METRICS.add(name, MetricSpec(...))``, or name one by import path
(``my_pkg.metrics:my_spec``) or publish it under the entry-point group ``harness.metrics``. A
Hugging Face ``evaluate`` metric whose script is on this machine is named ``evaluate:NAME``
(harness.metrics.hf_evaluate; loaded when first computed).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from harness.metrics import classification as _cls
from harness.metrics import hf_evaluate as _hf
from harness.registry import Registry, is_import_ref, load_object


@dataclass(frozen=True)
class MetricSpec:
    name: str
    label: str  # how tables and plots name it
    fn: Callable[..., float] | None = None  # (predictions, labels) -> value; None: computed by a scorer
    higher_is_better: bool = True
    scale: float = 100.0  # printed value = stored value x scale (GLUE fractions are printed x100)
    decimals: int = 1  # decimals printed, as the paper prints them
    aggregate: Literal["median", "mean"] = "median"  # over seeds: GLUE median (Table 2), NLG mean (Table 3)
    margin: float = 0.005  # `harness check`: differences within +-margin (stored units) count as equivalent
    # Per-example sufficient statistics, so `harness check` bootstraps with one matrix product:
    # stats(predictions, labels) -> (n_examples, k) floats whose column sums determine the metric;
    # from_stats(summed (..., k)) -> values (...), vectorised. None (e.g. spearman: ranks do not
    # decompose): the bootstrap calls ``fn`` on every resample instead.
    stats: Callable[..., np.ndarray] | None = None
    from_stats: Callable[[np.ndarray], np.ndarray] | None = None
    # The values the metric can take (stored units; None: unbounded on that side). A score's interval is
    # cut there: a t interval over 3 spread seeds can pass 100% accuracy, and the cut cannot drop the truth.
    bounds: tuple[float | None, float | None] = (None, None)

    def better(self, value: float, than: float | None) -> bool:
        """Whether ``value`` beats ``than`` in this metric's direction (anything beats None)."""
        if than is None:
            return True
        return value > than if self.higher_is_better else value < than

    def printed(self, value: float) -> float:
        return value * self.scale

    def clipped(self, value: float) -> float:
        """``value`` moved into the metric's bounds."""
        low, high = self.bounds
        return min(max(value, -math.inf if low is None else low), math.inf if high is None else high)


METRICS: Registry[MetricSpec] = Registry("metric", group="harness.metrics")

FRACTION, CORRELATION, PERCENT, NON_NEGATIVE = (0.0, 1.0), (-1.0, 1.0), (0.0, 100.0), (0.0, None)  # bounds

for _spec in [
    # GLUE metrics: fractions, printed x100 with one decimal; margin 0.5 point.
    MetricSpec("accuracy", "accuracy", _cls.accuracy, stats=_cls.accuracy_stats, from_stats=_cls.accuracy_from_stats,
               bounds=FRACTION),
    MetricSpec("f1", "f1", _cls.f1, stats=_cls.f1_stats, from_stats=_cls.f1_from_stats, bounds=FRACTION),
    MetricSpec("matthews_corr", "Matthews corr.", _cls.matthews_corr, stats=_cls.matthews_corr_stats,
               from_stats=_cls.matthews_corr_from_stats, bounds=CORRELATION),
    MetricSpec("pearson", "Pearson corr.", _cls.pearson, stats=_cls.pearson_stats, from_stats=_cls.pearson_from_stats,
               bounds=CORRELATION),
    MetricSpec("spearman", "spearman", _cls.spearman, bounds=CORRELATION),  # no stats: ranks do not decompose
    # Generation metrics, stored on the paper's scale by harness.metrics.nlg, means over seeds.
    MetricSpec("bleu", "BLEU", scale=1.0, aggregate="mean", margin=0.5, bounds=PERCENT),
    MetricSpec("nist", "NIST", scale=1.0, decimals=2, aggregate="mean", margin=0.05, bounds=NON_NEGATIVE),
    MetricSpec("meteor", "MET", scale=1.0, aggregate="mean", margin=0.5, bounds=PERCENT),  # E2E: 0-100
    MetricSpec("rouge_l", "ROUGE-L", scale=1.0, aggregate="mean", margin=0.5, bounds=PERCENT),
    MetricSpec("cider", "CIDEr", scale=1.0, decimals=2, aggregate="mean", margin=0.02, bounds=NON_NEGATIVE),
    # The WebNLG script reports METEOR and TER as fractions, printed with two decimals.
    MetricSpec("meteor_fraction", "MET", scale=1.0, decimals=2, aggregate="mean", margin=0.005, bounds=FRACTION),
    MetricSpec("ter", "TER", higher_is_better=False, scale=1.0, decimals=2, aggregate="mean", margin=0.005,
               bounds=NON_NEGATIVE),
    # sacrebleu's chrF2 (0-100), an extra column of both generation scorers (the paper prints none).
    MetricSpec("chrf", "chrF", scale=1.0, aggregate="mean", margin=0.5, bounds=PERCENT),
    # The target-token loss on the dev set that generation runs compute after each epoch.
    MetricSpec("dev_loss", "dev_loss", higher_is_better=False, scale=1.0, decimals=3, aggregate="mean", margin=0.01,
               bounds=NON_NEGATIVE),
]:
    METRICS.add(_spec.name, _spec)


def get_metric(name: str) -> MetricSpec:
    """A registered metric's spec, an ``evaluate:NAME`` metric's, or the spec named by ``pkg.mod:spec``."""
    if name not in METRICS and name.startswith(_hf.PREFIX):
        return evaluate_spec(name)
    if name not in METRICS and is_import_ref(name):
        return load_object(name, "metric")
    return METRICS.get(name)


def fallback_spec(name: str) -> MetricSpec:
    """The spec of a registered (or ``evaluate:``) metric, else a neutral one (higher is better, printed as stored)."""
    if name not in METRICS and name.startswith(_hf.PREFIX):
        return evaluate_spec(name)
    return METRICS.find(name) or MetricSpec(name, name, scale=1.0, decimals=4)


@functools.cache
def evaluate_spec(name: str) -> MetricSpec:
    """The spec of ``evaluate:NAME``: nothing is known of its scale or direction, so it is printed as
    computed, higher is better, median over seeds; ``evaluate`` loads it on the first computation."""
    metric = name.removeprefix(_hf.PREFIX)
    return MetricSpec(name, _hf.short_name(metric), _hf.EvaluateMetric(metric), scale=1.0, decimals=4)
