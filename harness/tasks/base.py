"""What a task is: where its examples come from, its label set and its official metrics."""

from __future__ import annotations

import csv
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import DATA_DIR_ENV
from harness.errors import HarnessError
from harness.metrics import MetricSpec, fallback_spec, get_metric

csv.field_size_limit(1 << 30)  # long documents (e.g. IMDb reviews) exceed the 128 KiB default



@dataclass(frozen=True)
class Example:
    text: str
    text_pair: str | None
    label: int | float  # class id, or the target value of a regression task


@dataclass(frozen=True)
class GenerationExample:
    """A data-to-text input with its references: one reference per training pair, all of an input's
    references when evaluating (the metrics are multi-reference)."""

    source: str  # the linearised input (an E2E MR, WebNLG/DART triples)
    references: tuple[str, ...]
    subset: str = ""  # WebNLG test: 'seen' or 'unseen' category


@dataclass
class Split:
    examples: list[Example] | list[GenerationExample]
    origin: str  # a file path or 'hub:<dataset>[<split>]', for error messages and the run log


def first(split: Split, limit: int | None) -> Split:
    """The first ``limit`` examples (all if None): decoding keeps the inputs' order."""
    return split if limit is None else Split(split.examples[:limit], split.origin)


def subsample(split: Split, limit: int | None, seed: int) -> Split:
    """A random subset of ``limit`` examples in their original order (all of them if limit is None)."""
    if limit is None or limit >= len(split.examples):
        return split
    keep = sorted(random.Random(seed).sample(range(len(split.examples)), limit))
    return Split([split.examples[i] for i in keep], split.origin)


def hold_out(split: Split, count: int | None, seed: int) -> tuple[Split, Split | None]:
    """(the rest, ``count`` held-out examples): a random slice of a training split, fixed by ``seed``,
    for choosing settings on data the reported dev/test sets never see. None: (split, None)."""
    if count is None:
        return split, None
    if count >= len(split.examples):
        raise HarnessError(f"--heldout-samples {count} leaves nothing to train on: {split.origin} has "
                           f"{len(split.examples)} examples; hold out fewer.")
    held = set(random.Random(f"heldout-{seed}").sample(range(len(split.examples)), count))
    origin = f"{split.origin} (held out)"
    return (Split([e for i, e in enumerate(split.examples) if i not in held], split.origin),
            Split([e for i, e in enumerate(split.examples) if i in held], origin))


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """--data-dir wins, then $HARNESS_DATA_DIR; None means 'use the hub'."""
    value = data_dir if data_dir not in (None, "") else os.environ.get(DATA_DIR_ENV) or None
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise HarnessError(
            f"data directory '{path}' does not exist; pass an existing folder with --data-dir "
            f"or ${DATA_DIR_ENV}, or omit both to load from the Hugging Face hub."
        )
    return path


@dataclass
class ColumnSpec:
    """Which columns hold the text(s) and the label. Names for files with a header, ints without."""

    text: str | int
    label: str | int
    text_pair: str | int | None = None


