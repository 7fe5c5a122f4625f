"""Plots people read without the code: parameters vs score with the Pareto front and the paper's
points, validation curves, and LoRA rank sweeps. PNG and SVG, titled and labelled with units."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.errors import HarnessError
from harness.report.reference import PAPER_TABLE2
from harness.report.results import RunRecord, records_frame
from harness.report.specs import axis_note, learn, main_spec_of, spec_of, task_label


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    """Write the figure as PNG and SVG, and free it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plt = _pyplot()
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.svg"]
    # SVG text stays text (searchable, selectable); a fixed id salt and no date: an unchanged figure
    # regenerates byte for byte, so committed plots only change when their data does.
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "harness"}):
        for path in paths:
            fig.savefig(path, dpi=150, bbox_inches="tight",
                        metadata={"Date": None} if path.suffix == ".svg" else None)
    plt.close(fig)
    return paths


def _by_task_and_method(records: list[RunRecord]):
    """task -> (model, method label) -> the frame rows of its finished runs (one per seed)."""
    runs = records_frame(records)
    runs = runs[runs["score"].notna()]
    return {task: dict(list(group.groupby(["model", "label"]))) for task, group in runs.groupby("task")}


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats with fewer or equal parameters and a higher score."""
    front, best = [], float("-inf")
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def _printed_millions(text: str) -> float:
    return float(text.rstrip("M")) * 1e6


def params_vs_score(records: list[RunRecord], out_dir: Path, paper: bool = True) -> list[Path]:
    """One panel per task: the seeds' score (aggregated and scaled as the task's main metric says)
    against trainable parameters, our Pareto front, and (``paper``) the points of the paper's Table 2.
    A method keeps its colour and marker in every panel, so one legend serves them all."""
    plt = _pyplot()
    groups = _by_task_and_method(records)
    if not groups:
        raise HarnessError("no finished runs to plot.")
    tasks = sorted(groups)
    series = sorted({key for task in tasks for key in groups[task]})
    several_models = len({model for model, _ in series}) > 1
    # Colours repeat after ten; the marker changes with them, so no two methods look alike.
    style = {key: (f"C{i % 10}", "osD^vP"[i // 10 % 6]) for i, key in enumerate(series)}
    name_of = {(model, label): label + (f" [{model}]" if several_models else "") for model, label in series}
    cols = min(3, len(tasks))
    rows = (len(tasks) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.6 * cols, 4.2 * rows), squeeze=False)
    method_handles, other_handles = {}, {}
    for ax, task in zip(axes.flat, tasks):
        points = []
        spec = main_spec_of(task, next(iter(pd.concat(groups[task].values())["main_metric"].dropna()), None))
        for key, runs in sorted(groups[task].items()):
            trainable = next(iter(runs["params_trainable"].dropna()), None) if "params_trainable" in runs else None
            if not trainable:
                continue
            score = spec.printed(float(runs["score"].agg(spec.aggregate)))
            points.append((trainable, score))
            color, marker = style[key]
            method_handles[key] = ax.scatter([trainable], [score], s=44, zorder=3, color=color, marker=marker)
        front = pareto_front(points)
        if len(front) > 1:
            other_handles["Pareto front (ours)"] = ax.plot(*zip(*front), "k--", linewidth=1, zorder=2)[0]
        if paper and task in PAPER_TABLE2[0].values:
            xs, ys = [], []
            for row in PAPER_TABLE2:
                value = row.values.get(task, "").split("±")[0]
                if value:
                    xs.append(_printed_millions(row.params))
                    ys.append(float(value))
            other_handles["paper (RoBERTa/DeBERTa, Table 2)"] = ax.scatter(xs, ys, marker="x", color="grey", s=28, zorder=1)
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters (log scale, head excluded)")
        ax.set_ylabel(f"dev {spec.label} ({axis_note(spec)})")
        ax.set_title(task_label(task))
        ax.grid(True, which="both", alpha=0.3)
    spare = list(axes.flat)[len(tasks):]
    for ax in spare:
        ax.axis("off")
    keys = [key for key in series if key in method_handles]
    handles = [method_handles[key] for key in keys] + list(other_handles.values())
    names = [name_of[key] for key in keys] + list(other_handles)
    if spare:  # an empty panel holds the legend
        spare[0].legend(handles, names, fontsize=9, loc="center")
    else:
        fig.legend(handles, names, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle("Trainable parameters vs. score")
    fig.tight_layout()
    return _save(fig, out_dir, "params_vs_score")


def history_frame(records: list[RunRecord]):
    """One row per run and evaluated epoch: task, model, label, run, the main metric's stored key and value."""
    learn(records)
    return pd.DataFrame([{"task": r.task, "model": r.model, "label": r.method_label, "run": r.name,
                          "metric": r.main_metric, "epoch": h["epoch"], "value": h[r.main_metric]}
                         for r in records if r.main_metric for h in r.history if r.main_metric in h])


def validation_curves(records: list[RunRecord], out_dir: Path) -> list[Path]:
    """One panel per task: the main metric after each epoch (seeds aggregated as its spec says), one line
    per method; epochs where no run evaluated it are left out."""
    plt = _pyplot()
    history = history_frame(records)
    if history.empty:
        raise HarnessError("no runs with a per-epoch history to plot.")
    tasks = sorted(set(history["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        for (model, label), runs in history[history["task"] == task].groupby(["model", "label"]):
            spec = spec_of(task, runs["metric"].iloc[0])  # the stored per-epoch key (MNLI: matched accuracy)
            curve = runs.groupby("epoch")["value"].agg(spec.aggregate)
            ax.plot(curve.index, [spec.printed(v) for v in curve], marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"dev {spec.label} ({axis_note(spec)})")
        ax.set_title(f"{task_label(task)}: validation curves")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, out_dir, "validation_curves")


def rank_sweep(records: list[RunRecord], out_dir: Path) -> list[Path]:
    """One line per task: LoRA's score against its rank r, each task scaled and aggregated as its
    main metric says."""
    plt = _pyplot()
    lora = [r for r in records if r.method == "lora"]
    runs = records_frame(lora)
    runs["r"] = [int(r.method_options.get("r", 8)) for r in lora]
    runs = runs[runs["score"].notna()]
    if runs.empty:
        raise HarnessError("no finished LoRA runs to sweep over r.")
    fig, ax = plt.subplots(figsize=(6, 4))
    specs = {}
    for task, group in runs.groupby("task"):
        specs[task] = spec = main_spec_of(task, next(iter(group["main_metric"].dropna()), None))
        by_rank = group.groupby("r")["score"].agg(spec.aggregate)
        ax.plot(by_rank.index, [spec.printed(v) for v in by_rank], marker="o", label=task_label(task))
    notes = {axis_note(spec) for spec in specs.values()}
    ax.set_xscale("log", base=2)
    ax.set_xlabel("LoRA rank r (log2 scale)")
    ax.set_ylabel(f"dev score ({notes.pop() if len(notes) == 1 else 'each task on its own scale'})")
    ax.set_title("LoRA rank sweep")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out_dir, "rank_sweep")


PLOTS = {"params": params_vs_score, "curves": validation_curves, "ranks": rank_sweep}
