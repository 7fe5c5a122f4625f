"""The training loop: one loop, on accelerate, for every task, model and method.

Reading order: `run` resolves the config, loads data and model, then `_train` runs epochs of
optimizer steps, evaluating after each epoch and keeping the best epoch (as the paper reports).
"""

from __future__ import annotations

import json
import math
import shutil
import os
import platform
import random
import re
import resource
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.training.checkpoint import CHECKPOINT, has_checkpoint, load_checkpoint, rng_states, save_checkpoint
from harness.config import RunConfig, resolved_tracking_uri
from harness.errors import HarnessError
from harness.tasks.generation import DecodeSettings, PairCollator, decode, encode_pairs, lm_loss, one_pair_each, write_generations
from harness.methods import get_method, init_from_run, save_weights
from harness.models import (check_quantization, get_model_spec, head_module_names, load_for_causal_lm,
                            load_for_classification)
from harness.params import count_parameters
from harness.tasks import Split, Task, file_task, get_task
from harness.tracking.mlflow import MlflowTracker, make_run_dir, write_json


@dataclass
class Resolved:
    """Everything a run needs, checked before anything heavy is loaded."""

    config: RunConfig
    task: Task
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
    learning_rate = (config.learning_rate or spec.defaults.get(method.name, {}).get("learning_rate")
                     or method.defaults["learning_rate"])
    return Resolved(config, task, learning_rate, options)


def first(split: Split, limit: int | None) -> Split:
    return split if limit is None else Split(split.examples[:limit], split.origin)


def subsample(split: Split, limit: int | None, seed: int) -> Split:
    """A random subset of ``limit`` examples in their original order (all of them if limit is None)."""
    if limit is None or limit >= len(split.examples):
        return split
    keep = sorted(random.Random(seed).sample(range(len(split.examples)), limit))
    return Split([split.examples[i] for i in keep], split.origin)


def tokenize(split: Split, tokenizer, max_length: int, regression: bool) -> list[dict[str, Any]]:
    texts = [e.text for e in split.examples]
    pairs = [e.text_pair for e in split.examples] if split.examples[0].text_pair is not None else None
    encoded = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    rows = []
    for i, example in enumerate(split.examples):
        row = {key: values[i] for key, values in encoded.items()}
        row["labels"] = float(example.label) if regression else int(example.label)
        rows.append(row)
    return rows


class LengthGroupedBatches:
    """Batches of similar length, in random order: less padding, the same examples per epoch.

    Each epoch shuffles the examples, cuts the order into windows of ``window`` batches, sorts each
    window by length and batches it, then shuffles the batches (as the HF Trainer's
    group_by_length does). The order comes from ``generator`` when iteration starts, so a resumed
    run redraws the same epoch."""

    def __init__(self, lengths: list[int], batch_size: int, generator, window: int = 50):
        self.lengths, self.batch_size, self.generator, self.window = lengths, batch_size, generator, window

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self):
        import torch

        order = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        span = self.batch_size * self.window
        batches = []
        for start in range(0, len(order), span):
            chunk = sorted(order[start:start + span], key=lambda i: -self.lengths[i])
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        for index in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[index]


def peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def versions() -> dict[str, str]:
    import accelerate
    import peft
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "accelerate": accelerate.__version__}


def default_run_name(config: RunConfig) -> str:
    if config.task == "csv":
        task = Path(config.train_file or "csv").stem
    elif config.task.endswith((".yaml", ".yml")):
        task = Path(config.task).stem
    else:
        task = config.task.replace("/", "-")
    model = Path(config.model).name  # a hub id or a folder: its last part
    method = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(config.method).stem if config.method.endswith(".json")
                    else config.method)  # 'peft:IA3' -> 'peft-IA3': safe in paths and MLflow
    return f"{task}-{method}-{model}-s{config.seed}-{datetime.now():%Y%m%d-%H%M%S}"


