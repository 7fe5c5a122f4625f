"""`harness plot pareto --x COLUMN --y COLUMN`: any two of a method's numbers against each other, one
panel per task, with the front of methods that no other beats on both (each column's own direction)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, unknown_choice
from harness.report.plots import _pyplot, _save
from harness.report.results import RunRecord, records_frame
from harness.report.specs import main_spec_of, task_label


@dataclass(frozen=True)
class Column:
    label: str
    key: str  # the column of the runs' frame (harness.report.results.records_frame)
    lower_is_better: bool
    log_scale: bool = False


COLUMNS = {
    "trainable": Column("trainable parameters (head excluded)", "params_trainable", True, True),
    "peak_memory_mb": Column("peak memory (MB)", "peak_memory_mb", True),
    "train_time_s": Column("training time (s)", "train_time_s", True),
    "train_samples_per_s": Column("training samples/s", "train_samples_per_s", False),
    "weights_bytes": Column("saved weights (bytes)", "weights_bytes", True, True),
    "score": Column("dev score", "score", False),  # the task's main score
}


def front(points: list[tuple[float, float]], x_lower: bool, y_lower: bool) -> list[tuple[float, float]]:
    """Points that no other point beats or equals on both axes (in each axis's direction)."""
    def dominated(p, q):  # q at least as good as p on both, better on one
        better_x = q[0] <= p[0] if x_lower else q[0] >= p[0]
        better_y = q[1] <= p[1] if y_lower else q[1] >= p[1]
        return better_x and better_y and q != p
    return sorted(p for p in points if not any(dominated(p, q) for q in points))


def _column(name: str) -> Column:
    if name not in COLUMNS:
        raise unknown_choice("pareto column", name, COLUMNS)
    return COLUMNS[name]


def _points(records: list[RunRecord], x: str, y: str) -> dict[str, dict[str, tuple[float, float]]]:
    """task -> method label -> (x, y): per method the seeds' center of each column (the score as its
    task's spec aggregates it, anything else the median)."""
    keys = [_column(name).key for name in (x, y)]
    runs = records_frame(records)
    if not all(key in runs for key in keys):
        return {}
    runs = runs[(runs["status"] == "finished") & runs[keys].notna().all(axis=1)]
    out = {}
    for task, group in runs.groupby("task"):
        how = {key: main_spec_of(task).aggregate if key == "score" else "median" for key in keys}
        centers = group.groupby("label")[keys].agg(how)
        out[task] = {label: (float(row[keys[0]]), float(row[keys[1]])) for label, row in centers.iterrows()}
    return out


def pareto_plot(records: list[RunRecord], out_dir: Path, x: str = "trainable", y: str = "score") -> list[Path]:
    cx, cy = _column(x), _column(y)
    points = _points(records, x, y)
    if not points:
        raise HarnessError(f"no finished run has both {x} and {y}.")
    plt = _pyplot()
    tasks = sorted(points)
    cols = min(3, len(tasks))
    rows = (len(tasks) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.6 * cols, 4.2 * rows), squeeze=False)
    for ax in axes.flat[len(tasks):]:
        ax.axis("off")
    for ax, task in zip(axes.flat, tasks):
        spec = main_spec_of(task)
        scale = lambda name, v: v * spec.scale if name == "score" else v  # noqa: E731
        for i, (label, (px, py)) in enumerate(sorted(points[task].items())):
            ax.scatter(scale(x, px), scale(y, py), color=f"C{i % 10}", marker="osD^vP"[i // 10 % 6], label=label)
        edge = front(list(points[task].values()), cx.lower_is_better, cy.lower_is_better)
        ax.plot([scale(x, p[0]) for p in edge], [scale(y, p[1]) for p in edge], "k--", lw=0.8, label="Pareto front")
        ax.set_xscale("log" if cx.log_scale else "linear")
        ax.set_yscale("log" if cy.log_scale else "linear")
        ax.set_xlabel(f"{spec.label} ({task_label(task)})" if x == "score" else cx.label)
        ax.set_ylabel(f"{spec.label} ({task_label(task)})" if y == "score" else cy.label)
        ax.set_title(task_label(task))
        ax.grid(alpha=0.3)
    axes.flat[len(tasks) - 1].legend(fontsize=7, loc="best")
    return _save(fig, out_dir, f"pareto_{x}_vs_{y}")
