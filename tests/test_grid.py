"""Experiment files and grids: expansion, stable cell ids, resume after a kill, Slurm via submitit."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness.errors import HarnessError
from harness.grid.experiments import load_experiment
from harness.grid.runner import run_dir_of, run_grid, status_of

from conftest import ROOT, harness_cli, sentiment_rows, write_csv


def write_experiment(path: Path, **spec) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture
def two_tasks(tmp_path):
    """Two small classification tasks from CSV files (different data, same label set)."""
    files = {}
    for name, seed in [("a", 0), ("b", 10)]:
        files[name] = (write_csv(tmp_path / f"{name}_train.csv", sentiment_rows(256, seed)),
                       write_csv(tmp_path / f"{name}_dev.csv", sentiment_rows(32, seed + 1)))
    return files


def tiny_grid(tmp_path, two_tasks, methods=("full", "bitfit", "lora"), seeds=(0, 1), **launch):
    data = [{"data": name, "train_file": str(train), "eval_file": str(dev)} for name, (train, dev) in two_tasks.items()]
    spec = dict(name="mini", base=dict(task="csv", model="tiny-bert", epochs=1, tracking_uri="none",
                                         save_weights=False),
                axes=dict(data=data, method=list(methods), seed=list(seeds)))
    if launch:
        spec["launch"] = launch
    # 'data' labels the axis; it is not a run option, so strip it from the options.
    spec["axes"]["data"] = [{k: v for k, v in d.items() if k != "data"} for d in data]
    return write_experiment(tmp_path / "mini.yaml", **spec)


def test_the_minilm_glue_grid_uses_its_sweeps_settings_and_learning_rates():
    """The grid's learning rates come from its sweep: same base settings, and each method's rate is one
    of the rates the sweep tried for it."""
    grid_file, sweep_file = (ROOT / "experiments/cpu-mini" / f for f in ("glue_minilm.yaml", "glue_minilm_lr_sweep.yaml"))
    grid_base, sweep_base = (yaml.safe_load(f.read_text())["base"] for f in (grid_file, sweep_file))
    assert {k: v for k, v in sweep_base.items() if k not in ("task", "seed")} == grid_base
    tried = {}
    for cell in load_experiment(sweep_file).cells:
        tried.setdefault((cell.config.method, str(cell.config.method_options)), set()).add(cell.config.learning_rate)
    grid = load_experiment(grid_file).cells
    assert {(c.config.method, str(c.config.method_options)) for c in grid} == set(tried)
    # ... and it is the rate with the best dev score in the committed sweep runs.
    from harness.report.results import records_from_experiment

    best = {}
    for record in records_from_experiment(str(sweep_file), ROOT / "results/cpu-mini/glue_minilm_lr_sweep/runs"):
        assert record.status == "finished", record.name
        if record.method not in best or record.score > best[record.method][0]:  # one variant per method
            best[record.method] = (record.score, record.config["learning_rate"])
    for cell in grid:
        assert cell.config.learning_rate == best[cell.config.method][1]


def test_the_cola_rerun_changes_only_the_training_budget_of_the_glue_grid():
    """experiments/cpu-mini/glue_minilm_cola_full.yaml: the grid's CoLA cells with the whole training set
    and 3 epochs; same methods, options, learning rates and seeds, nothing else changed."""
    folder = ROOT / "experiments/cpu-mini"
    grid, cola = (load_experiment(folder / f) for f in ("glue_minilm.yaml", "glue_minilm_cola_full.yaml"))
    changed = {"max_train_samples": None, "epochs": 3}
    expected = sorted(str({**c.config.to_dict(), **changed}) for c in grid.cells if c.config.task == "glue/cola")
    assert sorted(str(c.config.to_dict()) for c in cola.cells) == expected and len(expected) == 21


def test_paper_table2_base_lists_every_cell_with_the_papers_settings():
    experiment = load_experiment(ROOT / "experiments/paper/table2_roberta_base.yaml")
    assert len(experiment.cells) == 8 * 5
    by_task = {c.config.task: c.config for c in experiment.cells if c.config.seed == 0}
    assert (by_task["glue/cola"].batch_size, by_task["glue/cola"].epochs, by_task["glue/cola"].learning_rate) == (32, 80, 4e-4)
    assert by_task["glue/sst2"].method_options == {"r": 8, "alpha": 8, "target_modules": ["query", "value"]}
    mrpc = next(c for c in experiment.cells if c.config.task == "glue/mrpc" and c.config.seed == 3)
    mnli = next(c for c in experiment.cells if c.config.task == "glue/mnli" and c.config.seed == 3)
    assert mrpc.depends_on == mnli.id  # MRPC starts from the same seed's MNLI weights
    scripts = load_experiment(ROOT / "experiments/paper/table2_roberta_base.yaml", variant="scripts")
    cola = next(c.config for c in scripts.cells if c.config.task == "glue/cola")
    sst2 = next(c.config for c in scripts.cells if c.config.task == "glue/sst2")
    assert cola.grad_accum == 2 and sst2.grad_accum == 8 and sst2.method_options["alpha"] == 16


def test_dry_run_is_offline_and_runs_nothing(tmp_path):
    # Counts come from configs on the meta device: offline (the hub is unreachable here) and no run starts.
    result = harness_cli("grid", "experiments/paper/table2_roberta_base.yaml", "--dry-run", "--output-dir", tmp_path,
                         own_process=True)  # offline from import on
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "runs").exists()
    lines = [line for line in result.stdout.splitlines() if " glue/" in line]
    assert len(lines) == 40 and all("294,912" in line and "pending" in line for line in lines)


def test_cell_ids_are_stable_and_ignore_where_results_go(tmp_path, two_tasks):
    path = tiny_grid(tmp_path, two_tasks)
    first = [c.id for c in load_experiment(path).cells]
    assert first == [c.id for c in load_experiment(path, overrides={"output_dir": "elsewhere"}).cells]
    assert len(set(first)) == 12
    assert first != [c.id for c in load_experiment(path, overrides={"epochs": 2}).cells]


def test_unknown_keys_name_the_key_and_the_file(tmp_path):
    path = write_experiment(tmp_path / "bad.yaml", base={"task": "glue/sst2", "learning_rat": 1e-3})
    with pytest.raises(HarnessError, match=r"bad\.yaml \(base\): unknown key 'learning_rat'. Did you mean 'learning_rate'"):
        load_experiment(path)
    path = write_experiment(tmp_path / "bad2.yaml", axes={"seed": [0]}, lanch={"num_processes": 2})
    with pytest.raises(HarnessError, match=r"bad2\.yaml: unknown key 'lanch'"):
        load_experiment(path)


def test_killed_grid_resumes_and_runs_each_cell_once(tmp_path, two_tasks):
    """2 tasks x 2 methods with --jobs 2: kill the grid (and the cell it is running) after the first
    cell finishes, rerun, every cell finishes once; cells finished before the kill are not run again."""
    path = tiny_grid(tmp_path, two_tasks, methods=("full", "lora"), seeds=(0,))
    out = tmp_path / "results"
    command = [sys.executable, "-m", "harness", "grid", str(path), "--jobs", "2", "--output-dir", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    grid = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    experiment = load_experiment(path)
    dirs = [run_dir_of(experiment, cell, str(out)) for cell in experiment.cells]
    deadline = time.time() + 300
    while sum(status_of(d) == "finished" for d in dirs) < 1 and time.time() < deadline:
        time.sleep(0.5)
    os.killpg(grid.pid, signal.SIGKILL)  # the grid and its running cells, mid-flight
    grid.wait()
    finished_before = {d: (d / "metrics.json").stat().st_mtime for d in dirs if status_of(d) == "finished"}
    assert 1 <= len(finished_before) < 4

    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert all(status_of(d) == "finished" for d in dirs)
    for d, mtime in finished_before.items():
        assert (d / "metrics.json").stat().st_mtime == mtime  # not run again
    records = [json.loads((d / "metrics.json").read_text()) for d in dirs]
    assert len({r["run_name"] for r in records}) == 4
    assert not list((out / "runs" / ".claims").glob("*.claim"))


def test_failing_cell_is_recorded_and_does_not_stop_the_others(tmp_path, two_tasks):
    train, dev = two_tasks["a"]
    bad = write_csv(tmp_path / "bad.csv", [{"text": "x", "label": "unseen-label"}])
    path = write_experiment(tmp_path / "fail.yaml", name="fail",
                            base=dict(task="csv", model="tiny-bert", epochs=1, tracking_uri="none", save_weights=False,
                                      train_file=str(train)),
                            axes={"eval_file": [str(bad), str(dev)]})
    experiment = load_experiment(path)
    lines = []
    results = run_grid(experiment, str(tmp_path / "results"), progress=lines.append)
    assert sorted(results.values()) == ["failed", "finished"]
    # Each cell's line counts the cells done and estimates the time left from the pace so far.
    assert lines[1].startswith("  [1/2 ") and "elapsed, ~" in lines[1] and "left]" in lines[1]
    assert lines[2].startswith("  [2/2 ") and "left" not in lines[2]


def test_grid_cell_through_accelerate_matches_in_process(tmp_path, two_tasks):
    """The same cell in-process (1 process, batch 16) and through `accelerate launch` with 2 CPU
    processes (batch 8 each, global 16): same dev accuracy within 0.05."""
    from harness.config import RunConfig
    from harness.train import run

    train, dev = two_tasks["a"]
    base = dict(task="csv", model="tiny-bert", method="full", epochs=3, tracking_uri="none", save_weights=False,
                train_file=str(train), eval_file=str(dev), warmup_ratio=0.0)
    single = run(RunConfig(**base, batch_size=16, output_dir=str(tmp_path / "single")), progress=False)
    path = write_experiment(tmp_path / "ddp.yaml", name="ddp", base={**base, "batch_size": 8}, axes={"seed": [42]},
                            launch={"num_processes": 2})
    experiment = load_experiment(path)
    assert run_grid(experiment, str(tmp_path / "results"), progress=lambda *_: None) == {experiment.cells[0].id: "finished"}
    record = json.loads((run_dir_of(experiment, experiment.cells[0], str(tmp_path / "results")) / "metrics.json").read_text())
    assert record["world_size"] == 2 and record["global_batch_size"] == 16
    assert abs(record["best"]["accuracy"] - single["best"]["accuracy"]) <= 0.05


def test_submitit_local_executor_runs_a_two_cell_grid(tmp_path, two_tasks):
    pytest.importorskip("submitit")
    path = tiny_grid(tmp_path, {"a": two_tasks["a"]}, methods=("full",), seeds=(0, 1))
    experiment = load_experiment(path)
    results = run_grid(experiment, str(tmp_path / "results"), launcher="submitit-local", progress=lambda *_: None)
    assert list(results.values()) == ["finished", "finished"]
    assert list((tmp_path / "results" / "submitit" / "mini").iterdir())  # submitit's job folders


def test_two_workers_on_one_results_folder_never_run_a_cell_twice(tmp_path, two_tasks):
    # 4 cells: both workers start at once and race for each claim
    path = tiny_grid(tmp_path, {"a": two_tasks["a"]}, methods=("full", "bitfit"), seeds=(0, 1))
    out = tmp_path / "shared-results"
    command = [sys.executable, "-m", "harness", "grid", str(path), "--output-dir", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(2)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    experiment = load_experiment(path)
    for cell in experiment.cells:
        ran = sum(f"] {cell.id} " in line and line.rstrip().endswith(": finished")
                  for output in outputs for line in output.splitlines())
        assert ran == 1, (cell.id, outputs)  # exactly one worker ran it; the other skipped or saw the claim
        assert status_of(run_dir_of(experiment, cell, str(out))) == "finished"
    assert not list((out / "runs").glob("*.attempt-*"))
