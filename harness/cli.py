"""The `harness` command line: a thin layer over the Python API (harness.train.run and friends)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from harness.config import RunConfig
from harness.errors import HarnessError
from harness.report.reference import PAPER_TABLES
from harness.report.render import FORMATS


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2) instead of a usage dump."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _type_of(item: dataclasses.Field):
    annotation = str(item.type)
    if annotation.startswith("bool"):
        return None
    if annotation.startswith("int") or annotation == "int | None":
        return int
    if annotation.startswith("float"):
        return float
    return str


def add_method_options(parser: argparse.ArgumentParser) -> None:
    """--<method>-<option> for every option of every method (checked against --method later)."""
    from harness.methods import METHODS

    group = parser.add_argument_group("method options (only for the chosen --method)")
    for method_name, method in METHODS.items():
        for key, option in method.options.items():
            group.add_argument(f"--{method_name}-{key.replace('_', '-')}", dest=f"method:{method_name}:{key}",
                               default=argparse.SUPPRESS, metavar="VALUE",
                               help=f"{method_name}: {option.help}" + (f" (default: {option.default})" if option.default is not None else ""))


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field, plus the method options."""
    defaults = RunConfig.__dataclass_fields__
    for item in dataclasses.fields(RunConfig):
        meta = item.metadata
        if meta.get("cli") is False:
            continue
        default = defaults[item.name].default
        shown = f" (default: {default})" if default not in (None, False) else ""
        kwargs = dict(help=meta["help"] + shown, default=argparse.SUPPRESS)
        if meta.get("positional"):
            parser.add_argument(item.name, nargs="?", **kwargs)
            continue
        flag = "--" + item.name.replace("_", "-")
        value_type = _type_of(item)
        if value_type is None:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
        if "nargs" in meta:
            kwargs["nargs"] = meta["nargs"]
        parser.add_argument(flag, type=value_type, metavar=item.name.split("_")[-1].upper(), **kwargs)
    add_method_options(parser)
    parser.add_argument("--config", dest="config_file", default=argparse.SUPPRESS,
                        help="YAML file of run options (same keys as the flags, with underscores); flags override it")


def config_from_args(args: argparse.Namespace, command_options=()) -> RunConfig:
    """The RunConfig of the parsed flags; ``command_options`` are the command's own, non-run flags."""
    import yaml

    given = {k: v for k, v in vars(args).items() if k not in ("command", "bench", "baseline_command", *command_options)}
    values = {}
    config_file = given.pop("config_file", None)
    if config_file:
        try:
            values = yaml.safe_load(Path(config_file).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            raise HarnessError(f"cannot read --config {config_file}: {str(err).splitlines()[0]}") from None
        if not isinstance(values, dict):
            raise HarnessError(f"{config_file}: expected a mapping of run options.")
    method = given.get("method", values.get("method", RunConfig.method))
    options = dict(values.get("method_options") or {})
    for key in [k for k in given if k.startswith("method:")]:
        _, method_name, option = key.split(":")
        if method_name != method:
            raise HarnessError(f"--{method_name}-{option.replace('_', '-')} applies to --method {method_name}, "
                               f"but the method is '{method}'.")
        options[option] = given.pop(key)
    values.update(given)
    values["method_options"] = options
    return RunConfig.from_dict(values, where=config_file or "command line")


def cmd_run(args) -> int:
    from harness.training.runner import run

    record = run(config_from_args(args))
    if "run_dir" not in record:
        return 0  # a non-main process of a distributed run: the main process reports
    best = ", ".join(f"{k}={v:.4f}" for k, v in (record.get("best") or {}).items())
    print(f"best epoch {record['best_epoch']}: {best}")
    speed = record["throughput"]["train_samples_per_s"]
    print(f"trainable params {record['params']['trainable']:,} (head {record['params']['head']:,} excluded); "
          f"{f'{speed:.1f} samples/s' if speed else 'not trained'}; run dir {record['run_dir']}")
    for problem in record.get("tracking_problems", []):
        print(f"warning: {problem}", file=sys.stderr)
    return 0


def cmd_score(args) -> int:
    from harness.tasks.generation import score_file
    from harness.tasks import get_task

    task = get_task(args.task)
    scores = score_file(task, args.outputs, args.data_dir, args.split, args.first, args.metrics)
    for name, value in scores.items():
        print(f"{name:12} {value:.4f}")
    if args.out:
        from harness.tracking.mlflow import write_json

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(args.out), {"task": task.name, "outputs": args.outputs, "scores": scores})
    return 0


