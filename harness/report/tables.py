"""Paper-style tables from runs: seeds aggregated as the paper does (GLUE: median of the seeds'
best-epoch scores, ± their std; NLG: mean), missing and failed runs shown as such, never as 0.

What a column is called, how it is scaled and aggregated comes from the task and metric specs
(harness.report.specs), never from a task or metric name here: a new dataset needs no entry."""

from __future__ import annotations

import json
import statistics
from functools import lru_cache

import pandas as pd

from harness.fingerprint import differences
from harness.metrics import MetricSpec
from harness.models.smoke import is_smoke, real_model
from harness.report.reference import GLUE_COLUMNS, PAPER_TABLES, PaperRow
from harness.report.results import RunRecord, records_frame
from harness.report.specs import column_label, is_generation, main_spec_of, spec_of, task_label, task_of


def aggregate(values: pd.Series, spec: MetricSpec) -> tuple[float, float | None]:
    """(center, std) over seeds: the spec's center (median for GLUE, mean for NLG) and the spread."""
    return float(values.agg(spec.aggregate)), (float(values.std()) if len(values) > 1 else None)


def paper_style(value: float, std: float | None, scale: float = 100.0, decimals: int = 1) -> str:
    """87.5±.3 (the paper's way of printing a score and its seed spread)."""
    text = f"{value * scale:.{decimals}f}"
    if std is not None:
        text += "±" + f"{std * scale:.{decimals}f}".removeprefix("0")
    return text


def _task_spec(runs: pd.DataFrame | None, task: str) -> MetricSpec:
    """The spec of a task column: the task's main spec (the run's main metric if the task is unknown)."""
    mains = [] if runs is None else runs["main_metric"].dropna()
    return main_spec_of(task, next(iter(mains), None))


def cell(runs: pd.DataFrame, spec: MetricSpec, column: str = "score") -> tuple[str, float | None]:
    """(text, value) of one table cell from the runs (frame rows) of one row and one column, aggregated
    and printed as ``spec`` says; ``column`` is a run's number (default: its task's main score)."""
    scores = runs[column].dropna() if column in runs else pd.Series(dtype=float)
    failed = int((runs["status"] == "failed").sum()) if len(runs) else 0
    if scores.empty:
        if failed:
            return f"failed ({failed})", None
        if len(runs) and (runs["status"] == "running").any():
            return "running", None
        return "missing", None
    value, std = aggregate(scores, spec)
    text = paper_style(value, std, spec.scale, spec.decimals)
    if failed or len(scores) < len(runs):
        text += f" ({len(scores)}/{len(runs)} runs)"
    seeds = runs.loc[(runs["status"] == "finished") & runs["seed"].notna(), "seed"]
    repeated = sorted({int(seed) for seed in seeds[seeds.duplicated()]})
    if repeated:  # two runs of one seed are not two seeds: the spread is understated
        text += f" (seed {', '.join(map(str, repeated))} repeated)"
    return text, value


def average(values: list[float | None], specs: list[MetricSpec]) -> tuple[float | None, MetricSpec | None]:
    """(mean, how to print it) of a row's task scores, the paper's Table 2 'Avg': only when every task
    has a value, aggregates its seeds as GLUE does (median) and prints on one scale; a mean of BLEU
    and accuracy, or of numbers on different scales, means nothing."""
    if not values or None in values or any(s.aggregate != "median" for s in specs):
        return None, None
    if len({(s.scale, s.decimals) for s in specs}) != 1:
        return None, None
    return statistics.mean(values), MetricSpec("avg", "Avg", scale=specs[0].scale, decimals=specs[0].decimals)


def _average_text(value: float | None, spec: MetricSpec | None) -> str:
    return "n/a" if spec is None else paper_style(value, None, spec.scale, spec.decimals)


def _millions(count: int | None) -> str:
    if count is None:
        return "?"
    return f"{count / 1e6:.2f}M" if count >= 10_000 else f"{count / 1e3:.1f}K"


def _ordered_tasks(runs: pd.DataFrame) -> list[str]:
    tasks = set(runs["task"])
    return [t for t in GLUE_COLUMNS if t in tasks] + sorted(tasks - set(GLUE_COLUMNS))


def _table_frame(records: list[RunRecord], by: tuple[str, ...] = ()) -> pd.DataFrame:
    """The runs' frame with what a table groups on: the ``by`` settings as text and the setting tag."""
    runs = records_frame(records, with_records=True)
    for key in by:
        runs[f"by.{key}"] = [str(r.config.get(key, "?")) for r in records]
    runs["tag"] = setting_tags(runs, by)
    return runs


