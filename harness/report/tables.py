"""Paper-style tables from runs: seeds aggregated as the paper does (GLUE: median of the seeds'
best-epoch scores, ± their std; NLG: mean), missing and failed runs shown as such, never as 0."""

from __future__ import annotations

import statistics
from collections import defaultdict

from harness.report.reference import GLUE_COLUMNS, PAPER_TABLES, PaperRow
from harness.report.results import RunRecord

COLUMN_NAMES = {
    "glue/mnli": "MNLI", "glue/sst2": "SST-2", "glue/mrpc": "MRPC", "glue/cola": "CoLA", "glue/qnli": "QNLI",
    "glue/qqp": "QQP", "glue/rte": "RTE", "glue/stsb": "STS-B", "avg": "Avg",
    "bleu": "BLEU", "nist": "NIST", "meteor": "MET", "rouge_l": "ROUGE-L", "cider": "CIDEr", "ter": "TER",
    **{f"{m}_{s}": f"{name} {s[0].upper()}" for m, name in (("bleu", "BLEU"), ("meteor", "MET"), ("ter", "TER"))
       for s in ("unseen", "seen", "all")},
}
MNLI_DEV_SIZES = (9815, 9832)  # matched, mismatched: the paper's MNLI number is accuracy over both


def run_score(record: RunRecord) -> float | None:
    """The number a run contributes to a table: its best epoch's main metric; for MNLI the
    accuracy over both dev sets."""
    if record.status != "finished":
        return None
    if record.task == "glue/mnli" and {"accuracy_m", "accuracy_mm"} <= set(record.best):
        m, mm = MNLI_DEV_SIZES
        return (record.best["accuracy_m"] * m + record.best["accuracy_mm"] * mm) / (m + mm)
    return record.score


NLG_TASKS = ("e2e", "webnlg", "dart")


def aggregate(values: list[float], task: str) -> tuple[float, float | None]:
    """(center, std): the mean over seeds for generation tasks (the paper's NLG convention), the
    median for GLUE and every other classification or regression task."""
    center = statistics.mean(values) if task.startswith(NLG_TASKS) else statistics.median(values)
    return center, (statistics.stdev(values) if len(values) > 1 else None)


def paper_style(value: float, std: float | None, scale: float = 100.0, decimals: int = 1) -> str:
    """87.5±.3 (the paper's way of printing a score and its seed spread)."""
    text = f"{value * scale:.{decimals}f}"
    if std is not None:
        text += "±" + f"{std * scale:.{decimals}f}".removeprefix("0")
    return text


def scale_of(column: str, task: str = "") -> tuple[float, int]:
    """(scale, decimals) of a column. GLUE metrics are fractions, printed x100 with 1 decimal; the
    generation metrics are stored on the paper's scale already (harness.nlg_metrics) and printed as
    the paper prints them: BLEU, E2E METEOR and ROUGE-L with 1 decimal, NIST and CIDEr with 2,
    WebNLG/DART METEOR and TER as fractions with 2."""
    if column in NLG_TASKS:
        return 1.0, 1  # a task column shows its main metric, BLEU
    metric = column.removesuffix("_all").removesuffix("_seen").removesuffix("_unseen")
    if metric in ("meteor", "ter") and task in ("webnlg", "dart"):
        return 1.0, 2
    return {"bleu": (1.0, 1), "meteor": (1.0, 1), "rouge_l": (1.0, 1), "nist": (1.0, 2), "cider": (1.0, 2),
            "dev_loss": (1.0, 3)}.get(metric, (100.0, 1))


def value_of(record: RunRecord, column: str) -> float | None:
    """A run's number for a column: a task (its main score) or a metric name (NLG tables)."""
    if column.startswith("glue/") or column == record.task:
        return run_score(record)
    return record.best.get(column) if record.status == "finished" else None


def cell(records: list[RunRecord], column: str) -> tuple[str, float | None]:
    """(text, value) of one table cell from the runs of one row and one column."""
    scores = [s for s in (value_of(r, column) for r in records) if s is not None]
    failed = sum(r.status == "failed" for r in records)
    if not scores:
        if failed:
            return f"failed ({failed})", None
        if any(r.status == "running" for r in records):
            return "running", None
        return "missing", None
    value, std = aggregate(scores, records[0].task)
    scale, decimals = scale_of(column, records[0].task)
    text = paper_style(value, std, scale, decimals)
    if failed or len(scores) < len(records):
        text += f" ({len(scores)}/{len(records)} runs)"
    return text, value


def _millions(count: int | None) -> str:
    if count is None:
        return "?"
    return f"{count / 1e6:.2f}M" if count >= 10_000 else f"{count / 1e3:.1f}K"


def _ordered_tasks(records: list[RunRecord]) -> list[str]:
    tasks = {r.task for r in records}
    return [t for t in GLUE_COLUMNS if t in tasks] + sorted(tasks - set(GLUE_COLUMNS))


