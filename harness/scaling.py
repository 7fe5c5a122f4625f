"""`harness bench scaling`: how a training step's time and peak memory grow with sequence length,
LoRA rank, batch size, method and model size, with the fitted power law of each axis.

Each point trains a few optimizer steps (forward, backward, AdamW) of the preset's architecture with
random weights on random tokens of exactly the point's length (no padding, so length means length),
in a fresh process: its peak memory is its own (the resident set's high-water mark from the first
step on; the GPU's allocator peak on a GPU). One axis moves at a time from the base point (MiniLM-L6,
LoRA r=8 on query/value, batch 16, length 128). Time per step is the median of the measured steps
after a warm-up step. The exponent of an axis is the least-squares slope of log(time) on log(value)
(model size: on non-embedding parameters), so a step at another size is predicted as
``time_base * (value / value_base) ** exponent`` within the measured range; outside it, the paper-scale
rows are predictions from FLOPs and are labelled so.
"""

from __future__ import annotations

import math
import multiprocessing
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, error_line
from harness.rundir import write_json
from harness.training.env import versions

BASE = {"model": "minilm-l6", "method": "lora", "rank": 8, "batch_size": 16, "seq_len": 128}
AXES = {
    "seq_len": [64, 128, 256, 512],
    "rank": [1, 4, 16, 64],
    "batch_size": [4, 8, 16, 32],
    "method": ["lora", "full", "adapter_h", "prefix_layer", "bitfit"],
    "model": ["tiny-bert", "minilm-l6", "smollm2-135m"],
}
NUMERIC = ("seq_len", "rank", "batch_size", "model")  # axes with a fitted exponent

# The paper's training settings (Tables 9 and 11) for the prediction rows: model, batch, length, LoRA r.
PAPER_SETTINGS = [
    {"setting": "RoBERTa-large LoRA, GLUE (Table 10: batch 4, length 128, r=8)", "model": "roberta-large",
     "batch_size": 4, "seq_len": 128, "rank": 8},
    {"setting": "GPT-2 M LoRA, E2E (Table 11: batch 8, length 512, r=4)", "model": "gpt2-medium",
     "batch_size": 8, "seq_len": 512, "rank": 4},
]


@dataclass(frozen=True)
class Point:
    model: str
    method: str
    rank: int
    batch_size: int
    seq_len: int


def measure_point(point: Point, steps: int = 3) -> dict[str, Any]:
    """Train ``steps`` measured optimizer steps (after one warm-up step) of ``point``; in this process."""
    import torch

    from harness.bench import random_model
    from harness.methods import get_method
    from harness.models import head_module_names
    from harness.training.env import reset_training_peak, training_peak_memory_mb

    torch.manual_seed(0)
    model = random_model(point.model)
    spec = get_method(point.method)
    options = spec.resolve_options({"r": point.rank} if point.method == "lora" else {})
    model = spec.prepare(model, options, head_module_names(model))
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    config = getattr(model, "config", None)
    vocab = config.vocab_size
    ids = torch.randint(0, vocab, (point.batch_size, point.seq_len), generator=generator)
    causal = getattr(config, "is_decoder", False) or config.model_type in ("gpt2", "llama")
    labels = ids if causal else torch.randint(0, getattr(config, "num_labels", 2), (point.batch_size,),
                                              generator=generator)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    before = training_peak_memory_mb()
    reset_training_peak()
    times = []
    for step in range(steps + 1):
        tic = time.perf_counter()
        model(**inputs).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step:  # the first step allocates the optimizer state and warms the caches
            times.append(time.perf_counter() - tic)
    peak = training_peak_memory_mb()
    embeddings = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding))
    return {**asdict(point), "step_s": statistics.median(times), "steps": steps, "peak_mb": round(peak, 1),
            "resident_before_mb": round(before, 1), "trainable": sum(p.numel() for p in trainable),
            "nonembedding_params": sum(p.numel() for p in model.parameters()) - embeddings,
            "tokens_per_s": point.batch_size * point.seq_len / statistics.median(times),
            "threads": torch.get_num_threads()}


