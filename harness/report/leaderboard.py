"""A suite's leaderboard: every method's score per task with a 95% interval, its verdict against the
reference from `harness check`'s statistics, and its costs; as JSON, Markdown, plots and one HTML page.

Everything is computed from the suite's run folders and entry records (harness.suite), so the board
regenerates with `harness suite report SUITE` and nobody re-runs anything to read it.

Per task, a method's runs are one setting (one per seed) and its score is the mean over seeds with
``stats.score_interval``; the verdict is ``check.compare_entries`` of its runs against the
reference's: the comparison and verdict rules of `harness check`, Holm-adjusted over the method's
tasks. Generation tasks are scored with sacrebleu's corpus BLEU on the decoded inputs, the
statistic the check resamples. The average over tasks is the mean of the printed scores with the
tasks' variances combined (independent tasks); it is shown only where every task ran.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.fingerprint import fields_set_by
from harness.report.check import ALPHA, Entry, compare_entries, median_known, metric_spec, side_from_runs
from harness.report.results import RunRecord, records_from_runs_dir
from harness.report.specs import learn, task_label
from harness.report.stats import mean_of, score_interval
from harness.rundir import write_json
from harness.suite import runs_dirs

DEFAULT_OUT = Path("reports") / "leaderboard"
VERDICT_MARK = {"better": "▲", "equivalent": "≈", "inconclusive": "?", "worse": "▼", "reference": "ref"}


def _entry_records(output: Path, suite) -> list[dict]:
    """The entry records that ran, the suite's listed order first, then plugins by name."""
    folder = output / "entries"
    found = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}
    return [found[name] for name in suite.methods if name in found] + \
        [record for name, record in sorted(found.items()) if name not in suite.methods]


def _runs_of(record: dict, by_experiment: dict[str, list[RunRecord]]) -> list[RunRecord]:
    cells = set(record.get("cells") or [])
    return [r for r in by_experiment.get(record["experiment"], []) if r.name.rsplit("-", 1)[-1] in cells]


def _failure(runs: list[RunRecord]) -> str:
    errors = [r.record.get("error") for r in runs if r.status == "failed" and r.record.get("error")]
    return errors[0] if errors else ""


def _task_cell(suite, task_name: str, record: dict, runs: list[RunRecord]) -> tuple[dict, Any]:
    """(the board's cell for one entry x task, its Side or None)."""
    task = suite.tasks[task_name]
    model = task["model"]
    key = suite.rate_key(task_name)
    if record.get("tasks") is not None and task_name not in record["tasks"]:
        return {"status": "not in entry", "reason": f"the entry runs on {', '.join(record['tasks'])} only"}, None
    if (record.get("learning_rate") or {}).get(key) is None:
        search = (record.get("search") or {}).get(key) or {}
        return {"status": "cannot run", "reason": search.get("reason", "no learning-rate search ran")}, None
    mine = [r for r in runs if r.task == task["task"]]
    side = side_from_runs(record["entry"], task["task"], model, mine)
    if not side.finished:
        failure = _failure(mine)
        status = "cannot run" if failure and side.failed == len(mine) else "missing"
        return {"status": status, "reason": failure or f"{len(mine)} of {len(suite.seeds)} runs present, none "
                                                        f"finished"}, None
    spec = metric_spec(side)
    interval = score_interval(spec, side.truth, side.outputs)
    cell = {"status": "ok", "value": interval.value, "lo": interval.lo, "hi": interval.hi, "se": interval.se,
            "df": interval.df, "seeds": side.seeds, "metric": spec.name, "metric_label": spec.label, "scale": spec.scale,
            "decimals": spec.decimals, "higher_is_better": spec.higher_is_better, "margin": spec.margin,
            "failed": side.failed, "notes": side.notes}
    return cell, side