def _row_groups(records: list[RunRecord], by: tuple[str, ...] = ()):
    """(row start, the row's runs) per model x method (x the config keys in ``by``, e.g. a learning-rate
    sweep): the row start holds model, method, the ``by`` values and # trainable."""
    groups: dict[tuple, list[RunRecord]] = defaultdict(list)
    for record in records:
        groups[(record.model, record.method_label, *(str(record.config.get(key, "?")) for key in by))].append(record)
    for (model, label, *values), group in sorted(groups.items(), key=lambda item: _sort_key(item[0])):
        trainable = next((r.params.get("trainable") for r in group if r.params), None)
        count = "0" if group[0].epochs == 0 else _millions(trainable)  # an untrained run trains nothing
        yield {"model": model, "method": label, **dict(zip(by, values)), "# trainable": count}, group


def _sort_key(key: tuple) -> tuple:
    """Numbers in numeric order (1e-3 before 3e-3 before 1e-2), anything else as text."""
    def one(value):
        try:
            return (0, float(value), "")
        except ValueError:
            return (1, 0.0, value)
    return tuple(one(v) for v in key)


def _seeds(group: list[RunRecord]) -> str:
    return ",".join(map(str, sorted({r.seed for r in group if r.seed is not None})))


def results_table(records: list[RunRecord], by: tuple[str, ...] = ()) -> tuple[list[dict], list[str]]:
    """Rows = model x method (with its settings; split further by the config keys in ``by``), columns =
    tasks (+ Avg when every task has a value); for runs of one generation task, its metrics (the layout of
    the paper's Tables 3, 13, 14)."""
    tasks = _ordered_tasks(records)
    if len(tasks) == 1 and tasks[0].startswith(NLG_TASKS):
        return _metric_table(records, by)
    rows = []
    for row, group in _row_groups(records, by):
        values = []
        for task in tasks:
            text, value = cell([r for r in group if r.task == task], task)
            row[COLUMN_NAMES.get(task, task)] = text
            values.append(value)
        averageable = values and None not in values and not any(t.startswith(NLG_TASKS) for t in tasks)
        row["Avg"] = f"{100 * statistics.mean(values):.1f}" if averageable else "n/a"
        row["seeds"] = _seeds(group)
        rows.append(row)
    columns = ["model", "method", *by, "# trainable", *[COLUMN_NAMES.get(t, t) for t in tasks], "Avg", "seeds"]
    return rows, columns


def _metric_table(records: list[RunRecord], by: tuple[str, ...] = ()) -> tuple[list[dict], list[str]]:
    metrics = list(dict.fromkeys(k for r in records if r.status == "finished" for k in (r.best or {})))
    metrics = [m for m in metrics if m != "dev_loss"] + ["dev_loss"] * ("dev_loss" in metrics)
    rows = []
    for row, group in _row_groups(records, by):
        for metric in metrics:
            row[COLUMN_NAMES.get(metric, metric)] = cell(group, metric)[0]
        row["seeds"] = _seeds(group)
        rows.append(row)
    return rows, ["model", "method", *by, "# trainable", *[COLUMN_NAMES.get(m, m) for m in metrics], "seeds"]


def _matches(row: PaperRow, record: RunRecord) -> bool:
    if row.method is None or record.model != row.model or record.method != row.method:
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


def paper_table(name: str, records: list[RunRecord], with_paper: bool = True) -> tuple[list[dict], list[str]]:
    """The paper's table `name` ('table2', 'table3') in its own row and column order, markers
    kept, our values from ``records``, then (optionally) the paper's row and ours - paper."""
    paper_rows, paper_columns, task = PAPER_TABLES[name]
    columns = [*paper_columns, "avg"] if name == "table2" else list(paper_columns)
    names = [COLUMN_NAMES[c] for c in columns]
    rows = []
    for row in paper_rows:
        matched = [r for r in records if _matches(row, r)]
        ours = {"row": f"{row.label}{row.marker}", "": "ours", "# Trainable": row.params}
        values = {}
        for column in columns:
            if column == "avg":
                ok = all(values.get(c) is not None for c in paper_columns)
                ours["Avg"] = f"{100 * statistics.mean(values[c] for c in paper_columns):.1f}" if ok else "n/a"
                values["avg"] = statistics.mean(values[c] for c in paper_columns) if ok else None
                continue
            task_records = [r for r in matched if r.task == (task or column)]
            text, value = cell(task_records, column)
            ours[COLUMN_NAMES[column]] = text
            values[column] = value
        rows.append(ours)
        if with_paper:
            rows.append({"row": "", "": "paper", "# Trainable": "",
                         **{COLUMN_NAMES[c]: row.values.get(c, "") for c in columns}})
            delta = {"row": "", "": "Δ (ours − paper)", "# Trainable": ""}
            for column in columns:
                printed, value = _printed_value(row.values.get(column)), values.get(column)
                scale, decimals = scale_of(column, task or column)
                delta[COLUMN_NAMES[column]] = (f"{value * scale - printed:+.{decimals}f}"
                                               if value is not None and printed is not None else "")
            rows.append(delta)
    return rows, ["row", "", "# Trainable", *names]