def cmd_tasks(args) -> int:
    from harness.tasks import TASKS, include_task_dirs

    include_task_dirs(args.include_tasks or ())
    for name in TASKS:
        task = TASKS.get(name)()
        print(f"{name:14} {task.kind:14} {','.join(task.metric_names()):32} {task.source.describe()}")
    print(f"{'csv':14} {'either':14} {'accuracy | pearson,spearman':32} --train-file/--eval-file (CSV, TSV, JSONL, JSON)")
    return 0


def cmd_models(args) -> int:
    from harness.models import MODELS

    for name, spec in MODELS.items():
        where = spec.hub_id or (f"pip package {spec.package.replace('_', '-')}" if spec.package else "built from config")
        print(f"{name:20} {where:36} {spec.description}")
    print(f"{'<org/name | path>':20} {'any hub id or local folder':36} loaded with transformers' from_pretrained")
    return 0


def cmd_methods(args) -> int:
    from harness.methods import METHODS

    for name, method in METHODS.items():
        print(f"{name:10} {method.description} (default learning rate {method.defaults.get('learning_rate')})")
        for key, option in method.options.items():
            print(f"{'':10}   --{name}-{key.replace('_', '-'):16} {option.help} (default: {option.default})")
    return 0


def cmd_params(args) -> int:
    from harness.params import PAPER_TABLE_COLUMNS, count_without_weights, paper_param_table
    from harness.report.render import render

    if getattr(args, "model", None) is None and getattr(args, "method", None) is None:
        _write(render(paper_param_table(), PAPER_TABLE_COLUMNS, args.format), args.out)
        return 0
    config = config_from_args(args, ("num_labels", "json", "format", "out"))
    counts = count_without_weights(config.model, config.method, config.method_options, args.num_labels)
    if args.json:
        print(json.dumps({"model": config.model, "method": config.method, **counts.as_dict()}))
    else:
        print(f"{config.model} + {config.method}: trainable {counts.trainable:,} "
              f"(head {counts.head:,}, {args.num_labels} labels, excluded as in the paper); total {counts.total:,}")
    return 0


def cmd_bench_train(args) -> int:
    from harness.bench import compare_training_throughput

    report = compare_training_throughput(config_from_args(args, ("repeats", "out", "recipe_examples")),
                                         repeats=args.repeats, out=args.out, recipe_examples=args.recipe_examples)
    print(json.dumps(report["summary"], indent=2))
    return 0


def cmd_bench_decode(args) -> int:
    from harness.bench import compare_decoding

    out = args.out or f"results/bench/decode_{args.model}_{args.task}_beam{args.num_beams}.json"
    report = compare_decoding(args.model, args.task, args.data_dir, args.inputs, args.num_beams, args.batch_size,
                              args.max_new_tokens, out)
    for name, row in report["results"].items():
        print(f"{name:14} batch {row['batch_size']:3}  {row['seconds']:8.1f} s  {row['inputs_per_s']:.2f} inputs/s")
    print(f"speedup {report['speedup']:.2f}x, same outputs: {report['same_outputs']} ({out})")
    return 0


def cmd_bench_latency(args) -> int:
    from harness.bench import measure_latency
    from harness.report.render import render

    if args.paper:
        return _paper_latency(args)

    out = args.out or f"results/bench/latency_{args.model}_b{args.batch_size}_s{args.seq_len}.json"
    report = measure_latency(args.model, args.batch_size, args.seq_len, args.trials, args.warmup,
                             args.lora_r, args.adapter_r, out)
    rows = [{"variant": r["variant"], "latency (ms)": f"{r['mean_ms']:.1f} ± {r['std_ms']:.1f}",
             "overhead": f"{r['overhead_pct']:+.1f}%", "added params": f"{r['added_params']:,}"}
            for r in report["results"]]
    print(f"{args.model}, batch {args.batch_size}, sequence {args.seq_len}, {args.trials} trials ({out})")
    print(render(rows, ["variant", "latency (ms)", "overhead", "added params"]), end="")
    return 0


