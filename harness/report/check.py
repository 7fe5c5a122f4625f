"""Regression checks: runs against a stored baseline, or a candidate method against LoRA.

A baseline (results/baselines/<name>.json) stores, per task x model x method, the median score
over seeds and a tolerance from the seed spread (k x std, at least a floor), with what peft's
method comparison records beside the scores: trainable parameters, peak memory, train time,
weights on disk and package versions.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from pathlib import Path

from harness.errors import HarnessError
from harness.report.results import RunRecord
from harness.report.tables import run_score

K_STD = 2.0  # a regression is a drop of more than K_STD seed standard deviations ...
FLOOR = 0.005  # ... and of at least half a point (one seed, or seeds that agree exactly)


def _key(record: RunRecord) -> str:
    return f"{record.task}|{record.model}|{record.method_label}"


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(records: list[RunRecord]) -> dict[str, dict]:
    groups: dict[str, list[RunRecord]] = defaultdict(list)
    for record in records:
        groups[_key(record)].append(record)
    summary = {}
    for key, group in sorted(groups.items()):
        scores = [s for s in (run_score(r) for r in group) if s is not None]
        finished = [r for r in group if r.status == "finished"]
        summary[key] = {
            "metric": next((r.main_metric for r in group if r.main_metric), None),
            "value": statistics.median(scores) if scores else None,
            "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
            "n": len(scores), "failed": sum(r.status == "failed" for r in group),
            "trainable": next((r.params.get("trainable") for r in finished if r.params), None),
            "peak_memory_mb": _median(r.throughput.get("peak_memory_mb") for r in finished),
            "train_time_s": _median(r.throughput.get("train_time_s") for r in finished),
            "train_samples_per_s": _median(r.throughput.get("train_samples_per_s") for r in finished),
            "weights_bytes": _median(r.weights_bytes for r in finished),
            "versions": next((r.versions for r in finished if r.versions), {}),
        }
    return summary


def save_baseline(records: list[RunRecord], path: str | Path, k_std: float = K_STD, floor: float = FLOOR) -> dict:
    entries = summarize(records)
    for entry in entries.values():
        entry["tolerance"] = max(floor, k_std * entry["std"])
    if not any(e["value"] is not None for e in entries.values()):
        raise HarnessError("no finished runs to make a baseline from; check --runs/--experiment.")
    baseline = {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "k_std": k_std, "floor": floor, "entries": entries}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(baseline, indent=2) + "\n")
    return baseline


def load_baseline(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise HarnessError(f"baseline '{path}' does not exist; make one with `harness baseline save`.") from None
    except json.JSONDecodeError as err:
        raise HarnessError(f"{path}:{err.lineno}: invalid JSON ({err.msg}).") from None


def _verdict(value, reference, tolerance) -> str:
    if value is None:
        return "missing"
    if value < reference - tolerance:
        return "regressed"
    if value > reference + tolerance:
        return "improved"
    return "pass"


def check_against_baseline(records: list[RunRecord], baseline: dict) -> list[dict]:
    current = summarize(records)
    rows = []
    for key, entry in baseline["entries"].items():
        if entry["value"] is None:
            continue
        now = current.get(key, {})
        value = now.get("value")
        task, model, method = key.split("|")
        rows.append({"task": task, "model": model, "method": method, "metric": entry["metric"],
                     "baseline": f"{entry['value']:.4f}", "now": "-" if value is None else f"{value:.4f}",
                     "Δ": "" if value is None else f"{value - entry['value']:+.4f}",
                     "tolerance": f"{entry['tolerance']:.4f}", "status": _verdict(value, entry["value"], entry["tolerance"]),
                     "trainable": now.get("trainable") or entry.get("trainable"),
                     "peak MB": _fmt(now.get("peak_memory_mb")), "train s": _fmt(now.get("train_time_s")),
                     "weights KB": _fmt(now["weights_bytes"] / 1024 if now.get("weights_bytes") else None)})
    return rows


def compare_methods(records: list[RunRecord], candidate: str, reference: str = "lora",
                    k_std: float = K_STD, floor: float = FLOOR) -> list[dict]:
    """A candidate method (label, e.g. 'peft:IA3') against the reference (LoRA) on the same tasks
    and model: regressed when its median is below LoRA's by more than the seeds' spread allows."""
    summary = summarize(records)
    rows = []
    for key, ref in summary.items():
        task, model, method = key.split("|")
        if method != reference:
            continue
        cand = summary.get(f"{task}|{model}|{candidate}")
        if cand is None:
            continue
        tolerance = max(floor, k_std * max(ref["std"], cand["std"]))
        rows.append({"task": task, "model": model, "metric": ref["metric"],
                     reference: _fmt(ref["value"], 4), candidate: _fmt(cand["value"], 4),
                     "Δ": "" if cand["value"] is None or ref["value"] is None else f"{cand['value'] - ref['value']:+.4f}",
                     "tolerance": f"{tolerance:.4f}",
                     "status": _verdict(cand["value"], ref["value"], tolerance) if ref["value"] is not None else "missing",
                     f"trainable {reference}": ref["trainable"], f"trainable {candidate}": cand["trainable"],
                     "peak MB": f"{_fmt(ref['peak_memory_mb'])} / {_fmt(cand['peak_memory_mb'])}",
                     "train s": f"{_fmt(ref['train_time_s'])} / {_fmt(cand['train_time_s'])}"})
    if not rows:
        raise HarnessError(f"no task has runs of both '{reference}' and '{candidate}'; method labels present: "
                           f"{', '.join(sorted({k.split('|')[2] for k in summary}))}.")
    return rows


def _fmt(value, decimals: int = 1) -> str:
    return "-" if value is None else f"{value:.{decimals}f}"
