"""Re-time a sample of the Table 5/6 CPU grids' cells on an otherwise idle machine, and project the
whole grids' cost from it.

The committed cells' `wall_time_s` were recorded while other jobs shared the 2 cores (one MRPC cell
config took 84 s on one seed and 535 s on another), so their sum overstates what the grids cost. This
reruns, two at a time as `harness suite run` does (`--jobs 2`), the seed-0 cells of four configurations
per task (1, 2 and 4 adapted weight types; r from 1 to 64) and one learning-rate search candidate per
model, each with exactly its committed config (only the output folder differs), then:

- compares each rerun's score with the committed one (CPU training is deterministic: they must be equal);
- projects the grids: per task, the number of cells the two suites ran x the median rerun time of that
  task's sampled cells (search cells: of the sampled search cells), summed; wall time with 2 cells at a
  time is half of it.

    python scripts/retime_paper_grids.py            # runs what is missing (resumable), writes retime.json
    python scripts/retime_paper_grids.py --report   # no reruns: re-project the grids' current cells

Writes results/bench/paper_grids_retime/retime.json (read by scripts/paper_analyses.py).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.config import RunConfig  # noqa: E402
from harness.grid.experiments import Cell, Experiment, cell_id  # noqa: E402
from harness.grid.runner import run_grid  # noqa: E402
from harness.report.results import records_from_runs_dir  # noqa: E402
from harness.rundir import RunDir, write_json  # noqa: E402

SUITES = [ROOT / "results" / "paper-analyses" / name for name in ("table5-cpu-v1", "table6-cpu-v1")]
OUT = ROOT / "results" / "bench" / "paper_grids_retime"
# Seed 0 of these entries, on every task: Table 5's Wq (r=8) and all four (r=2), Table 6's Wq r=1 and
# {Wq,Wv} r=64; plus the first search candidate of each model (Table 5's search at {Wq,Wv}).
SAMPLE = ("table5-cpu-v1-wq-", "table5-cpu-v1-wq_wk_wv_wo-", "table6-cpu-v1-wq_r1-", "table6-cpu-v1-wq_wv_r64-")
JOBS = 2


def score_of(metrics: dict):
    """The run's main metric at its best epoch; a search cell that decodes nothing: its dev loss."""
    best = metrics.get("best") or {}
    return best.get(metrics.get("main_metric"), best.get("dev_loss"))


def committed_cells() -> list[dict]:
    """Every finished cell of the two grids: its run folder, config, kind (main/search), task, time, score."""
    return [{"run": run.name, "folder": str(Path(run.run_dir).relative_to(ROOT)), "config": run.config,
             "kind": "search" if "-search-" in run.name else "main", "task": run.task, "seed": run.seed,
             "wall_time_s": run.record["wall_time_s"], "score": score_of(run.record)}
            for suite in SUITES for run in records_from_runs_dir(suite / "runs") if run.status == "finished"]


def sample(cells: list[dict]) -> list[dict]:
    main = [c for c in cells if c["kind"] == "main" and c["seed"] == 0 and c["run"].startswith(SAMPLE)]
    search, seen = [], set()
    for c in cells:
        if c["kind"] == "search" and c["config"]["model"] not in seen:
            seen.add(c["config"]["model"])
            search.append(c)
    return main + search


def experiment(chosen: list[dict]) -> Experiment:
    built = []
    for c in chosen:
        config = RunConfig.of_run({**c["config"], "output_dir": str(OUT), "run_name": None}, c["folder"])
        built.append(Cell(cell_id(config), config, {"retimes": c["run"]}))
    return Experiment("retime", OUT / "retime.yaml", "Table 5/6 CPU cells rerun on an idle machine", built, {})


