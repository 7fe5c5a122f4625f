"""The training loop: one loop, on accelerate, for every task kind, model and method.

``fit`` reads top to bottom: build the loaders from the objective, then for each epoch run the
optimizer steps (``train_epoch``) and evaluate (``end_epoch``), keeping the best epoch by the main
metric's spec (as the paper reports the best epoch). What differs between task kinds (encoding,
loss, evaluation, outputs) is the objective's (harness.tasks.objective); the loop never asks a
task's kind. ``LoopState`` is the loop's position and results: exactly what a checkpoint stores.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.errors import HarnessError
from harness.tasks.objective import Data, EvalContext, selection_metric
from harness.tracking.mlflow import epoch_metrics, step_metrics
from harness.training.batching import eval_loader, train_loader
from harness.training.checkpoint import has_checkpoint, load_checkpoint, rng_states, save_checkpoint
from harness.training.env import peak_memory_mb, reset_training_peak, training_peak_memory_mb, weights_memory_mb
from harness.training.fast_paths import FastPaths


@dataclass
class LoopState:
    epoch: int = 1  # the epoch to run next (a checkpoint mid-epoch: the current one)
    batches_done: int = 0  # batches of that epoch already trained
    step: int = 0  # optimizer steps so far
    samples: int = 0
    tokens: int = 0
    train_time: float = 0.0
    first_step_s: float | None = None  # the run's first optimizer step (with --compile: the compilation)
    first_step_samples: int = 0
    first_step_tokens: int = 0
    epoch_loss: float = 0.0  # summed batch losses of the current epoch
    epoch_batches: int = 0
    history: list[dict] = field(default_factory=list)  # one entry per evaluated epoch
    best: dict[str, float] | None = None
    best_epoch: int | None = None
    stopped_at: int | None = None  # the epoch early stopping (--patience) ended training after


@dataclass
class Loop:
    """The prepared pieces of one run's training, shared by the loop's steps."""

    accelerator: Any
    objective: Any
    task: Any
    config: Any
    data: Data
    model: Any
    tokenizer: Any
    optimizer: Any
    scheduler: Any
    train_loader: Any
    eval_loaders: dict[str, Any]
    generator: Any
    run: Any  # harness.rundir.RunDir
    tracker: Any
    save_method_weights: Callable[[Any, Any], None]  # (unwrapped model, folder)
    method: Any = None  # the MethodSpec, for its training hooks
    method_options: dict = None
    progress: bool = True
    epoch_start_order: Any = None  # the data-order generator state this epoch's shuffle came from
    saved_epoch: int | None = None  # whose weights are in the run folder
    selection: str = ""  # the metric that chooses the best epoch (objective.selection_metric)
    fast_paths: Any = None  # FastPaths: frozen weights cast once, fast dropout masks, packed tokens
    eval_orders: dict[str, list[int]] = field(default_factory=dict)  # per eval loader: the split row of each output

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process


def fit(accelerator, objective, task, model, tokenizer, data: Data, config, learning_rate: float, run, tracker,
        save_method_weights, progress: bool = True, method=None, method_options=None) -> dict[str, Any]:
    """Train and evaluate; returns the results part of the run record."""
    loop = prepare(accelerator, objective, task, model, tokenizer, data, config, learning_rate, run, tracker,
                   save_method_weights, progress, method, method_options or {})
    state = LoopState()
    loop.epoch_start_order = loop.generator.get_state()
    reset_training_peak()
    if config.resume and has_checkpoint(run.path):
        state = LoopState(**load_checkpoint(run.path, plain_model(loop), loop.optimizer, loop.scheduler,
                                            loop.generator))
        loop.epoch_start_order = loop.generator.get_state()
    for epoch in range(state.epoch, config.epochs + 1):
        train_epoch(loop, state, epoch)
        end_epoch(loop, state, epoch)
        if config.patience and state.best_epoch is not None and epoch - state.best_epoch >= config.patience:
            state.stopped_at = epoch  # no improvement for `patience` epochs: the rest of the budget is not spent
            if loop.main:
                print(f"stopping early after epoch {epoch}: {loop.selection} has not improved since epoch "
                      f"{state.best_epoch}", flush=True)
            break
        if epoch < config.epochs:
            state.epoch, state.batches_done, state.epoch_loss, state.epoch_batches = epoch + 1, 0, 0.0, 0
            checkpoint(loop, state)
    if config.epochs == 0:
        end_epoch(loop, state, 0)  # evaluate the untrained model
    return results(loop, state, learning_rate)


def prepare(accelerator, objective, task, model, tokenizer, data, config, learning_rate, run, tracker,
            save_method_weights, progress, method=None, method_options=None) -> Loop:
    """Loaders from the objective (evaluation in length-sorted batches), AdamW with linear warmup and decay,
    all prepared by accelerate."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    collate = objective.collate(tokenizer, config)
    generator = torch.Generator().manual_seed(config.seed)
    training = train_loader(objective.encode(data.train, tokenizer, config) if data.train.examples else [],
                            config.batch_size, config.group_by_length, collate, generator)
    evals = {name: eval_loader(objective.encode(split, tokenizer, config), config.eval_batch_size, collate)
             for name, split in objective.batched_evals(data).items()}
    eval_orders = {name: loader.batch_sampler.order for name, loader in evals.items()}
    # Steps counted on the unsharded loader: accelerate steps the scheduler once per process.
    total_steps = math.ceil(len(training) / config.grad_accum) * config.epochs
    warmup = config.warmup_steps if config.warmup_steps is not None else int(config.warmup_ratio * total_steps)
    hooks = method if method is not None else _NO_HOOKS
    if hooks.before_training and config.epochs:  # before prepare: data-driven inits see the plain model
        hooks.before_training(model, training, total_steps, method_options)
    optimizer = (hooks.optimizer(model, learning_rate, config.weight_decay, method_options) if hooks.optimizer
                 else adamw(model, learning_rate, config.weight_decay))
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
    model, optimizer, training, scheduler, *loaders = accelerator.prepare(
        model, optimizer, training, scheduler, *evals.values())
    fast = FastPaths(model, accelerator.mixed_precision, config.cast_frozen_once, config.fast_dropout,
                     config.padding_free)
    return Loop(accelerator, objective, task, config, data, model, tokenizer, optimizer, scheduler, training,
                dict(zip(evals, loaders)), generator, run, tracker, save_method_weights, method, method_options,
                progress, selection=selection_metric(task, config), fast_paths=fast, eval_orders=eval_orders)


