"""Hugging Face ``evaluate`` metrics named in a task: ``metrics: [evaluate:exact_match]``.

The harness computes its own metrics (offline, tested against scikit-learn/SciPy and the official
scorers); a metric it does not have can come from ``evaluate`` when its script is on this machine:
in evaluate's module cache (loaded once with the hub reachable) or in a folder
(``evaluate:/path/to/my_metric``, holding ``my_metric.py``). Nothing is imported or loaded until the
metric is first computed; ``evaluate`` is an optional dependency (``pip install 'lora-harness[evaluate]'``).
"""

from __future__ import annotations

import numbers

from harness.errors import HarnessError

PREFIX = "evaluate:"


class EvaluateMetric:
    """``fn(predictions, references) -> float`` of ``evaluate.load(name)``, loaded on the first call."""

    def __init__(self, name: str):
        self.name = name
        self._module = None

    def __call__(self, predictions, references) -> float:
        module = self.module()
        try:
            values = module.compute(predictions=_plain(predictions), references=_plain(references))
        except Exception as err:  # e.g. inputs of another type than the metric's features
            detail = (str(err).splitlines() or [""])[0]
            raise HarnessError(f"evaluate metric '{self.name}' failed: {type(err).__name__}: {detail}") from None
        return self._one_value(values)

    def module(self):
        if self._module is None:
            self._module = load(self.name)
        return self._module

    def _one_value(self, values) -> float:
        """The metric's number: its only value, or the one named like the metric (exact_match)."""
        key = short_name(self.name)
        values = values if isinstance(values, dict) else {key: values}
        numeric = {k: v for k, v in values.items() if isinstance(v, numbers.Real)}
        if key in numeric:
            return float(numeric[key])
        if len(numeric) == 1:
            return float(next(iter(numeric.values())))
        raise HarnessError(f"evaluate metric '{self.name}' returned {sorted(values) or 'nothing'}, not one number; "
                           f"wrap it in a MetricSpec of your own (pkg.module:spec) that picks one.")


def short_name(name: str) -> str:
    """'exact_match' of 'exact_match', '/path/to/exact_match' or '/path/to/exact_match.py'."""
    return name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].removesuffix(".py")


def load(name: str):
    """``evaluate.load(name)`` with one-line errors: evaluate missing, or the metric not available offline."""
    try:
        import evaluate
    except ImportError:
        raise HarnessError(f"metric '{PREFIX}{name}' needs the evaluate package: pip install 'lora-harness[evaluate]' "
                           f"(or pip install evaluate).") from None
    try:
        return evaluate.load(name)
    except Exception as err:  # FileNotFoundError offline; ConnectionError and others from the hub
        detail = (str(err).splitlines() or [type(err).__name__])[0]
        raise HarnessError(f"metric '{PREFIX}{name}' is not in the local evaluate cache ({detail}); run once with "
                           f"the hub reachable to cache it, or name the folder of its script "
                           f"({PREFIX}/path/to/metric_folder).") from None


def _plain(values):
    """numpy arrays (the classification objective's predictions and labels) as lists."""
    return values.tolist() if hasattr(values, "tolist") else list(values)
