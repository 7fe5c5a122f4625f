"""`harness grid`: run an experiment file's cells (resumable), or list them with --dry-run."""

from __future__ import annotations

import json

from harness.errors import HarnessError
from harness.report.render import FORMATS


def _set_overrides(pairs) -> dict:
    import yaml

    values = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise HarnessError(f"--set {pair}: expected KEY=VALUE, e.g. --set epochs=1.")
        key, value = pair.split("=", 1)
        values[key] = yaml.safe_load(value)
    return values


def _dry_run(experiment, args) -> int:
    """The cells with their settings, trainable parameters and status; nothing runs."""
    from harness.grid.runner import run_dir_of, status_of
    from harness.params import count_without_weights
    from harness.report.render import render
    from harness.tasks import get_task
    from harness.training.runner import resolve

    counts, rows = {}, []
    processes = experiment.num_processes
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


def _run(experiment, args, launcher: str) -> list[str]:
    """Run the experiment's cells; print and return the ids of those that did not finish."""
    from harness.grid.runner import run_grid

    slurm = {"partition": args.partition, "gpus": args.gpus, "time": args.time, "cpus": args.cpus}
    results = run_grid(experiment, args.output_dir, args.jobs, launcher,
                       {k: v for k, v in slurm.items() if v is not None})
    failed = [cell for cell, status in results.items() if status not in ("finished", "claimed by another worker")]
    print(f"{experiment.name}: {len(results) - len(failed)} of {len(results)} cells finished"
          + (f"; not finished: {', '.join(f'{c} ({results[c]})' for c in failed)}" if failed else ""))
    return failed


def _smoke(args) -> int:
    """Every distinct setting of the file on a small random model of its architecture (harness.grid.smoke),
    then the paper's rows the file reproduces, built from those runs."""
    from harness.grid.smoke import DEFAULT_OUTPUT, run_smoke, smoke_experiments

    args.output_dir = args.output_dir or DEFAULT_OUTPUT
    smoke = smoke_experiments(args.file, args.variant, _set_overrides(args.set), args.output_dir)
    names = ", ".join(f"{e.name} ({len(e.cells)})" for e in smoke.experiments)
    print(f"smoke of {args.file}: {smoke.cells} cells, one per distinct setting: {names}")
    for note in smoke.notes:
        print(f"  note: {note}")
    if args.dry_run:
        return max(_dry_run(experiment, args) for experiment in smoke.experiments)
    slurm = {"partition": args.partition, "gpus": args.gpus, "time": args.time, "cpus": args.cpus}
    result = run_smoke(smoke, args.output_dir, args.jobs, args.launcher, {k: v for k, v in slurm.items() if v is not None})
    for check in result.rows:
        print(f"{check.table} row '{check.row}': {check.describe()}")
    tables = ", ".join(dict.fromkeys(check.table for check in result.rows))
    print(f"smoke of {args.file}: " + ("passed" if result.passed else
                                       f"FAILED ({len(result.not_finished)} cells not finished, "
                                       f"{sum(not c.ok for c in result.rows)} paper rows not filled)")
          + (f"; {tables} from its runs: harness table --paper TABLE --runs {args.output_dir}/runs" if tables
             else f"; runs in {args.output_dir}/runs (they fill no row of the paper's tables)"))
    return 0 if result.passed else 1


def cmd_grid(args) -> int:
    from harness.grid.experiments import load_experiment

    if args.smoke:
        return _smoke(args)
    args.output_dir = args.output_dir or "results"
    experiment = load_experiment(args.file, args.variant, _set_overrides(args.set))
    if args.dry_run:
        return _dry_run(experiment, args)
    return 1 if _run(experiment, args, args.launcher or "local") else 0


def add(sub) -> None:
    grid = sub.add_parser("grid", help="run an experiment file's grid of cells (resumable)",
                          description="Run every cell of an experiment file that has not finished yet. Cells that "
                                      "finished are skipped, failed or interrupted ones run again (their old folder "
                                      "kept as .attempt-N), and a claim file keeps two workers off one cell.")
    grid.add_argument("file", help="experiment YAML file (see experiments/)")
    grid.add_argument("--dry-run", action="store_true", help="list the cells with their settings, "
                      "trainable parameters and status; run nothing")
    grid.add_argument("--smoke", action="store_true", help="run every distinct setting of the file (seeds "
                      "collapsed, every variant's too) for a few steps on a small random model of the same "
                      "architecture, with a tiny evaluation, then check that the paper's rows the file reproduces "
                      "fill (default --output-dir results/smoke, --launcher inline; see harness/grid/smoke.py)")
    grid.add_argument("--variant", help="a named variant of the file (e.g. 'scripts' for the authors' scripts)")
    grid.add_argument("--set", action="extend", nargs="+", metavar="KEY=VALUE", help="override run options in "
                      "every cell, e.g. --set epochs=1 max_train_samples=500 (repeatable)")
    grid.add_argument("--jobs", type=int, default=1, help="cells at once, each on its own GPU or share of "
                      "the CPU cores (default: 1)")
    grid.add_argument("--launcher", choices=("local", "inline", "slurm", "submitit-local"),
                      help="local subprocesses (default), inline (one cell after another in this process: small "
                      "models; the default of --smoke), Slurm jobs through submitit, or submitit's local executor")
    grid.add_argument("--output-dir", help="results folder (default: results; with --smoke: results/smoke)")
    grid.add_argument("--format", choices=FORMATS, default="text",
                      help="--dry-run table format")
    grid.add_argument("--partition", help="Slurm partition")
    grid.add_argument("--gpus", type=int, help="Slurm GPUs per job (default: the file's num_processes)")
    grid.add_argument("--cpus", type=int, help="Slurm CPUs per job (default: 4)")
    grid.add_argument("--time", type=int, help="Slurm time limit per job in minutes (default: 240)")
    grid.set_defaults(func=cmd_grid)
