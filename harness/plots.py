"""Plots people read without the code: parameters vs score with the Pareto front and the paper's
points, validation curves, and LoRA rank sweeps. PNG and SVG, titled and labelled with units."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from harness.errors import HarnessError
from harness.reference import PAPER_TABLE2
from harness.results import RunRecord
from harness.tables import COLUMN_NAMES, run_score


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    """Write the figure as PNG and SVG, and free it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.svg"]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    _pyplot().close(fig)
    return paths


def _by_task_and_method(records: list[RunRecord]):
    groups = defaultdict(lambda: defaultdict(list))
    for record in records:
        score = run_score(record)
        if score is not None:
            groups[record.task][(record.model, record.method_label)].append((record, score))
    return groups


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
    plt = _pyplot()
    groups = _by_task_and_method(records)
    if not groups:
        raise HarnessError("no finished runs to plot.")
    tasks = sorted(groups)
    cols = min(3, len(tasks))
    rows = (len(tasks) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(8.2 * cols, 4.4 * rows), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        points = []
        for index, ((model, label), runs) in enumerate(sorted(groups[task].items())):
            trainable = runs[0][0].params.get("trainable")
            if not trainable:
                continue
            score = 100 * statistics.median(s for _, s in runs)
            points.append((trainable, score))
            name = label + (f" [{model}]" if len({m for m, _ in groups[task]}) > 1 else "")
            # Colours repeat after ten; the marker changes with them, so no two methods look alike.
            ax.scatter([trainable], [score], s=40, zorder=3, label=name, marker="osD^vP"[index // 10 % 6])
        front = pareto_front(points)
        if len(front) > 1:
            ax.plot(*zip(*front), "k--", linewidth=1, label="Pareto front (ours)", zorder=2)
        if paper and task in PAPER_TABLE2[0].values:
            xs, ys, labels = [], [], []
            for row in PAPER_TABLE2:
                value = row.values.get(task, "").split("±")[0]
                if value:
                    xs.append(_printed_millions(row.params))
                    ys.append(float(value))
                    labels.append(f"{row.label}{row.marker}")
            ax.scatter(xs, ys, marker="x", color="grey", s=28, label="paper (RoBERTa/DeBERTa, Table 2)", zorder=1)
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters (log scale, task head excluded)")
        ax.set_ylabel(f"{COLUMN_NAMES.get(task, task)} dev score (x100, median over seeds)")
        ax.set_title(COLUMN_NAMES.get(task, task))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    fig.suptitle("Trainable parameters vs. score")
    return _save(fig, out_dir, "params_vs_score")


def validation_curves(records: list[RunRecord], out_dir: Path) -> list[Path]:
    plt = _pyplot()
    by_task = defaultdict(lambda: defaultdict(list))
    for record in records:
        if record.history and record.main_metric:
            by_task[record.task][(record.model, record.method_label)].append(record)
    if not by_task:
        raise HarnessError("no runs with a per-epoch history to plot.")
    tasks = sorted(by_task)
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        for (model, label), runs in sorted(by_task[task].items()):
            epochs = sorted({h["epoch"] for r in runs for h in r.history})
            medians = [100 * statistics.median(h[r.main_metric] for r in runs for h in r.history
                                               if h["epoch"] == e and r.main_metric in h) for e in epochs]
            ax.plot(epochs, medians, marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"dev {runs[0].main_metric} (x100, median over seeds)")
        ax.set_title(f"{COLUMN_NAMES.get(task, task)}: validation curves")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, out_dir, "validation_curves")


def rank_sweep(records: list[RunRecord], out_dir: Path) -> list[Path]:
    plt = _pyplot()
    by_task = defaultdict(lambda: defaultdict(list))
    for record in records:
        score = run_score(record)
        if record.method == "lora" and score is not None:
            by_task[record.task][int(record.method_options.get("r", 8))].append(100 * score)
    if not by_task:
        raise HarnessError("no finished LoRA runs to sweep over r.")
    fig, ax = plt.subplots(figsize=(6, 4))
    for task, by_rank in sorted(by_task.items()):
        ranks = sorted(by_rank)
        ax.plot(ranks, [statistics.median(by_rank[r]) for r in ranks], marker="o", label=COLUMN_NAMES.get(task, task))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("LoRA rank r (log2 scale)")
    ax.set_ylabel("dev score (x100, median over seeds)")
    ax.set_title("LoRA rank sweep")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out_dir, "rank_sweep")


PLOTS = {"params": params_vs_score, "curves": validation_curves, "ranks": rank_sweep}