def _isolated(point: Point, steps: int) -> dict[str, Any]:
    try:
        return measure_point(point, steps)
    except Exception as err:  # noqa: BLE001 - a method that cannot run at a point shows why
        return {**asdict(point), "error": error_line(err)}


def points(axes: dict[str, list], base: dict[str, Any] | None = None) -> list[tuple[str, Point]]:
    """(axis, point) for every value of every axis, the other settings at the base."""
    start = Point(**{**BASE, **(base or {})})
    return [(axis, replace(start, **{axis: value})) for axis, values in axes.items() for value in values]


def fit_exponent(xs: list[float], ys: list[float]) -> dict[str, float] | None:
    """Least-squares slope and intercept of log(y) on log(x) (numpy's polyfit), and R²; None under two
    distinct positive x values."""
    import numpy as np

    kept = [(x, y) for x, y in zip(xs, ys) if x > 0 and y > 0]
    if len({x for x, _ in kept}) < 2:
        return None
    x, y = np.log(np.array(kept, dtype=float)).T
    slope, intercept = np.polyfit(x, y, 1)
    total = float(((y - y.mean()) ** 2).sum())
    residual = float(((y - intercept - slope * x) ** 2).sum())
    return {"exponent": float(slope), "intercept": float(intercept), "r2": 1 - residual / total if total else 1.0}


def _x(axis: str, row: dict) -> float:
    return row["nonembedding_params"] if axis == "model" else row[axis]


def predictions(rows: list[dict], base_point: dict, peak_flops: float) -> list[dict]:
    """The paper's settings: FLOPs per step (4N per token for a frozen backbone: no weight gradients,
    plus attention), time on this CPU at the base point's achieved FLOP/s, and the fraction of the GEMM
    peak that this implies. Labelled predictions: nothing here ran at that size."""
    from harness.bench import _nonembedding_params
    from harness.config import RunConfig

    base = next(r for r in rows if r["axis"] == "seq_len" and r["seq_len"] == base_point["seq_len"] and "error" not in r)
    # The backbone's count (AutoModel: no head), as for the paper's models below.
    achieved = _step_flops(_nonembedding_params(RunConfig(model=base_point["model"], tracking_uri="none")),
                           base["batch_size"], base["seq_len"], _layers_width(base_point["model"]))
    achieved /= base["step_s"]
    out = []
    for setting in PAPER_SETTINGS:
        n = _nonembedding_params(RunConfig(model=setting["model"], tracking_uri="none"))
        flops = _step_flops(n, setting["batch_size"], setting["seq_len"], _layers_width(setting["model"]))
        out.append({**setting, "nonembedding_params": n, "step_flops": flops,
                    "predicted_cpu_step_s": flops / achieved, "cpu_achieved_flops": achieved,
                    "fraction_of_gemm_peak": achieved / peak_flops, "label": "prediction (not measured)"})
    return out


def _layers_width(model: str) -> tuple[int, int]:
    from harness.models import build_config, get_model_spec

    config = build_config(get_model_spec(model))
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer")
    width = getattr(config, "hidden_size", None) or getattr(config, "n_embd")
    return layers, width


def _step_flops(nonembedding: int, batch: int, seq_len: int, layers_width: tuple[int, int]) -> float:
    """Training FLOPs of a step with a frozen backbone: 4N per token (forward 2N, activation
    gradients 2N) plus attention's scores and mixing (forward 4·L·d per token per position, x2 back)."""
    layers, width = layers_width
    tokens = batch * seq_len
    return 4 * nonembedding * tokens + 3 * 4 * layers * width * seq_len * tokens


