"""A real MLflow tracking server (loopback, SQLite backend, local artifacts) that goes away mid-run."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT


class Server:
    def __init__(self, root: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.root, self.process = root, None
        self.uri = f"http://127.0.0.1:{self.port}"

    def start(self):
        mlflow = Path(sys.executable).parent / "mlflow"
        self.process = subprocess.Popen(
            [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.root}/server.db", "--artifacts-destination", str(self.root / "art")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("mlflow server did not come up")

    def stop(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def server(tmp_path):
    server = Server(tmp_path)
    server.start()
    yield server
    if server.process.poll() is None:
        server.stop()


def harness(*args, wait=True, env=None):
    process = subprocess.Popen([sys.executable, "-m", "harness", *map(str, args)], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
    if not wait:
        return process
    out, err = process.communicate(timeout=600)
    return process.returncode, out, err


def tagged(uri, name):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("harness")
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.harness_run = '{name}'")


def datasets(run):
    """{context: (name, digest, rows)} of an MLflow run's dataset inputs."""
    found = {}
    for entry in run.inputs.dataset_inputs:
        context = {tag.key: tag.value for tag in entry.tags}["mlflow.data.context"]
        found[context] = (entry.dataset.name, entry.dataset.digest, json.loads(entry.dataset.profile)["num_rows"])
    return found


def test_runs_show_as_model_training_with_datasets_and_system_metrics(tmp_path, server, sentiment_files):
    """What MLflow 3's UI needs: the experiment kind (Model training, not GenAI), the Dataset column
    (each split's name, context and digest of the examples used) and the System metrics tab."""
    train, dev = sentiment_files
    code, _, stderr = harness("run", "csv", "--train-file", train, "--eval-file", dev, "--model", "tiny-bert",
                              "--epochs", "2", "--max-train-samples", "100", "--output-dir", tmp_path,
                              "--tracking-uri", server.uri, "--run-name", "kinds",
                              # sampled often, so that even a fast run has samples
                              env={"MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "0.1"})
    assert code == 0 and "MLflow" not in stderr, stderr
    client = MlflowClient(server.uri)
    assert client.get_experiment_by_name("harness").tags["mlflow.experimentKind"] == "custom_model_development"
    [run] = tagged(server.uri, "kinds")
    saved = json.loads((tmp_path / "runs" / "kinds" / "metrics.json").read_text())
    digests = saved["data_digests"]
    assert datasets(run) == {"train": ("csv", digests["train"], 100), "eval": ("csv", digests["eval"], 64)}
    # the digest is of the 100 examples drawn, not of the whole file
    assert digests["train"] != saved["data_hashes"]["train"]
    assert any(key.startswith("system/cpu_utilization") for key in run.data.metrics), sorted(run.data.metrics)


def test_server_lost_mid_run_then_synced_without_duplicates(tmp_path, server, sentiment_files):
    train, dev = sentiment_files
    out = tmp_path / "out"
    # 128 of the 512 examples: each logging call is an HTTP round trip, and a few per epoch suffice
    common = ["run", "csv", "--train-file", train, "--eval-file", dev, "--model", "tiny-bert", "--method", "full",
              "--max-train-samples", "128", "--batch-size", "4", "--log-every", "5", "--output-dir", out,
              "--tracking-uri", server.uri]
    process = harness(*common, "--epochs", "3", "--run-name", "blink", wait=False)
    predictions = out / "runs" / "blink" / "predictions.jsonl"
    deadline = time.time() + 300
    while not predictions.exists() and time.time() < deadline:  # the first epoch is logged ...
        time.sleep(0.1)
    server.stop()  # ... then the server goes away
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    assert "MLflow" in stderr and "results are still in the run directory" in stderr
    record = json.loads((out / "runs" / "blink" / "metrics.json").read_text())
    assert record["status"] == "finished" and record["tracking_problems"]

    # A second run while the server is down entirely.
    code, _, stderr = harness(*common, "--epochs", "1", "--run-name", "down")
    assert code == 0 and "MLflow" in stderr

    server.start()
    assert [r.info.status for r in tagged(server.uri, "blink")] == ["RUNNING"]  # cut off midway
    assert tagged(server.uri, "down") == []
    code, stdout, stderr = harness("sync", "--runs", out / "runs", "--tracking-uri", server.uri)
    assert code == 0, stderr
    assert "blink: completed" in stdout and "down: uploaded" in stdout
    for name in ("blink", "down"):
        runs = tagged(server.uri, name)
        saved = json.loads((out / "runs" / name / "metrics.json").read_text())
        assert len(runs) == 1 and runs[0].info.status == "FINISHED"
        assert runs[0].data.metrics["best_accuracy"] == saved["best"]["accuracy"]
        assert saved["tracking_problems"] == [] and saved["mlflow_run_id"] == runs[0].info.run_id
        assert datasets(runs[0]) == {"train": ("csv", saved["data_digests"]["train"], 128),
                                     "eval": ("csv", saved["data_digests"]["eval"], 64)}
    code, stdout, _ = harness("sync", "--runs", out / "runs", "--tracking-uri", server.uri)
    assert code == 0 and "0 uploaded, 0 completed, 2 in MLflow" in stdout
    assert len(tagged(server.uri, "blink")) == 1 and len(tagged(server.uri, "down")) == 1


@pytest.mark.skipif(not os.environ.get("HARNESS_TEST_MLFLOW_URI"), reason="CI starts a shared MLflow server")
def test_runs_log_to_the_ci_tracking_server(tmp_path, sentiment_files):
    """.ci/run starts a real MLflow server on loopback and names it in $HARNESS_TEST_MLFLOW_URI."""
    uri = os.environ["HARNESS_TEST_MLFLOW_URI"]
    train, dev = sentiment_files
    name = f"ci-{os.getpid()}-{time.time_ns()}"
    code, _, stderr = harness("run", "csv", "--train-file", train, "--eval-file", dev, "--model", "tiny-bert",
                              "--epochs", "1", "--output-dir", tmp_path, "--tracking-uri", uri, "--run-name", name)
    assert code == 0 and "MLflow" not in stderr, stderr
    runs = tagged(uri, name)
    saved = json.loads((tmp_path / "runs" / name / "metrics.json").read_text())
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["best_accuracy"] == saved["best"]["accuracy"]
    assert datasets(runs[0])["train"] == ("csv", saved["data_digests"]["train"], 512)