def _paper_latency(args) -> int:
    from harness.bench import paper_latency_table
    from harness.report.render import render

    out = args.out or f"results/bench/latency_table1_{args.model}.json"
    report = paper_latency_table(args.model, args.trials, args.warmup, args.max_tokens, out)
    rows = []
    for row in report["rows"]:
        ours = {r["variant"]: r for r in row["results"]}
        setting = f"{row['paper_batch_size']}/{row['seq_len']}/{row['adapter_params']}"
        if row["batch_size"] != row["paper_batch_size"]:
            setting += f" (batch {row['batch_size']} here)"
        for variant, paper_key in (("lora (merged)", "base"), ("adapter_l", "adapter_l"), ("adapter_h", "adapter_h")):
            r = ours[variant]
            rows.append({"batch / len / adapter": setting, "variant": variant,
                         "ours (ms)": f"{r['mean_ms']:.1f}±{r['std_ms']:.1f} ({r['overhead_pct']:+.1f}%)",
                         "base here (ms)": f"{ours['base']['mean_ms']:.1f}",
                         "paper (ms)": row["paper"][paper_key]})
    columns = ["batch / len / adapter", "variant", "ours (ms)", "base here (ms)", "paper (ms)"]
    print(f"{args.model}: the paper's Table 1 settings, {args.trials} trials each ({out})")
    text = render(rows, columns, args.format)
    print(text, end="")
    if args.table_out:
        Path(args.table_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.table_out).write_text(text, encoding="utf-8")
    return 0


def _set_overrides(pairs) -> dict:
    import yaml

    values = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise HarnessError(f"--set {pair}: expected KEY=VALUE, e.g. --set epochs=1.")
        key, value = pair.split("=", 1)
        values[key] = yaml.safe_load(value)
    return values


def cmd_grid(args) -> int:
    from harness.grid.experiments import load_experiment
    from harness.grid.runner import run_grid, run_dir_of, status_of
    from harness.report.render import render

    experiment = load_experiment(args.file, args.variant, _set_overrides(args.set))
    if args.dry_run:
        from harness.params import count_without_weights
        from harness.tasks import get_task

        from harness.training.runner import resolve

        counts, rows = {}, []
        processes = int(experiment.launch.get("num_processes", 1))
        for cell in experiment.cells:
            config = cell.config
            task = get_task(config.task, config.include_tasks or ()) if config.task != "csv" else None
            labels = task.num_labels if task and task.num_labels else 2
            key = (config.model, config.method, json.dumps(config.method_options, sort_keys=True), labels)
            if key not in counts:
                counts[key] = count_without_weights(config.model, config.method, config.method_options, labels)

            rows.append({"cell": cell.id, **{k: str(v) for k, v in cell.labels.items()},
                         "model": config.model, "method": config.method,
                         "lr": f"{resolve(config).learning_rate:g}", "epochs": config.epochs,
                         "global batch": config.batch_size * processes * config.grad_accum,
                         "max len": config.max_seq_length, "trainable": f"{counts[key].trainable:,}",
                         "status": status_of(run_dir_of(experiment, cell, args.output_dir))})
        columns = ["cell", *experiment.cells[0].labels, "model", "method", "lr", "epochs", "global batch",
                   "max len", "trainable", "status"]
        print(f"{experiment.name}: {len(experiment.cells)} cells ({experiment.path})")
        print(render(rows, list(dict.fromkeys(columns)), args.format), end="")
        return 0
    slurm = {"partition": args.partition, "gpus": args.gpus, "time": args.time, "cpus": args.cpus}
    results = run_grid(experiment, args.output_dir, args.jobs, args.launcher,
                       {k: v for k, v in slurm.items() if v is not None})
    failed = [cell for cell, status in results.items() if status not in ("finished", "claimed by another worker")]
    print(f"{experiment.name}: {len(results) - len(failed)} of {len(results)} cells finished"
          + (f"; not finished: {', '.join(f'{c} ({results[c]})' for c in failed)}" if failed else ""))
    return 1 if failed else 0


def add_source_options(parser) -> None:
    group = parser.add_argument_group("which runs")
    group.add_argument("--runs", default="results/runs", help="folder of run folders (default: results/runs)")
    group.add_argument("--experiment", help="only this experiment file's cells (cells that never ran show as missing)")
    group.add_argument("--variant", help="the experiment file's variant")
    group.add_argument("--mlflow-uri", help="read runs from this MLflow tracking URI instead of run folders")
    group.add_argument("--mlflow-experiment", default="harness", help="MLflow experiment (default: harness)")
    group.add_argument("--filter", default="", help="MLflow filter, e.g. \"params.task = 'glue/sst2'\"")