def _efficiency(suite, runs: list[RunRecord]) -> dict[str, dict]:
    """Per model: trainable parameters, median peak memory, training seconds per seed (summed over the
    model's tasks), median saved weights."""
    out = {}
    for model in suite.models():
        tasks = [t["task"] for t in suite.tasks.values() if t["model"] == model]
        mine = [r for r in runs if r.model == model and r.status == "finished"]
        if not mine:
            continue
        per_task = [median_known((r.throughput or {}).get("train_time_s") for r in mine if r.task == t) for t in tasks]
        out[model] = {"trainable": (mine[0].params or {}).get("trainable"),
                      "peak_memory_mb": median_known((r.throughput or {}).get("peak_memory_mb") for r in mine),
                      "train_time_s": sum(t for t in per_task if t is not None),
                      "weights_bytes": median_known(r.weights_bytes for r in mine)}
    return out


def _comparisons(row: dict, sides: dict, against: str, suite) -> tuple[list[tuple[str, Entry]], list[str]]:
    """The row's entry against ``against`` on every task both finished: the check's comparison, Holm over
    the entry's tasks; (the compared tasks with their entries, the check's notes)."""
    entries = []
    for task_name in suite.tasks:
        cand, ref = sides.get((row["entry"], task_name)), sides.get((against, task_name))
        if cand is not None and ref is not None:
            entries.append((task_name, Entry(cand.task, cand.model, None, cand, ref)))
    # What either entry's override changes (with its recorded why) is a declared difference, not a mismatch.
    declared = {field for name in (row["entry"], against) if name in suite.methods
                for field in fields_set_by(suite.entry(name).override)}
    notes = compare_entries([e for _, e in entries], ignore=declared) if entries else []
    return [(name, e) for name, e in entries if e.comparison is not None], notes


def _verdicts(rows: list[dict], sides: dict, reference: str, suite) -> None:
    """Each entry against the reference (its cells' verdict and Δ) and, when the suite names a floor,
    against the floor too (the cells' ``floor``): the same statistics, each with its own Holm family."""
    for row in rows:
        if row["entry"] == reference:
            for cell in row["tasks"].values():
                if cell["status"] == "ok":
                    cell["verdict"] = "reference"
        else:
            compared, row["check_notes"] = _comparisons(row, sides, reference, suite)
            for task_name, entry in compared:
                c = entry.comparison
                row["tasks"][task_name].update(verdict=entry.verdict, verdict_reason=entry.reason, delta=c.delta,
                                               delta_lo=c.lo, delta_hi=c.hi, delta_se=c.se, delta_df=c.df,
                                               p_holm=entry.p_holm)
        if suite.floor is None or row["entry"] == suite.floor:
            continue
        for task_name, entry in _comparisons(row, sides, suite.floor, suite)[0]:
            c = entry.comparison
            row["tasks"][task_name]["floor"] = {"verdict": entry.verdict, "delta": c.delta, "delta_lo": c.lo,
                                                "delta_hi": c.hi, "p_holm": entry.p_holm}


def _average(row: dict, suite, reference: str) -> None:
    """Mean over tasks of the printed scores (and of Δ vs the reference), where every task has one."""
    cells = [row["tasks"][name] for name in suite.tasks]
    if any(c["status"] != "ok" for c in cells):
        row["average"] = None
        return
    printed = lambda c, key: c[key] * c["scale"]  # noqa: E731
    mean, lo, hi, se, df = mean_of([printed(c, "value") for c in cells], [printed(c, "se") for c in cells],
                                   [c["df"] for c in cells])
    row["average"] = {"value": mean, "lo": lo, "hi": hi, "se": se, "df": df}
    if row["entry"] == reference:
        row["average"]["verdict"] = "reference"
        return
    if any("delta" not in c for c in cells):
        return
    d, dlo, dhi, dse, ddf = mean_of([c["delta"] * c["scale"] * (1 if c["higher_is_better"] else -1) for c in cells],
                                    [c["delta_se"] * c["scale"] for c in cells], [c["delta_df"] for c in cells])
    margin = statistics.mean(c["margin"] * c["scale"] for c in cells)
    verdict = ("equivalent" if -margin < dlo and dhi < margin else "better" if dlo > 0 else "worse" if dhi < 0
               else "inconclusive")
    row["average"].update(delta=d, delta_lo=dlo, delta_hi=dhi, verdict=verdict, margin=margin)


