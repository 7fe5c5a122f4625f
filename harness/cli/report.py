"""Reading runs back: `harness table`, `plot`, `check` and `baseline save`."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from harness.cli.common import Parser, _write, add_source_options, records_from_args
from harness.config import RunConfig
from harness.errors import HarnessError
from harness.report.reference import PAPER_TABLES
from harness.report.render import DATA_FORMATS, FORMATS


def _config_keys(keys: list[str], option: str) -> list[str]:
    from harness.errors import unknown_choice

    valid = [f.name for f in dataclasses.fields(RunConfig)]
    for key in keys:
        if key not in valid:
            raise unknown_choice(f"{option} setting", key, valid)
    return keys


def cmd_table(args) -> int:
    from harness.report.render import export, render
    from harness.report.results import records_frame
    from harness.report.tables import paper_matches, paper_table, results_table

    by = tuple(_config_keys(args.by or [], "--by"))
    records = records_from_args(args)
    if not records and not args.paper:  # the paper's layout prints its own numbers without runs
        raise HarnessError(f"no runs found in {args.runs}; run something first or pass --runs/--experiment.")
    if args.per_run:
        runs = records_frame(records)
        if args.format in ("markdown", "latex", "html", "text"):
            _write(render(runs.astype(object).where(runs.notna(), "").to_dict("records"), list(runs.columns),
                          args.format), args.out)
        else:
            export(runs, args.format, args.out)
        return 0
    if args.paper:
        rows, columns = paper_table(args.paper, records, with_paper=not args.no_paper_values)
        ran = [r for r in records if r.status != "missing"]
        if ran and not paper_matches(args.paper, ran):
            models = sorted({row.model for row in PAPER_TABLES[args.paper][0]})
            print(f"harness: note: none of the {len(ran)} runs fills a row of the paper's {args.paper} "
                  f"(its rows are {', '.join(models)} runs of its experiment files); "
                  "leave out --paper to tabulate them.", file=sys.stderr)
    else:
        rows, columns = results_table(records, by=by, efficiency=args.efficiency)
    if args.format in ("json", "parquet"):
        import pandas as pd

        export(pd.DataFrame(rows, columns=columns).fillna(""), args.format, args.out)
    else:
        _write(render(rows, columns, args.format), args.out)  # stdout, and the file with --out
    return 0


def add_table(sub) -> None:
    table = sub.add_parser("table", help="paper-style results table from runs",
                           description="Rows = model x method (# trainable params), columns = tasks (+ Avg); seeds "
                                       "aggregated as the paper does (GLUE: median ± std of the best epochs; NLG: mean). "
                                       "--paper table2|table3|table13|table14 reproduces the paper's layout with its numbers and Δ. "
                                       "--per-run: one row per run instead (every setting, metric, count and version), "
                                       "e.g. --per-run --format parquet --out runs.parquet for pandas.")
    add_source_options(table)
    table.add_argument("--paper", choices=tuple(PAPER_TABLES), help="the paper's table layout, rows and markers "
                       "(table2 GLUE, table3 E2E, table13 WebNLG, table14 DART)")
    table.add_argument("--no-paper-values", action="store_true", help="with --paper: leave out the paper and Δ rows")
    table.add_argument("--by", action="append", metavar="SETTING",
                       help="also split rows by this run setting, e.g. --by learning_rate for a sweep (repeatable)")
    table.add_argument("--efficiency", action="store_true",
                       help="also the medians of peak memory, training samples/s and training time per row")
    table.add_argument("--per-run", action="store_true",
                       help="one row per run (harness.report.results.frame) instead of the aggregated table")
    table.add_argument("--format", choices=tuple(dict.fromkeys(FORMATS + DATA_FORMATS)), default="markdown",
                       help="markdown (default), text, latex, html, or data: csv, json, parquet (parquet needs --out)")
    table.add_argument("--out", help="also write the table to this file (default: print only)")
    table.set_defaults(func=cmd_table)


def cmd_plot(args) -> int:
    from harness.report.plots import PLOTS

    records = records_from_args(args)
    if args.kind == "pareto":
        from harness.report.pareto import pareto_plot

        for path in pareto_plot(records, Path(args.out_dir), args.x, args.y):
            print(path)
        return 0
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
    plot.add_argument("kind", nargs="?", choices=("all", "params", "curves", "ranks", "pareto"), default="all",
                      help="which plot (default: all that the runs allow except pareto)")
    plot.add_argument("--x", default="trainable", help="pareto: x column: trainable, peak_memory_mb, train_time_s, "
                      "train_samples_per_s, weights_bytes or score (default: trainable)")
    plot.add_argument("--y", default="score", help="pareto: y column, as --x (default: score)")
    plot.add_argument("--out-dir", default="reports/plots", help="output folder (default: reports/plots)")
    plot.add_argument("--no-paper-values", action="store_true",
                      help="params plot: leave out the paper's Table 2 points (e.g. for models far from RoBERTa's scale)")
    plot.set_defaults(func=cmd_plot)


def _where(pairs) -> dict:
    """--where KEY=VALUE (repeatable): run settings to select, VALUE read as YAML (0.003, true, lora)."""
    import yaml

    values = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise HarnessError(f"--where {pair}: expected KEY=VALUE, e.g. --where learning_rate=0.003.")
        values[key] = yaml.safe_load(value)
    return values


def cmd_check(args) -> int:
    from harness.report.check import check_command

    records = records_from_args(args)
    if args.action == "calibrate":
        return _calibrate(args, records)
    text, code = check_command(records, candidate=args.candidate, against=args.against, baseline=args.baseline,
                               fmt=args.format, where=_where(args.where), ignore=tuple(args.ignore or ()),
                               margin=args.margin, allow_missing=args.allow_missing, alpha=args.alpha,
                               n_boot=args.n_boot, pair_seeds=args.pair_seeds)
    _write(text, args.out)  # stdout, and the file with --out
    return code


def _calibrate(args, records) -> int:
    from harness.report.calibration import calibrate_command

    from harness.report.results import records_from_runs_dir

    if args.reruns and not Path(args.reruns).is_dir():
        raise HarnessError(f"--reruns {args.reruns}: no such folder; give the runs folder of the reruns, e.g. "
                           f"results/cpu-mini/check_calibration_avx2/runs (scripts/check_calibration_reruns.sh).")
    reruns = records_from_runs_dir(args.reruns) if args.reruns else ()
    text = calibrate_command(records, where=_where(args.where), rerun_records=reruns, n_boot=args.n_boot,
                             alpha=args.alpha)
    _write(text, args.out)
    return 0


def add_check(sub) -> None:
    check = sub.add_parser(
        "check", help="is a method worse than LoRA, or than a baseline? verdicts with intervals (exit 1 on worse)",
        description="Compare a candidate method's runs with a reference method's (--candidate M --against lora) or "
                    "with a stored baseline (--baseline FILE), task by task on the same dev examples: Δ with a 95%% "
                    "confidence interval from a paired bootstrap over examples and seeds, a Holm-corrected p-value, "
                    "the minimum detectable effect, and a verdict: better, equivalent (the interval inside "
                    "±margin), inconclusive or worse. Runs that differ in more than the seed are never pooled: "
                    "different settings exit 2 naming the fields. Exit 1 on worse, missing or failed entries. "
                    "`harness check calibrate` writes the false-alarm and detection rates measured on real runs.")
    add_source_options(check)
    check.add_argument("action", nargs="?", choices=("calibrate",), help="calibrate: measure the check on a "
                       "calibration grid (experiments/cpu-mini/check_calibration.yaml) and write a report")
    check.add_argument("--reruns", metavar="DIR", help="calibrate: runs folder with reruns of the reference "
                       "setting's seeds under other numerics (the release-check case for --pair-seeds)")
    check.add_argument("--baseline", help="baseline JSON written by `harness baseline save`")
    check.add_argument("--candidate", help="the method to check (its name or label, e.g. peft:IA3, my_method.py:fn)")
    check.add_argument("--against", help="the reference method, e.g. lora")
    check.add_argument("--ignore", action="append", metavar="FIELD",
                       help="compare even though this fingerprint field or group differs, e.g. versions (a "
                            "peft/transformers upgrade), subset.max_train_samples; repeatable")
    check.add_argument("--where", action="append", metavar="KEY=VALUE",
                       help="only runs with this setting, e.g. learning_rate=0.003, or of one grid experiment, e.g. "
                            "grid=cpu-quick-v1-lora; candidate:KEY=VALUE or reference:KEY=VALUE filters one side; "
                            "repeatable")
    check.add_argument("--margin", type=float, help="equivalence margin in printed units (default: the metric's, "
                       "e.g. 0.5 point of accuracy, 0.5 BLEU)")
    check.add_argument("--alpha", type=float, default=0.05, help="family-wise error rate (Holm) (default: 0.05)")
    check.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default: 2000)")
    check.add_argument("--pair-seeds", action="store_true",
                       help="compare each candidate run with the reference run of the same seed (a release or "
                            "refactor check, where a shared seed makes runs alike: identical runs read equivalent); "
                            "seeds on one side only are left out")
    check.add_argument("--allow-missing", action="store_true", help="missing or failed entries do not fail the check")
    check.add_argument("--format", choices=FORMATS, default="text")
    check.add_argument("--out", help="also write the report here (e.g. reports/check_calibration.md for calibrate)")
    check.set_defaults(func=cmd_check)


def cmd_baseline_save(args) -> int:
    from harness.report.check import save_baseline_command

    text, code = save_baseline_command(records_from_args(args), args.out, where=_where(args.where))
    print(text, end="")
    return code


def add_baseline(sub) -> None:
    baseline = sub.add_parser("baseline", help="baselines for `harness check`", description="Baselines.")
    baseline_sub = baseline.add_subparsers(dest="baseline_command", metavar="ACTION", parser_class=Parser)
    baseline_sub.required = True
    save = baseline_sub.add_parser(
        "save", help="write a baseline from runs",
        description="Per task x model x method: the setting's fingerprint, every seed's score and per-example "
                    "predictions (so `harness check --baseline` needs only the candidate's runs), trainable "
                    "parameters, peak memory, train time, weights size and versions. An entry whose runs differ "
                    "in more than the seed is refused; fewer than 3 seeds is noted (checks against it are "
                    "inconclusive).")
    add_source_options(save)
    save.add_argument("out", help="baseline file, e.g. results/baselines/minilm-glue.json")
    save.add_argument("--where", action="append", metavar="KEY=VALUE",
                      help="only runs with this setting, e.g. learning_rate=0.003; repeatable")
    save.set_defaults(func=cmd_baseline_save)


def add(sub) -> None:
    add_table(sub)
    add_plot(sub)
    add_check(sub)
    add_baseline(sub)