def _row_groups(runs: pd.DataFrame, by: tuple[str, ...] = ()):
    """(row start, the row's runs) per model x method (x the config keys in ``by``, e.g. a learning-rate
    sweep): the row start holds model, method, the ``by`` values and # trainable. Runs of one task that
    differ in more than the seed are never pooled: such a row splits, and each part names what differs."""
    keys = ["model", "label", *(f"by.{key}" for key in by), "tag"]
    groups = sorted(runs.groupby(keys, sort=False, dropna=False), key=lambda item: _sort_key(item[0]))
    for (model, label, *values, tag), group in groups:
        trainable = next(iter(group["params_trainable"].dropna()), None) if "params_trainable" in group else None
        count = "0" if group["epochs"].iloc[0] == 0 else _millions(trainable)  # an untrained run trains nothing
        method = f"{label} [{tag}]" if tag else label
        yield {"model": model, "method": method, **dict(zip(by, values)), "# trainable": count}, group


def setting_tags(runs: pd.DataFrame, by: tuple[str, ...] = ()) -> list[str]:
    """Per run (frame row), for runs that share model, method, ``by`` values and task but not their setting
    (fingerprint without the seed): 'field=value, ...' of the fields that tell them apart; '' otherwise."""
    tags = pd.Series("", index=runs.index, dtype=object)
    ran = runs[runs["status"].isin(("finished", "failed"))]  # a running cell has no record to tell apart yet
    for _, group in ran.groupby(["model", "label", "task", *(f"by.{key}" for key in by)], sort=False, dropna=False):
        prints = [r.fingerprint for r in group["record"]]
        differing = sorted({name for p in prints[1:] for name in differences(prints[0], p)})
        if differing:
            for index, fields in zip(group.index, prints):
                tags[index] = ", ".join(f"{name}={fields.get(name)}" for name in differing)
    return tags.tolist()


def _sort_key(key: tuple) -> tuple:
    """Numbers in numeric order (1e-3 before 3e-3 before 1e-2), anything else as text."""
    def one(value):
        try:
            return (0, float(value), "")
        except ValueError:
            return (1, 0.0, value)
    return tuple(one(v) for v in key)


def _seeds(group: pd.DataFrame) -> str:
    return ",".join(str(int(seed)) for seed in sorted(set(group["seed"].dropna())))


EFFICIENCY = {"weights (MB)": ("weights_memory_mb", "{:,.1f}"), "peak memory (MB)": ("peak_memory_mb", "{:,.0f}"),
              "training peak (MB)": ("training_peak_memory_mb", "{:,.0f}"),
              "train samples/s": ("train_samples_per_s", "{:.1f}"), "train time (s)": ("train_time_s", "{:,.0f}")}


def _with_efficiency(rows: list[dict], columns: list[str], groups: list[tuple[dict, pd.DataFrame]]
                     ) -> tuple[list[dict], list[str]]:
    """Rows with the median over their finished runs of peak memory, training speed and training time."""
    for row, (_, group) in zip(rows, groups):
        finished = group[group["status"] == "finished"]
        for label, (key, fmt) in EFFICIENCY.items():
            values = finished[key].dropna() if key in finished else pd.Series(dtype=float)
            row[label] = fmt.format(values.median()) if len(values) else "?"
    at = columns.index("seeds")
    return rows, columns[:at] + list(EFFICIENCY) + columns[at:]


def results_table(records: list[RunRecord], by: tuple[str, ...] = (), efficiency: bool = False
                  ) -> tuple[list[dict], list[str]]:
    """Rows = model x method (with its settings; split further by the config keys in ``by``), columns =
    tasks (+ Avg when every task has a value); for runs of one generation task, its metrics (the layout of
    the paper's Tables 3, 13, 14). ``efficiency``: also the medians of peak memory, samples/s, train time."""
    runs = _table_frame(records, by)
    groups = list(_row_groups(runs, by))
    tasks = _ordered_tasks(runs)
    if len(tasks) == 1 and is_generation(tasks[0]):
        rows, columns = _metric_table(runs, groups, tasks[0], by)
    else:
        rows, columns = _task_table(runs, groups, tasks, by)
    return _with_efficiency(rows, columns, groups) if efficiency else (rows, columns)


def _task_table(runs: pd.DataFrame, groups, tasks: list[str], by: tuple[str, ...]) -> tuple[list[dict], list[str]]:
    """Columns = tasks, each its main score (+ Avg when every task has a value)."""
    specs = [_task_spec(runs[runs["task"] == task], task) for task in tasks]
    labels = [task_label(task) for task in tasks]
    rows = []
    for row, group in groups:
        values = []
        for task, spec, label in zip(tasks, specs, labels):
            text, value = cell(group[group["task"] == task], spec)
            row[label] = text
            values.append(value)
        row["Avg"] = _average_text(*average(values, specs))
        row["seeds"] = _seeds(group)
        rows.append(row)
    return rows, ["model", "method", *by, "# trainable", *labels, "Avg", "seeds"]


def _metric_table(runs: pd.DataFrame, groups, task: str, by: tuple[str, ...] = ()) -> tuple[list[dict], list[str]]:
    """Columns = the metrics the runs stored, in their order: the task's own metrics first, then what
    runs store besides them (the per-epoch dev loss)."""
    finished = runs[runs["status"] == "finished"]
    keys = list(dict.fromkeys(k for r in finished["record"] for k in (r.best or {})))
    declared = set(task_of(task).metric_names())
    keys.sort(key=lambda key: key not in declared)  # stable: stored order within each group
    labels = [column_label(task, key) for key in keys]
    rows = []
    for row, group in groups:
        for key, label in zip(keys, labels):
            row[label] = cell(group, spec_of(task, key), f"best_{key}")[0]
        row["seeds"] = _seeds(group)
        rows.append(row)
    return rows, ["model", "method", *by, "# trainable", *labels, "seeds"]