def run(config: RunConfig, progress: bool = True) -> dict[str, Any]:
    """Train and evaluate one configuration; returns the metrics record written to metrics.json."""
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import broadcast_object_list, set_seed

    if config.resume and not config.run_name:
        raise HarnessError("--resume needs --run-name: the name of the run to continue.")
    resolved = resolve(config)
    task = resolved.task
    check_quantization(config.quantize, config.method)
    if config.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise HarnessError("--mixed-precision fp16 needs a CUDA GPU; use bf16 or no on this machine.")
    # accelerate keeps its settings in process-wide singletons; clear them so that several runs with
    # different precision or accumulation can share one process (the Python API, benchmarks, grids).
    # The process group (PartialState) is kept: a distributed launch needs it for every run.
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=config.mixed_precision,
                              gradient_accumulation_steps=config.grad_accum)
    main = accelerator.is_main_process
    if accelerator.device.type == "cpu" and accelerator.num_processes > 1 and "OMP_NUM_THREADS" not in os.environ:
        # Processes sharing the cores must split them: oversubscribed OpenMP threads spin and crawl.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // accelerator.state.num_processes))

    # Data first: a bad file should fail before a model is loaded.
    generation = task.kind == "generation"
    if config.metrics and not generation:
        raise HarnessError("--metrics selects generation metrics; a classification task reports all of its metrics.")
    task.check_metrics(config.metrics)
    train = Split([], "none (--epochs 0)")
    if config.epochs:
        train = task.load(task.train_split, config.data_dir)
        train = subsample(one_pair_each(train) if generation else train, config.max_train_samples, config.data_seed)
    if generation:
        # The dev loss after each epoch, and the test inputs decoded (the first N) after the last one.
        dev = subsample(one_pair_each(task.load(task.loss_split, config.data_dir)), config.max_eval_samples,
                        config.data_seed)
        evals = {"loss": dev, **{suffix: first(task.load(split, config.data_dir), config.max_decode_samples)
                                 for suffix, split in task.eval_splits.items()}}
    else:
        evals = {suffix: subsample(task.load(split, config.data_dir), config.max_eval_samples, config.data_seed)
                 for suffix, split in task.eval_splits.items()}

    run_name = [config.run_name or default_run_name(config)]
    if accelerator.num_processes > 1:
        broadcast_object_list(run_name)  # every process must agree on the name main chose
    existing = Path(config.output_dir) / "runs" / run_name[0]
    resuming = config.resume and has_checkpoint(existing)
    if resuming:
        run_dir = existing
    else:
        run_dir = make_run_dir(config.output_dir, run_name[0]) if main else existing

    set_seed(config.seed)
    spec = get_model_spec(config.model)
    if generation:
        model, tokenizer = load_for_causal_lm(spec, config.data_dir, config.quantize, config.trust_remote_code)
        heads = []  # the LM head is pretrained: no method trains it, tied to the embeddings or not
    else:
        problem = "regression" if task.kind == "regression" else "single_label_classification"
        model, tokenizer = load_for_classification(spec, task.num_labels, problem, config.data_dir, config.quantize,
                                                   config.trust_remote_code)
        heads = head_module_names(model)
    model = get_method(config.method).apply(model, resolved.method_options, heads)
    if config.init_from:
        init_from_run(model, config.init_from, heads)
    counts = count_parameters(model, heads)

    record: dict[str, Any] = {
        "status": "running", "run_name": run_dir.name, "task": task.name,
        "model": config.model, "method": config.method, "main_metric": task.main_metric,
        "params": counts.as_dict(), "world_size": accelerator.num_processes,
        "global_batch_size": config.batch_size * accelerator.num_processes * config.grad_accum,
        "train_examples": len(train.examples), "eval_examples": {s: len(e.examples) for s, e in evals.items()},
        **({"decode": decode_settings(config, task).__dict__} if generation else {}),
        "data": {"train": train.origin, **{f"eval{('_' + s) if s else ''}": e.origin for s, e in evals.items()}},
        "versions": versions(), "command": " ".join(sys.argv),
    }
    full_config = {**config.to_dict(), "learning_rate": resolved.learning_rate,
                   "method_options": resolved.method_options, "label_names": task.label_names}
    previous_run_id = None
    if resuming and (run_dir / "config.json").is_file():
        previous_run_id = json.loads((run_dir / "config.json").read_text()).get("mlflow_run_id")
    tracker = MlflowTracker(resolved_tracking_uri(config), config.experiment, record["run_name"], active=main,
                            run_id=previous_run_id)
    full_config["mlflow_run_id"] = tracker.run_id
    if main and resuming:
        print(f"resuming {run_dir} from its checkpoint", flush=True)
    elif main:
        write_json(run_dir / "config.json", full_config)
        tracker.log_params(full_config)
        tracker.set_tags({"task": task.name, "model": config.model, "method": config.method,
                          "main_metric": task.main_metric, "harness_run": record["run_name"],
                          "run_dir": str(run_dir.resolve())})
        tracker.log_metrics({"params_trainable": counts.trainable, "params_head": counts.head,
                             "params_total": counts.total})
    start = time.perf_counter()
    try:
        _train(accelerator, config, resolved, model, tokenizer, train, evals, record, run_dir, tracker, progress)
        record["status"] = "finished"
        if main:
            shutil.rmtree(run_dir / CHECKPOINT, ignore_errors=True)  # the weights are saved; the state is not needed
    except BaseException as err:
        record["status"] = "failed"
        record["error"] = f"{type(err).__name__}: {err}"
        raise
    finally:
        record["wall_time_s"] = round(time.perf_counter() - start, 3)
        if main:
            record["mlflow_run_id"] = tracker.run_id
            tracker.log_metrics({"wall_time_s": record["wall_time_s"]})
            write_json(run_dir / "metrics.json", record)
            tracker.log_artifacts(run_dir)
            tracker.end("FINISHED" if record["status"] == "finished" else "FAILED")
            record["tracking_problems"] = tracker.problems
            if tracker.problems:  # say in the run folder what MLflow is missing: `harness sync` fills it in
                write_json(run_dir / "metrics.json", record)
            record["run_dir"] = str(run_dir)
    return record


