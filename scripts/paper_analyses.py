"""Regenerate reports/cpu-mini/paper_analyses.md (the paper's Tables 5, 6, 7 and Figures 3, 4 at CPU
scale) and its figures from the committed run folders of the table5-cpu and table6-cpu suites:

    python scripts/paper_analyses.py            # reads results/paper-analyses/, writes reports/cpu-mini/

The suites' boards (scores with 95% intervals and verdicts from `harness check`'s statistics) come from
`harness suite report`; φ and the amplification factor from `harness analyze`, on the runs whose LoRA
weights are committed (seed 0 at r=4 and r=8, seeds 0 and 1 at r=64, {Wq,Wv}, SST-2 and E2E). Every
statement under "What holds" is computed here from those numbers, so it changes when they do.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.report.leaderboard import write_leaderboard  # noqa: E402
from harness.report.lora_analysis import amplification_report, heatmaps, subspace_report  # noqa: E402
from harness.report.reference import (PAPER_TABLE5, PAPER_TABLE6, PAPER_TABLE6_RANKS,  # noqa: E402
                                      PAPER_TABLE7)
from harness.report.render import render  # noqa: E402
from harness.rundir import RunDir  # noqa: E402
from harness.suite import entry_run_folders, load_suite, read_entry  # noqa: E402

RESULTS = ROOT / "results" / "paper-analyses"
OUT = ROOT / "reports" / "cpu-mini"
FIGURES = OUT / "paper_analyses"
TABLE5_COLUMNS = ["wq", "wk", "wv", "wo", "wq_wk", "wq_wv", "wq_wk_wv_wo"]
TABLE5_LABELS = {"wq": "Wq", "wk": "Wk", "wv": "Wv", "wo": "Wo", "wq_wk": "Wq,Wk", "wq_wv": "Wq,Wv",
                 "wq_wk_wv_wo": "Wq,Wk,Wv,Wo"}
TABLE6_SETS = {"wq": "Wq", "wq_wv": "Wq,Wv", "wq_wk_wv_wo": "Wq,Wk,Wv,Wo"}
TABLE6_ENTRY = {("wq", 8): "wq_r8", ("wq_wv", 4): "wq_wv_r4"}  # the same_as entries (Table 5's runs)
MARK = {"better": "▲", "equivalent": "≈", "inconclusive": "?", "worse": "▼", "reference": "(ref)"}
# The runs §7 reads: (model, task) -> the middle layer shown in the heatmaps.
ANALYSED = {("minilm-l6", "sst2"): 3, ("smollm2-135m", "e2e"): 15}


def cell_text(cell: dict | None) -> str:
    if not cell or cell.get("status") != "ok":
        return (cell or {}).get("status", "not run")
    scale, d = cell["scale"], cell["decimals"]
    mark = MARK.get(cell.get("verdict", ""), "")
    return f"{cell['value'] * scale:.{d}f} [{cell['lo'] * scale:.{d}f}, {cell['hi'] * scale:.{d}f}] {mark}".strip()


def delta_text(cell: dict) -> str:
    scale, d = cell["scale"], cell["decimals"]
    return f"{cell['delta'] * scale:+.{d}f} [{cell['delta_lo'] * scale:+.{d}f}, {cell['delta_hi'] * scale:+.{d}f}]"


def board(name: str) -> tuple[object, dict]:
    """The suite and its board, as `harness suite report` writes it (computed once, read back)."""
    suite = load_suite(name)
    write_leaderboard(suite, RESULTS, FIGURES / suite.slug)
    return suite, json.loads((FIGURES / suite.slug / "leaderboard.json").read_text())


def run_of(suite, entry: str, task: str, seed: int) -> Path | None:
    """The run folder of one entry x task x seed (a same_as entry's runs are the other suite's)."""
    output = suite.output_dir(RESULTS)
    record = read_entry(output, entry)
    if not record:
        return None
    for path in entry_run_folders(output, record):
        if not (path / "config.json").is_file():
            continue
        config = json.loads((path / "config.json").read_text())
        if config.get("seed") == seed and config.get("task") == suite.tasks[task]["task"] and \
                RunDir(path).status() == "finished":
            return path
    return None


READ: set[Path] = set()  # the run folders whose weights the analyses read (listed in weights_read.txt)


def has_weights(path: Path | None) -> bool:
    found = path is not None and (path / "weights" / "adapter_model.safetensors").is_file()
    if found:
        READ.add(path)
    return found


# ---------------------------------------------------------------------------------------------


def table5(data: dict) -> tuple[list[str], list[str]]:
    rows = {r["entry"]: r for r in data["rows"]}
    columns = ["row"] + [f"{TABLE5_LABELS[c]} (r={PAPER_TABLE5['ranks'][c]})" for c in TABLE5_COLUMNS]
    table = []
    for dataset in ("WikiSQL (±0.5%)", "MultiNLI (±0.1%)"):
        table.append({"row": f"paper, GPT-3: {dataset}",
                      **{columns[i + 1]: f"{PAPER_TABLE5[dataset][c]}" for i, c in enumerate(TABLE5_COLUMNS)}})
    for task in data["tasks"]:
        table.append({"row": f"ours: {task['label']} ({task['model']}, {task['metric_label']})",
                      **{columns[i + 1]: cell_text(rows.get(c, {}).get("tasks", {}).get(task["name"]))
                         for i, c in enumerate(TABLE5_COLUMNS)}})
    for model in data["models"]:
        name = model if isinstance(model, str) else model.get("name")
        table.append({"row": f"trainable ({name})", **{
            columns[i + 1]: f"{((rows.get(c, {}).get('efficiency') or {}).get(name) or {}).get('trainable') or 0:,}"
            for i, c in enumerate(TABLE5_COLUMNS)}})
    findings = []
    for task in data["tasks"]:
        cells = {c: rows[c]["tasks"][task["name"]] for c in TABLE5_COLUMNS if c in rows
                 and rows[c]["tasks"][task["name"]].get("status") == "ok"}
        worse = [TABLE5_LABELS[c] for c, cell in cells.items() if cell.get("verdict") == "worse"]
        better = [TABLE5_LABELS[c] for c, cell in cells.items() if cell.get("verdict") == "better"]
        best = max(cells, key=lambda c: cells[c]["value"] * (1 if cells[c]["higher_is_better"] else -1))
        text = (f"- **{task['label']}**: highest mean {TABLE5_LABELS[best]}; "
                f"worse than {{Wq,Wv}}: {', '.join(worse) or 'none'}; better: {', '.join(better) or 'none'}")
        single = [f"{TABLE5_LABELS[c]} {delta_text(cells[c])}" for c in ("wq", "wk") if c in cells and "delta" in cells[c]]
        if single:
            text += f" (Wq, Wk alone minus {{Wq,Wv}}: {'; '.join(single)})"
        findings.append(text + ".")
    return [render(table, columns, "markdown")], findings


def table6(data: dict) -> tuple[list[str], list[str]]:
    rows = {r["entry"]: r for r in data["rows"]}
    columns = ["dataset", "weights"] + [f"r={r}" for r in PAPER_TABLE6_RANKS]
    table = []
    for (dataset, weights), values in PAPER_TABLE6.items():
        if weights in TABLE6_SETS:
            table.append({"dataset": f"paper, GPT-3: {dataset}", "weights": TABLE6_SETS[weights],
                          **{f"r={r}": f"{v}" for r, v in zip(PAPER_TABLE6_RANKS, values)}})
    findings = []
    for task in data["tasks"]:
        for weights, label in TABLE6_SETS.items():
            row = {"dataset": f"ours: {task['label']} ({task['model']})", "weights": label}
            for r in PAPER_TABLE6_RANKS:
                entry = TABLE6_ENTRY.get((weights, r), f"{weights}_r{r}")
                row[f"r={r}"] = cell_text(rows.get(entry, {}).get("tasks", {}).get(task["name"]))
            table.append(row)
        low = (rows.get("wq_wv_r1") or {}).get("tasks", {}).get(task["name"])
        if low and low.get("status") == "ok" and "delta" in low:
            findings.append(f"- **{task['label']}**: {{Wq,Wv}} r=1 minus r=8: {delta_text(low)} "
                            f"({low.get('verdict')}).")
        for weights in ("wq", "wq_wk_wv_wo"):  # each other set's r=1 against the reference, {Wq,Wv} r=8
            low = (rows.get(f"{weights}_r1") or {}).get("tasks", {}).get(task["name"])
            if low and low.get("status") == "ok" and "delta" in low:
                findings.append(f"- **{task['label']}**: {{{TABLE6_SETS[weights]}}} r=1 minus {{Wq,Wv}} r=8: "
                                f"{delta_text(low)} ({low.get('verdict')}).")
    return [render(table, columns, "markdown")], findings


# ---------------------------------------------------------------------------------------------


def diagonal_mean(values, upto: int) -> float:
    values = np.asarray(values)
    n = min(upto, *values.shape)
    return float(np.mean([values[i, i] for i in range(n)]))


def save_subspace(report: dict, middle: int, name: str) -> None:
    """The JSON beside a heatmap: the middle layer's full φ matrices (4 decimals) and, for every layer,
    the numbers the bullets use (the whole report of 30 layers x 64 x 64 would be megabytes)."""
    def rounded(values):
        return np.round(np.asarray(values), 4).tolist()

    summary = [{"layer": e["layer"], "weight": e["weight"], "phi_1_1": round(e["phi"][0][0], 4),
                "phi_8_8": round(e["phi"][min(7, len(e["phi"]) - 1)][min(7, len(e["phi"][0]) - 1)], 4),
                "diagonal_mean_10": round(diagonal_mean(e["phi"], 10), 4),
                "random_diagonal_mean_10": round(diagonal_mean(e["phi_random"], 10), 4)} for e in report["entries"]]
    shown = [{**e, "phi": rounded(e["phi"]), "phi_random": rounded(e["phi_random"])}
             for e in report["entries"] if e["layer"] == middle]
    (FIGURES / f"{name}.json").write_text(json.dumps({**report, "entries": shown, "layers": summary}, indent=1) + "\n")
    heatmaps({**report, "entries": shown}, FIGURES, name)


def subspaces(table6_suite) -> tuple[list[str], list[str]]:
    lines, findings = [], []
    for (model, task), middle in ANALYSED.items():
        r8, r64 = run_of(table6_suite, "wq_wv_r8", task, 0), run_of(table6_suite, "wq_wv_r64", task, 0)
        r64b = run_of(table6_suite, "wq_wv_r64", task, 1)
        label = f"{model} on {task}"
        if not (has_weights(r8) and has_weights(r64)):
            lines.append(f"- {label}: the r=8 and r=64 runs of seed 0 (weights) are not there yet.")
            continue
        for of in ("A", "delta"):
            report = subspace_report(r8, r64, ["q", "v"], None, 0, None, of)
            name = f"fig3_{task}_{of}"
            save_subspace(report, middle, name)
            for weight in ("q", "v"):
                entries = [e for e in report["entries"] if e["weight"] == weight]
                top = [e["phi"][0][0] for e in entries]
                random_top = [e["phi_random"][0][0] for e in entries]
                eight = [e["phi"][7][7] for e in entries]
                findings.append(
                    f"- Figure 3, {label}, ΔW{weight}, {'A' if of == 'A' else 'ΔW'}: φ(1,1) between r=8 and r=64 "
                    f"= {statistics.mean(top):.2f} (layers {min(top):.2f}–{max(top):.2f}; random "
                    f"{statistics.mean(random_top):.3f}); φ(8,8) = {statistics.mean(eight):.2f}.")
            lines.append(f"![Figure 3, {label}, {of}](paper_analyses/{name}.png)")
        if has_weights(r64b):
            report = subspace_report(r64, r64b, ["q", "v"], None, 0, None, "A")
            name = f"fig4_{task}"
            save_subspace(report, middle, name)
            lines.append(f"![Figure 4, {label}](paper_analyses/{name}.png)")
            shared = {w: [diagonal_mean(e["phi"], 10) for e in report["entries"] if e["weight"] == w]
                      for w in ("q", "v")}
            rand = [diagonal_mean(e["phi_random"], 10) for e in report["entries"]]
            findings.append(
                f"- Figure 4, {label}: mean φ(i,i) over i ≤ 10 between seeds 0 and 1 at r=64: ΔWq "
                f"{statistics.mean(shared['q']):.2f}, ΔWv {statistics.mean(shared['v']):.2f} (random "
                f"{statistics.mean(rand):.2f}); ΔWq above ΔWv in {sum(q > v for q, v in zip(shared['q'], shared['v']))}"
                f" of {len(shared['q'])} layers.")
    return lines, findings


def amplifications(table5_suite, table6_suite) -> tuple[list[str], list[str]]:
    table, findings = [], []
    for (model, task), middle in ANALYSED.items():
        for r, suite, entry in ((4, table5_suite, "wq_wv"), (8, table6_suite, "wq_wv_r8"), (64, table6_suite, "wq_wv_r64")):
            run = run_of(suite, entry, task, 0)
            if not has_weights(run):
                continue
            report = amplification_report(run, ["q"], None, 0)
            (FIGURES / f"table7_{task}_r{r}.json").write_text(json.dumps(report) + "\n")
            rows = report["rows"]
            at = next(x for x in rows if x["layer"] == middle)
            factors = [x["factor"] for x in rows]
            table.append({"model, task": f"{model}, {task}", "r": r, "layer": middle,
                          "‖ΔWq‖_F": f"{at['delta_norm']:.3f}", "‖Wq‖_F": f"{at['w_norm']:.2f}",
                          "‖UᵀWqV‖ ΔWq": f"{at['proj_delta']:.3f}", "‖UᵀWqV‖ Wq": f"{at['proj_w']:.2f}",
                          "‖UᵀWqV‖ random": f"{at['proj_random']:.3f}",
                          "amplification (layer)": f"{at['factor']:.1f}",
                          "amplification (all layers: median, range)":
                              f"{statistics.median(factors):.1f} ({min(factors):.1f}–{max(factors):.1f})"})
            above = sum(x["proj_delta"] > x["proj_random"] for x in rows)
            to_random = statistics.median(x["proj_delta"] / x["proj_random"] for x in rows)
            to_w = statistics.median(x["proj_w"] / x["proj_delta"] for x in rows)
            findings.append(f"- Table 7, {model} on {task}, r={r}: amplification median {statistics.median(factors):.1f}"
                            f" over {len(rows)} layers; W along ΔWq's top directions is {to_random:.1f}x W along "
                            f"random ones (median; above random in {above} of {len(rows)} layers) and {to_w:.0f}x "
                            f"below W along its own top directions.")
    for r in (4, 64):
        p = PAPER_TABLE7[r]
        table.append({"model, task": "paper: GPT-3, WikiSQL", "r": r, "layer": 48, "‖ΔWq‖_F": p["delta_norm"],
                      "‖Wq‖_F": PAPER_TABLE7["w_norm"], "‖UᵀWqV‖ ΔWq": p["delta"], "‖UᵀWqV‖ Wq": p["w"],
                      "‖UᵀWqV‖ random": p["random"], "amplification (layer)": f"{p['delta_norm'] / p['delta']:.1f}",
                      "amplification (all layers: median, range)": "-"})
    columns = ["model, task", "r", "layer", "‖ΔWq‖_F", "‖Wq‖_F", "‖UᵀWqV‖ ΔWq", "‖UᵀWqV‖ Wq", "‖UᵀWqV‖ random",
               "amplification (layer)", "amplification (all layers: median, range)"]
    return [render(table, columns, "markdown")], findings


RETIME = ROOT / "results" / "bench" / "paper_grids_retime" / "retime.json"


def budget() -> list[str]:
    """What the two grids cost: their cells' recorded time, and the projection from the cells rerun
    alone (scripts/retime_paper_grids.py), with the scores the reruns reproduced."""
    if not RETIME.is_file():
        return ["Not re-timed yet: `python scripts/retime_paper_grids.py`."]
    report = json.loads(RETIME.read_text())
    p, reruns = report["projection"], report["reruns"].values()
    exact, close = report["reproduced"]["exact"], report["reproduced"]["within_1e-6"]
    ratio = [r["committed_s"] / r["rerun_s"] for r in reruns]
    lines = [f"The grids' {p['cells']} cells (search included) recorded {p['committed_cell_s'] / 3600:.1f} h of cell "
             f"time ({p['committed_wall_s_at_2'] / 3600:.1f} h at 2 cells at a time), but most ran while other jobs "
             f"shared the 2 cores. `{report['command']}` reran {len(ratio)} of them alone, 2 at a time, with their "
             f"committed configs: {exact} of {len(ratio)} reproduced the committed score exactly and "
             f"{close - exact} more within a relative 1e-6 (a dev loss summed in another order); each took "
             f"{min(ratio):.1f}-{max(ratio):.1f}x less time than recorded (median {statistics.median(ratio):.1f}x). "
             f"Projected from the reruns (per task: cells x the median rerun time): "
             f"**{p['projected_cell_s'] / 3600:.1f} h of cell time, {p['projected_wall_s_at_2'] / 3600:.1f} h "
             f"with `--jobs 2` on 2 cores**.", "", "| cells | task | count | median s | from | projected h | recorded h |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {g['kind']} | {g['task']} | {g['cells']} | {g['median_s']:.0f} | {g['from']} | "
              f"{g['projected_s'] / 3600:.2f} | {g['committed_s'] / 3600:.2f} |" for g in p["groups"]]
    return lines


def main() -> int:
    FIGURES.mkdir(parents=True, exist_ok=True)
    t5_suite, t5 = board("table5-cpu")
    t6_suite, t6 = board("table6-cpu")
    t5_table, t5_findings = table5(t5)
    t6_table, t6_findings = table6(t6)
    fig_lines, fig_findings = subspaces(t6_suite)
    t7_table, t7_findings = amplifications(t5_suite, t6_suite)
    text = (OUT / "paper_analyses.template.md").read_text(encoding="utf-8")
    for key, value in {"TABLE5": t5_table, "TABLE5_FINDINGS": t5_findings, "TABLE6": t6_table,
                       "TABLE6_FINDINGS": t6_findings, "FIGURES": fig_lines, "FIGURE_FINDINGS": fig_findings,
                       "TABLE7": t7_table, "TABLE7_FINDINGS": t7_findings, "BUDGET": budget()}.items():
        text = text.replace("{{" + key + "}}", "\n".join(value))
    (OUT / "paper_analyses.md").write_text(text, encoding="utf-8")
    (FIGURES / "weights_read.txt").write_text("".join(f"{p.relative_to(ROOT)}\n" for p in sorted(READ)))
    print(OUT / "paper_analyses.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
