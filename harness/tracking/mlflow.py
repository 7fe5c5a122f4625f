"""MLflow, when it is reachable, and the one place that names what is logged there.

The run folder (harness.rundir) is the record of truth, so no result depends on a tracking server
being up: MLflow failures become one warning and the run goes on; `harness sync` fills MLflow in
later with the same names (``epoch_metrics``, ``final_metrics``).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

from harness.fingerprint import data_key

# MLflow 3 files an experiment by this tag: without it the UI offers the harness experiment as a
# GenAI one (traces, evaluations) rather than as model training (runs, their metrics and datasets).
# MLflow 3.17's sidebar switch follows the browser, not the tag: ?workflowType=machine_learning.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
THROUGHPUT_KEYS = ("train_samples_per_s", "train_tokens_per_s", "peak_memory_mb")


def epoch_metrics(metrics: dict[str, float], train_loss: float | None) -> dict[str, float]:
    """What an epoch logs: eval_<metric> for every evaluation metric, and the epoch's training loss."""
    logged = {f"eval_{k}": v for k, v in metrics.items()}
    if train_loss is not None:
        logged["epoch_train_loss"] = train_loss
    return logged


def step_metrics(loss: float, learning_rate: float) -> dict[str, float]:
    return {"train_loss": loss, "learning_rate": learning_rate}


def param_metrics(params: dict[str, int]) -> dict[str, float]:
    return {f"params_{k}": v for k, v in params.items()}


def final_metrics(record: dict) -> dict[str, float]:
    """What a finished run logs once: best_<metric>, best_epoch, parameter counts, throughput, wall time."""
    metrics = {f"best_{k}": v for k, v in (record.get("best") or {}).items()}
    if record.get("best_epoch") is not None:
        metrics["best_epoch"] = record["best_epoch"]
    metrics.update(param_metrics(record.get("params") or {}))
    throughput = record.get("throughput") or {}
    metrics.update({k: throughput[k] for k in THROUGHPUT_KEYS if throughput.get(k) is not None})
    if "wall_time_s" in record:
        metrics["wall_time_s"] = record["wall_time_s"]
    return metrics


def dataset_inputs(record: dict) -> list:
    """The data a run used, as MLflow dataset inputs: one per split, named after the task, with the
    record's split name as context ('train', 'eval', 'eval_m', ...), the digest of the examples and
    their count. Runs recorded before example digests existed give their files' content hash."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    counts = {"train": record.get("train_examples"),
              **{data_key(s): n for s, n in (record.get("eval_examples") or {}).items()}}
    inputs = []
    for key, origin in (record.get("data") or {}).items():
        digest = (record.get("data_digests") or {}).get(key) or (record.get("data_hashes") or {}).get(key)
        if not digest or not counts.get(key):
            continue  # a split the run did not use (no training with --epochs 0)
        source_type, source = _dataset_source(origin)
        dataset = Dataset(record.get("task") or "data", digest, source_type, source,
                          profile=json.dumps({"num_rows": counts[key]}))
        inputs.append(DatasetInput(dataset, [InputTag("mlflow.data.context", key)]))
    return inputs


def _dataset_source(origin: str) -> tuple[str, str]:
    """(source type, source) in the form MLflow's own dataset sources write: a hub split or a file."""
    hub = re.fullmatch(r"hub:(.+?)\[(.+?)\].*", origin)
    if hub:
        return "hugging_face", json.dumps({"path": hub[1], "split": hub[2]})
    return "local", json.dumps({"uri": origin})


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return flat


def _finished(operation) -> bool:
    """Whether an async logging operation is done (MLflow's RunOperations keeps its futures)."""
    futures = getattr(operation, "_operation_futures", None)
    return futures is not None and all(future.done() for future in futures)


