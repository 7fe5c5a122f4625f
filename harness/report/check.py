"""`harness check`: verdicts on a candidate's runs against a reference's, that can be trusted.

An entry is a task x model. Each side of an entry (a candidate method and a reference method, or
the current runs of a method and its stored baseline) must be ONE setting: runs whose fingerprints
(harness.fingerprint: everything but the seed) are equal. Runs of different budgets or learning
rates are never pooled: a side with several settings, or two sides whose settings differ in more
than what legitimately differs between two methods (``METHOD_FIELDS``) or what the user ignores,
is an error naming the fields.

Verdicts come from per-example predictions, not from the stored scores: Δ with a t interval whose
variance adds the seeds' spread of each side and a paired bootstrap over the dev examples, their
interaction counted once (harness.report.stats.crossed_comparison), p-values Holm-adjusted over all entries,
then ``verdict`` (better / equivalent / inconclusive / worse). A reference with fewer than 3
seeds is inconclusive, never a silent pass. With ``pair_seeds`` (`--pair-seeds`) run i of each side share
their training seed and Δ's interval comes from the per-seed differences (stats.seed_paired_comparison):
for a library upgrade or a refactor, where a shared seed makes runs alike, and identical runs read
equivalent instead of inconclusive. Generation runs are compared on sacrebleu BLEU,
whose per-sentence statistics resample; the official scorers' corpus metrics do not.

A baseline (results/baselines/<name>.json) stores per task x model x method the setting's
fingerprint and per seed the score and the per-example predictions, so only the candidate needs
running, plus the efficiency numbers peft's method comparison records.

Exit codes: 1 if any entry is worse, or (unless ``allow_missing``) has no finished runs or failed
runs; 2 (``HarnessError``) for runs that cannot be compared; else 0.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError, unknown_choice
from harness.fingerprint import METHOD_FIELDS, describe, differences
from harness.metrics import MetricSpec, fallback_spec
from harness.report.render import render
from harness.report.results import RunRecord
from harness.report.specs import task_of
from harness.report.stats import (Comparison, crossed_comparison, holm, minimum_detectable_effect,
                                  seed_paired_comparison, verdict)
from harness.tasks.base import read_records

N_BOOT = 2000
ALPHA = 0.05
MIN_SEEDS = 3  # a reference with fewer seeds gives `inconclusive` (seed spread cannot be estimated)
BASELINE_FORMAT = 2  # 1: medians and tolerances only (no predictions): cannot be checked any more
SIDES = ("candidate", "reference")
# --where keys read from the run record; grid: the grid experiment a cell belongs to (its folder's name
# without the cell id), e.g. one entry of a suite among the others in one runs folder.
RECORD_KEYS = {"task": "task", "model": "model", "method": "method", "seed": "seed", "method_label": "method_label",
               "grid": "experiment"}


# ---------------------------------------------------------------------------------------------
# Selecting runs: --where KEY=VALUE


def _matches(value: Any, wanted: Any) -> bool:
    """Equal as given, as numbers (0.003 == '3e-3'), or as text ('True' == True, 'none' == None)."""
    if value == wanted:
        return True
    if value is None:
        return str(wanted).lower() in ("none", "null")
    try:
        return math.isclose(float(value), float(wanted), rel_tol=1e-9, abs_tol=0.0)
    except (TypeError, ValueError):
        return str(value).lower() == str(wanted).lower()


def _value(record: RunRecord, key: str, missing=KeyError):
    """A run's value of a --where key: its task/model/method/seed, a config key or a fingerprint field."""
    if key in RECORD_KEYS:
        return getattr(record, RECORD_KEYS[key])
    if key in (record.config or {}):
        return record.config[key]
    if "." in key and key in record.fingerprint:
        return record.fingerprint[key]
    return missing


def split_where(where: dict | None) -> tuple[dict, dict[str, dict]]:
    """Filters for all runs, and per side ('candidate:learning_rate' selects the candidate's runs only)."""
    common, sides = {}, {side: {} for side in SIDES}
    for key, wanted in (where or {}).items():
        side, _, name = str(key).rpartition(":")
        if side and side not in SIDES:
            raise HarnessError(f"--where {key}: a side prefix must be candidate: or reference:, not '{side}:'.")
        (sides[side] if side else common)[name] = wanted
    return common, sides


def select(records: list[RunRecord], where: dict | None) -> list[RunRecord]:
    """The runs whose settings have the given values; an unknown key or a filter matching nothing is an error."""
    selected = list(records)
    for key, wanted in (where or {}).items():
        values = [_value(r, key) for r in selected]
        known = [v for v in values if v is not KeyError]
        if selected and not known:
            valid = sorted({k for r in records for k in (r.config or {})} | set(RECORD_KEYS))
            raise unknown_choice("--where key", key, valid, "Dotted fingerprint fields work too (optim.learning_rate).")
        kept = [r for r, v in zip(selected, values) if v is not KeyError and _matches(v, wanted)]
        if not kept and selected:
            present = ", ".join(sorted({str(v) for v in known})[:8])
            raise HarnessError(f"no runs match --where {key}={wanted} (values of {key} in these runs: {present}).")
        selected = kept
    return selected