def records_from_args(args):
    from harness.report.results import records_from_experiment, records_from_mlflow, records_from_runs_dir

    if args.mlflow_uri:
        return records_from_mlflow(args.mlflow_uri, args.mlflow_experiment, args.filter)
    if args.experiment:
        return records_from_experiment(args.experiment, args.runs, args.variant)
    return records_from_runs_dir(args.runs)


def _write(text: str, out: str | None) -> None:
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
    print(text, end="")


def cmd_table(args) -> int:
    from harness.report.render import render
    from harness.report.reference import PAPER_TABLES
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


def _config_keys(keys: list[str], option: str) -> list[str]:
    from harness.errors import unknown_choice

    valid = [f.name for f in dataclasses.fields(RunConfig)]
    for key in keys:
        if key not in valid:
            raise unknown_choice(f"{option} setting", key, valid)
    return keys


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


def cmd_baseline_save(args) -> int:
    from harness.report.check import save_baseline

    baseline = save_baseline(records_from_args(args), args.out, args.k_std, args.floor)
    print(f"wrote {args.out}: {len(baseline['entries'])} task/model/method entries")
    return 0


def cmd_sync(args) -> int:
    from harness.config import RunConfig, resolved_tracking_uri
    from harness.tracking.sync import sync_runs

    uri = resolved_tracking_uri(RunConfig(tracking_uri=args.tracking_uri))
    if uri is None:
        raise HarnessError("harness sync needs a tracking URI (--tracking-uri or $MLFLOW_TRACKING_URI).")
    actions = sync_runs(args.runs, uri, args.experiment)
    for name, action in actions:
        if action != "in MLflow" or args.verbose:
            print(f"{name}: {action}")
    counts = {a: sum(1 for _, b in actions if b == a) for a in ("uploaded", "completed", "in MLflow")}
    print(", ".join(f"{n} {a}" for a, n in counts.items()))
    return 0


