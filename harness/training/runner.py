"""One run, start to finish: ``run(RunConfig(...))`` (public as ``harness.train.run``).

Reading order: ``resolve`` checks the config and finds the task, its objective, the method and
the learning rate before anything heavy loads; ``run`` loads the data (a bad file fails before a
model is loaded), opens the run folder, loads and prepares the model, then hands everything to
the loop (``harness.training.loop.fit``) and writes the record whatever happens.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.config import RunConfig, resolved_tracking_uri
from harness.errors import HarnessError
from harness.methods import MethodSpec, get_method, init_from_run
from harness.methods.weights import save_weights
from harness.fingerprint import data_key, examples_digest, file_hash, fingerprint, fingerprint_id
from harness.models import ModelSpec, check_quantization, get_model_spec, weights_version
from harness.params import ParamCounts, count_parameters
from harness.registry import is_import_ref
from harness.rundir import RunDir
from harness.tasks import Task, file_task, get_task
from harness.tasks.objective import Objective, get_objective
from harness.tracking.mlflow import MlflowTracker, final_metrics, param_metrics
from harness.training.checkpoint import has_checkpoint
from harness.training.env import versions
from harness.training.loop import fit


@dataclass
class Resolved:
    """Everything a run needs, checked before anything heavy is loaded."""

    config: RunConfig
    task: Task
    objective: Objective
    method: MethodSpec
    model: ModelSpec
    learning_rate: float
    method_options: dict[str, Any]


def resolve(config: RunConfig) -> Resolved:
    if config.task == "csv":
        task = file_task(config.train_file, config.eval_file, config.text_column, config.label_column,
                         config.text_pair_column, config.task_type, config.labels)
    else:
        task = get_task(config.task, config.include_tasks or ())
    method = get_method(config.method)
    spec = get_model_spec(config.model)
    options = method.resolve_options(config.method_options)
    if config.padding_free and not method.token_wise:
        raise HarnessError(f"--padding-free: method '{config.method}' is not token-wise (its modules may read "
                           f"positions within a sequence, or it does not say); run it without --padding-free.")
    learning_rate = (config.learning_rate or model_default(spec, config.method, "learning_rate")
                     or method.defaults.get("learning_rate") or 1e-3)
    return Resolved(config, task, get_objective(task.kind), method, spec, learning_rate, options)


def model_default(spec: ModelSpec, method: str, key: str):
    """A model preset's default for a method: by the method's name, else for any peft tuner."""
    found = spec.defaults.get(method, {}).get(key)
    if found is None and method.startswith("peft:"):
        found = spec.defaults.get("peft:*", {}).get(key)
    return found


def default_run_name(config: RunConfig) -> str:
    if config.task == "csv":
        task = Path(config.train_file or "csv").stem
    elif config.task.endswith((".yaml", ".yml")):
        task = Path(config.task).stem
    else:
        task = config.task.replace("/", "-")
    model = Path(config.model).name  # a hub id or a folder: its last part
    method = config.method
    if method.endswith(".json"):
        method = Path(method).stem  # a peft adapter_config.json
    elif is_import_ref(method):
        method = method.rpartition(":")[2]  # a plugin 'my/file.py:my_method' -> 'my_method'
    method = re.sub(r"[^A-Za-z0-9._-]+", "-", method)  # 'peft:IA3' -> 'peft-IA3': safe in paths and MLflow
    return f"{task}-{method}-{model}-s{config.seed}-{datetime.now():%Y%m%d-%H%M%S}"


def run(config: RunConfig, progress: bool = True) -> dict[str, Any]:
    """Train and evaluate one configuration; returns the metrics record written to metrics.json."""
    from accelerate.utils import set_seed

    if config.resume and not config.run_name:
        raise HarnessError("--resume needs --run-name: the name of the run to continue.")
    resolved = resolve(config)
    check_quantization(config.quantize, config.method, resolved.method.trains_backbone)
    accelerator = make_accelerator(config)
    data = resolved.objective.load_data(resolved.task, config)  # a bad file fails before a model loads
    run_dir, resuming = open_run_dir(config, accelerator)
    set_seed(config.seed)
    model, tokenizer, counts = load_model(resolved, config)
    record = initial_record(resolved, accelerator, data, run_dir, counts)
    tracker = start_tracking(resolved, run_dir, record, counts, resuming, accelerator.is_main_process)
    start = time.perf_counter()
    try:
        check_something_trains(resolved, counts)
        save = lambda model, folder: save_weights(model, resolved.method, resolved.method_options, folder)  # noqa: E731
        record.update(fit(accelerator, resolved.objective, resolved.task, model, tokenizer, data, config,
                          resolved.learning_rate, run_dir, tracker, save, progress, resolved.method,
                          resolved.method_options))
        record["status"] = "finished"
        if accelerator.is_main_process:
            shutil.rmtree(run_dir.checkpoint, ignore_errors=True)  # the weights are saved; the state is not needed
    except BaseException as err:
        record["status"] = "failed"
        record["error"] = f"{type(err).__name__}: {err}"
        raise
    finally:
        finish(record, run_dir, tracker, time.perf_counter() - start, accelerator.is_main_process)
    return record


def make_accelerator(config: RunConfig):
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    if config.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise HarnessError("--mixed-precision fp16 needs a CUDA GPU; use bf16 or no on this machine.")
    # accelerate keeps its settings in process-wide singletons; clear them so that several runs with
    # different precision or accumulation can share one process (the Python API, benchmarks, grids).
    # The process group (PartialState) is kept: a distributed launch needs it for every run.
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=config.mixed_precision,
                              gradient_accumulation_steps=config.grad_accum, dynamo_plugin=dynamo_plugin(config))
    if accelerator.device.type == "cpu" and accelerator.num_processes > 1 and "OMP_NUM_THREADS" not in os.environ:
        # Processes sharing the cores must split them: oversubscribed OpenMP threads spin and crawl.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // accelerator.state.num_processes))
    return accelerator


def dynamo_plugin(config: RunConfig):
    """--compile: accelerate compiles the whole model in prepare, with dynamic shapes, since batches are
    padded to their own length (accelerate's regional compilation, one block compiled and reused, ran
    slower than eager after warm-up in a trial on MiniLM-L6 + LoRA; the whole model faster). The
    inductor's on-disk cache (TORCHINDUCTOR_CACHE_DIR, default under the temp folder) lets the next run
    of a grid skip most of the compilation. Saving, checkpoints, method hooks and beam decoding
    use the uncompiled module (training.loop.plain_model): its parameter names are the model's own."""
    if not config.compile:
        return None
    import torch._inductor.config
    from accelerate.utils import TorchDynamoPlugin

    # Dropout draws from torch's generator as in eager mode (the inductor's own RNG would give the same
    # seed a different run): compiled and eager runs of one seed are then the same run, up to rounding.
    torch._inductor.config.fallback_random = True
    if config.padding_free:  # the packed token count is data-dependent (nonzero): traced, not a graph break
        torch._dynamo.config.capture_dynamic_output_shape_ops = True
    return TorchDynamoPlugin(backend="inductor", dynamic=True, use_regional_compilation=False)