class _NoHooks:
    optimizer = before_training = after_step = None


_NO_HOOKS = _NoHooks()


def adamw(model, learning_rate: float, weight_decay: float):
    """AdamW over the trainable parameters; no weight decay on biases and norms."""
    import torch

    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if parameter.ndim < 2 or "norm" in name.lower() else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=learning_rate)


def train_epoch(loop: Loop, state: LoopState, epoch: int) -> None:
    """One epoch of optimizer steps (the rest of it, when resuming mid-epoch)."""
    from tqdm.auto import tqdm

    accelerator, config, model = loop.accelerator, loop.config, loop.model
    model.train()
    skip = state.batches_done if epoch == state.epoch else 0
    if not skip:
        state.epoch_loss, state.epoch_batches = 0.0, 0
        loop.epoch_start_order = loop.generator.get_state()  # this epoch's shuffle is drawn from here
    batches = accelerator.skip_first_batches(loop.train_loader, skip) if skip else loop.train_loader
    bar = tqdm(total=len(loop.train_loader), initial=skip, desc=f"epoch {epoch}/{config.epochs}",
               disable=not (loop.main and loop.progress), unit="batch", dynamic_ncols=True,
               mininterval=0.5 if sys.stderr.isatty() else 30)
    trainable = [p for p in model.parameters() if p.requires_grad]
    tic, batches_done = time.perf_counter(), skip
    with loop.fast_paths.in_use():  # frozen weights cast once (mixed precision), --fast-dropout, --padding-free
        for batch in batches:
            with accelerator.accumulate(model):
                loss = loop.objective.loss(model, batch, config)
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
                loop.optimizer.step()
                if loop.method is not None and loop.method.after_step and accelerator.sync_gradients:
                    loop.method.after_step(plain_model(loop), state.step + 1, loop.method_options)
                loop.scheduler.step()
                loop.optimizer.zero_grad(set_to_none=True)
            value = loss.item()
            if not math.isfinite(value):
                raise HarnessError(f"training loss became {value} at epoch {epoch}, step {state.step}; "
                                   f"lower --learning-rate or check the labels.")
            state.samples += batch["labels"].shape[0]
            state.tokens += int(batch["attention_mask"].sum())
            state.epoch_loss, state.epoch_batches = state.epoch_loss + value, state.epoch_batches + 1
            batches_done += 1
            bar.update(1)
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            if state.first_step_s is None:
                state.first_step_s, state.first_step_samples, state.first_step_tokens = \
                    time.perf_counter() - tic, state.samples, state.tokens
            if state.step % config.log_every == 0:
                learning_rate = loop.scheduler.get_last_lr()[0]
                bar.set_postfix(loss=f"{value:.4f}", lr=f"{learning_rate:.2e}", refresh=False)
                if loop.main:
                    loop.tracker.log_metrics(step_metrics(value, learning_rate), step=state.step)
            if config.checkpoint_every and state.step % config.checkpoint_every == 0 \
                    and batches_done < len(loop.train_loader):
                state.train_time, tic = state.train_time + time.perf_counter() - tic, time.perf_counter()
                state.epoch, state.batches_done = epoch, batches_done
                checkpoint(loop, state)
        state.train_time += time.perf_counter() - tic
    bar.close()


