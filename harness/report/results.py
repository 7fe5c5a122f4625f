"""Reading finished runs back: from run folders, an experiment's cells, or an MLflow query.

Every source gives the same RunRecord, so tables, plots and checks never care where runs live, and
``frame`` turns records into a pandas DataFrame (one row per run) that they aggregate with groupby:

    from harness.report.results import frame
    runs = frame("results/runs")                     # or frame(mlflow_uri=..., mlflow_experiment=...)
    runs.groupby(["task", "label"])["score"].agg(["median", "std", "count"])
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.fingerprint import fingerprint, fingerprint_id
from harness.report.specs import learn, task_of
from harness.rundir import RunDir, run_dirs

CELL_NAME = re.compile(r"^(?P<experiment>.+)-(?P<cell>[0-9a-f]{12})$")


@dataclass
class RunRecord:
    name: str
    task: str
    model: str
    method: str
    method_options: dict[str, Any]
    seed: int | None
    status: str  # finished | failed | running | missing
    main_metric: str | None = None
    best: dict[str, float] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    params: dict[str, int] = field(default_factory=dict)
    throughput: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    weights_bytes: int | None = None
    experiment: str | None = None
    run_dir: str | None = None
    epochs: int | None = None  # 0: the untrained model, evaluated only
    config: dict[str, Any] = field(default_factory=dict)  # the resolved run config (MLflow: its params)
    record: dict[str, Any] = field(default_factory=dict)  # metrics.json as written by the run

    @cached_property
    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes the result except the seed (harness.fingerprint); computed once per
        record (tables, grouping and the check ask for it many times)."""
        return fingerprint(self.config, {"task": self.task, **self.record})

    def setting(self, ignore=()) -> str:
        """The fingerprint id, ``ignore``'s fields left out: equal for seeds of one setting."""
        return fingerprint_id(self.fingerprint, ignore)

    def predictions_file(self, suffix: str = "") -> Path | None:
        """The per-example outputs of the best epoch (predictions or generations), if written."""
        if not self.run_dir:
            return None
        run = RunDir(Path(self.run_dir))
        found = [p for p in (run.predictions(suffix), run.generations(suffix)) if p.is_file()]
        return found[0] if found else None

    @property
    def score(self) -> float | None:
        if self.status != "finished" or not self.main_metric:
            return None
        return self.best.get(self.main_metric)

    @property
    def method_label(self) -> str:
        if self.epochs == 0:
            return "untrained (--epochs 0)"
        return method_label(self.method, self.method_options)


def method_label(method: str, options: dict[str, Any]) -> str:
    """'adapter_h (r=64)': the method and the options that differ from its defaults."""
    from harness.methods import get_method

    try:
        spec = get_method(method)
        defaults = {k: o.default for k, o in spec.options.items()}
    except HarnessError:
        defaults = {}
    changed = {k: v for k, v in sorted(options.items()) if k not in defaults or defaults[k] != v}
    if "target_modules" in changed and defaults.get("target_modules") is None:
        changed.pop("target_modules")  # naming the per-architecture default explicitly changes nothing
    return method + (f" ({', '.join(f'{k}={_shown(v)}' for k, v in changed.items())})" if changed else "")