def run_scaling(axes: dict[str, list] | None = None, steps: int = 3, out: str | Path | None = None,
                progress=print, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Measure every point (each in a fresh process; the base point, shared by every axis, once), fit
    each axis, write the JSON report."""
    import torch

    from harness.bench import gemm_peak_flops
    from harness.methods import get_method
    from harness.models import get_model_spec

    axes = axes or AXES
    base = {**BASE, **(base or {})}
    unknown = set(axes) - set(AXES)
    if unknown:
        raise HarnessError(f"unknown scaling axis {', '.join(sorted(unknown))}; axes: {', '.join(AXES)}.")
    for method in {*axes.get("method", []), base["method"]}:
        get_method(method)  # a typo fails now, with the registry's one-line error, not after an hour
    for model in {*axes.get("model", []), base["model"]}:
        get_model_spec(model)
    rows, measured = [], {}
    context = multiprocessing.get_context("spawn")
    todo = points(axes, base)
    started = time.monotonic()
    for index, (axis, point) in enumerate(todo, 1):
        if point not in measured:
            with context.Pool(1) as pool:  # a fresh process: its memory peak is the point's own
                measured[point] = pool.apply(_isolated, (point, steps))
        row = measured[point]
        rows.append({"axis": axis, **row})
        shown = row.get("error") or f"{row['step_s']:.3f} s/step, peak {row['peak_mb']:.0f} MB"
        progress(f"[{index}/{len(todo)} {time.monotonic() - started:.0f}s] {axis}={getattr(point, axis)}: {shown}")
    fits = {}
    for axis in NUMERIC:
        mine = [r for r in rows if r["axis"] == axis and "error" not in r]
        if len(mine) >= 2:
            xs = [_x(axis, r) for r in mine]
            fits[axis] = {"time": fit_exponent(xs, [r["step_s"] for r in mine]),
                          "memory": fit_exponent(xs, [r["peak_mb"] for r in mine]),
                          "x": "non-embedding parameters" if axis == "model" else axis}
    peak = gemm_peak_flops()
    report = {"base": base, "axes": axes, "steps": steps, "rows": rows, "fits": fits, "gemm_peak_flops": peak,
              "threads": torch.get_num_threads(), "wall_time_s": round(time.monotonic() - started, 1),
              "versions": versions()}
    if any(r["axis"] == "seq_len" and r["seq_len"] == base["seq_len"] and "error" not in r for r in rows):
        report["paper_predictions"] = predictions(rows, base, peak)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(out), report)
    return report


def write_scaling_report(report: dict[str, Any], folder: str | Path, command: str = "") -> list[Path]:
    """scaling.json, README.md (tables, exponents, the paper-scale predictions) and the log-log plots."""
    from harness.report.plots import _pyplot, _save
    from harness.report.render import render

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "scaling.json"]
    write_json(written[0], report)
    plt = _pyplot()
    numeric = [axis for axis in NUMERIC if axis in report["fits"]]
    if numeric:
        fig, grid = plt.subplots(2, len(numeric), figsize=(3.6 * len(numeric), 6.4), squeeze=False)
        for column, axis in enumerate(numeric):
            mine = [r for r in report["rows"] if r["axis"] == axis and "error" not in r]
            xs = [_x(axis, r) for r in mine]
            for row_index, (key, label, fit_key) in enumerate((("step_s", "s per step", "time"),
                                                                ("peak_mb", "peak MB", "memory"))):
                ax = grid[row_index][column]
                ax.loglog(xs, [r[key] for r in mine], "o", color="C0")
                fit = report["fits"][axis][fit_key]
                if fit:
                    line = [min(xs), max(xs)]
                    ax.loglog(line, [math.exp(fit["intercept"]) * x ** fit["exponent"] for x in line], "-", color="C1",
                              label=f"∝ x^{fit['exponent']:.2f}")
                    ax.legend(fontsize=8)
                _log_ticks(ax, xs, [r[key] for r in mine])
                ax.set_xlabel(report["fits"][axis]["x"])
                ax.set_ylabel(label)
                ax.grid(True, which="both", alpha=0.3)
        fig.suptitle(f"One training step vs each axis (base: {_base_text(report['base'])})", fontsize=10)
        fig.tight_layout()
        written += _save(fig, folder, "scaling")
    rows = []
    for r in report["rows"]:
        rows.append({"axis": r["axis"], "value": r.get(r["axis"]), "s/step": f"{r['step_s']:.3f}" if "step_s" in r else "-",
                     "tokens/s": f"{r['tokens_per_s']:.0f}" if "tokens_per_s" in r else "-",
                     "peak MB": f"{r['peak_mb']:.0f}" if "peak_mb" in r else "-",
                     "trainable": f"{r['trainable']:,}" if "trainable" in r else r.get("error", "")})
    fits = [{"axis": axis, "x": f["x"], "time exponent": f"{f['time']['exponent']:.2f} (R² {f['time']['r2']:.3f})"
             if f["time"] else "-", "memory exponent": f"{f['memory']['exponent']:.2f} (R² {f['memory']['r2']:.3f})"
             if f["memory"] else "-"} for axis, f in report["fits"].items()]
    lines = ["# How training cost grows: time and peak memory of one step", "",
             f"Regenerate: `{command or 'harness bench scaling'}` ({report['wall_time_s'] / 60:.1f} min here, "
             f"{report['threads']} threads; median of {report['steps']} steps after a warm-up step, each point in "
             f"a fresh process; random weights and tokens, no padding).", "",
             f"Base point: {_base_text(report['base'])}; one axis moves at a time. Peak memory is the training "
             f"peak of the point's process (weights included).", "",
             "## Fitted exponents (time ∝ x^a within the measured range)", "",
             render(fits, ["axis", "x", "time exponent", "memory exponent"], "markdown"), "",
             "![scaling](scaling.png)", "", "## Every point", "",
             render(rows, ["axis", "value", "s/step", "tokens/s", "peak MB", "trainable"], "markdown")]
    if report.get("paper_predictions"):
        preds = [{"setting": p["setting"], "non-embedding params": f"{p['nonembedding_params'] / 1e6:.0f}M",
                  "TFLOP per step": f"{p['step_flops'] / 1e12:.2f}",
                  "this CPU (predicted s/step)": f"{p['predicted_cpu_step_s']:.1f}",
                  "at 100 TFLOP/s (predicted s/step)": f"{p['step_flops'] / 1e14:.3f}"}
                 for p in report["paper_predictions"]]
        achieved = report["paper_predictions"][0]["cpu_achieved_flops"]
        lines += ["", "## Paper-scale settings: predictions, not measurements", "",
                  f"FLOPs of one step with a frozen backbone (4N per token plus attention), at the rate the base "
                  f"point achieved here ({achieved / 1e9:.1f} GFLOP/s, "
                  f"{report['paper_predictions'][0]['fraction_of_gemm_peak']:.0%} of this machine's fp32 GEMM peak "
                  f"of {report['gemm_peak_flops'] / 1e9:.0f} GFLOP/s) and at an assumed 100 TFLOP/s sustained "
                  f"on a GPU. Real GPU steps also pay memory traffic and kernel launches: read the GPU column "
                  f"as a lower bound.", "",
                  render(preds, ["setting", "non-embedding params", "TFLOP per step", "this CPU (predicted s/step)",
                                 "at 100 TFLOP/s (predicted s/step)"], "markdown")]
    (folder / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return written + [folder / "README.md"]


def _log_ticks(ax, xs: list[float], ys: list[float]) -> None:
    """Ticks at the measured x values, no minor labels (they overlap on log axes), and a y range of at
    least a factor 2, so that a flat series (time against rank) reads as flat."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xticks(xs, [f"{x / 1e6:.3g}M" if x >= 1e6 else f"{x / 1e3:.3g}K" if x >= 1e4 else f"{x:g}" for x in xs])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    low, high = min(ys), max(ys)
    if high < 2 * low:
        middle = (low * high) ** 0.5
        ax.set_ylim(middle / 2 ** 0.5 / 1.1, middle * 2 ** 0.5 * 1.1)


def _base_text(base: dict) -> str:
    return (f"{base['model']}, {base['method']} r={base['rank']} (query, value), batch {base['batch_size']}, "
            f"length {base['seq_len']}")