def _optimizer(model, learning_rate: float, weight_decay: float):
    import torch

    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if parameter.ndim < 2 or "norm" in name.lower() else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=learning_rate)


def _train(accelerator, config, resolved, model, tokenizer, train, evals, record, run_dir, tracker, progress):
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm
    from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup

    task = resolved.task
    regression, generation = task.kind == "regression", task.kind == "generation"
    multiple_of = 8 if config.mixed_precision != "no" else None
    if generation:
        collate = PairCollator(tokenizer.pad_token_id, multiple_of)
        encode = lambda split: encode_pairs(split, tokenizer, config.max_seq_length)  # noqa: E731
        decode_splits = {suffix: split for suffix, split in evals.items() if suffix != "loss"}
        evals = {"loss": evals["loss"]}
    else:
        collate = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=multiple_of)
        encode = lambda split: tokenize(split, tokenizer, config.max_seq_length, regression)  # noqa: E731
    generator = torch.Generator().manual_seed(config.seed)
    train_rows = encode(train) if train.examples else []
    if config.group_by_length and train_rows:
        batches = LengthGroupedBatches([len(r["input_ids"]) for r in train_rows], config.batch_size, generator)
        train_loader = DataLoader(train_rows, batch_sampler=batches, collate_fn=collate)
    else:
        train_loader = DataLoader(train_rows, config.batch_size, shuffle=bool(train_rows), collate_fn=collate,
                                  generator=generator)
    eval_loaders = {suffix: DataLoader(encode(split), config.eval_batch_size, collate_fn=collate)
                    for suffix, split in evals.items()}
    # Steps counted on the unsharded loader: accelerate steps the scheduler once per process.
    steps_per_epoch = math.ceil(len(train_loader) / config.grad_accum)
    total_steps = steps_per_epoch * config.epochs
    warmup = config.warmup_steps if config.warmup_steps is not None else int(config.warmup_ratio * total_steps)
    optimizer = _optimizer(model, resolved.learning_rate, config.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
    model, optimizer, train_loader, scheduler, *loaders = accelerator.prepare(
        model, optimizer, train_loader, scheduler, *eval_loaders.values())
    eval_loaders = dict(zip(eval_loaders, loaders))
    trainable = [p for p in model.parameters() if p.requires_grad]

    main = accelerator.is_main_process
    position = {"epoch": 1, "batches_done": 0, "step": 0, "samples": 0, "tokens": 0, "train_time": 0.0,
                "epoch_loss": 0.0, "epoch_batches": 0, "history": [], "best": None, "best_epoch": None}
    epoch_start_order = generator.get_state()
    if config.resume and has_checkpoint(run_dir):
        position = load_checkpoint(run_dir, accelerator.unwrap_model(model), optimizer, scheduler, generator)
        epoch_start_order = generator.get_state()

    def checkpoint(next_epoch: int, batches_done: int, epoch_loss: float, epoch_batches: int) -> None:
        if not main:
            return
        position.update(epoch=next_epoch, batches_done=batches_done, step=step, samples=samples, tokens=tokens,
                        train_time=train_time, epoch_loss=epoch_loss, epoch_batches=epoch_batches, history=history,
                        best=best, best_epoch=best_epoch)
        save_checkpoint(run_dir, accelerator.unwrap_model(model), optimizer, scheduler,
                        rng_states(generator, epoch_start_order), position)

    history, best, best_epoch = position["history"], position["best"], position["best_epoch"]

    def finish_epoch(epoch: int, epoch_loss: float, epoch_batches: int) -> None:
        """Evaluate, log, and keep the best epoch's predictions and weights."""
        nonlocal best, best_epoch
        if generation:
            metrics = {"dev_loss": evaluate_loss(accelerator, model, eval_loaders["loss"])}
            # Only the last epoch is decoded and scored, as microsoft/LoRA decodes its last checkpoint:
            # beam search over the test set costs more than an epoch of training.
            improved = epoch == config.epochs
            if improved:
                save_best_weights()  # first: a failure while decoding or scoring must not lose the training
                predictions = decode_splits_sharded(accelerator, model, tokenizer, task, decode_splits, config, progress)
                if main:
                    for suffix, split in decode_splits.items():
                        write_generations(run_dir / f"generations{'_' + suffix if suffix else ''}.jsonl",
                                          split.examples, predictions[suffix])
                metrics.update(score_on_main(accelerator, task, decode_splits, predictions, config.metrics,
                                             run_dir))
        else:
            metrics, predictions = evaluate(accelerator, model, eval_loaders, task, regression)
            improved = best is None or metrics[task.main_metric] > best[task.main_metric]
            if improved:
                save_best_weights()
        mean_loss = accelerator.reduce(torch.tensor(epoch_loss / max(epoch_batches, 1)), "mean").item()
        mean_loss = mean_loss if epoch else None  # epoch 0: the untrained model, no training loss
        history.append({"epoch": epoch, "train_loss": mean_loss, **metrics})
        if improved:
            best, best_epoch = metrics, epoch
        if main:
            tracker.log_metrics({**{f"eval_{k}": v for k, v in metrics.items()},
                                 **({"epoch_train_loss": mean_loss} if epoch else {})}, step=epoch)
            shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
            trained = f"train_loss={mean_loss:.4f} " if epoch else "untrained: "
            print(f"epoch {epoch}: {trained}{shown}{' (best)' if improved else ''}", flush=True)
            if improved and not generation:
                _save_predictions(run_dir, task, evals, predictions)

    def save_best_weights() -> None:
        if not config.save_weights:
            return
        accelerator.wait_for_everyone()
        if main:
            save_weights(accelerator.unwrap_model(model), config.method, resolved.method_options, run_dir / "weights")
            tokenizer.save_pretrained(run_dir / "weights")
    step, samples, tokens, train_time = position["step"], position["samples"], position["tokens"], position["train_time"]
    for epoch in range(position["epoch"], config.epochs + 1):
        model.train()
        skip = position["batches_done"] if epoch == position["epoch"] else 0
        epoch_loss, epoch_batches = (position["epoch_loss"], position["epoch_batches"]) if skip else (0.0, 0)
        if not skip:
            epoch_start_order = generator.get_state()  # this epoch's shuffle is drawn from here
        loader = accelerator.skip_first_batches(train_loader, skip) if skip else train_loader
        bar = tqdm(total=len(train_loader), initial=skip, desc=f"epoch {epoch}/{config.epochs}",
                   disable=not (main and progress), unit="batch", dynamic_ncols=True,
                   mininterval=0.5 if sys.stderr.isatty() else 30)
        tic = time.perf_counter()
        batches_done = skip
        for batch in loader:
            with accelerator.accumulate(model):
                loss = lm_loss(model, batch, config.label_smoothing) if generation else model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            value = loss.item()
            if not math.isfinite(value):
                raise HarnessError(f"training loss became {value} at epoch {epoch}, step {step}; "
                                   f"lower --learning-rate or check the labels.")
            samples += batch["labels"].shape[0]
            tokens += int(batch["attention_mask"].sum())
            epoch_loss, epoch_batches = epoch_loss + value, epoch_batches + 1
            batches_done += 1
            bar.update(1)
            if accelerator.sync_gradients:
                step += 1
                if step % config.log_every == 0:
                    lr = scheduler.get_last_lr()[0]
                    bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}", refresh=False)
                    if main:
                        tracker.log_metrics({"train_loss": value, "learning_rate": lr}, step=step)
                if config.checkpoint_every and step % config.checkpoint_every == 0 and batches_done < len(train_loader):
                    train_time += time.perf_counter() - tic
                    tic = time.perf_counter()
                    checkpoint(epoch, batches_done, epoch_loss, epoch_batches)
        train_time += time.perf_counter() - tic
        bar.close()

        finish_epoch(epoch, epoch_loss, epoch_batches)
        if epoch < config.epochs:
            checkpoint(epoch + 1, 0, 0.0, 0)
    if config.epochs == 0:
        finish_epoch(0, 0.0, 0)  # evaluate the untrained model

    totals = accelerator.reduce(torch.tensor([samples, tokens], dtype=torch.float64), "sum").tolist()
    record.update({
        "best_epoch": best_epoch, "best": best, "history": history, "optimizer_steps": step,
        "learning_rate": resolved.learning_rate,
        "throughput": {"train_time_s": round(train_time, 3),
                       "train_samples_per_s": totals[0] / train_time if train_time else None,
                       "train_tokens_per_s": totals[1] / train_time if train_time else None,
                       "peak_memory_mb": peak_memory_mb()},
    })
    if main:
        tracker.log_metrics({**{f"best_{k}": v for k, v in best.items()}, "best_epoch": best_epoch,
                             **{k: v for k, v in record["throughput"].items() if v is not None and k != "train_time_s"}})


