"""Reliability: a killed run resumes to the same result; failures are recorded, never lost."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from harness.config import RunConfig
from harness.errors import HarnessError
from harness.train import run

from conftest import ROOT


def harness_run(tmp_path, train, dev, name, *extra):
    command = [sys.executable, "-m", "harness", "run", "csv", "--train-file", train, "--eval-file", dev,
               "--model", "tiny-bert", "--method", "full", "--epochs", "2", "--batch-size", "4", "--seed", "7",
               "--checkpoint-every", "5", "--tracking-uri", "none", "--output-dir", tmp_path / "out",
               "--run-name", name, *extra]
    return subprocess.Popen([str(c) for c in command], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})


def test_sigkilled_run_resumes_to_bit_identical_metrics(tmp_path, sentiment_files):
    train, dev = sentiment_files
    whole = harness_run(tmp_path, train, dev, "whole")
    assert whole.wait(timeout=600) == 0, whole.stderr.read()

    killed = harness_run(tmp_path, train, dev, "killed")
    position = tmp_path / "out" / "runs" / "killed" / "checkpoint" / "position.json"
    deadline = time.time() + 300
    while time.time() < deadline:  # wait for a checkpoint in the middle of the second epoch
        try:
            state = json.loads(position.read_text())
            if state["epoch"] == 2 and state["batches_done"] > 0:
                break
        except (OSError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    assert not (tmp_path / "out" / "runs" / "killed" / "metrics.json").exists()

    resumed = harness_run(tmp_path, train, dev, "killed", "--resume")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    a = json.loads((tmp_path / "out" / "runs" / "whole" / "metrics.json").read_text())
    b = json.loads((tmp_path / "out" / "runs" / "killed" / "metrics.json").read_text())
    assert b["status"] == "finished" and b["optimizer_steps"] == a["optimizer_steps"]
    assert b["history"] == a["history"]  # every epoch's loss and metrics, bit for bit
    assert b["best"] == a["best"] and b["best_epoch"] == a["best_epoch"]
    assert not (tmp_path / "out" / "runs" / "killed" / "checkpoint").exists()  # cleaned up when finished


def test_resume_needs_a_run_name(tmp_path, sentiment_files):
    train, dev = sentiment_files
    with pytest.raises(HarnessError, match="--resume needs --run-name"):
        run(RunConfig(task="csv", train_file=str(train), eval_file=str(dev), model="tiny-bert", resume=True,
                      output_dir=str(tmp_path), tracking_uri="none"), progress=False)


def test_nan_loss_fails_the_run_and_records_it(tmp_path, sentiment_files):
    train, dev = sentiment_files
    config = RunConfig(task="csv", train_file=str(train), eval_file=str(dev), model="tiny-bert", method="full",
                       learning_rate=1e30, max_grad_norm=0.0, epochs=2, tracking_uri=f"sqlite:///{tmp_path}/m.db",
                       output_dir=str(tmp_path), run_name="nan")
    with pytest.raises(HarnessError, match="training loss became nan|training loss became inf"):
        run(config, progress=False)
    saved = json.loads((tmp_path / "runs" / "nan" / "metrics.json").read_text())
    assert saved["status"] == "failed" and "training loss became" in saved["error"]
    from mlflow.tracking import MlflowClient

    runs = MlflowClient(f"sqlite:///{tmp_path}/m.db").search_runs(["1"])
    assert runs and runs[0].info.status == "FAILED"


def test_remote_code_is_off_unless_asked(monkeypatch):
    import transformers

    from harness.models import get_model_spec, load_for_classification

    seen = {}

    def fake_from_pretrained(source, **kwargs):
        seen.update(kwargs)
        raise OSError("stop here")

    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", fake_from_pretrained)
    with pytest.raises(HarnessError, match="stop here"):
        load_for_classification(get_model_spec("minilm-l6"), 2, "single_label_classification")
    assert seen["trust_remote_code"] is False


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_checkpoint_state_is_loaded_weights_only(tmp_path):
    """A tampered checkpoint cannot run code: state.pt is read with torch.load(weights_only=True)."""
    import torch

    from harness.training.checkpoint import load_checkpoint

    folder = tmp_path / "checkpoint"
    folder.mkdir()
    from safetensors.torch import save_file

    save_file({}, folder / "trainable.safetensors")
    torch.save({"optimizer": _Payload()}, folder / "state.pt")
    (folder / "position.json").write_text("{}")
    model = torch.nn.Linear(2, 2)
    with pytest.raises(Exception, match="Weights only load failed|Unsupported global"):
        load_checkpoint(tmp_path, model, None, None, torch.Generator())
