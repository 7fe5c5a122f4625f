"""Running an experiment's cells: skip the finished, rerun the failed, never run one twice.

A cell runs as `harness run --config <cell.yaml>` in a subprocess (through `accelerate launch`
when the file asks for several processes), so a crash or a NaN in one cell cannot take down the
others. Its run folder is `<output_dir>/runs/<experiment>-<cell id>/`; `metrics.json` there says
whether it finished. A claim file, created atomically, keeps two workers off the same cell.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from harness.errors import HarnessError
from harness.training.checkpoint import has_checkpoint
from harness.grid.experiments import Cell, Experiment
from harness.rundir import RunDir, runs_root

LAUNCHERS = ("local", "inline", "slurm", "submitit-local")


def run_dir_of(experiment: Experiment, cell: Cell, output_dir: str) -> Path:
    return RunDir.of(output_dir, experiment.run_name(cell)).path


def status_of(run_dir: Path) -> str:
    """'finished', 'failed', 'running' (or killed mid-run) or 'pending'."""
    return RunDir(Path(run_dir)).status()


def cell_file(experiment: Experiment, cell: Cell, output_dir: str) -> Path:
    """The cell's full run config as a `harness run --config` file."""
    folder = Path(output_dir) / "grids" / experiment.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{cell.id}.yaml"
    values = cell.config.to_dict()
    # resume: an interrupted cell continues from its checkpoint (a cell without one starts afresh).
    values.update(output_dir=str(output_dir), run_name=experiment.run_name(cell), resume=True)
    if cell.depends_on:
        values["init_from"] = str(runs_root(output_dir) / f"{experiment.name}-{cell.depends_on}")
    path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    return path


class Claim:
    """An exclusive claim on a cell, atomic across processes sharing the results folder."""

    def __init__(self, run_dir: Path):
        self.path = run_dir.parent / ".claims" / f"{run_dir.name}.claim"

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if self._stale():
                    self.path.unlink(missing_ok=True)
                    continue
                return False
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}))
            return True
        return False

    def add_pid(self, pid: int) -> None:
        """Record the process doing the work too: the claim holds while either lives."""
        owner = json.loads(self.path.read_text())
        owner["pids"] = owner.get("pids", []) + [pid]
        self.path.write_text(json.dumps(owner))

    def _stale(self) -> bool:
        """A claim whose processes, on this host, have all exited (a killed worker)."""
        try:
            owner = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            return True
        if owner.get("host") != socket.gethostname():
            return False  # another machine's worker: trust it
        return not any(_alive(pid) for pid in [owner["pid"], *owner.get("pids", [])])

    def clear_if_stale(self) -> None:
        if self.path.exists() and self._stale():
            self.path.unlink(missing_ok=True)

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its new parent) is not alive
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _die_with_parent() -> None:
    """Linux: the cell's process gets SIGKILL when the grid worker dies, so no orphan keeps
    writing into a cell that a rerun takes over."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def set_aside(run_dir: Path) -> None:
    """Keep a failed or interrupted attempt's folder (nothing computed is deleted) out of the way."""
    attempt = 1
    while (target := run_dir.with_name(f"{run_dir.name}.attempt-{attempt}")).exists():
        attempt += 1
    run_dir.rename(target)


def launch_command(config_path: Path, num_processes: int) -> list[str]:
    if num_processes > 1:
        return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                str(num_processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "-m", "harness", "run", "--config", str(config_path)]
    return [sys.executable, "-m", "harness", "run", "--config", str(config_path)]


def _claimed(run_dir: Path, body) -> str:
    """Run ``body(claim)`` on a cell unless it is finished or claimed; returns the cell's status after.
    A failed or checkpoint-less earlier attempt is set aside first; a run that ends without writing
    its record gets one from what ``body`` returns (the fields of a failed record)."""
    if status_of(run_dir) == "finished":
        return "already finished"
    claim = Claim(run_dir)
    if not claim.acquire():
        return "claimed by another worker"
    try:
        if status_of(run_dir) == "finished":  # finished between our first look and the claim
            return "already finished"
        if run_dir.exists() and (status_of(run_dir) == "failed" or not has_checkpoint(run_dir)):
            set_aside(run_dir)  # failed, or killed before its first checkpoint: keep it, start afresh
        failure = body(claim)
        if status_of(run_dir) != "finished" and not RunDir(run_dir).metrics_path.is_file():
            # Failed before (or without) writing its record, e.g. bad data: record it here.
            run_dir.mkdir(parents=True, exist_ok=True)
            RunDir(run_dir).write_metrics({"status": "failed", **(failure or {})})
        final = status_of(run_dir)
        return final if final != "running" else "failed"
    finally:
        claim.release()