def board_data(suite, output_root: str | Path = "results/leaderboard") -> dict[str, Any]:
    output = suite.output_dir(output_root)
    records = _entry_records(output, suite)
    if not records:
        raise HarnessError(f"no method of suite {suite.slug} has run yet (no {output}/entries/*.json); "
                           f"run: harness suite run {suite.name} --method {suite.reference}.")
    runs = [run for folder in runs_dirs(output, records) for run in records_from_runs_dir(folder)]
    learn(runs)
    by_experiment = defaultdict(list)
    for run in runs:
        by_experiment[run.experiment].append(run)
    rows, sides = [], {}
    for record in records:
        mine = _runs_of(record, by_experiment)
        row = {key: record.get(key) for key in ("entry", "method", "listed", "method_options", "learning_rate",
                                                "override", "why", "note", "inference", "wall_time_s")}
        if record["entry"] in suite.methods:  # a note changes no run: the suite file's current one is read
            row["note"] = suite.methods[record["entry"]].note
        row["declares"] = entry_notes(row)
        row["search"] = record.get("search") or {}
        row["tasks"] = {}
        for task_name in suite.tasks:
            row["tasks"][task_name], side = _task_cell(suite, task_name, record, mine)
            if side is not None:
                sides[(record["entry"], task_name)] = side
        row["efficiency"] = _efficiency(suite, mine)
        # Compute spent: every cell of the entry (search included), in seconds of one cell's process.
        spent = [r for name, group in by_experiment.items() if name == record["experiment"]
                 or name.startswith(record["experiment"] + "-search-") for r in group]
        row["cell_time_s"] = sum(r.record.get("wall_time_s") or 0 for r in spent)
        rows.append(row)
    reference = suite.reference
    if not any(r["entry"] == reference for r in rows):
        raise HarnessError(f"the reference {reference} has not run; run: harness suite run {suite.name} "
                           f"--method {reference}.")
    _verdicts(rows, sides, reference, suite)
    for row in rows:
        _average(row, suite, reference)
    rows.sort(key=lambda r: (r["average"] is None, -(r["average"] or {}).get("value", 0.0), r["entry"]))
    tasks = []
    for name, task in suite.tasks.items():
        cell = next((r["tasks"][name] for r in rows if r["tasks"][name]["status"] == "ok"), {})
        tasks.append({"name": name, "task": task["task"], "model": task["model"], "label": task_label(task["task"]),
                      "metric": cell.get("metric"), "metric_label": cell.get("metric_label") or cell.get("metric"),
                      "scale": cell.get("scale", 1.0)})
    on_board = {r["entry"] for r in rows}
    return {"suite": suite.slug, "description": " ".join(suite.description.split()), "reference": reference,
            "floor": suite.floor, "seeds": suite.seeds, "alpha": ALPHA, "tasks": tasks, "models": suite.models(),
            "rows": rows,
            "pending": [name for name in suite.methods if name not in on_board], "listed_methods": len(suite.methods),
            "suite_name": suite.name, "command": f"harness suite report {suite.name}", "runs_folder": str(output)}


# ---------------------------------------------------------------------------------------------
# Rendering


def _fmt(cell: dict, key: str = "value", signed: bool = False) -> str:
    value = cell[key] * cell.get("scale", 1.0)
    return f"{value:{'+' if signed else ''}.{cell.get('decimals', 2)}f}"


def score_text(cell: dict, marks: bool = True) -> str:
    """'value [lo, hi]' on the printed scale, with the verdict's mark; a cell that is not ok: its status."""
    if cell["status"] != "ok":
        return cell["status"]
    mark = VERDICT_MARK.get(cell.get("verdict", ""), "") if marks else ""
    return f"{_fmt(cell)} [{_fmt(cell, 'lo')}, {_fmt(cell, 'hi')}] {mark}".strip()


def _count(n) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def _size(b) -> str:
    if b is None:
        return "-"
    return f"{b / 2**20:.1f} MB" if b >= 2**20 else f"{b / 2**10:.0f} KB"


