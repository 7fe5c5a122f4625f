"""`harness grid --launcher slurm` on a real single-node Slurm cluster (`.ci/slurm-up` starts one; .ci/run
does, and sets HARNESS_TEST_SLURM); the cluster test is skipped when no such cluster answers."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
import yaml

from harness.grid.experiments import load_experiment
from harness.grid.runner import run_dir_of, status_of

from conftest import ROOT, sentiment_rows, write_csv


def _single_node_cluster_here() -> bool:
    """$HARNESS_TEST_SLURM (then a cluster that is down fails the test), or sinfo answers with this
    machine as the only node: the test's temporary folders must be on the node that runs the jobs."""
    if os.environ.get("HARNESS_TEST_SLURM"):
        return True
    if not shutil.which("sinfo"):
        return False
    try:
        nodes = subprocess.run(["sinfo", "--noheader", "--format=%n"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    here = {socket.gethostname(), socket.gethostname().split(".")[0]}
    return nodes.returncode == 0 and bool(nodes.stdout.split()) and set(nodes.stdout.split()) <= here


@pytest.fixture
def slurm_cluster():
    if not _single_node_cluster_here():
        pytest.skip("no single-node Slurm cluster here (start one with .ci/slurm-up)")


def wait_for(condition, what: str, process: subprocess.Popen, timeout: float = 600):
    """Poll until ``condition()`` is true; fail if ``process`` ends first or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the grid ended before {what}:\n{process.communicate()[0]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no {what} after {timeout} s:\n{process.communicate()[0]}")
        time.sleep(0.05)


def claim_of(run_dir) -> dict:
    try:
        return json.loads((run_dir.parent / ".claims" / f"{run_dir.name}.claim").read_text())
    except (OSError, json.JSONDecodeError):  # not there yet, or being rewritten
        return {}


def test_slurm_grid_finishes_its_cells_and_resumes_a_cancelled_one(tmp_path, slurm_cluster):
    """A 2-cell tiny-bert grid as a Slurm job array (one CPU per job, no GPU). The second cell's job is
    cancelled with scancel while its cell runs; the grid reports that cell not finished and the other
    finished. Rerunning the grid skips the finished cell and runs the cancelled one to the end. Neither
    run prints a sacct warning (the cluster has no accounting)."""
    train = write_csv(tmp_path / "train.csv", sentiment_rows(64, 0))
    dev = write_csv(tmp_path / "dev.csv", sentiment_rows(16, 1))
    name = f"slurm-{os.getpid()}"  # the jobs' name, unique to this test
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(dict(name=name, base=dict(task="csv", model="tiny-bert", method="full", epochs=1,
                                                             tracking_uri="none", save_weights=False,
                                                             train_file=str(train), eval_file=str(dev)),
                                        axes=dict(seed=[0, 1]))))
    out = tmp_path / "results"
    command = [sys.executable, "-m", "harness", "grid", str(path), "--launcher", "slurm", "--gpus", "0", "--cpus", "1",
               "--jobs", "2", "--output-dir", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    experiment = load_experiment(path)
    kept, cancelled = (run_dir_of(experiment, cell, str(out)) for cell in experiment.cells)

    try:
        grid = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # The job of the second cell (array task 1) has started the cell's `harness run` once the cell's
        # claim names that process.
        wait_for(lambda: "pids" in claim_of(cancelled), "second cell running", grid)
        jobs = subprocess.run(["squeue", "--noheader", "--array", f"--name={name}", "--format=%i"],
                              capture_output=True, text=True, check=True).stdout.split()
        subprocess.run(["scancel", next(job for job in jobs if job.endswith("_1"))], check=True)
        first = grid.communicate(timeout=900)[0]
        assert grid.returncode == 1, first  # a cell did not finish
        assert f"1 of 2 cells finished; not finished: {experiment.cells[1].id}" in first, first
        assert status_of(kept) == "finished" and status_of(cancelled) == "failed", first
        kept_mtime = (kept / "metrics.json").stat().st_mtime

        rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        second = rerun.stdout + rerun.stderr
    finally:
        subprocess.run(["scancel", f"--name={name}"], capture_output=True, timeout=60)  # nothing left behind
    assert rerun.returncode == 0, second
    assert f"{name}: 2 cells, 1 finished, 1 to run" in second and f"{name}: 2 of 2 cells finished" in second
    assert (kept / "metrics.json").stat().st_mtime == kept_mtime  # not run again
    for run_dir in (kept, cancelled):
        record = json.loads((run_dir / "metrics.json").read_text())
        assert record["status"] == "finished" and "accuracy" in record["best"]
    # scancel's SIGTERM ended the cell's process; the job recorded the attempt as failed, and the rerun
    # kept that folder aside.
    attempts = list(out.glob(f"runs/{cancelled.name}.attempt-*"))
    assert [status_of(a) for a in attempts] == ["failed"], attempts
    assert not list((out / "runs" / ".claims").glob("*.claim"))
    for output in (first, second):
        assert "sacct" not in output and "accounting" not in output, output


def test_without_accounting_job_states_come_from_squeue(monkeypatch):
    """Without accounting sacct fails at every poll, so the grid's jobs take their state from squeue; a
    job squeue no longer lists has ended (a job that died before writing its result must not keep the
    grid waiting)."""
    pytest.importorskip("submitit")
    import submitit.core.core
    from harness.grid.runner import _squeue_watcher

    commands = []

    def squeue(command, **_):
        commands.append(command)
        return b"7_0|RUNNING|vm\n7_1|CANCELLED|vm\n8_0|PENDING|\n"  # 8_0: another grid's job

    monkeypatch.setattr(submitit.core.core.subprocess, "check_output", squeue)
    watcher = _squeue_watcher()
    for job in ("7_0", "7_1", "7_2"):
        watcher.register_job(job)
    watcher.update()
    assert [command[0] for command in commands] == ["squeue"]
    assert [watcher.get_state(job, mode="cache") for job in ("7_0", "7_1", "7_2")] == ["RUNNING", "CANCELLED", "ENDED"]
    assert [watcher.is_done(job, mode="cache") for job in ("7_0", "7_1", "7_2")] == [False, True, True]
