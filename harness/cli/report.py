"""Reading runs back: `harness table`, `plot`, `check` and `baseline save`."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from harness.cli.common import Parser, _write, add_source_options, records_from_args
from harness.config import RunConfig
from harness.errors import HarnessError
from harness.report.reference import PAPER_TABLES
from harness.report.render import FORMATS


def _config_keys(keys: list[str], option: str) -> list[str]:
    from harness.errors import unknown_choice

    valid = [f.name for f in dataclasses.fields(RunConfig)]
    for key in keys:
        if key not in valid:
            raise unknown_choice(f"{option} setting", key, valid)
    return keys


def cmd_table(args) -> int:
    from harness.report.render import render
    from harness.report.tables import paper_matches, paper_table, results_table

    by = tuple(_config_keys(args.by or [], "--by"))
    records = records_from_args(args)
    if args.paper:
        rows, columns = paper_table(args.paper, records, with_paper=not args.no_paper_values)
        ran = [r for r in records if r.status != "missing"]
        if ran and not paper_matches(args.paper, ran):
            models = sorted({row.model for row in PAPER_TABLES[args.paper][0]})
            print(f"harness: note: none of the {len(ran)} runs fills a row of the paper's {args.paper} "
                  f"(its rows are {', '.join(models)} runs of its experiment files); "
                  "leave out --paper to tabulate them.", file=sys.stderr)
    else:
        if not records:
            raise HarnessError(f"no runs found in {args.runs}; run something first or pass --runs/--experiment.")
        rows, columns = results_table(records, by=by)
    ext = {"markdown": "md", "latex": "tex", "csv": "csv", "html": "html", "text": "txt"}[args.format]
    name = args.paper or (Path(args.experiment).stem if args.experiment else "results")
    _write(render(rows, columns, args.format), args.out or f"reports/{name}.{ext}")
    return 0


def add_table(sub) -> None:
    table = sub.add_parser("table", help="paper-style results table from runs",
                           description="Rows = model x method (# trainable params), columns = tasks (+ Avg); seeds "
                                       "aggregated as the paper does (GLUE: median ± std of the best epochs; NLG: mean). "
                                       "--paper table2|table3|table13|table14 reproduces the paper's layout with its numbers and Δ.")
    add_source_options(table)
    table.add_argument("--paper", choices=tuple(PAPER_TABLES), help="the paper's table layout, rows and markers "
                       "(table2 GLUE, table3 E2E, table13 WebNLG, table14 DART)")
    table.add_argument("--no-paper-values", action="store_true", help="with --paper: leave out the paper and Δ rows")
    table.add_argument("--by", action="append", metavar="SETTING",
                       help="also split rows by this run setting, e.g. --by learning_rate for a sweep (repeatable)")
    table.add_argument("--format", choices=FORMATS, default="markdown")
    table.add_argument("--out", help="output file (default: reports/<paper table, experiment or 'results'>.<ext>)")
    table.set_defaults(func=cmd_table)


def cmd_plot(args) -> int:
    from harness.report.plots import PLOTS

    records = records_from_args(args)
    kinds = list(PLOTS) if args.kind == "all" else [args.kind]
    for kind in kinds:
        try:
            options = {"paper": not args.no_paper_values} if kind == "params" else {}
            for path in PLOTS[kind](records, Path(args.out_dir), **options):
                print(path)
        except HarnessError as err:
            if args.kind != "all":
                raise
            print(f"skipped {kind}: {err}", file=sys.stderr)
    return 0


def add_plot(sub) -> None:
    plot = sub.add_parser("plot", help="parameters-vs-score, validation curves, rank sweep (PNG and SVG)",
                          description="Plots from runs, written as PNG and SVG.")
    add_source_options(plot)
    plot.add_argument("kind", nargs="?", choices=("all", "params", "curves", "ranks"), default="all",
                      help="which plot (default: all that the runs allow)")
    plot.add_argument("--out-dir", default="reports/plots", help="output folder (default: reports/plots)")
    plot.add_argument("--no-paper-values", action="store_true",
                      help="params plot: leave out the paper's Table 2 points (e.g. for models far from RoBERTa's scale)")
    plot.set_defaults(func=cmd_plot)


def cmd_check(args) -> int:
    from harness.report.check import check_against_baseline, compare_methods, load_baseline
    from harness.report.render import render

    records = records_from_args(args)
    if args.against:
        rows = compare_methods(records, args.candidate, args.against)
    else:
        if not args.baseline:
            raise HarnessError("give --baseline FILE (see `harness baseline save`) or --candidate M --against lora.")
        rows = check_against_baseline(records, load_baseline(args.baseline))
    print(render(rows, list(rows[0]) if rows else ["status"], args.format), end="")
    regressed = [r for r in rows if r["status"] == "regressed"]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("pass", "improved", "regressed", "missing")}
    print(", ".join(f"{n} {s}" for s, n in counts.items()))
    return 1 if regressed else 0


def add_check(sub) -> None:
    check = sub.add_parser("check", help="regression check against a baseline or against LoRA (exit 1 on regression)",
                           description="Compare runs with a stored baseline (results/baselines/*.json), or a "
                                       "candidate method with LoRA on the same tasks; exit status 1 on a regression.")
    add_source_options(check)
    check.add_argument("--baseline", help="baseline JSON written by `harness baseline save`")
    check.add_argument("--candidate", help="method label to compare, e.g. 'peft:IA3'")
    check.add_argument("--against", help="the reference method label, e.g. lora")
    check.add_argument("--format", choices=FORMATS, default="text")
    check.set_defaults(func=cmd_check)


def cmd_baseline_save(args) -> int:
    from harness.report.check import save_baseline

    baseline = save_baseline(records_from_args(args), args.out, args.k_std, args.floor)
    print(f"wrote {args.out}: {len(baseline['entries'])} task/model/method entries")
    return 0


def add_baseline(sub) -> None:
    baseline = sub.add_parser("baseline", help="baselines for `harness check`", description="Baselines.")
    baseline_sub = baseline.add_subparsers(dest="baseline_command", metavar="ACTION", parser_class=Parser)
    baseline_sub.required = True
    save = baseline_sub.add_parser("save", help="write a baseline from runs",
                                   description="Median score per task x model x method over seeds, a tolerance of "
                                               "k x std (at least a floor), and memory, time, size and versions.")
    add_source_options(save)
    save.add_argument("out", help="baseline file, e.g. results/baselines/minilm-sst2.json")
    save.add_argument("--k-std", type=float, default=2.0, help="tolerance in seed standard deviations (default: 2)")
    save.add_argument("--floor", type=float, default=0.005, help="smallest tolerance (default: 0.005)")
    save.set_defaults(func=cmd_baseline_save)


def add(sub) -> None:
    add_table(sub)
    add_plot(sub)
    add_check(sub)
    add_baseline(sub)