def execute_inline(config_path: str, run_dir: str) -> str:
    """Run one cell in this process (small models: no interpreter start per cell)."""
    from harness.config import RunConfig
    from harness.training.runner import run

    def body(claim) -> dict | None:
        values = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
        try:
            run(RunConfig.from_dict(values, where=str(config_path)), progress=False)
        except Exception as err:  # noqa: BLE001 - the cell failed; the grid goes on
            return {"error": f"{type(err).__name__}: {err}"}
        return None

    return _claimed(Path(run_dir), body)


def execute_cell(config_path: str, run_dir: str, num_processes: int = 1, env: dict | None = None) -> str:
    """Run one cell in a subprocess unless it is finished or claimed; returns its status afterwards.
    This is also what a Slurm job runs."""
    run_dir = Path(run_dir)

    def body(claim) -> dict:
        log = run_dir.parent / ".logs" / f"{run_dir.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as handle:
            child = subprocess.Popen(launch_command(Path(config_path), num_processes), stdout=handle,
                                     stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                     preexec_fn=_die_with_parent)
            claim.add_pid(child.pid)
            code = child.wait()
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        return {"exit_code": code, "error": lines[-1] if lines else "", "log": str(log)}

    return _claimed(run_dir, body)


def run_grid(experiment: Experiment | list[Experiment], output_dir: str = "results", jobs: int = 1,
             launcher: str = "local", slurm: dict[str, Any] | None = None, progress=print) -> dict[str, str]:
    """Run every cell that has not finished; returns cell id -> final status. Given several experiments,
    their cells share the workers, so one experiment's last cell does not leave a worker idle while
    another's wait (the cells keep their own experiment's folders)."""
    experiments = experiment if isinstance(experiment, list) else [experiment]
    if jobs < 1:
        raise HarnessError(f"--jobs must be a positive number, got {jobs}.")
    if launcher in ("slurm", "submitit-local") and len(experiments) > 1:  # the scheduler packs the jobs
        results: dict[str, str] = {}
        for one in experiments:
            results.update(run_grid(one, output_dir, jobs, launcher, slurm, progress))
        return results
    todo, results = [], {}
    for exp in experiments:
        waiting = 0
        for cell in exp.cells:
            results[cell.id] = "finished"
            run_dir = run_dir_of(exp, cell, output_dir)
            if status_of(run_dir) == "finished":
                Claim(run_dir).clear_if_stale()  # left by a worker killed right after the cell finished
                continue
            todo.append((exp, cell, cell_file(exp, cell, output_dir), run_dir))
            waiting += 1
        progress(f"{exp.name}: {len(exp.cells)} cells, {len(exp.cells) - waiting} finished, "
                 f"{waiting} to run ({launcher}, {jobs} at a time)")
    # Cells that start from another cell's weights wait for the first wave.
    waves = [[item for item in todo if not item[1].depends_on], [item for item in todo if item[1].depends_on]]
    if launcher in ("slurm", "submitit-local"):
        exp = experiments[0]
        for wave in waves:
            if wave:
                results.update(_run_submitit([item[1:] for item in wave], exp.num_processes, launcher, slurm or {}, output_dir, exp, jobs))
        return results
    if launcher not in ("local", "inline"):
        raise HarnessError(f"unknown launcher '{launcher}'; choose one of {', '.join(LAUNCHERS)}.")
    if launcher == "inline" and (jobs > 1 or any(e.num_processes > 1 for e in experiments)):
        raise HarnessError("--launcher inline runs one cell at a time in this process; use --jobs 1 and one process.")

    started, done, lock = time.monotonic(), 0, threading.Lock()

    def one(slot_and_item):
        nonlocal done
        slot, (exp, cell, path, run_dir) = slot_and_item
        if launcher == "inline":
            status = execute_inline(str(path), str(run_dir))
        else:
            # Fewer cells than workers (a short wave): each gets a larger share of the cores.
            share = max(1, min(jobs, len(todo)))
            status = execute_cell(str(path), str(run_dir), exp.num_processes, _slot_env(slot % share, share))
        with lock:
            done += 1
            progress(f"  [{done}/{len(todo)} {_eta(time.monotonic() - started, done, len(todo))}] "
                     f"{cell.id} {_describe(cell)}: {status}")
        return cell.id, "finished" if status == "already finished" else status  # finished by another worker

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for wave in waves:
            for cell_id, status in pool.map(one, enumerate(wave)):
                results[cell_id] = status
    for exp in experiments:
        for cell in exp.cells:
            if cell.depends_on and results.get(cell.depends_on) != "finished" and results[cell.id] != "finished":
                results[cell.id] = f"failed: starts from unfinished cell {cell.depends_on}"
    return results