def _label_filter(records: list[RunRecord], wanted: str, role: str):
    """Runs of a method by its label ('lora (r=8)') or, when no label matches, by its name ('lora')."""
    labels = {r.method_label for r in records}
    if wanted in labels:
        return lambda r: r.method_label == wanted
    if wanted in {r.method for r in records}:
        return lambda r: r.method == wanted
    raise unknown_choice(f"{role} method", wanted, labels | {r.method for r in records},
                         "Give a method name or a label as `harness table` prints it.")


# ---------------------------------------------------------------------------------------------
# One side of an entry: one setting, one run per seed, with its per-example outputs


@dataclass
class Side:
    """One setting's runs of an entry, one per seed: what a verdict compares (or a baseline of them)."""

    name: str  # how messages name it: 'lora', 'the baseline of lora'
    task: str
    model: str
    kind: str = "classification"  # or 'generation' (outputs are hypotheses, truth the references)
    metric: str | None = None  # the runs' main metric key
    fingerprint: dict = field(default_factory=dict)
    seeds: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    outputs: list = field(default_factory=list)  # per seed: predictions (array) or hypotheses (list)
    truth: Any = None  # labels (array) or references (list of lists)
    peak_memory_mb: list = field(default_factory=list)  # per seed
    train_time_s: list = field(default_factory=list)
    trainable: int | None = None
    weights_bytes: float | None = None
    versions: dict = field(default_factory=dict)
    failed: int = 0
    unfinished: int = 0  # running, or cells of an experiment that never ran
    runs: list = field(default_factory=list)  # run names, one per seed
    notes: list = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return bool(self.seeds)


def settings(runs: list[RunRecord], ignore=()) -> list[list[RunRecord]]:
    """Runs grouped by setting: equal fingerprints (``differences`` semantics: a data file known by
    name matches the same name with a hash), the ``ignore``d fields left out."""
    groups: list[list[RunRecord]] = []
    for run in runs:
        fp = run.fingerprint
        group = next((g for g in groups if not differences(g[0].fingerprint, fp, ignore)), None)
        if group is None:
            groups.append([run])
        else:
            group.append(run)
    return groups


def one_setting(runs: list[RunRecord], name: str, ignore=()) -> list[RunRecord]:
    """The runs if they are seeds of one setting; otherwise the one-line error naming what differs."""
    groups = sorted(settings(runs, ignore), key=len, reverse=True)  # the most seeds first in the message
    if len(groups) <= 1:
        return runs
    raise HarnessError(f"runs of {name} on {runs[0].task} have {len(groups)} settings: "
                       f"{_describe_settings(groups, ignore)}; keep one per method in --runs or select with "
                       f"--where KEY=VALUE.")


def _describe_settings(groups: list[list[RunRecord]], ignore) -> str:
    """'optim.learning_rate 0.003 vs 3e-05' (fingerprint.describe); with more settings every value of a field."""
    first = groups[0][0].fingerprint
    if len(groups) == 2:
        return describe(differences(first, groups[1][0].fingerprint, ignore))
    fields = {}
    for group in groups[1:]:
        for name in differences(first, group[0].fingerprint, ignore):
            fields.setdefault(name, [])
    for name, values in fields.items():
        for group in groups:
            value = group[0].fingerprint.get(name)
            if value not in values:
                values.append(value)
    return describe({name: (" vs ".join(map(str, values[:-1])), values[-1]) for name, values in fields.items()})


def _first_per_seed(runs: list[RunRecord], name: str) -> tuple[list[RunRecord], list[str]]:
    """One run per seed (the first); a repeated seed is a note, never two samples of the seed spread."""
    kept, notes, seen = [], [], {}
    for run in runs:
        if run.seed in seen:
            notes.append(f"{name} on {run.task}: seed {run.seed} appears more than once ({seen[run.seed]}, "
                         f"{run.name}); using {seen[run.seed]} only.")
            continue
        seen[run.seed] = run.name
        kept.append(run)
    return kept, notes


def _read_jsonl(path: Path) -> list[dict]:
    """A run's per-example rows in example order (read_records gives file:line errors)."""
    return sorted((row for _, row in read_records(path, "jsonl")), key=lambda row: row.get("index", 0))


def _eval_suffix(task_name: str, metric: str | None) -> str:
    """The eval split whose predictions hold the main metric ('m' for MNLI's accuracy_m, else '')."""
    task = task_of(task_name)
    if task is None or not metric:
        return ""
    _, suffix = task.split_key(metric)
    return suffix if suffix in task.eval_splits else ""


def read_outputs(run: RunRecord) -> tuple[str, Any, Any]:
    """(kind, per-example outputs, truth) of a run's best epoch: classification predictions and
    labels, or generation hypotheses and references."""
    path = run.predictions_file(_eval_suffix(run.task, run.main_metric))
    if path is None:
        raise HarnessError(f"run {run.name} has no predictions.jsonl or generations.jsonl in {run.run_dir}; "
                           f"`harness check` compares per-example predictions, so re-run it with this harness.")
    rows = _read_jsonl(path)
    try:
        if path.name.startswith("generations"):
            return "generation", [r["hypothesis"] for r in rows], [list(r["references"]) for r in rows]
        return "classification", np.asarray([r["prediction"] for r in rows]), np.asarray([r["label"] for r in rows])
    except KeyError as err:
        raise HarnessError(f"{path}: rows have no {err.args[0]!r} column; re-run that run.") from None