def evaluate_loss(accelerator, model, loader) -> float:
    """Mean target-token loss (no label smoothing) over a loader of encode_pair rows."""
    import torch

    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    with torch.no_grad():
        for batch in loader:
            targets = int((batch["labels"][:, 1:] != -100).sum())
            total += torch.tensor([lm_loss(model, batch).item() * targets, targets], dtype=torch.float64,
                                  device=accelerator.device)
    total = accelerator.reduce(total, "sum")
    return (total[0] / total[1].clamp(min=1)).item()


def decode_settings(config: RunConfig, task: Task) -> DecodeSettings:
    penalty = config.length_penalty if config.length_penalty is not None else task.decode_defaults.get(
        "length_penalty", 1.0)
    return DecodeSettings(num_beams=config.num_beams, length_penalty=penalty,
                          no_repeat_ngram_size=config.no_repeat_ngram_size, max_new_tokens=config.max_new_tokens,
                          batch_size=config.decode_batch_size)


def decode_splits_sharded(accelerator, model, tokenizer, task: Task, splits: dict[str, Split], config: RunConfig,
                          progress: bool) -> dict[str, list[str]]:
    """The decoded text of every split's inputs; each process decodes every world_size-th input."""
    from accelerate.utils import gather_object

    settings = decode_settings(config, task)
    network = accelerator.unwrap_model(model)
    rank, world = accelerator.process_index, accelerator.num_processes
    outputs = {}
    for suffix, split in splits.items():
        mine = list(range(rank, len(split.examples), world))
        texts = decode(network, tokenizer, [split.examples[i].source for i in mine], settings,
                       progress=progress and accelerator.is_main_process, desc=f"decoding {task.name}")
        pieces = gather_object(list(zip(mine, texts))) if world > 1 else list(zip(mine, texts))
        outputs[suffix] = [text for _, text in sorted(pieces)]
    return outputs