def end_epoch(loop: Loop, state: LoopState, epoch: int) -> None:
    """Evaluate, log, and keep the best epoch's outputs and weights (by the main metric's spec)."""
    import torch

    task, last = loop.task, epoch == loop.config.epochs
    context = EvalContext(loop.accelerator, loop.model, loop.tokenizer, task, loop.config, loop.data,
                          loop.eval_loaders, loop.run, lambda: save_weights(loop, epoch), loop.progress,
                          orders=loop.eval_orders)
    with loop.fast_paths.evaluating():  # --padding-free
        evaluation = loop.objective.evaluate(context, epoch, last)
    metrics, score = evaluation.metrics, evaluation.metrics.get(loop.selection)
    if score is None:  # not evaluated on this epoch; if no epoch was, the last one is reported
        improved = last and state.best is None
    else:
        improved = task.main_spec.better(score, (state.best or {}).get(loop.selection))
    if improved:
        save_weights(loop, epoch)
    mean_loss = loop.accelerator.reduce(torch.tensor(state.epoch_loss / max(state.epoch_batches, 1)), "mean").item()
    mean_loss = mean_loss if epoch else None  # epoch 0: the untrained model, no training loss
    state.history.append({"epoch": epoch, "train_loss": mean_loss, **metrics})
    if improved:
        state.best, state.best_epoch = metrics, epoch
    if not loop.main:
        return
    loop.tracker.log_metrics(epoch_metrics(metrics, mean_loss), step=epoch)
    shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
    trained = f"train_loss={mean_loss:.4f} " if epoch else "untrained: "
    print(f"epoch {epoch}: {trained}{shown}{' (best)' if improved else ''}", flush=True)
    if improved and evaluation.outputs is not None:
        loop.objective.write_outputs(loop.run, loop.data, evaluation.outputs)


def plain_model(loop: Loop):
    """The model without accelerate's wrappers or --compile's: the parameter names are the model's own
    (what weights, checkpoints and method hooks read and write)."""
    return loop.accelerator.unwrap_model(loop.model, keep_torch_compile=False)


def save_weights(loop: Loop, epoch: int) -> None:
    """Save the current weights as the run's (once per epoch; every process must call it)."""
    if not loop.config.save_weights or loop.saved_epoch == epoch:
        return
    loop.accelerator.wait_for_everyone()
    if loop.main:
        loop.save_method_weights(plain_model(loop), loop.run.weights)
        loop.tokenizer.save_pretrained(loop.run.weights)
    loop.saved_epoch = epoch


def checkpoint(loop: Loop, state: LoopState) -> None:
    if loop.main:
        save_checkpoint(loop.run.path, plain_model(loop), loop.optimizer, loop.scheduler,
                        rng_states(loop.generator, loop.epoch_start_order), asdict(state))


def results(loop: Loop, state: LoopState, learning_rate: float) -> dict[str, Any]:
    import torch

    totals = loop.accelerator.reduce(torch.tensor([state.samples, state.tokens, state.first_step_samples,
                                                   state.first_step_tokens], dtype=torch.float64), "sum").tolist()
    seconds = state.train_time
    # Past the first step: the rate a longer run approaches (compilation and warm-up excluded).
    steady = seconds - (state.first_step_s or 0.0)
    measured = state.step > 1 and steady > 0
    return {
        "best_epoch": state.best_epoch, "best": state.best, "history": state.history,
        "selected_on": loop.selection, "stopped_early_at": state.stopped_at,
        "optimizer_steps": state.step, "learning_rate": learning_rate,
        "throughput": {"train_time_s": round(seconds, 3),
                       "train_samples_per_s": totals[0] / seconds if seconds else None,
                       "train_tokens_per_s": totals[1] / seconds if seconds else None,
                       "first_step_s": round(state.first_step_s, 3) if state.first_step_s is not None else None,
                       "steady_samples_per_s": (totals[0] - totals[2]) / steady if measured else None,
                       "steady_tokens_per_s": (totals[1] - totals[3]) / steady if measured else None,
                       "peak_memory_mb": peak_memory_mb(),
                       "training_peak_memory_mb": training_peak_memory_mb(),
                       "weights_memory_mb": weights_memory_mb(plain_model(loop))},
    }