def build_parser() -> Parser:
    parser = Parser(prog="harness", description="Reproduce the LoRA paper and benchmark PEFT methods.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    run = sub.add_parser("run", help="train and evaluate one configuration",
                         description="Train and evaluate one task/model/method; writes results/runs/<name>/ and logs to MLflow.")
    add_run_options(run)
    run.set_defaults(func=cmd_run)

    score = sub.add_parser("score", help="score an outputs file against a generation task's references",
                           description="Score generated text (one output per line, or a harness generations*.jsonl) "
                                       "against the references of e2e, webnlg or dart, with the same metrics as "
                                       "`harness run` (the official scorers' definitions).")
    score.add_argument("task", help="generation task: e2e, webnlg or dart")
    score.add_argument("outputs", help="outputs file: .txt (one per line, in the task's input order) or .jsonl")
    score.add_argument("--data-dir", help="data folder (default: $HARNESS_DATA_DIR, else the hub)")
    score.add_argument("--split", help="split whose references to use (default: the task's test split)")
    score.add_argument("--first", type=int, help="the outputs are for the first N inputs only")
    score.add_argument("--metrics", nargs="+", help="compute only these metrics")
    score.add_argument("--out", help="also write the scores as JSON here")
    score.set_defaults(func=cmd_score)
    tasks = sub.add_parser("tasks", help="list the tasks", description="List registered tasks with their metrics.")
    tasks.add_argument("--include-tasks", nargs="+", help="extra folders of task YAML files")
    tasks.set_defaults(func=cmd_tasks)
    sub.add_parser("models", help="list the model presets", description="List model presets.").set_defaults(func=cmd_models)
    sub.add_parser("methods", help="list the methods and their options",
                   description="List fine-tuning methods and their options.").set_defaults(func=cmd_methods)

    params = sub.add_parser("params", help="count trainable parameters without downloading weights",
                            description="Without --model/--method: every parameter-count cell of the paper's "
                                        "Tables 2, 3, 13 and 14, exact and as printed. With them: one model+method. "
                                        "Models are built from their configs on the meta device (no download); "
                                        "the task head is excluded and shown apart, as in the paper.")
    params.add_argument("--format", choices=FORMATS, default="text",
                        help="table format (default: text)")
    params.add_argument("--out", help="also write the table to this file")
    params.add_argument("--model", default=argparse.SUPPRESS, help="model preset, hub id or folder (default: minilm-l6)")
    params.add_argument("--method", default=argparse.SUPPRESS, help="method (default: lora)")
    params.add_argument("--num-labels", type=int, default=2, help="outputs of the task head (default: 2)")
    params.add_argument("--json", action="store_true", help="print JSON")
    add_method_options(params)
    params.set_defaults(func=cmd_params)

    grid = sub.add_parser("grid", help="run an experiment file's grid of cells (resumable)",
                          description="Run every cell of an experiment file that has not finished yet. Cells that "
                                      "finished are skipped, failed or interrupted ones run again (their old folder "
                                      "kept as .attempt-N), and a claim file keeps two workers off one cell.")
    grid.add_argument("file", help="experiment YAML file (see experiments/)")
    grid.add_argument("--dry-run", action="store_true", help="list the cells with their settings, "
                      "trainable parameters and status; run nothing")
    grid.add_argument("--variant", help="a named variant of the file (e.g. 'scripts' for the authors' scripts)")
    grid.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="override run options in every cell, "
                      "e.g. --set epochs=1 max_train_samples=500")
    grid.add_argument("--jobs", type=int, default=1, help="cells at once, each on its own GPU or share of "
                      "the CPU cores (default: 1)")
    grid.add_argument("--launcher", choices=("local", "slurm", "submitit-local"), default="local",
                      help="local subprocesses (default), Slurm jobs through submitit, or submitit's local executor")
    grid.add_argument("--output-dir", default="results", help="results folder (default: results)")
    grid.add_argument("--format", choices=FORMATS, default="text",
                      help="--dry-run table format")
    grid.add_argument("--partition", help="Slurm partition")
    grid.add_argument("--gpus", type=int, help="Slurm GPUs per job (default: the file's num_processes)")
    grid.add_argument("--cpus", type=int, help="Slurm CPUs per job (default: 4)")
    grid.add_argument("--time", type=int, help="Slurm time limit per job in minutes (default: 240)")
    grid.set_defaults(func=cmd_grid)

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

    plot = sub.add_parser("plot", help="parameters-vs-score, validation curves, rank sweep (PNG and SVG)",
                          description="Plots from runs, written as PNG and SVG.")
    add_source_options(plot)
    plot.add_argument("kind", nargs="?", choices=("all", "params", "curves", "ranks"), default="all",
                      help="which plot (default: all that the runs allow)")
    plot.add_argument("--out-dir", default="reports/plots", help="output folder (default: reports/plots)")
    plot.add_argument("--no-paper-values", action="store_true",
                      help="params plot: leave out the paper's Table 2 points (e.g. for models far from RoBERTa's scale)")
    plot.set_defaults(func=cmd_plot)

    check = sub.add_parser("check", help="regression check against a baseline or against LoRA (exit 1 on regression)",
                           description="Compare runs with a stored baseline (results/baselines/*.json), or a "
                                       "candidate method with LoRA on the same tasks; exit status 1 on a regression.")
    add_source_options(check)
    check.add_argument("--baseline", help="baseline JSON written by `harness baseline save`")
    check.add_argument("--candidate", help="method label to compare, e.g. 'peft:IA3'")
    check.add_argument("--against", help="the reference method label, e.g. lora")
    check.add_argument("--format", choices=FORMATS, default="text")
    check.set_defaults(func=cmd_check)

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

    sync = sub.add_parser("sync", help="upload runs that MLflow missed (server down), without duplicates",
                          description="Log to MLflow every finished or failed run folder that MLflow lacks or "
                                      "holds only in part (a run whose server went away); runs already there are "
                                      "left alone, so syncing twice changes nothing.")
    sync.add_argument("--runs", default="results/runs", help="folder of run folders (default: results/runs)")
    sync.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    sync.add_argument("--experiment", default="harness", help="MLflow experiment (default: harness)")
    sync.add_argument("--verbose", action="store_true", help="also list runs that were already in MLflow")
    sync.set_defaults(func=cmd_sync)

    bench = sub.add_parser("bench", help="benchmarks", description="Benchmarks.")
    bench_sub = bench.add_subparsers(dest="bench", metavar="BENCH", parser_class=Parser)
    bench_sub.required = True
    bench_train = bench_sub.add_parser(
        "train", help="training efficiency: LoRA vs full FT, the harness vs a hand-written loop and HF Trainer",
        description="One report: full fine-tuning vs LoRA through `harness run` (samples/s, tokens/s, peak memory, "
                    "optimizer state, checkpoint size, FLOP/s against the measured fp32 GEMM peak), and the "
                    "harness loop against a minimal hand-written peft loop and the HF Trainer recipe with "
                    "padding='max_length', on the same model, data and batch size.")
    add_run_options(bench_train)
    bench_train.add_argument("--repeats", type=int, default=1, help="alternate the two loops this many times")
    bench_train.add_argument("--recipe-examples", type=int, default=256,
                             help="examples for the slow HF Trainer recipe (default: 256)")
    bench_train.add_argument("--out", default="results/bench/train_throughput.json", help="JSON report path")
    bench_train.set_defaults(func=cmd_bench_train)
    latency = bench_sub.add_parser(
        "latency", help="inference latency: base vs merged/unmerged LoRA vs adapters (the paper's Table 1)",
        description="Time one forward pass of a model with random weights: no adapter, LoRA unmerged and merged, "
                    "AdapterL, AdapterH. Mean and std over trials, overhead against the base model.")
    latency.add_argument("--model", default="gpt2-medium", help="model preset (default: gpt2-medium)")
    latency.add_argument("--batch-size", type=int, default=1, help="batch size (default: 1)")
    latency.add_argument("--seq-len", type=int, default=128, help="sequence length (default: 128)")
    latency.add_argument("--trials", type=int, default=20, help="timed forward passes (default: 20; the paper: 100)")
    latency.add_argument("--warmup", type=int, default=3, help="untimed passes first (default: 3)")
    latency.add_argument("--lora-r", type=int, default=4, help="LoRA rank (default: 4, the paper's GPT-2 setting)")
    latency.add_argument("--adapter-r", type=int, default=8, help="adapter bottleneck (default: 8)")
    latency.add_argument("--paper", action="store_true",
                         help="the paper's three Table 1 settings (batch/length/adapter size), beside its numbers")
    latency.add_argument("--max-tokens", type=int, default=4096,
                         help="with --paper: lower the batch until batch x length <= this (default: 4096, for CPUs)")
    latency.add_argument("--format", default="markdown", choices=FORMATS,
                         help="with --paper: table format (default: markdown)")
    latency.add_argument("--table-out", help="with --paper: also write the table here")
    latency.add_argument("--out", help="JSON report (default: results/bench/latency_<model>_b<B>_s<S>.json)")
    latency.set_defaults(func=cmd_bench_latency)
    bench_decode = bench_sub.add_parser(
        "decode", help="batched beam search vs one input at a time",
        description="Decode the first N test inputs of a generation task with the same beam size, batched and one "
                    "input at a time; report both times, the speedup and whether the outputs are identical.")
    bench_decode.add_argument("--model", default="smollm2-135m", help="model preset (default: smollm2-135m)")
    bench_decode.add_argument("--task", default="e2e", help="generation task (default: e2e)")
    bench_decode.add_argument("--data-dir", help="data folder (default: $HARNESS_DATA_DIR, else the hub)")
    bench_decode.add_argument("--inputs", type=int, default=32, help="test inputs to decode (default: 32)")
    bench_decode.add_argument("--num-beams", type=int, default=10, help="beam size (default: 10, the paper's)")
    bench_decode.add_argument("--batch-size", type=int, default=16, help="inputs per batch (default: 16)")
    bench_decode.add_argument("--max-new-tokens", type=int, default=64, help="(default: 64)")
    bench_decode.add_argument("--out", help="JSON report (default: results/bench/decode_<model>_<task>_beam<B>.json)")
    bench_decode.set_defaults(func=cmd_bench_decode)
    return parser


def quiet_libraries() -> None:
    """Silence library chatter that says nothing to a harness user (deprecations, DB migrations)."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
    # peft looks for a config.json beside a GGUF checkpoint (smollm2-135m) to check the vocabulary size.
    warnings.filterwarnings("ignore", message="Could not find a config file in")
    logging.getLogger("mlflow").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    func = args.func
    del args.func
    try:
        return func(args)
    except HarnessError as err:
        print(f"harness: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
