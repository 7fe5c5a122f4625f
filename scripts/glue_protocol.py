"""Regenerate reports/cpu-mini/glue_minilm.md (the paper's GLUE protocol at CPU scale: FT against LoRA
on MiniLM-L6, per-task held-out search, held-out epoch selection, 5 seeds) and its figures from the
committed run folders of the glue-protocol-cpu suite:

    python scripts/glue_protocol.py        # reads results/glue-protocol/, writes reports/cpu-mini/

The board (scores with 95% intervals over seeds and dev examples, LoRA minus FT with the check's
paired intervals and verdicts) is `harness suite report`'s. Every statement under "Goal" is computed
here from those numbers and from the dev sets' class counts, so it changes when they do.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.report.leaderboard import VERDICT_MARK, score_text, write_leaderboard  # noqa: E402
from harness.report.plots import _pyplot, _save  # noqa: E402
from harness.report.render import render  # noqa: E402
from harness.suite import entry_run_folders, load_suite, read_entry  # noqa: E402
from harness.tasks import get_task  # noqa: E402

SUITE = "glue-protocol-cpu"
RESULTS = ROOT / "results" / "glue-protocol"
OUT = ROOT / "reports" / "cpu-mini"
FIGURES = OUT / "glue_minilm"
DATA = ROOT.parent / "shared" / "data"
LABELS = {"full": "FT", "lora": "LoRA", "lora_qnli_init": "LoRA, QNLI start", "lora_long": "LoRA, 3x epochs"}
VARIANTS = ("lora_qnli_init", "lora_long")  # LoRA entries that change one thing of the protocol, each against FT
LEARNED, WITHIN = 5.0, 1.0  # points above the majority class; LoRA's distance from FT


def majority_baseline(task_name: str) -> float:
    """The dev score (x100) of predicting the training split's most frequent label for every example:
    accuracy for accuracy tasks; a constant prediction has Matthews and Pearson correlation 0."""
    task = get_task(task_name)
    if task.main_metric != "accuracy":
        return 0.0
    train = Counter(e.label for e in task.load(task.train_split, DATA).examples)
    dev = [e.label for e in task.load(next(iter(task.eval_splits.values())), DATA).examples]
    label = train.most_common(1)[0][0]
    return 100.0 * sum(1 for y in dev if y == label) / len(dev)


def goal_line(label: str, majority: float, ft: dict, lora: dict) -> str:
    """The issue's goal for one task, from the board's cells (scores and LoRA - FT on the metric's scale
    x ``scale``): does FT learn it (>= LEARNED points over the majority class), does LoRA, and is LoRA
    within WITHIN point of FT (on the estimate; and whether the 95% interval's lower end is too)."""
    s = ft["scale"]
    ft_gain, lora_gain = ft["value"] * s - majority, lora["value"] * s - majority
    delta, low, high = (lora[key] * s for key in ("delta", "delta_lo", "delta_hi"))
    if ft_gain < LEARNED:
        return (f"- **{label}**: FT is {ft_gain:+.1f} points from the majority class (< {LEARNED:g}): not a task "
                f"FT learns here, so not part of the goal.")
    return (f"- **{label}**: FT learns it ({ft_gain:+.1f} over the majority class); LoRA "
            f"{'learns it' if lora_gain >= LEARNED else 'does not learn it'} ({lora_gain:+.1f}); LoRA − FT "
            f"{delta:+.1f} [{low:+.1f}, {high:+.1f}]: {closeness(delta, low)}.")


def closeness(delta: float, low: float) -> str:
    if delta < -WITHIN:
        return "more than 1 point below FT"
    where = "above FT" if delta > 0 else "within 1 point of FT"
    return f"{where}, {'and the interval is not more than 1 point below' if low >= -WITHIN else 'the interval reaches lower'}"


def variant_line(label: str, cell: dict) -> str:
    """A LoRA entry that changes one thing of the protocol (its start, its budget), against FT."""
    s = cell["scale"]
    delta, low, high = (cell[key] * s for key in ("delta", "delta_lo", "delta_hi"))
    return (f"  {label}: {score_text(cell, marks=False)}; − FT {delta:+.1f} [{low:+.1f}, {high:+.1f}]: "
            f"{closeness(delta, low)}.")


def runs_of(suite, entry: str) -> list[dict]:
    """Every finished cell of an entry, as its metrics.json with its seed. An entry stopped part-way has
    no record yet: its cells are then the ones it would run, from the rates of the entry it takes them from."""
    output = suite.output_dir(RESULTS)
    record = read_entry(output, entry)
    if not record:
        spec = suite.entry(entry)
        rates = (read_entry(output, spec.rate_from) or {}).get("learning_rate") if spec.rate_from else None
        experiment = suite.experiment(spec, rates) if rates else None
        record = {"experiment": experiment.name, "cells": [c.id for c in experiment.cells]} if experiment else None
    found = []
    for path in entry_run_folders(output, record) if record else []:
        metrics = path / "metrics.json"
        if metrics.is_file():
            data = json.loads(metrics.read_text())
            if data.get("status") == "finished":
                data["seed"] = json.loads((path / "config.json").read_text()).get("seed")
                found.append(data)
    return found


def probe_line(label: str, task: dict, runs: list[dict], lora: list[dict]) -> str:
    """A variant with fewer seeds than the suite's (stopped part-way): per seed, its dev score at its
    held-out-chosen epoch beside LoRA's on the same seed. Too few seeds for an interval; not pooled."""
    metric, scale = task["metric"], task["scale"]
    base = {r["seed"]: r for r in lora if r["task"] == task["task"]}
    parts = []
    for run in sorted((r for r in runs if r["task"] == task["task"]), key=lambda r: r["seed"]):
        same = base.get(run["seed"])
        stopped = f", stopped early after epoch {run['stopped_early_at']}" if run.get("stopped_early_at") else ""
        parts.append(f"seed {run['seed']}: {run['best'][metric] * scale:.1f} at epoch {run['best_epoch']}{stopped}"
                     + (f" (LoRA, same seed: {same['best'][metric] * scale:.1f})" if same else ""))
    return (f"  {label}, {len(parts)} seed(s) finished (the entry is not complete: no interval, not on the board): "
            f"{'; '.join(parts)}.") if parts else ""


def budget_evidence(suite, task: dict, finished: dict[str, list[dict]]) -> str:
    """Where LoRA stays more than WITHIN below FT: was the training budget the limit? Each entry's best
    held-out epoch per seed against its epochs (the task's, or the entry's override), and its last
    epoch's training loss."""
    task_budget = suite.tasks[task["name"]].get("epochs", suite.defaults.get("epochs"))
    parts = []
    for entry in ("full", "lora", "lora_long"):
        runs = sorted((r for r in finished.get(entry, []) if r["task"] == task["task"]), key=lambda r: r["seed"])
        if not runs:
            continue
        budget = suite.entry(entry).override.get("epochs", task_budget)
        best = [r["best_epoch"] for r in runs]
        last_loss = statistics.median(r["history"][-1]["train_loss"] for r in runs)
        parts.append(f"{LABELS[entry]}: best held-out epoch per seed {', '.join(map(str, best))} of {budget} "
                     f"({sum(b == budget for b in best)} of {len(best)} seeds best at the last epoch), "
                     f"training loss at its last epoch {last_loss:.3f} (median)")
    return f"  Budget: {'; '.join(parts)}."


def curves(board: dict, finished: dict[str, list[dict]]) -> list[Path]:
    """Dev and held-out score per epoch (median over seeds) for every task and entry: the evidence of
    whether and when a task is learned."""
    plt = _pyplot()
    tasks = board["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks), 3.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        metric = task["metric"] or "accuracy"
        for index, entry in enumerate(LABELS):
            runs = [r for r in finished[entry] if r["task"] == task["task"]]
            if not runs:
                continue
            epochs = max(len(r["history"]) for r in runs)
            for suffix, style in (("", "-"), ("_heldout", ":")):
                ys = [statistics.median([r["history"][e][metric + suffix] * task["scale"] for r in runs
                                         if len(r["history"]) > e and metric + suffix in r["history"][e]] or [None])
                      for e in range(epochs)]
                points = [(e + 1, y) for e, y in enumerate(ys) if y is not None]
                if points:
                    ax.plot(*zip(*points), style, marker="o", ms=3, color=f"C{index}",
                            label=f"{LABELS[entry]} ({'dev' if not suffix else 'held-out'})")
        ax.set_title(f"{task['label']} ({task['metric_label']})", fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=6)
    fig.suptitle("Median over seeds per epoch; the dev set is only reported, the held-out slice chooses", fontsize=9)
    fig.tight_layout()
    return _save(fig, FIGURES, "curves")


def main() -> None:
    suite = load_suite(SUITE)
    write_leaderboard(suite, RESULTS, FIGURES / "board")
    board = json.loads((FIGURES / "board" / "leaderboard.json").read_text())
    rows = {r["entry"]: r for r in board["rows"]}
    finished = {entry: runs_of(suite, entry) for entry in LABELS}  # read once: goals and curves
    full_params = ((rows.get("full", {}).get("efficiency") or {}).get("minilm-l6") or {}).get("trainable")
    table, goals = [], []
    for task in board["tasks"]:
        majority = majority_baseline(task["task"])
        line = {"task": f"{task['label']} ({task['metric_label']})", "majority class": f"{majority:.1f}"}
        for entry, label in LABELS.items():
            cell = rows.get(entry, {}).get("tasks", {}).get(task["name"])
            line[label] = score_text(cell, marks=False) if cell else "not run"
        ft, lora = (rows.get(e, {}).get("tasks", {}).get(task["name"], {}) for e in ("full", "lora"))
        if ft.get("status") == "ok" and lora.get("status") == "ok" and "delta" in lora:
            s, d = lora["scale"], lora["decimals"]
            line["LoRA − FT"] = (f"{lora['delta'] * s:+.{d}f} [{lora['delta_lo'] * s:+.{d}f}, "
                                 f"{lora['delta_hi'] * s:+.{d}f}] {VERDICT_MARK.get(lora.get('verdict'), '')}").strip()
            goals.append(goal_line(task["label"], majority, ft, lora))
            for entry in VARIANTS:
                cell = rows.get(entry, {}).get("tasks", {}).get(task["name"], {})
                if cell.get("status") == "ok" and "delta" in cell:
                    goals.append(variant_line(LABELS[entry], cell))
                elif probe := probe_line(LABELS[entry], task, finished[entry], finished["lora"]):
                    goals.append(probe)
            if lora["delta"] * s < -WITHIN:
                goals.append(budget_evidence(suite, task, finished))
        table.append(line)
    columns = ["task", "majority class", *LABELS.values(), "LoRA − FT"]
    lora_params = ((rows.get("lora", {}).get("efficiency") or {}).get("minilm-l6") or {}).get("trainable")
    searches = []
    for entry in ("full", "lora"):
        for key, search in (rows.get(entry, {}).get("search") or {}).items():
            tried = ", ".join(f"{c['learning_rate']:g}: {c['score'] * 100:.1f}" if c.get("score") is not None
                              else f"{c['learning_rate']:g}: {c['status']}" for c in search.get("candidates", []))
            searches.append({"entry": LABELS[entry], "task": key, "chosen": f"{search.get('chosen', 0):g}",
                             "held-out metric": search.get("metric", ""), "held-out score ×100 by rate": tried})
    figures = curves(board, finished)
    spent = sum(r.get("cell_time_s") or 0 for r in board["rows"])
    lines = [
        "# The paper's GLUE protocol at CPU scale: FT against LoRA on MiniLM-L6", "",
        "Regenerate: `python scripts/glue_protocol.py` (from the committed runs in `results/glue-protocol/`); "
        "the runs: the commands in `experiments/suites/glue-protocol-cpu.yaml`'s description.", "",
        "## Protocol", "", board["description"], "",
        f"Scores ×100 on the full dev sets: the check's estimate over {len(board['seeds'])} seeds with its 95% "
        "interval (seeds and dev examples). LoRA − FT: the check's paired difference with its 95% interval "
        "and verdict (▲ better, ≈ equivalent within the metric's margin, ? inconclusive, ▼ worse; Holm over "
        "the tasks). The majority class: the dev score of predicting the training split's most frequent "
        "label (Matthews and Pearson correlation are 0 for a constant prediction).", "",
        render(table, columns, "markdown"), "",
        f"Trainable parameters (task head excluded): FT {full_params or 0:,}, LoRA {lora_params or 0:,} "
        f"({100 * (lora_params or 0) / max(full_params or 1, 1):.2f}% of FT).", "",
        f"## Goal: every task FT learns (≥ {LEARNED:g} points over the majority class) is learned by LoRA "
        f"within {WITHIN:g} point of FT", "", *goals, "",
        "## Learning curves", "", "![curves](glue_minilm/curves.png)", "",
        "## Learning-rate search (held-out slice of the training split, seed 0)", "",
        render(searches, list(searches[0]) if searches else ["entry"], "markdown"), "",
        f"Compute: {spent / 3600:.1f} h of cell time (search included), two cells at a time on 2 cores.", "",
        "Full board (every column, the search record): [glue_minilm/board/README.md](glue_minilm/board/README.md), [index.html](glue_minilm/board/index.html).",
    ]
    (OUT / "glue_minilm.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(OUT / "glue_minilm.md", *figures)


if __name__ == "__main__":
    main()