def _slot_env(slot: int, jobs: int) -> dict[str, str]:
    """Give each concurrent cell its own GPU, or its share of the CPU cores."""
    import torch

    if torch.cuda.is_available() and jobs > 1:
        return {"CUDA_VISIBLE_DEVICES": str(slot % torch.cuda.device_count())}
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // jobs))} if jobs > 1 else {}


def _eta(elapsed: float, done: int, total: int) -> str:
    """'12m elapsed, ~30m left': the time left at the pace of the cells so far."""
    def minutes(seconds: float) -> str:
        return f"{seconds / 3600:.1f}h" if seconds >= 5400 else f"{seconds / 60:.0f}m"

    left = f", ~{minutes(elapsed / done * (total - done))} left" if done < total else ""
    return f"{minutes(elapsed)} elapsed{left}"


def _describe(cell: Cell) -> str:
    return " ".join(f"{k}={v}" for k, v in cell.labels.items())


def _run_submitit(todo, num_processes, launcher, slurm, output_dir, experiment, jobs) -> dict[str, str]:
    try:
        import submitit
    except ImportError:
        raise HarnessError("--launcher slurm needs submitit: pip install submitit (or 'lora-harness[slurm]').") from None
    folder = Path(output_dir) / "submitit" / experiment.name
    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster="local" if launcher == "submitit-local" else "slurm")
    parameters = dict(timeout_min=int(slurm.get("time", 240)), name=experiment.name, tasks_per_node=1,
                      gpus_per_node=int(slurm.get("gpus", num_processes)), cpus_per_task=int(slurm.get("cpus", 4)))
    if launcher == "slurm":
        parameters["slurm_array_parallelism"] = jobs
        if slurm.get("partition"):
            parameters["slurm_partition"] = slurm["partition"]
    else:
        parameters["gpus_per_node"] = 0
    executor.update_parameters(**parameters)
    env = None
    if launcher == "slurm" and "OMP_NUM_THREADS" not in os.environ:
        # The job's cell uses the CPUs it asked for: without a CPU binding (task/none) torch would take
        # every core of the node, and concurrent jobs would oversubscribe them.
        env = {"OMP_NUM_THREADS": str(max(1, parameters["cpus_per_task"] // num_processes))}
    submitted = executor.map_array(execute_cell, [str(p) for _, p, _ in todo], [str(r) for _, _, r in todo],
                                   [num_processes] * len(todo), [env] * len(todo))
    if launcher == "slurm" and not _slurm_has_accounting():
        watcher = _squeue_watcher()
        for job in submitted:
            job.watcher = watcher  # this grid's jobs only; submitit's class-wide sacct watcher is left alone
            watcher.register_job(job.job_id)
    results = {}
    for (cell, _, _), job in zip(todo, submitted):
        try:
            status = job.result()
            results[cell.id] = "finished" if status == "already finished" else status
        except Exception as err:  # the job died: the cell counts as failed, the others go on
            results[cell.id] = "failed"
            print(f"  {cell.id}: job {job.job_id} failed: {str(err).strip().splitlines()[-1][:200]}")
    return results


def _slurm_has_accounting() -> bool:
    """Whether the cluster keeps job accounting, so that sacct answers. Real clusters do; a small or
    test cluster (AccountingStorageType=accounting_storage/none, e.g. `.ci/slurm-up`'s) may not."""
    try:
        config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return True  # cannot tell: keep submitit's own sacct polling
    for line in config.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "AccountingStorageType":
            return value.strip() != "accounting_storage/none"
    return True


def _squeue_watcher():
    """A submitit job watcher that reads job states from squeue instead of sacct.

    submitit asks sacct for the state of a job that has not written its result yet. Without
    accounting, sacct fails on every poll: submitit prints a warning each time, and a job that ended
    without writing its result (cancelled, killed) stays in state UNKNOWN, so the grid would wait
    for it forever. squeue lists a job while the controller holds it (until MinJobAge after it
    ends); a job it no longer lists has ended."""
    from submitit.slurm.slurm import SlurmInfoWatcher

    class SqueueWatcher(SlurmInfoWatcher):
        def _make_command(self) -> list[str] | None:
            if not self._registered - self._finished:
                return None
            # All of this user's jobs: `squeue --jobs` fails when none of the ids is still held.
            return ["squeue", "--noheader", "--array", "--states=all", f"--user={os.getuid()}",
                    "--format=%i|%T|%N"]

        def read_info(self, string) -> dict[str, dict[str, str]]:
            if not isinstance(string, str):
                string = string.decode()
            # submitit's sacct parser (job arrays included) reads squeue's lines under sacct's header.
            info = super().read_info("JobID|State|NodeList\n" + string)
            for job_id in self._registered - self._finished:
                if job_id not in info:
                    info[job_id] = {"JobID": job_id, "State": "ENDED", "NodeList": ""}  # left the queue
            return info

    return SqueueWatcher(delay_s=60)