@dataclass
class Task:
    name: str
    kind: str  # 'classification', 'regression', 'generation', or another registered objective's kind
    metrics: list[str]
    main_metric: str
    source: Any  # a data source: has .load(task, split, data_dir) -> Split and .describe()
    label_names: list[str] | None = None  # classification: names in class-id order
    train_split: str = "train"
    # Evaluation sets, keyed by the suffix their metrics get ('' for the usual single dev set;
    # MNLI has 'm' and 'mm').
    eval_splits: dict[str, str] = field(default_factory=lambda: {"": "dev"})
    description: str = ""
    # Generation tasks: which scorer (harness.metrics.nlg: 'e2e', 'webnlg' or pkg.mod:fn), the split whose
    # loss is computed after each epoch (decoding every epoch would cost more than training), and the
    # subsets scored separately besides 'all' (WebNLG's seen/unseen categories).
    scorer: str | None = None
    loss_split: str = "dev"
    subsets: tuple[str, ...] = ()
    decode_defaults: dict[str, Any] = field(default_factory=dict)  # e.g. the paper's length penalty
    label: str = ""  # how tables and plots name the task (e.g. 'SST-2'); default: its name
    # Metric keys whose spec has another name (WebNLG's 'meteor' is a fraction: 'meteor_fraction').
    metric_specs: dict[str, str] = field(default_factory=dict)
    # The task's one number in tables when it is a weighted mean of several metrics: MNLI's accuracy over
    # both dev sets, {"accuracy_m": 9815, "accuracy_mm": 9832}. Default: the main metric.
    main_score_weights: dict[str, float] | None = None

    def __post_init__(self):
        self.label = self.label or self.name
        for metric in self.metrics:
            get_metric(self.metric_specs.get(metric, metric))  # fail at definition time on a typo
        if self.kind == "classification" and not self.label_names and not getattr(self.source, "infers_labels", False):
            raise HarnessError(f"task '{self.name}': a classification task needs its labels.")
        if self.main_metric not in self.metric_names():
            raise HarnessError(
                f"task '{self.name}': main metric '{self.main_metric}' is not one of {self.metric_names()}."
            )

    @property
    def num_labels(self) -> int:
        return 1 if self.kind == "regression" else len(self.label_names or [])

    def metric_names(self) -> list[str]:
        if self.kind == "generation" and self.subsets:
            return [f"{m}_{s}" for s in ("all", *self.subsets) for m in self.metrics]
        names = []
        for suffix in self.eval_splits:
            names += [f"{m}_{suffix}" if suffix else m for m in self.metrics]
        return names

    def split_key(self, key: str) -> tuple[str, str]:
        """(metric, suffix) of a metric key as stored in metrics.json: 'bleu_seen' -> ('bleu', 'seen'),
        'accuracy_m' -> ('accuracy', 'm'), 'dev_loss' -> ('dev_loss', '')."""
        for suffix in [*self.eval_splits, "all", *self.subsets]:
            if suffix and key.endswith("_" + suffix) and key.removesuffix("_" + suffix) in self.metrics:
                return key.removesuffix("_" + suffix), suffix
        return key, ""

    def metric_spec(self, key: str) -> MetricSpec:
        """The spec of a metric key as stored in metrics.json ('bleu_seen', 'accuracy_m', 'dev_loss')."""
        metric, _ = self.split_key(key)
        return fallback_spec(self.metric_specs.get(metric, metric))

    @property
    def main_spec(self) -> MetricSpec:
        return self.metric_spec(self.main_metric)

    def main_score(self, best: dict[str, float]) -> float | None:
        """The number a run contributes to a table: its best epoch's main metric (or weighted mean)."""
        weights = self.main_score_weights
        if weights and set(weights) <= set(best):
            return sum(best[k] * w for k, w in weights.items()) / sum(weights.values())
        return best.get(self.main_metric)

    def load(self, split: str, data_dir=None) -> Split:
        return self.source.load(self, split, resolve_data_dir(data_dir))

    def compute_metrics(self, preds, labels, suffix: str = "") -> dict[str, float]:
        return {(f"{m}_{suffix}" if suffix else m): get_metric(self.metric_specs.get(m, m)).fn(preds, labels)
                for m in self.metrics}

    def check_metrics(self, metrics) -> None:
        for metric in metrics or ():
            if metric not in self.metrics:
                raise HarnessError(f"--metrics: task '{self.name}' has no metric '{metric}' (its metrics: "
                                   f"{', '.join(self.metrics)}).")

    def score(self, hypotheses: list[str], examples: list[GenerationExample], metrics=None) -> dict[str, float]:
        """Generation metrics of ``hypotheses`` (one per example) against the examples' references,
        for all examples and for each subset; ``metrics`` restricts which are computed. The scorer
        computes the metrics whose spec has no ``fn``; the others (e.g. ``evaluate:NAME``) their ``fn``
        of (hypotheses, lists of references)."""
        from harness.metrics.nlg import get_scorer

        metrics = tuple(metrics or self.metrics)
        self.check_metrics(metrics)
        own = {m: get_metric(self.metric_specs.get(m, m)).fn for m in metrics}
        by_scorer = tuple(m for m in metrics if own[m] is None)
        scorer = get_scorer(self.scorer) if by_scorer else None
        groups = {"": list(range(len(examples)))}
        if self.subsets:
            groups = {"all": groups[""], **{s: [i for i, e in enumerate(examples) if e.subset == s] for s in self.subsets}}
        scores, scored = {}, {}
        for name, indices in groups.items():
            if not indices:
                continue
            if tuple(indices) not in scored:  # a subset holding every input scores as 'all' (no second METEOR run)
                hyps, refs = [hypotheses[i] for i in indices], [list(examples[i].references) for i in indices]
                values = dict(scorer(hyps, refs, metrics=by_scorer)) if by_scorer else {}
                values.update({m: fn(hyps, refs) for m, fn in own.items() if fn is not None})
                scored[tuple(indices)] = values
            scores.update({(f"{m}_{name}" if name else m): v for m, v in scored[tuple(indices)].items()})
        return scores

    def label_id(self, raw: Any, where: str) -> int | float:
        """Map a raw label value read from a file to a class id (or a float for regression)."""
        if self.kind == "regression":
            try:
                return float(raw)
            except (TypeError, ValueError):
                raise HarnessError(f"{where}: label '{raw}' is not a number (task '{self.name}' is a regression task).") from None
        names = self.label_names or []
        key = str(raw).strip()
        if key in names:
            return names.index(key)
        raise HarnessError(
            f"{where}: label '{raw}' is not one of the labels of task '{self.name}' ({', '.join(names)})."
        )