def truth_difference(kind: str, a, b) -> str | None:
    """Why two sets of labels (or references) are not the same dev examples, or None when they are."""
    if len(a) != len(b):
        return f"{len(a)} vs {len(b)} examples"
    if kind == "generation":
        differ = sum(x != y for x, y in zip(a, b))
    else:
        a, b = np.asarray(a), np.asarray(b)
        differ = int(np.sum(~np.isclose(a, b) if a.dtype.kind == "f" or b.dtype.kind == "f" else a != b))
    what = "references" if kind == "generation" else "labels"
    return f"{what} differ at {differ} of {len(a)} examples" if differ else None


def median_known(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def side_from_runs(name: str, task: str, model: str, runs: list[RunRecord], ignore=()) -> Side:
    """A side from run records: finished runs of one setting, one per seed, with their outputs."""
    side = Side(name, task, model, failed=sum(r.status == "failed" for r in runs),
                unfinished=sum(r.status not in ("finished", "failed") for r in runs))
    finished = one_setting([r for r in runs if r.status == "finished"], name, ignore)
    finished, side.notes = _first_per_seed(finished, name)
    if not finished:
        return side
    if side.unfinished:
        side.notes.append(f"{name} on {task} / {model}: {side.unfinished} run(s) not finished, left out.")
    first = finished[0]
    side.metric, side.fingerprint, side.versions = first.main_metric, first.fingerprint, first.versions
    side.trainable = (first.params or {}).get("trainable")
    side.weights_bytes = median_known(r.weights_bytes for r in finished)
    for run in finished:
        kind, outputs, truth = read_outputs(run)
        if side.truth is None:
            side.kind, side.truth = kind, truth
        why = "one classifies, one generates" if kind != side.kind else truth_difference(kind, side.truth, truth)
        if why:
            raise HarnessError(f"runs {side.runs[0]} and {run.name} ({name} on {task}) were scored on different "
                               f"dev examples ({why}); re-run them on one dev set.")
        side.seeds.append(run.seed)
        side.scores.append(run.score)
        side.outputs.append(outputs)
        side.runs.append(run.name)
        side.peak_memory_mb.append((run.throughput or {}).get("peak_memory_mb"))
        side.train_time_s.append((run.throughput or {}).get("train_time_s"))
    return side


# ---------------------------------------------------------------------------------------------
# Comparing two sides


def metric_spec(side: Side) -> MetricSpec:
    """Generation: sacrebleu BLEU (it resamples by sentence); else the task's main metric spec."""
    if side.kind == "generation":
        from harness.metrics.nlg import sacrebleu_spec

        return sacrebleu_spec("bleu")
    task = task_of(side.task)
    return task.main_spec if task is not None else fallback_spec(side.metric or "score")


def _check_comparable(cand: Side, ref: Side, ignore, methods_differ: bool) -> None:
    """Same setting (but for what may differ between the two methods and ``ignore``) and dev examples."""
    skipped = tuple(ignore) + (METHOD_FIELDS if methods_differ else ())
    diffs = differences(cand.fingerprint, ref.fingerprint, skipped)
    if diffs:
        raise HarnessError(f"{cand.name} and {ref.name} on {cand.task} differ in {describe(diffs)}; compare runs "
                           f"of one setting (--where KEY=VALUE), or pass --ignore FIELD if the difference does not "
                           f"matter.")
    why = (truth_difference(cand.kind, cand.truth, ref.truth) if cand.kind == ref.kind
           else "one classifies, one generates")
    if why:
        raise HarnessError(f"{cand.name} and {ref.name} on {cand.task} were scored on different dev examples "
                           f"({why}); compare runs scored on the same dev set.")


def _score_notes(side: Side, spec: MetricSpec) -> list[str]:
    """Predictions that do not reproduce the stored score are not the best epoch's: say so."""
    if side.kind == "generation" or spec.fn is None:
        return []
    notes = []
    for run, outputs, score in zip(side.runs, side.outputs, side.scores):
        value = spec.fn(outputs, side.truth)
        if score is not None and not math.isclose(value, score, rel_tol=1e-6, abs_tol=1e-9):
            notes.append(f"{run}: its predictions give {spec.label} {value:.6g} but metrics.json says {score:.6g}.")
    return notes


def ratio_reading(candidate: list, reference: list, n_boot: int = N_BOOT, seed: int = 0, confidence: float = 0.95,
                  min_seeds: int = MIN_SEEDS) -> dict:
    """Ratio of medians (candidate / reference) of a per-seed cost with a bootstrap-over-seeds interval:
    'lower' or 'higher' when the whole interval is below or above 1, else 'inconclusive'."""
    cand = np.asarray([v for v in candidate if v is not None], dtype=np.float64)
    ref = np.asarray([v for v in reference if v is not None], dtype=np.float64)
    if not len(cand) or not len(ref) or np.median(ref) <= 0:
        return {"ratio": None, "lo": None, "hi": None, "reading": "-"}
    ratio = float(np.median(cand) / np.median(ref))
    if min(len(cand), len(ref)) < min_seeds:
        return {"ratio": ratio, "lo": None, "hi": None, "reading": "inconclusive"}
    rng = np.random.default_rng(seed)
    cand_med = np.median(cand[rng.integers(0, len(cand), (n_boot, len(cand)))], axis=1)
    ref_med = np.median(ref[rng.integers(0, len(ref), (n_boot, len(ref)))], axis=1)
    tail = (1 - confidence) / 2
    lo, hi = (float(q) for q in np.quantile(cand_med / ref_med, [tail, 1 - tail]))
    reading = "lower" if hi < 1 else "higher" if lo > 1 else "inconclusive"
    return {"ratio": ratio, "lo": lo, "hi": hi, "reading": reading}


@dataclass
class Entry:
    """One task x model (x method, against a baseline): two sides and what came of comparing them."""

    task: str
    model: str
    method: str | None
    cand: Side
    ref: Side
    spec: MetricSpec | None = None
    comparison: Comparison | None = None
    p_holm: float | None = None
    verdict: str = "missing"
    reason: str = ""


def _missing_reason(entry: Entry) -> str:
    """Why an entry has no verdict: which side has no finished runs, and why."""
    parts = []
    for side in (entry.cand, entry.ref):
        if not side.finished:
            why = [f"{side.failed} failed"] if side.failed else []
            why += [f"{side.unfinished} not finished"] if side.unfinished else []
            parts.append(f"no finished runs of {side.name}" + (f" ({', '.join(why)})" if why else ""))
    return "; ".join(parts) + "."


def seed_pairs(ref: Side, other: Side) -> tuple[list, list, list]:
    """The seeds both sides ran, in ``ref``'s order, and each side's outputs for them (seed pairs)."""
    theirs = dict(zip(other.seeds, other.outputs))
    seeds = [s for s in ref.seeds if s in theirs]
    mine = dict(zip(ref.seeds, ref.outputs))
    return seeds, [mine[s] for s in seeds], [theirs[s] for s in seeds]


def _seed_pairs(entry: Entry) -> tuple[list, list, list[str]]:
    """Both sides' outputs of the seeds they share, in the reference's order, and a note on the rest."""
    shared, ref, cand = seed_pairs(entry.ref, entry.cand)
    alone = [f"{side.name} seed(s) {', '.join(map(str, sorted(left)))}" for side, left in
             ((entry.cand, [s for s in entry.cand.seeds if s not in shared]),
              (entry.ref, [s for s in entry.ref.seeds if s not in shared])) if left]
    notes = [f"{entry.task} / {entry.model}: --pair-seeds left out {' and '.join(alone)} (no run of that seed on the "
             f"other side)."] if alone else []
    return cand, ref, notes


def _compare(entry: Entry, pair_seeds: bool, n_boot: int, seed: int) -> list[str]:
    """entry.comparison: seeds paired (same seed on both sides) or each side's seeds drawn on their own."""
    if not pair_seeds:
        entry.comparison = crossed_comparison(entry.spec, entry.ref.truth, entry.cand.outputs, entry.ref.outputs,
                                              n_boot=n_boot, seed=seed)
        return []
    cand, ref, notes = _seed_pairs(entry)
    if not ref:
        raise HarnessError(f"--pair-seeds: {entry.cand.name} (seeds {entry.cand.seeds}) and {entry.ref.name} (seeds "
                           f"{entry.ref.seeds}) share no seed on {entry.task} / {entry.model}; run the same seeds "
                           f"on both sides, or compare without --pair-seeds.")
    entry.comparison = seed_paired_comparison(entry.spec, entry.ref.truth, cand, ref, n_boot=n_boot, seed=seed)
    return notes


def compare_entries(entries: list[Entry], ignore=(), margin: float | None = None, alpha: float = ALPHA,
                    n_boot: int = N_BOOT, seed: int = 0, pair_seeds: bool = False) -> list[str]:
    """Bootstrap every entry with both sides finished, Holm-adjust over them, then give verdicts; notes.
    ``pair_seeds``: compare run with run of the same seed (stats.seed_paired_comparison)."""
    notes = []
    compared = [e for e in entries if e.cand.finished and e.ref.finished]
    for entry in compared:
        _check_comparable(entry.cand, entry.ref, ignore, methods_differ=entry.cand.name != entry.ref.name
                          and entry.method is None)
        entry.spec = metric_spec(entry.ref)
        notes += _score_notes(entry.cand, entry.spec) + _score_notes(entry.ref, entry.spec)
        notes += _compare(entry, pair_seeds, n_boot, seed)
    for entry, p in zip(compared, holm([e.comparison.p_value for e in compared])):
        entry.p_holm = p
        stored_margin = None if margin is None else margin / entry.spec.scale
        entry.verdict, entry.reason = verdict(entry.comparison, entry.spec, p, stored_margin, alpha, MIN_SEEDS)
        if entry.verdict != "inconclusive":
            entry.reason = ""
    for entry in entries:
        if entry.comparison is None:
            entry.reason = _missing_reason(entry)
        failed = entry.cand.failed + (entry.ref.failed if entry.ref is not entry.cand else 0)
        if failed:
            entry.reason = f"{failed} failed run(s). " + entry.reason
        notes += entry.cand.notes + (entry.ref.notes if entry.ref is not entry.cand else [])
    return notes


# ---------------------------------------------------------------------------------------------
# The result: rows, a second table of efficiency numbers, notes and the exit code


def _num(spec: MetricSpec, value: float, signed: bool = False) -> str:
    return f"{value * spec.scale:{'+' if signed else ''}.{spec.decimals + 1}f}"


def _verdict_row(entry: Entry, names: tuple[str, str], alpha: float = ALPHA) -> dict:
    row = {"task": entry.task, "model": entry.model}
    if entry.method is not None:
        row["method"] = entry.method
    c, spec = entry.comparison, entry.spec
    if c is None:
        spec = metric_spec(entry.ref if entry.ref.finished else entry.cand)
        seeds = f"{len(entry.cand.seeds)}/{len(entry.ref.seeds)}"
        return {**row, "metric": spec.label, names[0]: "-", names[1]: "-", "Δ": "", "95% CI": "", "p (Holm)": "",
                "MDE": "", "seeds": seeds, "examples": "", "verdict": entry.verdict, "reason": entry.reason}
    mde = minimum_detectable_effect(c.se, alpha, df=c.df)
    return {**row, "metric": spec.label, names[0]: _num(spec, c.candidate_value),
            names[1]: _num(spec, c.reference_value),
            "Δ": _num(spec, c.delta, True), "95% CI": f"[{_num(spec, c.lo, True)}, {_num(spec, c.hi, True)}]",
            "p (Holm)": f"{entry.p_holm:.3g}", "MDE": _num(spec, mde), "seeds": f"{c.n_candidate}/{c.n_reference}",
            "examples": str(c.n_examples), "verdict": entry.verdict, "reason": entry.reason}


def _pair(cand, ref, fmt: str) -> str:
    show = lambda v: "-" if v is None else fmt.format(v)  # noqa: E731
    return f"{show(cand)} / {show(ref)}"


def _ratio_text(reading: dict) -> str:
    if reading["ratio"] is None:
        return "-"
    interval = f" [{reading['lo']:.2f}, {reading['hi']:.2f}]" if reading["lo"] is not None else ""
    return f"{reading['ratio']:.2f}x{interval} {reading['reading']}"


def _efficiency(entry: Entry, n_boot: int, seed: int) -> tuple[dict, dict]:
    """Trainable parameters, median peak memory and train time (with ratio readings) and weights, both sides."""
    cand, ref = entry.cand, entry.ref
    memory = ratio_reading(cand.peak_memory_mb, ref.peak_memory_mb, n_boot, seed)
    train = ratio_reading(cand.train_time_s, ref.train_time_s, n_boot, seed + 1)
    kb = lambda b: None if b is None else b / 1024  # noqa: E731
    row = {"task": entry.task, "model": entry.model, **({"method": entry.method} if entry.method is not None else {}),
           "trainable": _pair(cand.trainable, ref.trainable, "{:,}"),
           "peak MB": _pair(median_known(cand.peak_memory_mb), median_known(ref.peak_memory_mb), "{:.0f}"),
           "peak ratio": _ratio_text(memory),
           "train s": _pair(median_known(cand.train_time_s), median_known(ref.train_time_s), "{:.1f}"),
           "time ratio": _ratio_text(train),
           "weights KB": _pair(kb(cand.weights_bytes), kb(ref.weights_bytes), "{:,.0f}")}
    return row, {"peak_memory": memory, "train_time": train}


@dataclass
class CheckResult:
    """What `harness check` prints and returns: verdict rows, efficiency rows, notes, exit code."""

    title: str
    rows: list[dict]
    columns: list[str]
    efficiency_rows: list[dict]
    efficiency_columns: list[str]
    notes: list[str]
    exit_code: int
    entries: list[dict]  # raw numbers per entry (comparison, verdict, efficiency readings), e.g. for JSON

    def counts(self) -> dict[str, int]:
        names = ("worse", "better", "equivalent", "inconclusive", "missing")
        return {v: sum(r["verdict"] == v for r in self.rows) for v in names}

    def summary(self) -> str:
        counts = ", ".join(f"{n} {v}" for v, n in self.counts().items())
        return f"{counts}; exit {self.exit_code}"

    def render(self, fmt: str = "text") -> str:
        """Text and Markdown: title, verdicts, efficiency, notes, summary. Other formats: the tables
        only (CSV: one table, the efficiency columns joined to the verdict rows)."""
        if fmt == "csv":
            keys = [c for c in self.efficiency_columns if c not in self.columns]
            merged = [{**r, **{k: e[k] for k in keys}} for r, e in zip(self.rows, self.efficiency_rows)]
            return render(merged, self.columns + keys, fmt)
        tables = (render(self.rows, self.columns, fmt) + "\n"
                  + render(self.efficiency_rows, self.efficiency_columns, fmt))
        if fmt not in ("text", "markdown"):
            return tables
        bullet = "- " if fmt == "markdown" else "note: "
        notes = "".join(f"{bullet}{note}\n" for note in self.notes)
        return f"{self.title}\n\n{tables}\n{notes}{self.summary()}\n"


def _exit_code(entries: list[Entry], allow_missing: bool) -> int:
    if any(e.verdict == "worse" for e in entries):
        return 1
    incomplete = any(e.verdict == "missing" or e.cand.failed or e.ref.failed for e in entries)
    return 1 if incomplete and not allow_missing else 0


def _entries_text(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def _title(mode: str, entries: list[Entry], margin: float | None, alpha: float, n_boot: int,
           pair_seeds: bool = False) -> str:
    """What the numbers are, printed above them (a verdict is only as good as its reader's reading)."""
    margins = {f"{e.spec.label} {_num(e.spec, e.spec.margin if margin is None else margin / e.spec.scale)}"
               for e in entries if e.spec is not None}
    compared = _entries_text(sum(e.comparison is not None for e in entries))
    return "\n".join([
        f"harness check: {mode}.",
        "Values on the metric's printed scale, means over seeds; Δ = candidate - reference; 95% CI: t interval "
        + ("from the spread of the per-seed differences (runs paired by seed: --pair-seeds)" if pair_seeds else
           "from the seeds' spread") + f" and a paired bootstrap over dev examples (n_boot {n_boot}).",
        f"p Holm-adjusted over {compared}, alpha {alpha:g}; equivalent = CI within +-margin "
        f"({', '.join(sorted(margins)) or '-'}); MDE = effect detectable with 80% power at alpha (before Holm); "
        f"a reference needs {MIN_SEEDS} seeds for a verdict.",
        "Efficiency: candidate / reference; ratios of medians over seeds with a 95% bootstrap interval "
        "(lower/higher when it excludes 1)."])


def build_result(mode: str, entries: list[Entry], names: tuple[str, str], notes: list[str], *, margin=None,
                 alpha=ALPHA, n_boot=N_BOOT, seed=0, allow_missing=False, pair_seeds=False) -> CheckResult:
    """Rows and exit code from compared entries."""
    rows = [_verdict_row(e, names, alpha) for e in entries]
    efficiency = [_efficiency(e, n_boot, seed) for e in entries]
    raw = []
    for entry, (_, readings) in zip(entries, efficiency):
        raw.append({"task": entry.task, "model": entry.model, "method": entry.method, "verdict": entry.verdict,
                    "reason": entry.reason, "metric": entry.spec.label if entry.spec else None,
                    "p_holm": entry.p_holm, "comparison": entry.comparison.to_dict() if entry.comparison else None,
                    "candidate_runs": entry.cand.runs, "reference_runs": entry.ref.runs, **readings})
    columns = list(rows[0]) if rows else ["task", "model", "verdict"]
    eff_columns = list(efficiency[0][0]) if efficiency else ["task", "model"]
    title = _title(mode, entries, margin, alpha, n_boot, pair_seeds)
    return CheckResult(title, rows, columns, [e for e, _ in efficiency], eff_columns, notes,
                       _exit_code(entries, allow_missing), raw)


# ---------------------------------------------------------------------------------------------
# Mode 1: a candidate method against a reference method on the same tasks and model


def _a_a(candidate: str, reference: str, where: dict | None) -> bool:
    """Whether both sides are the same runs: one method, no filter that selects one side only."""
    _, sides = split_where(where)
    return candidate == reference and not any(sides.values())


def _entries_of_methods(records, candidate: str, reference: str, where: dict | None, ignore) -> tuple[list, list]:
    common, sides = split_where(where)
    records = select(records, common)
    is_cand, is_ref = _label_filter(records, candidate, "candidate"), _label_filter(records, reference, "reference")
    cand_runs, ref_runs = select([r for r in records if is_cand(r)], sides["candidate"]), \
        select([r for r in records if is_ref(r)], sides["reference"])
    keys = sorted({(r.task, r.model) for r in ref_runs})
    entries, notes, same = [], [], _a_a(candidate, reference, where)
    for task, model in sorted({(r.task, r.model) for r in cand_runs} - set(keys)):
        notes.append(f"{candidate} has runs on {task} / {model} but {reference} has none there (not compared).")
    for task, model in keys:
        pick = lambda runs: [r for r in runs if (r.task, r.model) == (task, model)]  # noqa: E731
        ref = side_from_runs(reference, task, model, pick(ref_runs), ignore)
        cand = ref if same else side_from_runs(candidate, task, model, pick(cand_runs), ignore)
        entries.append(Entry(task, model, None, cand, ref))
    return entries, notes


def compare_methods(records: list[RunRecord], candidate: str, reference: str, *, where: dict | None = None,
                    ignore=(), margin: float | None = None, allow_missing: bool = False, alpha: float = ALPHA,
                    n_boot: int = N_BOOT, seed: int = 0, pair_seeds: bool = False) -> CheckResult:
    """A candidate method (label or name, e.g. 'prefix_layer') against a reference (e.g. 'lora') on
    every task x model the reference ran; their settings may differ only in METHOD_FIELDS and ``ignore``.
    ``margin`` is in printed units (0.5 = half a point of accuracy, half a BLEU point)."""
    entries, notes = _entries_of_methods(records, candidate, reference, where, tuple(ignore))
    if not entries:
        raise HarnessError(f"no runs of the reference '{reference}' to compare '{candidate}' with; "
                           f"check --runs/--where.")
    notes = compare_entries(entries, tuple(ignore), margin, alpha, n_boot, seed, pair_seeds) + notes
    if _a_a(candidate, reference, where):
        notes.append(f"candidate and reference are the same runs of {candidate}: an A/A check, expect no difference.")
    mode = f"candidate {candidate} vs reference {reference}"
    return build_result(mode, entries, ("candidate", "reference"), notes, margin=margin, alpha=alpha, n_boot=n_boot,
                        seed=seed, allow_missing=allow_missing, pair_seeds=pair_seeds)


# ---------------------------------------------------------------------------------------------
# Baselines: per seed the score and the per-example predictions, so only the candidate runs


def _key(task: str, model: str, method: str) -> str:
    return f"{task}|{model}|{method}"


def _baseline_entry(side: Side) -> dict:
    """What a baseline keeps of one setting: fingerprint, per-seed scores and outputs, truth, efficiency."""
    outputs_key = "hypotheses" if side.kind == "generation" else "predictions"
    seeds = [{"seed": s, "run": run, "score": score, "peak_memory_mb": mem, "train_time_s": t,
              outputs_key: out if isinstance(out, list) else np.asarray(out).tolist()}
             for s, run, score, mem, t, out in zip(side.seeds, side.runs, side.scores, side.peak_memory_mb,
                                                   side.train_time_s, side.outputs)]
    truth = side.truth if side.kind == "generation" else np.asarray(side.truth).tolist()
    return {"task": side.task, "model": side.model, "method": side.name, "metric": side.metric, "kind": side.kind,
            "fingerprint": side.fingerprint, "seeds": seeds,
            ("references" if side.kind == "generation" else "labels"): truth,
            "efficiency": {"trainable": side.trainable, "peak_memory_mb": median_known(side.peak_memory_mb),
                           "train_time_s": median_known(side.train_time_s), "weights_bytes": side.weights_bytes,
                           "versions": side.versions}}


def _compact_json(value, indent: int = 0) -> str:
    """JSON with one line per dict key and per list item of lists, scalar lists on one line (small diffs)."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(str(k))}: {_compact_json(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        if all(isinstance(v, list) and not any(isinstance(x, (dict, list)) for x in v) for v in value):
            items = [inner + json.dumps(v, ensure_ascii=False, separators=(",", ":")) for v in value]
        else:
            items = [inner + _compact_json(v, indent + 1) for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def save_baseline(records: list[RunRecord], path: str | Path, *, where: dict | None = None) -> tuple[dict, list[str]]:
    """Write a baseline of the runs (one setting per task x model x method, else an error); returns it
    and notes (entries with fewer than 3 seeds, failed runs, entries with no finished runs)."""
    records = select(records, where)
    groups: dict[tuple, list[RunRecord]] = {}
    for record in records:
        groups.setdefault((record.task, record.model, record.method_label), []).append(record)
    entries, notes = {}, []
    for (task, model, label), runs in sorted(groups.items()):
        side = side_from_runs(label, task, model, runs)
        notes += side.notes + ([f"{label} on {task}: {side.failed} failed run(s) left out."] if side.failed else [])
        if not side.finished:
            notes.append(f"{label} on {task} / {model}: no finished runs, not in the baseline.")
            continue
        if len(side.seeds) < MIN_SEEDS:
            notes.append(f"{label} on {task} / {model}: only {len(side.seeds)} seed(s); checks against it will be "
                         f"inconclusive until it has {MIN_SEEDS}.")
        entries[_key(task, model, label)] = _baseline_entry(side)
    if not entries:
        raise HarnessError("no finished runs to make a baseline from; check --runs/--experiment/--where.")
    baseline = {"format": BASELINE_FORMAT, "created": time.strftime("%Y-%m-%d %H:%M:%S"), "entries": entries}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(_compact_json(baseline) + "\n", encoding="utf-8")
    return baseline, notes


def _validate_baseline(baseline: dict, where: str = "the baseline") -> dict:
    entries = baseline.get("entries") if isinstance(baseline, dict) else None
    if not isinstance(entries, dict):
        raise HarnessError(f"{where} has no 'entries'; make one with `harness baseline save OUT --runs RUNS`.")
    if baseline.get("format") != BASELINE_FORMAT or any("seeds" not in e for e in entries.values()):
        raise HarnessError(f"{where} is in an old format (medians only, no per-example predictions) that `harness "
                           f"check` cannot test; re-save it with `harness baseline save {where} --runs RUNS`.")
    return baseline


def load_baseline(path: str | Path) -> dict:
    try:
        baseline = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"baseline '{path}' does not exist; make one with `harness baseline save`.") from None
    except json.JSONDecodeError as err:
        raise HarnessError(f"{path}:{err.lineno}: invalid JSON ({err.msg}).") from None
    return _validate_baseline(baseline, str(path))


def side_from_baseline(entry: dict) -> Side:
    """The reference side stored in a baseline entry."""
    kind = entry.get("kind", "classification")
    outputs_key = "hypotheses" if kind == "generation" else "predictions"
    seeds = entry["seeds"]
    efficiency = entry.get("efficiency") or {}
    truth = entry["references"] if kind == "generation" else np.asarray(entry["labels"])
    return Side(f"the baseline of {entry['method']}", entry["task"], entry["model"], kind, entry.get("metric"),
                entry.get("fingerprint") or {}, [s.get("seed") for s in seeds], [s.get("score") for s in seeds],
                [s[outputs_key] if kind == "generation" else np.asarray(s[outputs_key]) for s in seeds], truth,
                [s.get("peak_memory_mb") for s in seeds], [s.get("train_time_s") for s in seeds],
                efficiency.get("trainable"), efficiency.get("weights_bytes"), efficiency.get("versions") or {},
                runs=[s.get("run") for s in seeds])


def check_against_baseline(records: list[RunRecord], baseline: dict, *, method: str | None = None,
                           where: dict | None = None, ignore=(), margin: float | None = None,
                           allow_missing: bool = False, alpha: float = ALPHA, n_boot: int = N_BOOT,
                           seed: int = 0, pair_seeds: bool = False) -> CheckResult:
    """Current runs of each baseline entry's method (only ``method``'s entries if given) against the
    stored seeds; the settings must match but for ``ignore`` (e.g. ['versions'] for a library upgrade)."""
    stored = _validate_baseline(baseline)["entries"]
    if method is not None:
        stored = {k: e for k, e in stored.items() if method in (e["method"], e["method"].split(" (")[0])}
        if not stored:
            raise unknown_choice("baseline method", method, {e["method"] for e in baseline["entries"].values()})
    common, sides = split_where(where)
    records = select(select(records, common), sides["candidate"]) if where else records
    groups: dict[str, list[RunRecord]] = {}
    for record in records:
        groups.setdefault(_key(record.task, record.model, record.method_label), []).append(record)
    entries = []
    for key, entry in stored.items():
        ref = side_from_baseline(entry)
        cand = side_from_runs(entry["method"], entry["task"], entry["model"], groups.get(key, []), ignore)
        entries.append(Entry(entry["task"], entry["model"], entry["method"], cand, ref))
    notes = [f"runs of {k.split('|')[2]} on {k.split('|')[0]} / {k.split('|')[1]} have no baseline entry (not checked)."
             for k in sorted(set(groups) - set(stored)) if method is None]
    notes = compare_entries(entries, tuple(ignore), margin, alpha, n_boot, seed, pair_seeds) + notes
    return build_result("current runs (candidate) vs the baseline (reference)", entries, ("now", "baseline"), notes,
                        margin=margin, alpha=alpha, n_boot=n_boot, seed=seed, allow_missing=allow_missing,
                        pair_seeds=pair_seeds)


# ---------------------------------------------------------------------------------------------
# One call per CLI mode: (rendered text, exit code); exit 2 is a raised HarnessError


def check_command(records: list[RunRecord], *, candidate: str | None = None, against: str | None = None,
                  baseline: str | Path | dict | None = None, fmt: str = "text", **options) -> tuple[str, int]:
    """`harness check`: --candidate M --against R, or --baseline FILE [--candidate M]. ``options``:
    where, ignore, margin, allow_missing, alpha, n_boot, seed, pair_seeds."""
    if against is not None and baseline is not None:
        raise HarnessError("give either --against METHOD or --baseline FILE, not both.")
    if against is not None:
        if candidate is None:
            raise HarnessError("--against needs --candidate METHOD (the method to check against it).")
        result = compare_methods(records, candidate, against, **options)
    elif baseline is not None:
        loaded = baseline if isinstance(baseline, dict) else load_baseline(baseline)
        result = check_against_baseline(records, loaded, method=candidate, **options)
    elif candidate is not None:
        raise HarnessError(f"--candidate {candidate} needs a reference: --against METHOD (e.g. lora) or "
                           f"--baseline FILE.")
    else:
        raise HarnessError("give --baseline FILE (see `harness baseline save`) or --candidate METHOD --against METHOD.")
    return result.render(fmt), result.exit_code


def save_baseline_command(records: list[RunRecord], out: str | Path, *, where: dict | None = None) -> tuple[str, int]:
    """`harness baseline save OUT`: what was written, and the notes (e.g. entries with too few seeds)."""
    baseline, notes = save_baseline(records, out, where=where)
    seeds = sum(len(e["seeds"]) for e in baseline["entries"].values())
    lines = [f"wrote {out}: {len(baseline['entries'])} task/model/method entries, {seeds} seeds with their "
             f"per-example predictions"] + [f"note: {note}" for note in notes]
    return "\n".join(lines) + "\n", 0
