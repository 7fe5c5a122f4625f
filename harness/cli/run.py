"""One run and what it is made of: `harness run`, `score`, `tasks`, `models`, `methods`, `params`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.cli.common import METHOD_OPTS, _write, add_method_options, add_run_options, config_from_args
from harness.report.render import FORMATS


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


def add_run(sub) -> None:
    run = sub.add_parser("run", help="train and evaluate one configuration",
                         description="Train and evaluate one task/model/method; writes results/runs/<name>/ and logs to MLflow.")
    add_run_options(run)
    run.set_defaults(func=cmd_run)


def cmd_score(args) -> int:
    from harness.tasks import get_task
    from harness.tasks.generation import score_file

    task = get_task(args.task)
    scores = score_file(task, args.outputs, args.data_dir, args.split, args.first, args.metrics)
    for name, value in scores.items():
        print(f"{name:12} {value:.4f}")
    if args.out:
        from harness.rundir import write_json

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(args.out), {"task": task.name, "outputs": args.outputs, "scores": scores})
    return 0


def add_score(sub) -> None:
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
    from harness.methods import method_specs

    for name, method in method_specs():
        print(f"{name:10} {method.description} (default learning rate {method.defaults.get('learning_rate')})")
        for key, option in method.options.items():
            print(f"{'':10}   --{name}-{key.replace('_', '-'):16} {option.help} (default: {option.default})")
    try:
        from harness.methods.peft_any import peft_types

        names = [f"peft:{name}" for name in peft_types()]
    except ImportError:
        print("peft:<TYPE>  (peft is not installed)")
        return 0
    from harness.methods.peft_any import ALIASES

    print("peft methods of the installed peft; their options go through --method-opt KEY=VALUE "
          "(any field of the peft config), e.g. --method peft:VERA --method-opt r=64:")
    for name in names:
        alias = ALIASES.get(name.removeprefix("peft:"))
        extra = f"   {alias[0]} with {', '.join(f'{k}={v}' for k, v in alias[1].items())}" if alias else ""
        print(f"  {name}{extra}")
    return 0


def add_listings(sub) -> None:
    tasks = sub.add_parser("tasks", help="list the tasks", description="List registered tasks with their metrics.")
    tasks.add_argument("--include-tasks", nargs="+", help="extra folders of task YAML files")
    tasks.set_defaults(func=cmd_tasks)
    sub.add_parser("models", help="list the model presets", description="List model presets.").set_defaults(func=cmd_models)
    sub.add_parser("methods", help="list the methods and their options",
                   description="List fine-tuning methods and their options.").set_defaults(func=cmd_methods)


def cmd_params(args) -> int:
    from harness.params import count_without_weights
    from harness.report.paper_params import PAPER_TABLE_COLUMNS, paper_param_table
    from harness.report.render import render

    if not any(hasattr(args, name) for name in ("model", "method", METHOD_OPTS)):
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


def add_params(sub) -> None:
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


def add(sub) -> None:
    add_run(sub)
    add_score(sub)
    add_listings(sub)
    add_params(sub)
