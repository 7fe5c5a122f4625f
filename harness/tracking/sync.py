"""`harness sync`: bring MLflow up to date with the run folders, never duplicating a run.

The run folder is the record of truth. A run is in MLflow when an MLflow run carries its name in
the `harness_run` tag. Runs missing there are logged from their folder; runs whose MLflow copy
stopped midway (the server went away) get their final metrics and artifacts and are ended.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import HarnessError
from harness.tracking.mlflow import flatten, write_json


def _final_metrics(record: dict) -> dict[str, float]:
    metrics = {f"best_{k}": v for k, v in (record.get("best") or {}).items()}
    if record.get("best_epoch") is not None:
        metrics["best_epoch"] = record["best_epoch"]
    metrics.update({f"params_{k}": v for k, v in (record.get("params") or {}).items()})
    throughput = record.get("throughput") or {}
    for key in ("train_samples_per_s", "train_tokens_per_s", "peak_memory_mb"):
        if throughput.get(key) is not None:
            metrics[key] = throughput[key]
    if "wall_time_s" in record:
        metrics["wall_time_s"] = record["wall_time_s"]
    return metrics


def sync_runs(runs_dir: str | Path, uri: str, experiment: str = "harness") -> list[tuple[str, str]]:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    root = Path(runs_dir)
    if not root.is_dir():
        raise HarnessError(f"runs folder '{root}' does not exist.")
    client = MlflowClient(tracking_uri=uri)
    try:
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        tracked = {run.data.tags.get("harness_run"): run
                   for run in client.search_runs([experiment_id], max_results=50000)
                   if run.data.tags.get("harness_run")}
    except Exception as err:
        raise HarnessError(f"MLflow at {uri} is not reachable ({str(err).splitlines()[0][:150]}); "
                           f"try again when it is up.") from None
    actions = []
    for run_dir in sorted(d for d in root.iterdir() if d.is_dir() and (d / "metrics.json").is_file()):
        record = json.loads((run_dir / "metrics.json").read_text())
        if record.get("status") not in ("finished", "failed"):
            continue  # still running, or killed: nothing final to upload yet
        status = "FINISHED" if record["status"] == "finished" else "FAILED"
        name = run_dir.name
        existing = tracked.get(name)
        if existing is not None and existing.info.status == status and not record.get("tracking_problems"):
            actions.append((name, "in MLflow"))
            continue
        if existing is None:
            config = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else {}
            run = client.create_run(experiment_id, run_name=name, tags={
                "harness_run": name, "task": record.get("task", ""), "model": record.get("model", ""),
                "method": record.get("method", ""), "main_metric": record.get("main_metric") or "",
                "run_dir": str(run_dir.resolve()), "synced_from_run_dir": "true"})
            run_id = run.info.run_id
            params = [Param(k, v[:6000]) for k, v in flatten(config).items()]
            for start in range(0, len(params), 100):
                client.log_batch(run_id, params=params[start:start + 100])
            action = "uploaded"
        else:
            run_id, action = existing.info.run_id, "completed"
        stamp = 0
        metrics = [Metric(k, float(v), stamp, 0) for k, v in _final_metrics(record).items()]
        for entry in record.get("history") or []:
            metrics += [Metric(f"eval_{k}", float(v), stamp, entry["epoch"]) for k, v in entry.items()
                        if k not in ("epoch", "train_loss")]
            if entry.get("train_loss") is not None:
                metrics.append(Metric("epoch_train_loss", float(entry["train_loss"]), stamp, entry["epoch"]))
        for start in range(0, len(metrics), 500):
            client.log_batch(run_id, metrics=metrics[start:start + 500], tags=[RunTag("synced", "true")])
        client.log_artifacts(run_id, str(run_dir))
        client.set_terminated(run_id, status)
        record["mlflow_run_id"] = run_id
        record["tracking_problems"] = []
        write_json(run_dir / "metrics.json", record)
        actions.append((name, action))
    return actions