def open_run_dir(config: RunConfig, accelerator) -> tuple[RunDir, bool]:
    """The run's folder (created by the main process) and whether the run resumes from a checkpoint."""
    from accelerate.utils import broadcast_object_list

    name = [config.run_name or default_run_name(config)]
    if accelerator.num_processes > 1:
        broadcast_object_list(name)  # every process must agree on the name main chose
    existing = RunDir.of(config.output_dir, name[0])
    if config.resume and has_checkpoint(existing.path):
        return existing, True
    return (RunDir.create(config.output_dir, name[0]) if accelerator.is_main_process else existing), False


def load_model(resolved: Resolved, config: RunConfig) -> tuple[Any, Any, ParamCounts]:
    """The model to train: loaded by the objective, prepared by the method, counted; warns loudly
    when nothing outside the task head trains (a method that froze everything)."""
    model, tokenizer, heads = resolved.objective.load_model(resolved.model, resolved.task, config)
    model = resolved.method.prepare(model, resolved.method_options, heads)
    if config.init_from:
        init_from_run(model, config.init_from, heads)
    counts = count_parameters(model, heads)
    # Only the head trains: a bug unless the method means it (linear probing). With no head either,
    # check_something_trains stops the run.
    if counts.trainable == 0 and counts.head and config.epochs and not resolved.method.head_only:
        warnings.warn(f"method '{config.method}' left no parameter trainable outside the task head: only the head "
                      f"will train. A method must leave requires_grad=True on the parameters it trains.", stacklevel=2)
    return model, tokenizer, counts