class MlflowTracker:
    """A thin guard around one MLflow run. Inactive when ``uri`` is None or on non-main processes."""

    def __init__(self, uri: str | None, experiment: str, run_name: str, active: bool = True,
                 run_id: str | None = None):
        self.uri = uri
        self.active = bool(uri) and active
        self.run_id: str | None = run_id
        self.problems: list[str] = []
        self._pending: list = []  # metric batches logged asynchronously, not yet confirmed
        if not self.active:
            return
        self._call("start the run", self._start, experiment, run_name)

    def _start(self, experiment: str, run_name: str) -> None:
        import logging

        # A tracking server that blinks must cost seconds, not MLflow's default minutes of retries.
        for key, value in [("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2"), ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1"),
                           ("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")]:
            os.environ.setdefault(key, value)
        import mlflow

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # no 'creating tables' chatter per run
        # The system metrics thread fails when the server does; the tracker already says so once.
        logging.getLogger("mlflow.system_metrics").setLevel(logging.CRITICAL)
        mlflow.set_tracking_uri(self.uri)
        found = mlflow.set_experiment(experiment)
        for key, value in EXPERIMENT_TAGS.items():
            if key not in found.tags:  # a kind chosen in the UI stays
                mlflow.set_experiment_tag(key, value)
        # A resumed run continues its MLflow run rather than starting a second one. CPU, memory, disk
        # and network (GPU with pynvml) go to the System metrics tab, sampled every 10 s unless
        # $MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL says otherwise.
        self.run_id = mlflow.start_run(run_id=self.run_id, run_name=None if self.run_id else run_name,
                                       log_system_metrics=True).info.run_id

    def _call(self, what: str, fn, *args, **kwargs) -> None:
        if not self.active:
            return
        try:
            fn(*args, **kwargs)
        except Exception as err:  # any tracking failure must not cost the user the run
            message = f"MLflow ({self.uri}) failed to {what}: {str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__}"
            self.problems.append(message)
            warnings.warn(message + "; the results are still in the run directory.", stacklevel=2)
            self.active = False

    def log_params(self, params: dict[str, Any]) -> None:
        if not self.active:
            return  # not even the import: mlflow's takes about a second, and a run without tracking needs none
        import mlflow

        flat = {key: value[:6000] for key, value in flatten(params).items()}
        self._call("log params", mlflow.log_params, flat)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Asynchronously, as transformers' MLflow callback does: a training step must not wait for an
        HTTP round trip (0.13 s per call to a loopback server on this busy 2-core machine, against 0.004 s). A failure
        surfaces at a later call (the first whose earlier batches are done) or at ``end``."""
        self._call("log metrics", self._log_async, {k: float(v) for k, v in metrics.items()}, step)

    def _log_async(self, metrics: dict[str, float], step: int | None) -> None:
        import mlflow

        self._pending.append(mlflow.log_metrics(metrics, step=step, synchronous=False))
        done = [op for op in self._pending if _finished(op)]
        self._pending = [op for op in self._pending if op not in done]
        for op in done:
            op.wait()  # does not block: raises the batch's failure, if any

    def _wait_pending(self) -> None:
        pending, self._pending = self._pending, []
        for op in pending:
            op.wait()

    def set_tags(self, tags: dict[str, Any]) -> None:
        if not self.active:
            return
        import mlflow

        self._call("set tags", mlflow.set_tags, {k: str(v) for k, v in tags.items()})

    def log_inputs(self, record: dict) -> None:
        """The data a run used (``dataset_inputs`` of its record)."""
        if not self.active:
            return
        from mlflow.tracking import MlflowClient

        if datasets := dataset_inputs(record):
            self._call("log datasets", MlflowClient().log_inputs, self.run_id, datasets=datasets)

    def log_artifacts(self, folder: Path) -> None:
        if not self.active:
            return
        import mlflow

        self._call("upload artifacts", mlflow.log_artifacts, str(folder))

    def end(self, status: str = "FINISHED") -> None:
        if not self.active:
            return
        import mlflow

        self._call("log metrics", self._wait_pending)
        self._call("end the run", mlflow.end_run, status=status)
