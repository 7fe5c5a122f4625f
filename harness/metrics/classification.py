"""The GLUE metrics, written out in NumPy (tests compare them with scikit-learn and SciPy)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harness.errors import unknown_choice


def accuracy(preds, labels) -> float:
    preds, labels = np.asarray(preds), np.asarray(labels)
    return float((preds == labels).mean())


def f1(preds, labels, positive=1) -> float:
    """Binary F1 of the positive class (GLUE's MRPC/QQP convention)."""
    preds, labels = np.asarray(preds) == positive, np.asarray(labels) == positive
    tp = float(np.sum(preds & labels))
    denom = float(preds.sum() + labels.sum())
    return 2 * tp / denom if denom else 0.0


def matthews_corr(preds, labels) -> float:
    """Matthews correlation for any number of classes (Gorodkin's R_K), 0 when undefined."""
    preds, labels = np.asarray(preds), np.asarray(labels)
    classes = np.union1d(preds, labels)
    conf = np.zeros((len(classes), len(classes)))
    np.add.at(conf, (np.searchsorted(classes, labels), np.searchsorted(classes, preds)), 1)
    t, p = conf.sum(axis=1), conf.sum(axis=0)  # true and predicted counts per class
    c, s = np.trace(conf), conf.sum()
    denom = np.sqrt((s**2 - p @ p) * (s**2 - t @ t))
    return float((c * s - t @ p) / denom) if denom else 0.0


def pearson(preds, labels) -> float:
    x = np.asarray(preds, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt((x @ x) * (y @ y))
    return float(x @ y / denom) if denom else 0.0


def _average_ranks(values) -> np.ndarray:
    """Ranks starting at 1, ties sharing their mean rank (as scipy.stats.rankdata)."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    # Boundaries of runs of equal values; each run gets the mean of its ordinal ranks.
    starts = np.flatnonzero(np.r_[True, sorted_vals[1:] != sorted_vals[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2
    return ranks


def spearman(preds, labels) -> float:
    return pearson(_average_ranks(preds), _average_ranks(labels))


METRICS: dict[str, Callable[..., float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "matthews_corr": matthews_corr,
    "pearson": pearson,
    "spearman": spearman,
}


def get_metric(name: str) -> Callable[..., float]:
    if name not in METRICS:
        raise unknown_choice("metric", name, METRICS)
    return METRICS[name]
