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


# ---------------------------------------------------------------------------------------------
# Per-example sufficient statistics, for `harness check`'s bootstrap (harness.report.stats).
#
# ``X_stats(preds, labels)`` gives an (n_examples, k) array whose column sums determine the metric;
# ``X_from_stats(summed)`` maps summed statistics (..., k) to metric values (...), vectorised over
# the leading axes. A bootstrap resample is then a matrix product (count weights x statistics)
# instead of a Python call per resample. ``from_stats(stats(p, l).sum(0))`` equals the metric.


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (the metrics above return 0 when undefined)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def accuracy_stats(preds, labels) -> np.ndarray:
    """Columns: correct, 1 (the example count, so a resample's size is in its statistics)."""
    correct = np.asarray(preds) == np.asarray(labels)
    return np.stack([correct, np.ones_like(correct)], axis=1).astype(np.float64)


def accuracy_from_stats(stats) -> np.ndarray:
    stats = np.asarray(stats, dtype=np.float64)
    return _safe_ratio(stats[..., 0], stats[..., 1])


def f1_stats(preds, labels, positive=1) -> np.ndarray:
    """Columns: tp, fp, fn of the positive class (as ``f1``)."""
    preds, labels = np.asarray(preds) == positive, np.asarray(labels) == positive
    return np.stack([preds & labels, preds & ~labels, ~preds & labels], axis=1).astype(np.float64)


def f1_from_stats(stats) -> np.ndarray:
    stats = np.asarray(stats, dtype=np.float64)
    tp, fp, fn = stats[..., 0], stats[..., 1], stats[..., 2]
    return _safe_ratio(2 * tp, 2 * tp + fp + fn)


def matthews_corr_stats(preds, labels) -> np.ndarray:
    """Columns: the flattened C x C confusion matrix (row = true class), one-hot per example.

    C counts the classes present in ``preds`` or ``labels`` (as ``matthews_corr``); classes absent
    from a resample add zero rows and columns, which leave R_K unchanged.
    """
    preds, labels = np.asarray(preds), np.asarray(labels)
    classes = np.union1d(preds, labels)
    cell = np.searchsorted(classes, labels) * len(classes) + np.searchsorted(classes, preds)
    out = np.zeros((len(preds), len(classes) ** 2))
    out[np.arange(len(preds)), cell] = 1.0
    return out


def matthews_corr_from_stats(stats) -> np.ndarray:
    """Gorodkin's R_K from summed confusion counts, as ``matthews_corr`` (exact: integer counts)."""
    stats = np.asarray(stats, dtype=np.float64)
    n_classes = int(round(np.sqrt(stats.shape[-1])))
    conf = stats.reshape(*stats.shape[:-1], n_classes, n_classes)
    t, p = conf.sum(axis=-1), conf.sum(axis=-2)  # true and predicted counts per class
    c, s = np.trace(conf, axis1=-2, axis2=-1), conf.sum(axis=(-2, -1))
    denom = np.sqrt((s**2 - (p * p).sum(-1)) * (s**2 - (t * t).sum(-1)))
    return _safe_ratio(c * s - (t * p).sum(-1), denom)


def pearson_stats(preds, labels) -> np.ndarray:
    """Columns: 1, x, y, x^2, y^2, xy, with x and y centred on this run's full-set means.

    Pearson's r is shift-invariant, and centring keeps the one-pass formula from cancelling
    catastrophically on large sums.
    """
    x = np.asarray(preds, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    x, y = x - x.mean(), y - y.mean()
    return np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=1)


def pearson_from_stats(stats) -> np.ndarray:
    stats = np.asarray(stats, dtype=np.float64)
    n, sx, sy, sxx, syy, sxy = (stats[..., i] for i in range(6))
    n_safe = np.where(n > 0, n, 1.0)
    cov = sxy - sx * sy / n_safe
    # A resample with one distinct value has variance 0, which the one-pass formula leaves as
    # rounding residue of sxx; below 1e-10 of sxx count it as 0 (r undefined -> 0, as ``pearson``).
    var_x = sxx - sx * sx / n_safe
    var_y = syy - sy * sy / n_safe
    var_x = np.where(var_x > 1e-10 * sxx, var_x, 0.0)
    var_y = np.where(var_y > 1e-10 * syy, var_y, 0.0)
    return _safe_ratio(cov, np.sqrt(var_x * var_y))