def check_something_trains(resolved: Resolved, counts: ParamCounts) -> None:
    """A method that leaves nothing to train on a model without a task head cannot adapt it (BitFit on a
    model without biases): one line in the run's record, not an optimizer's traceback."""
    config = resolved.config
    if config.epochs and counts.trainable + counts.head == 0:
        raise HarnessError(f"method '{config.method}' ({resolved.method.description}) leaves no parameter of model "
                           f"'{config.model}' to train and the model has no task head: the method cannot adapt "
                           f"this model; choose another method.")


def initial_record(resolved: Resolved, accelerator, data, run_dir: RunDir, counts: ParamCounts) -> dict[str, Any]:
    config, task = resolved.config, resolved.task
    splits = {"train": data.train, **{data_key(s): e for s, e in data.evals.items()}}
    record = {
        "status": "running", "run_name": run_dir.name, "task": task.name,
        "model": config.model, "method": config.method, "main_metric": task.main_metric,
        "params": counts.as_dict(), "world_size": accelerator.num_processes,
        "global_batch_size": config.batch_size * accelerator.num_processes * config.grad_accum,
        "train_examples": len(data.train.examples),
        "eval_examples": {s: len(e.examples) for s, e in data.evals.items()},
        **resolved.objective.describe(task, config),
        "data": {key: split.origin for key, split in splits.items()},
        "data_digests": {key: examples_digest(split.examples) for key, split in splits.items() if split.examples},
        "versions": versions(), "command": " ".join(sys.argv),
    }
    record["data_hashes"] = {split: digest for split, origin in record["data"].items()
                             if (digest := file_hash(origin)) is not None}
    if (weights := weights_version(resolved.model)) is not None:
        record["model_weights"] = weights
    record["fingerprint"] = fingerprint_id(fingerprint(full_config(resolved), record))
    return record


def full_config(resolved: Resolved) -> dict[str, Any]:
    """config.json: the run config with what was resolved (learning rate, every method option)."""
    return {**resolved.config.to_dict(), "learning_rate": resolved.learning_rate,
            "method_options": resolved.method_options, "label_names": resolved.task.label_names}


def start_tracking(resolved: Resolved, run_dir: RunDir, record: dict, counts: ParamCounts, resuming: bool,
                   main: bool) -> MlflowTracker:
    """Write config.json and open the MLflow run (continuing its own MLflow run when resuming)."""
    config, task = resolved.config, resolved.task
    full = full_config(resolved)
    previous = run_dir.read_config().get("mlflow_run_id") if resuming else None
    tracker = MlflowTracker(resolved_tracking_uri(config), config.experiment, run_dir.name, active=main,
                            run_id=previous)
    full["mlflow_run_id"] = tracker.run_id
    if main and resuming:
        print(f"resuming {run_dir.path} from its checkpoint", flush=True)
    elif main:
        run_dir.write_config(full)
        tracker.log_params(full)
        tracker.set_tags({"task": task.name, "model": config.model, "method": config.method,
                          "main_metric": task.main_metric, "harness_run": run_dir.name,
                          "run_dir": str(run_dir.path.resolve())})
        tracker.log_metrics(param_metrics(counts.as_dict()))
        tracker.log_inputs(record)
    return tracker


def finish(record: dict, run_dir: RunDir, tracker: MlflowTracker, seconds: float, main: bool) -> None:
    """Write the record (finished or failed) and close MLflow; say in the folder what MLflow missed."""
    record["wall_time_s"] = round(seconds, 3)
    if not main:
        return
    record["mlflow_run_id"] = tracker.run_id
    if (size := run_dir.weights_bytes()) is not None:  # kept in the record: results folders may drop weights/
        record["weights_bytes"] = size
    tracker.log_metrics(final_metrics(record) if record["status"] == "finished" else {"wall_time_s": seconds})
    run_dir.write_metrics(record)
    tracker.log_artifacts(run_dir.path)
    tracker.end("FINISHED" if record["status"] == "finished" else "FAILED")
    record["tracking_problems"] = tracker.problems
    if tracker.problems:  # `harness sync` fills MLflow in later
        run_dir.write_metrics(record)
    record["run_dir"] = str(run_dir.path)