def reproduced(reruns) -> tuple[int, int]:
    """How many reruns gave exactly the committed score, and how many within a relative 1e-6 (a dev
    loss summed in another order)."""
    reruns = list(reruns)
    exact = sum(r["rerun_score"] == r["committed_score"] for r in reruns)
    close = sum(math.isclose(r["rerun_score"], r["committed_score"], rel_tol=1e-6) for r in reruns)
    return exact, close


def project(cells: list[dict], reruns: dict[str, dict]) -> dict:
    by_group = defaultdict(list)  # (kind, task) -> rerun seconds
    for run, rerun in reruns.items():
        by_group[(rerun["kind"], rerun["task"])].append(rerun["rerun_s"])
    counts = defaultdict(int)
    for c in cells:
        counts[(c["kind"], c["task"])] += 1
    groups, total, committed = [], 0.0, 0.0
    for (kind, task), n in sorted(counts.items()):
        recorded = [c["wall_time_s"] for c in cells if (c["kind"], c["task"]) == (kind, task)]
        # No rerun of this group: its task's main cells (an overestimate for search cells), else its own
        # committed times (an overestimate too), never nothing.
        source = "rerun" if (kind, task) in by_group else "rerun of main cells" if ("main", task) in by_group \
            else "committed"
        median = statistics.median(by_group.get((kind, task)) or by_group.get(("main", task)) or recorded)
        groups.append({"kind": kind, "task": task, "cells": n, "median_s": round(median, 1), "from": source,
                       "projected_s": round(n * median), "committed_s": round(sum(recorded))})
        total += n * median
        committed += sum(recorded)
    return {"groups": groups, "projected_cell_s": round(total), "projected_wall_s_at_2": round(total / JOBS),
            "committed_cell_s": round(committed), "committed_wall_s_at_2": round(committed / JOBS),
            "cells": len(cells)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", action="store_true",
                        help="no reruns: project the grids' current cells from retime.json's reruns")
    args = parser.parse_args()
    cells = committed_cells()
    if not args.report:
        chosen = sample(cells)
        exp = experiment(chosen)
        run_grid(exp, str(OUT), jobs=JOBS)
        reruns = {}
        for c, cell in zip(chosen, exp.cells):
            metrics = RunDir(OUT / "runs" / exp.run_name(cell)).read_metrics()
            reruns[c["run"]] = {"kind": c["kind"], "task": c["task"], "rerun": exp.run_name(cell),
                                "committed_s": c["wall_time_s"], "rerun_s": metrics["wall_time_s"],
                                "committed_score": c["score"],
                                "rerun_score": score_of(metrics)}
        exact, close = reproduced(reruns.values())
        write_json(OUT / "retime.json", {"command": "python scripts/retime_paper_grids.py", "jobs": JOBS,
                                         "reruns": reruns, "reproduced": {"exact": exact, "within_1e-6": close},
                                         "projection": project(cells, reruns)})
    report = json.loads((OUT / "retime.json").read_text())
    if args.report:  # the grids may have grown since the reruns: project today's cells from the same reruns
        report["projection"] = project(cells, report["reruns"])
        write_json(OUT / "retime.json", report)
    p = report["projection"]
    exact, close = report["reproduced"]["exact"], report["reproduced"]["within_1e-6"]
    print(f"{len(report['reruns'])} cells rerun; scores equal to the committed ones: {exact} exactly, "
          f"{close} within a relative 1e-6")
    for g in p["groups"]:
        print(f"  {g['kind']:6} {g['task']:10} {g['cells']:3} cells x {g['median_s']:6.0f} s ({g['from']}) = "
              f"{g['projected_s'] / 3600:.2f} h (committed: {g['committed_s'] / 3600:.2f} h)")
    print(f"projected {p['projected_cell_s'] / 3600:.2f} h of cell time, {p['projected_wall_s_at_2'] / 3600:.2f} h "
          f"at 2 cells at a time (committed: {p['committed_cell_s'] / 3600:.2f} h, {p['committed_wall_s_at_2'] / 3600:.2f} h)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