def _matches(row: PaperRow, record: RunRecord) -> bool:
    # A smoke run (`grid --smoke`: a small random model of the row's architecture) fills its model's row.
    if row.method is None or real_model(record.model) != row.model or record.method != row.method:
        return False
    if any(record.method_options.get(k) != v for k, v in row.options.items()):
        return False
    # A run of an experiment file counts only for the row that experiment reproduces.
    return record.experiment is None or record.experiment == row.experiment


def paper_matches(name: str, records: list[RunRecord]) -> int:
    """How many of ``records`` fill a row of the paper's table ``name``."""
    return sum(any(_matches(row, r) for row in PAPER_TABLES[name][0]) for r in records)


def _printed_value(text: str) -> float | None:
    try:
        return float(text.split("±")[0])
    except (ValueError, AttributeError):
        return None


def paper_columns(name: str) -> list[tuple[str, str, MetricSpec, str]]:
    """(key, label, spec, the frame column of a run's value) per column of the paper's table ``name``: each
    column a task (Table 2, its main score) or a metric of the table's one task (Tables 3, 13, 14)."""
    _, keys, task = PAPER_TABLES[name]
    if task is None:
        return [(key, task_label(key), _task_spec(None, key), "score") for key in keys]
    return [(key, column_label(task, key), spec_of(task, key), f"best_{key}") for key in keys]


def _delta(value: float | None, printed: str | None, spec: MetricSpec | None) -> str:
    """Ours − paper on the paper's printed scale, with the paper's decimals."""
    printed = _printed_value(printed)
    if value is None or printed is None or spec is None:
        return ""
    return f"{value * spec.scale - printed:+.{spec.decimals}f}"


def _our_count(row, matched: pd.DataFrame, table: str) -> str:
    """'# Trainable' of our row: what our runs trained, else our count of the row's setting (the paper's
    printed count belongs to the paper row; smoke runs train a small model, so their rows count the real
    one); '' for rows the harness does not reproduce."""
    real = matched[[not is_smoke(model) for model in matched["model"]]] if len(matched) else matched
    trained = next(iter(real["params_trainable"].dropna()), None) if "params_trainable" in real else None
    if trained is not None:
        return _millions(int(trained))
    if row.method is None:
        return ""
    return _millions(_count(row.model, row.method, json.dumps(row.options, sort_keys=True), table != "table2"))


@lru_cache(maxsize=None)
def _count(model: str, method: str, options: str, causal_lm: bool) -> int:
    """Trainable parameters of a setting, built on the meta device once per process (tables repeat rows)."""
    from harness.params import count_without_weights

    return count_without_weights(model, method, json.loads(options), causal_lm=causal_lm).trainable


def paper_table(name: str, records: list[RunRecord], with_paper: bool = True) -> tuple[list[dict], list[str]]:
    """The paper's table `name` ('table2', 'table3') in its own row and column order, markers
    kept, our values from ``records``, then (optionally) the paper's row and ours - paper."""
    paper_rows, _, task = PAPER_TABLES[name]
    runs = records_frame(records, with_records=True)
    columns = paper_columns(name)
    with_avg = any("avg" in row.values for row in paper_rows)  # the paper prints an average (Table 2)
    labels = [label for _, label, _, _ in columns] + ["Avg"] * with_avg
    rows = []
    for row in paper_rows:
        matched = runs[[_matches(row, r) for r in runs["record"]]] if len(runs) else runs
        smoke = len(matched) > 0 and all(is_smoke(model) for model in matched["model"])
        ours = {"row": f"{row.label}{row.marker}", "": "ours (smoke)" if smoke else "ours",
                "# Trainable": _our_count(row, matched, name)}
        values, specs = {}, {}
        for key, label, spec, column in columns:
            ours[label], values[key] = cell(matched[matched["task"] == (task or key)], spec, column)
            specs[key] = spec
        if with_avg:
            values["avg"], specs["avg"] = average([values[k] for k, *_ in columns], [c[2] for c in columns])
            ours["Avg"] = _average_text(values["avg"], specs["avg"])
        rows.append(ours)
        if with_paper:
            keys = [key for key, *_ in columns] + ["avg"] * with_avg
            rows.append({"row": "", "": "paper", "# Trainable": row.params,
                         **{label: row.values.get(key, "") for key, label in zip(keys, labels)}})
            rows.append({"row": "", "": "Δ (ours − paper)", "# Trainable": "",  # none for smoke runs' numbers
                         **{label: "" if smoke else _delta(values.get(key), row.values.get(key), specs.get(key))
                            for key, label in zip(keys, labels)}})
    return rows, ["row", "", "# Trainable", *labels]