def score_on_main(accelerator, task: Task, splits: dict[str, Split], outputs: dict[str, list[str]], metrics,
                  run_dir: Path) -> dict[str, float]:
    """Score on the main process (the jar-based metrics start Java once) and share the result."""
    from accelerate.utils import broadcast_object_list

    result: list[Any] = [None]
    if accelerator.is_main_process:
        try:
            result[0] = {(f"{k}_{suffix}" if suffix else k): v for suffix, split in splits.items()
                         for k, v in task.score(outputs[suffix], split.examples, metrics).items()}
        except HarnessError as err:
            raise HarnessError(f"{err} The outputs are saved in {run_dir}/generations*.jsonl and the weights in "
                               f"{run_dir}/weights; score them later with `harness score`.") from None
    if accelerator.num_processes > 1:
        broadcast_object_list(result)
    return result[0]


def evaluate(accelerator, model, loaders, task: Task, regression: bool):
    import torch

    model.eval()
    metrics, predictions = {}, {}
    for suffix, loader in loaders.items():
        all_preds, all_labels = [], []
        with torch.no_grad():
            for batch in loader:
                logits = model(**batch).logits
                preds = logits.squeeze(-1).float() if regression else logits.argmax(-1)
                preds, labels = accelerator.gather_for_metrics((preds, batch["labels"]))
                all_preds.append(preds.cpu())
                all_labels.append(labels.cpu())
        preds, labels = torch.cat(all_preds).numpy(), torch.cat(all_labels).numpy()
        metrics.update(task.compute_metrics(preds, labels, suffix))
        predictions[suffix] = preds
    return metrics, predictions


def _save_predictions(run_dir: Path, task: Task, evals: dict[str, Split], predictions) -> None:
    for suffix, split in evals.items():
        path = run_dir / f"predictions{'_' + suffix if suffix else ''}.jsonl"
        with open(path, "w", encoding="utf-8") as handle:
            for index, (example, pred) in enumerate(zip(split.examples, predictions[suffix].tolist())):
                row = {"index": index, "label": example.label, "prediction": pred}
                if task.label_names:
                    row["label_name"], row["prediction_name"] = task.label_names[example.label], task.label_names[pred]
                handle.write(json.dumps(row) + "\n")