def _shown(value) -> str:
    """An option value as a label prints it: 32 whether it came from YAML (32) or the command line (32.0)."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def record_from_dir(run_dir: Path) -> RunRecord | None:
    run = RunDir(Path(run_dir))
    if not run.config_path.is_file() and not run.metrics_path.is_file():
        return None
    config = run.read_config()
    metrics = run.read_metrics() if run.metrics_path.is_file() else {"status": "running"}
    match = CELL_NAME.match(run.name)
    return RunRecord(
        name=run.name, task=metrics.get("task", config.get("task", "?")), model=config.get("model", "?"),
        method=config.get("method", "?"), method_options=config.get("method_options") or {},
        seed=config.get("seed"), status=metrics.get("status", "running"), main_metric=metrics.get("main_metric"),
        best=metrics.get("best") or {}, history=metrics.get("history") or [], params=metrics.get("params") or {},
        throughput=metrics.get("throughput") or {}, versions=metrics.get("versions") or {},
        weights_bytes=run.weights_bytes() or metrics.get("weights_bytes"), experiment=match["experiment"] if match else None,
        run_dir=str(run.path), epochs=config.get("epochs"), config=config, record=metrics,
    )


def records_from_runs_dir(runs_dir: str | Path) -> list[RunRecord]:
    records = [record_from_dir(run.path) for run in run_dirs(runs_dir)]
    return [r for r in records if r is not None]


def records_from_experiment(path: str, runs_dir: str | Path, variant: str | None = None) -> list[RunRecord]:
    """One record per cell of the experiment; cells that never ran are 'missing'."""
    from harness.grid.experiments import load_experiment

    experiment = load_experiment(path, variant)
    records = []
    for cell in experiment.cells:
        run_dir = Path(runs_dir) / experiment.run_name(cell)
        record = record_from_dir(run_dir)
        if record is None:
            c = cell.config
            record = RunRecord(run_dir.name, c.task, c.model, c.method, c.method_options, c.seed, "missing",
                               experiment=experiment.name, config=c.to_dict())
        records.append(record)
    return records


def _typed(params: dict[str, str]) -> dict:
    """MLflow keeps params as text: numbers, booleans and None back as values ('0.003' -> 0.003)."""
    typed = {}
    for key, value in params.items():
        try:
            typed[key] = json.loads(value)
        except json.JSONDecodeError:
            typed[key] = None if value == "None" else {"True": True, "False": False}.get(value, value)
    return typed


def records_from_mlflow(uri: str, experiment: str, query: str = "") -> list[RunRecord]:
    """Runs of an MLflow experiment (optionally filtered, e.g. "params.task = 'glue/sst2'")."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise HarnessError(f"MLflow at {uri} has no experiment '{experiment}'.")
    records = []
    for run in client.search_runs([found.experiment_id], filter_string=query, max_results=50000):
        params, metrics = run.data.params, run.data.metrics
        # Options typed as in run folders ('False' -> False), so a run's label is the same from both sources.
        options = _typed({k.removeprefix("method_options."): v for k, v in params.items()
                          if k.startswith("method_options.")})
        status = {"FINISHED": "finished", "FAILED": "failed"}.get(run.info.status, "running")
        best = {k.removeprefix("best_"): v for k, v in metrics.items() if k.startswith("best_") and k != "best_epoch"}
        main = run.data.tags.get("main_metric") or (next(iter(best)) if best else None)
        cell = CELL_NAME.match(run.info.run_name or "")
        records.append(RunRecord(
            name=run.info.run_name, task=params.get("task", "?"), model=params.get("model", "?"),
            method=params.get("method", "?"), method_options=options,
            seed=int(params["seed"]) if "seed" in params else None, status=status, main_metric=main, best=best,
            params={k.removeprefix("params_"): int(v) for k, v in metrics.items() if k.startswith("params_")},
            throughput={k: v for k, v in metrics.items() if k in ("train_samples_per_s", "peak_memory_mb")},
            experiment=cell["experiment"] if cell else None, config=_typed(params),
        ))
    return records


def run_score(record: RunRecord) -> float | None:
    """The number a run contributes to a table: its task's main score of the best epoch (MNLI: the
    accuracy over both dev sets); a run of an unknown task, its own main metric."""
    if record.status != "finished":
        return None
    learn([record])
    task = task_of(record.task)
    return task.main_score(record.best) if task is not None else record.score


def _scalar(value):
    """A frame cell: lists and mappings as sorted JSON text, so columns stay hashable for groupby."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list, tuple)) else value


def records_frame(records: list[RunRecord], with_records: bool = False):
    """One row per run: who it is (run, experiment, status, seed, label, setting), its fingerprint fields
    (task, model, method, method.options, optim.learning_rate, ...), the main score, every stored metric of
    the best epoch (best_<metric>), parameter counts (params_<kind>), efficiency (throughput, wall time,
    saved weights) and library versions (version_<package>). ``with_records`` adds the RunRecord itself
    (column ``record``) for code that needs a run's history or outputs."""
    import pandas as pd

    learn(records)
    rows = []
    for record in records:
        row = {"run": record.name, "experiment": record.experiment, "status": record.status, "seed": record.seed,
               "label": record.method_label, "setting": record.setting(), "epochs": record.epochs,
               "main_metric": record.main_metric, "score": run_score(record), "task": record.task,
               "model": record.model, "method": record.method}
        row.update({key: _scalar(value) for key, value in record.fingerprint.items() if key not in row})
        row.update({f"best_{key}": value for key, value in record.best.items()})
        row.update({f"params_{key}": value for key, value in record.params.items()})
        row.update(record.throughput)
        row.update(weights_bytes=record.weights_bytes, wall_time_s=record.record.get("wall_time_s"))
        row.update({f"version_{key}": value for key, value in record.versions.items()})
        row["run_dir"] = record.run_dir
        if with_records:
            row["record"] = record
        rows.append(row)
    # With no runs the frame still has its identity columns, so selections on them read as empty.
    base = ["run", "experiment", "status", "seed", "label", "setting", "epochs", "main_metric", "score", "task",
            "model", "method", *(["record"] if with_records else [])]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=base)


def frame(runs: str | Path | None = None, *, experiment: str | None = None, variant: str | None = None,
          mlflow_uri: str | None = None, mlflow_experiment: str = "harness", query: str = ""):
    """The results API: a DataFrame with one row per run (``records_frame``) of a folder of run folders,
    of one experiment file's cells (``experiment``; cells that never ran have status 'missing'), or of an
    MLflow experiment (``mlflow_uri``, optionally filtered by ``query``)."""
    if mlflow_uri:
        return records_frame(records_from_mlflow(mlflow_uri, mlflow_experiment, query))
    if runs is None:
        raise HarnessError("frame() needs a folder of run folders (or mlflow_uri=...).")
    if experiment:
        return records_frame(records_from_experiment(experiment, runs, variant))
    return records_frame(records_from_runs_dir(runs))