# ---------------------------------------------------------------------------------------------
# Reading delimited and JSON-lines files, with file:line in every error.


def read_records(path: Path, fmt: str | None = None, header: bool = True, quoting: int = csv.QUOTE_MINIMAL):
    """Yield (line_number, record) from a CSV, TSV or JSONL/JSON file.

    Records are dicts when the file has a header (or is JSON), lists otherwise. A row whose field
    count differs from the header's is an error naming the file and line.
    """
    fmt = fmt or file_format(path)
    if fmt in ("jsonl", "json"):
        yield from _read_json(path, fmt)
        return
    delimiter = "\t" if fmt == "tsv" else ","
    # utf-8-sig drops the byte-order mark that MRPC's files start with.
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
        columns = None
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if header and columns is None:
                columns = [c.strip() for c in row]
                continue
            width = len(columns) if columns else None
            if width is not None and len(row) != width:
                raise HarnessError(
                    f"{path}:{line}: malformed row: {len(row)} fields where the header has {width}; "
                    f"fix or remove this line."
                )
            yield line, (dict(zip(columns, row)) if columns else row)


def _read_json(path: Path, fmt: str):
    with open(path, encoding="utf-8") as handle:
        if fmt == "json":
            try:
                data = json.load(handle)
            except json.JSONDecodeError as err:
                raise HarnessError(f"{path}:{err.lineno}: invalid JSON ({err.msg}).") from None
            if isinstance(data, dict) and "data" in data:
                data = data["data"]
            if not isinstance(data, list):
                raise HarnessError(f"{path}: expected a JSON list of records (or JSON lines in a .jsonl file).")
            for index, record in enumerate(data, 1):
                yield index, record
            return
        for line, text in enumerate(handle, 1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                raise HarnessError(f"{path}:{line}: invalid JSON line ({err.msg}).") from None
            if not isinstance(record, dict):
                raise HarnessError(f"{path}:{line}: expected a JSON object per line.")
            yield line, record


def file_format(path: Path) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in ("csv", "tsv", "jsonl", "json"):
        return suffix
    raise HarnessError(f"{path}: unknown file type '.{suffix}'; use .csv, .tsv, .jsonl or .json.")


def field_of(record, column: str | int, where: str) -> Any:
    """A record's value in ``column``; a clear error when the column is missing."""
    try:
        return record[column]
    except (KeyError, IndexError):
        if isinstance(record, dict):
            raise HarnessError(
                f"{where}: no column '{column}' (columns: {', '.join(map(str, record))}); "
                f"choose one with --text-column/--text-pair-column/--label-column."
            ) from None
        raise HarnessError(f"{where}: row has {len(record)} fields, needs at least {column + 1}.") from None


def examples_from_records(task: Task, records, columns: ColumnSpec, origin: str) -> Split:
    examples = []
    for line, record in records:
        where = f"{origin}:{line}"
        text = field_of(record, columns.text, where)
        pair = field_of(record, columns.text_pair, where) if columns.text_pair is not None else None
        label = task.label_id(field_of(record, columns.label, where), where)
        examples.append(Example(str(text), None if pair is None else str(pair), label))
    if not examples:
        raise HarnessError(f"{origin}: no examples; the split is empty.")
    return Split(examples, origin)
