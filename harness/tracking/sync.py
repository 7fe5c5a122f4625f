"""`harness sync`: bring MLflow up to date with the run folders, never duplicating a run.

The run folder is the record of truth. A run is in MLflow when an MLflow run carries its name in
the `harness_run` tag. Runs missing there are logged from their folder; runs whose MLflow copy
stopped midway (the server went away) get their final metrics and artifacts and are ended.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError
from harness.rundir import run_dirs
from harness.tracking.mlflow import EXPERIMENT_TAGS, dataset_inputs, epoch_metrics, final_metrics, flatten


def sync_runs(runs_dir: str | Path, uri: str, experiment: str = "harness") -> list[tuple[str, str]]:
    from mlflow.tracking import MlflowClient

    runs = run_dirs(runs_dir)
    client = MlflowClient(tracking_uri=uri)
    try:
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        for key, value in EXPERIMENT_TAGS.items():
            if found is None or key not in found.tags:
                client.set_experiment_tag(experiment_id, key, value)
        tracked = {run.data.tags.get("harness_run"): run
                   for run in client.search_runs([experiment_id], max_results=50000)
                   if run.data.tags.get("harness_run")}
    except Exception as err:
        raise HarnessError(f"MLflow at {uri} is not reachable ({str(err).splitlines()[0][:150]}); "
                           f"try again when it is up.") from None
    actions = []
    for run in runs:
        record = run.read_metrics()
        if record.get("status") not in ("finished", "failed"):
            continue  # still running, or killed: nothing final to upload yet
        status = "FINISHED" if record["status"] == "finished" else "FAILED"
        existing = tracked.get(run.name)
        if existing is not None and existing.info.status == status and not record.get("tracking_problems"):
            actions.append((run.name, "in MLflow"))
            continue
        if existing is None:
            run_id, action = _create(client, experiment_id, run, record), "uploaded"
        else:
            run_id, action = existing.info.run_id, "completed"
        _upload(client, run_id, run, record, status)
        record["mlflow_run_id"] = run_id
        record["tracking_problems"] = []
        run.write_metrics(record)
        actions.append((run.name, action))
    return actions


def _create(client, experiment_id: str, run, record: dict) -> str:
    """A new MLflow run for a run folder MLflow never saw, with its config as params."""
    from mlflow.entities import Param

    created = client.create_run(experiment_id, run_name=run.name, tags={
        "harness_run": run.name, "task": record.get("task", ""), "model": record.get("model", ""),
        "method": record.get("method", ""), "main_metric": record.get("main_metric") or "",
        "run_dir": str(run.path.resolve()), "synced_from_run_dir": "true"})
    params = [Param(k, v[:6000]) for k, v in flatten(run.read_config()).items()]
    for start in range(0, len(params), 100):
        client.log_batch(created.info.run_id, params=params[start:start + 100])
    return created.info.run_id


def _upload(client, run_id: str, run, record: dict, status: str) -> None:
    """Final metrics, the per-epoch history (the names a live run logs), the datasets and the folder's
    files (logging a dataset input twice is a no-op: MLflow keeps one per name and digest)."""
    from mlflow.entities import Metric, RunTag

    metrics = [Metric(k, float(v), 0, 0) for k, v in final_metrics(record).items()]
    for entry in record.get("history") or []:
        evaluated = {k: v for k, v in entry.items() if k not in ("epoch", "train_loss")}
        metrics += [Metric(k, float(v), 0, entry["epoch"])
                    for k, v in epoch_metrics(evaluated, entry.get("train_loss")).items()]
    for start in range(0, len(metrics), 500):
        client.log_batch(run_id, metrics=metrics[start:start + 500], tags=[RunTag("synced", "true")])
    if datasets := dataset_inputs(record):
        client.log_inputs(run_id, datasets=datasets)
    client.log_artifacts(run_id, str(run.path))
    client.set_terminated(run_id, status)
