"""What a report column means, read from the task and metric specs.

Tables and plots ask here for a column's name, scale, decimals and seed aggregation instead of
keeping tables keyed by task or metric name, so a new dataset or metric needs no registration in
the report code. A run whose task is not registered (an ad-hoc 'csv' task, a deleted YAML file)
falls back to its metric names alone (``fallback_spec``).
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError
from harness.metrics import MetricSpec, fallback_spec
from harness.tasks import Task, find_task, task_from_yaml

_TASKS: dict[str, Task] = {}


def task_of(name: str) -> Task | None:
    """The registered (or learned) task of a run, or None. Found tasks are cached (a table asks once per cell);
    misses are not, so a task registered later (a plugin, a test) is still found."""
    if name not in _TASKS:
        task = find_task(name)
        if task is None:
            return None
        _TASKS[name] = task
    return _TASKS[name]


def learn(records) -> None:
    """Read the tasks of runs made from a task YAML file given by path (`harness run my/task.yaml`):
    not in the registry, but the run's config names the file, so their runs still report by spec."""
    for record in records:
        ref = str((record.config or {}).get("task") or "")
        if record.task in _TASKS or not ref.endswith((".yaml", ".yml")) or not Path(ref).is_file():
            continue
        try:
            task = task_from_yaml(ref)
        except HarnessError:
            continue  # the file no longer reads: fall back to the metric names
        if task.name == record.task and task_of(record.task) is None:
            _TASKS[record.task] = task


def spec_of(task_name: str, key: str | None) -> MetricSpec:
    """The spec of a metric key as a run of ``task_name`` stores it ('bleu_seen', 'accuracy_m')."""
    task = task_of(task_name)
    if task is not None and key:
        return task.metric_spec(key)
    return fallback_spec(key or task_name)


def main_spec_of(task_name: str, main_metric: str | None = None) -> MetricSpec:
    """The spec of the one number a run of the task contributes (a task column, a plot's y axis);
    ``main_metric`` (the run's) serves when the task is unknown."""
    task = task_of(task_name)
    return task.main_spec if task is not None else fallback_spec(main_metric or task_name)


def task_label(task_name: str) -> str:
    """A task column's name: the task's label ('SST-2'), else its name."""
    task = task_of(task_name)
    return task.label if task is not None else task_name


def is_generation(task_name: str) -> bool:
    """Whether runs of this task alone make a metric table (columns = its metrics, Tables 3/13/14)."""
    task = task_of(task_name)
    return task is not None and task.kind == "generation"


def column_label(task_name: str, key: str) -> str:
    """A metric column's name: the spec's label, plus the subset's initial for a subset key
    ('bleu_seen' -> 'BLEU S', as the paper's Table 13 prints them) or the eval split's suffix
    ('accuracy_mm' -> 'accuracy mm'), so two columns never share a name."""
    label = spec_of(task_name, key).label
    task = task_of(task_name)
    if task is None:
        return label
    _, suffix = task.split_key(key)
    if task.subsets and suffix in ("all", *task.subsets):
        return f"{label} {suffix[0].upper()}"
    return f"{label} {suffix}" if suffix and suffix in task.eval_splits else label


def axis_note(spec: MetricSpec) -> str:
    """How a plotted value relates to the stored one: 'x100, median over seeds'."""
    scale = f"x{spec.scale:g}, " if spec.scale != 1 else ""
    return f"{scale}{spec.aggregate} over seeds"