def _overhead(inference: dict | None) -> str:
    if not inference:
        return "-"
    if "error" in inference:
        return "n/a"
    return f"{inference['overhead_pct']:+.0f}%" + (" (merged)" if inference.get("merged") else "")


def markdown(board: dict) -> str:
    tasks, models = board["tasks"], board["models"]
    lines = [f"# Leaderboard: {board['suite']}", "", board["description"], "",
             f"Regenerate: `{board['command']}` (from `{board['runs_folder']}`). Scores are means over seeds "
             f"{', '.join(map(str, board['seeds']))} with 95% intervals (seed and example noise; cut at the "
             f"metric's range, e.g. 0-100% accuracy); the mark is the "
             f"verdict against **{board['reference']}** from `harness check`'s statistics (Holm over a method's "
             f"tasks, alpha {board['alpha']}): ▲ better, ≈ equivalent (interval within the metric's margin), "
             f"? inconclusive, ▼ worse. E2E is sacrebleu's corpus BLEU on the decoded test MRs.", ""]
    head = ["#", "method", *[f"trainable ({m})" for m in models], *[f"{t['label']} ({t['model']})" for t in tasks],
            "average", "Δ avg vs ref", *[f"peak MB ({m})" for m in models], *[f"train s ({m})" for m in models],
            *[f"weights ({m})" for m in models], *[f"inference ({m})" for m in models], "cells min"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rank, row in enumerate(board["rows"], 1):
        eff, inf, avg = row["efficiency"], row.get("inference") or {}, row["average"]
        avg_text = f"{avg['value']:.1f} [{avg['lo']:.1f}, {avg['hi']:.1f}]" if avg else "-"
        delta = (f"{_average_delta_text(avg)} {VERDICT_MARK[avg['verdict']]}" if avg and "delta" in avg else
                 "ref" if row["entry"] == board["reference"] else "-")
        cells = [str(rank) if avg else "-", row["entry"], *[_count(eff.get(m, {}).get("trainable")) for m in models],
                 *[score_text(row["tasks"][t["name"]]) for t in tasks], avg_text, delta,
                 *[f"{eff[m]['peak_memory_mb']:.0f}" if m in eff else "-" for m in models],
                 *[f"{eff[m]['train_time_s']:.0f}" if m in eff else "-" for m in models],
                 *[_size(eff.get(m, {}).get("weights_bytes")) for m in models],
                 *[_overhead(inf.get(m)) for m in models], f"{row['cell_time_s'] / 60:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Trainable parameters leave out the task head (the paper's convention). Peak MB: the run "
              "process's peak resident memory (median over runs). Train s: training seconds for one seed of the "
              "model's tasks (sum of per-task medians). Weights: the saved trainable tensors, head included. "
              "Inference: forward latency over the base model (batch 16 x 128 tokens, random weights), merged "
              "where the method can merge. Cells min: the minutes its cells ran (search included), one "
              "process each; `--jobs 2` on 2 cores takes about half of it. Times, memory and overheads are measured "
              "where the cells ran: other jobs on the machine inflate times and overheads; scores do not depend on "
              "it.", ""]
    lines += findings(board) + _pending(board) + _entry_lines(board) + _reasons(board) + _search_lines(board)
    return "\n".join(lines) + "\n"


def _average_delta_text(avg: dict) -> str:
    """The average's Δ vs the reference with its 95% interval, in points: '+1.2 [-4.1, +6.4]'."""
    return f"{avg['delta']:+.1f} [{avg['delta_lo']:+.1f}, {avg['delta_hi']:+.1f}]"


def _delta_text(cell: dict) -> str:
    return f"{_fmt(cell, 'delta', True)} [{_fmt(cell, 'delta_lo', True)}, {_fmt(cell, 'delta_hi', True)}]"


def _cost_text(row: dict, reference: dict, models: list[str]) -> str:
    """Trainable parameters on the first model both ran, and their ratio to the reference's."""
    for model in models:
        mine, ref = row["efficiency"].get(model, {}), reference["efficiency"].get(model, {})
        if mine.get("trainable") is not None and ref.get("trainable"):
            ratio = mine["trainable"] / ref["trainable"]
            shown = f"{ratio:.0f}" if ratio >= 10 else f"{ratio:.2f}" if ratio >= 0.1 else f"{ratio:.2g}"
            return f"{_count(mine['trainable'])} on {model}, {shown}x {reference['entry']}'s"
    return "parameters not recorded"


def _finding_line(row: dict, board: dict, reference: dict) -> str:
    """One entry: its decided tasks with Δ [95% CI] and Holm p, tasks whose unadjusted interval excludes 0
    without Holm's confirmation, and its average Δ."""
    parts = []
    for verdict in ("better", "worse", "equivalent"):
        decided = [f"{t['label']} {_delta_text(c)} (Holm p {c['p_holm']:.2g})" for t in board["tasks"]
                   if (c := row["tasks"][t["name"]]).get("verdict") == verdict]
        if decided:
            parts.append(f"{verdict} on " + ", ".join(decided))
    hints = [f"{t['label']} {_delta_text(c)}" for t in board["tasks"] if (c := row["tasks"][t["name"]]).get(
        "verdict") == "inconclusive" and (c["delta_lo"] > 0 or c["delta_hi"] < 0)]
    if hints:
        parts.append("excluding 0 before Holm only: " + ", ".join(hints))
    avg = row.get("average") or {}
    parts.append(f"average {_average_delta_text(avg)} {avg['verdict']}" if "delta" in avg
                 else "no average (not every task ran)")
    return f"- **{row['entry']}** ({_cost_text(row, reference, board['models'])}): " + "; ".join(parts)


def findings(board: dict) -> list[str]:
    """What the board says, in words: every entry in one group by its task verdicts against the reference
    (better on some task; else worse on some; else equivalent on some; else inconclusive everywhere),
    each with its intervals and cost, so nobody has to read 60 rows to find the answer."""
    ref_name = board["reference"]
    reference = next(r for r in board["rows"] if r["entry"] == ref_name)
    verdicts = {r["entry"]: {r["tasks"][t["name"]].get("verdict") for t in board["tasks"]} - {None}
                for r in board["rows"] if r["entry"] != ref_name}
    groups = {f"Better than {ref_name} on at least one task": "better",
              "Worse on at least one task, better on none": "worse",
              "Equivalent on some task (within the metric's margin), otherwise inconclusive": "equivalent",
              "Inconclusive on every task": "inconclusive"}
    placed: set[str] = set()
    out = ["## What the board says", "",
           f"Each entry against **{ref_name}**: Δ = entry − {ref_name} on the printed scale with its 95% interval "
           f"and Holm-adjusted p (alpha {board['alpha']}), then the average Δ over the tasks. Generated from the rows "
           f"above; \"excluding 0 before Holm only\" marks an unadjusted interval that the correction over the "
           f"entry's tasks does not confirm.", ""]
    for title, verdict in groups.items():
        rows = [r for r in board["rows"] if r["entry"] in verdicts and r["entry"] not in placed
                and verdict in verdicts[r["entry"]]]
        rows.sort(key=lambda r: -((r.get("average") or {}).get("delta", -1e9)))
        placed.update(r["entry"] for r in rows)
        lines = [_finding_line(r, board, reference) for r in rows] or ["- none"]
        out += [f"**{title}** ({len(rows)}):", "", *lines, ""]
    unjudged = [name for name, v in verdicts.items() if not v]
    if unjudged:
        out += [f"**No verdict** (ran on no task both it and the reference ran): {', '.join(sorted(unjudged))}.", ""]
    averages = defaultdict(list)
    for row in board["rows"]:
        if row["entry"] != ref_name and "delta" in (row.get("average") or {}):
            averages[row["average"]["verdict"]].append(row["entry"])
    out += ["On average over the tasks: " + "; ".join(f"{v} {len(averages[v])}" + (
        f" ({', '.join(sorted(averages[v]))})" if v in ("better", "worse", "equivalent") and averages[v] else "")
        for v in ("better", "equivalent", "inconclusive", "worse")) + ".", ""]
    return out + _floor_findings(board)


def _floor_findings(board: dict) -> list[str]:
    """Each entry against the suite's floor (linear probing: only the task head trains): per task how many
    entries beat it (naming the smaller group), the entries that beat it on no task, with their intervals,
    and those that beat it on every task they both ran."""
    floor = board.get("floor")
    if not floor:
        return []
    out = ["## Against the floor", ""]
    if not any(r["entry"] == floor for r in board["rows"]):
        return out + [f"The floor **{floor}** has not run yet, so no entry is compared with it.", ""]
    judged = {row["entry"]: {name: {**cell, **cell["floor"]} for name, cell in row["tasks"].items() if "floor" in cell}
              for row in board["rows"] if row["entry"] != floor}
    judged = {entry: cells for entry, cells in judged.items() if cells}
    per_task = []
    for task in board["tasks"]:
        met = {entry: cells[task["name"]]["verdict"] for entry, cells in judged.items() if task["name"] in cells}
        if not met:
            continue
        better = [entry for entry, verdict in met.items() if verdict == "better"]
        rest = [entry for entry in met if entry not in better]
        named = f"only {', '.join(better)}" if len(better) <= len(rest) else f"all but {', '.join(rest)}"
        per_task.append(f"{task['label']} {len(better)} of {len(met)}" + (f" ({named})" if better and rest else ""))
    labels = {t["name"]: t["label"] for t in board["tasks"]}
    nowhere = [f"- **{entry}**: " + "; ".join(f"{labels[name]} {_delta_text(c)} {c['verdict']}"
                                              for name, c in cells.items())
               for entry, cells in judged.items() if all(c["verdict"] != "better" for c in cells.values())]
    everywhere = [entry for entry, cells in judged.items() if all(c["verdict"] == "better" for c in cells.values())]
    return out + [
        f"Each entry against the suite's floor **{floor}** on the tasks both ran, with the same statistics "
        f"(Δ = entry − {floor}, 95% interval, Holm over the entry's tasks): a method that does not beat it has not "
        f"shown that it learns more than a trained head on a frozen model.", "",
        f"Entries better than {floor}, per task: {'; '.join(per_task)}.", "",
        f"**Better than {floor} on no task** ({len(nowhere)}):", "", *(nowhere or ["- none"]), "",
        f"**Better than {floor} on every task both ran** ({len(everywhere)}): {', '.join(everywhere) or 'none'}.", ""]


def entry_notes(row: dict) -> str:
    """What an entry declares beside its method: the frozen defaults it overrides (with why) and its note."""
    parts = []
    if row.get("override"):
        changed = ", ".join(f"{key}={value}" for key, value in row["override"].items())
        parts.append(f"overrides {changed}" + (f" ({row['why']})" if row.get("why") else ""))
    if row.get("note"):
        parts.append(row["note"])
    return "; ".join(parts)


def _entry_lines(board: dict) -> list[str]:
    """Entries that change the suite's frozen defaults or carry a note: what to read their row with."""
    out = [f"| {row['entry']} | {row['declares'].replace('|', '/')} |" for row in board["rows"] if row["declares"]]
    if not out:
        return []
    return ["## What an entry declares", "", "Overrides of the frozen defaults are compared as declared differences "
            "(the check's other fields must still match the reference).", "", "| method | declares |", "|---|---|",
            *out, ""]


def _pending(board: dict) -> list[str]:
    """The suite's listed methods with no runs yet: the board's coverage, and how to extend it."""
    pending = board.get("pending") or []
    if not pending:
        return []
    return ["## Not on the board yet", "",
            f"{len(pending)} of the suite's {board['listed_methods']} listed methods have not run yet: "
            f"{', '.join(pending)}. Add one with `harness suite run {board['suite_name']} --method NAME` "
            f"(or all with `--all`; finished cells are never run again), then `{board['command']}`.", ""]


def _reasons(board: dict) -> list[str]:
    out = []
    for row in board["rows"]:
        for t in board["tasks"]:
            cell = row["tasks"][t["name"]]
            if cell["status"] != "ok":
                out.append(f"| {row['entry']} | {t['label']} ({t['model']}) | {cell['status']} | "
                           f"{cell.get('reason', '').replace('|', '/')[:240]} |")
    if not out:
        return []
    return ["## Where a method did not run", "", "| method | task | status | reason |", "|---|---|---|---|", *out, ""]


def _search_lines(board: dict) -> list[str]:
    out = ["## Learning-rate search", "",
           "Each method's rate: the best held-out score of its candidates (seed 0, held-out training examples; "
           "the reported sets are never used). An edge choice is marked *.", "",
           "| method | rate for | task | metric | candidates (rate: held-out score) | chosen |", "|---|---|---|---|---|---|"]
    for row in board["rows"]:
        for model, search in (row.get("search") or {}).items():
            shown = ", ".join(f"{c['learning_rate']:g}: " + (f"{c['score']:.4f}" if c["score"] is not None else
                                                           c["status"] or "-") for c in search["candidates"])
            chosen = f"{search['chosen']:g}" if search.get("chosen") is not None else "none"
            out.append(f"| {row['entry']} | {model} | {search['task']} | {search['metric']} | {shown} | "
                       f"{chosen}{' *' if search.get('note') else ''} |")
    return out + [""]


def plots(board: dict, out_dir: Path) -> list[Path]:
    """Score vs trainable parameters, peak memory and train time per task, 95% intervals as error bars,
    the Pareto front dashed (PNG and SVG)."""
    from harness.report.pareto import front
    from harness.report.plots import _pyplot, _save

    plt = _pyplot()
    axes_spec = [("trainable", "trainable parameters (log)"), ("peak_memory_mb", "peak memory, MB (log)"),
                 ("train_time_s", "training seconds per seed (log)")]
    written = []
    for key, xlabel in axes_spec:
        tasks = board["tasks"]
        fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 4.4), squeeze=False)
        for ax, task in zip(axes.flat, tasks):
            points = []
            for i, row in enumerate(board["rows"]):
                cell, eff = row["tasks"][task["name"]], row["efficiency"].get(task["model"], {})
                x = eff.get(key)
                if cell["status"] != "ok" or not x:
                    continue
                if key == "train_time_s":  # this task's share: the per-model sum would mix tasks
                    x = x / max(1, sum(t["model"] == task["model"] for t in tasks))
                y, lo, hi = (cell[k] * cell["scale"] for k in ("value", "lo", "hi"))
                points.append((x, y))
                ax.errorbar(x, y, yerr=[[y - lo], [hi - y]], fmt="o", ms=4, capsize=2, color=f"C{i % 10}",
                            ecolor=f"C{i % 10}", elinewidth=0.8)
                ax.annotate(row["entry"], (x, y), fontsize=6, xytext=(3, 2), textcoords="offset points")
            edge = front(points, True, False)
            ax.plot([p[0] for p in edge], [p[1] for p in edge], "k--", lw=0.8)
            ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(task["metric_label"] or "score")
            ax.set_title(f"{task['label']} ({task['model']})")
            ax.grid(alpha=0.3)
        fig.suptitle(f"{board['suite']}: score (95% CI) vs {key.replace('_', ' ')}; dashed: Pareto front")
        written += _save(fig, out_dir, f"pareto_{key}")
    return written


def write_leaderboard(suite, output_root: str | Path = "results/leaderboard", out: str | Path | None = None,
                      screenshot: bool = False) -> list[Path]:
    from harness.report.board_html import page, take_screenshot

    board = board_data(suite, output_root)
    out_dir = Path(out) if out else DEFAULT_OUT / suite.slug
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "leaderboard.json", out_dir / "README.md", out_dir / "index.html"]
    write_json(written[0], board)
    figures = plots(board, out_dir)
    written[1].write_text(markdown(board) + "\n" + "\n".join(
        f"![{p.stem}]({p.name})" for p in figures if p.suffix == ".png") + "\n", encoding="utf-8")
    written[2].write_text(page(board, [p for p in figures if p.suffix == ".png"], findings(board)), encoding="utf-8")
    written += figures
    if screenshot:
        written.append(take_screenshot(written[2], out_dir / "screenshot.png"))
    return written

