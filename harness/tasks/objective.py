"""The training objective of a task kind: everything the loop must not know.

An objective owns what differs between task kinds: which model class to load, which examples are
trained and evaluated, how examples become token rows and batches, the loss, the evaluation
(decoding and scoring included) and the files it writes. The loop (harness.training.loop.fit)
calls only these methods, so it never branches on a task's kind.

Built in: 'classification' and 'regression' (harness.tasks.classification) and 'generation'
(harness.tasks.generation). A new kind is one class registered with ``OBJECTIVES.add(kind, obj)``,
named by import path (``type: my_pkg.objectives:MyObjective`` in a task) or published under the
entry-point group ``harness.objectives``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.registry import Registry, is_import_ref, load_object
from harness.tasks.base import Split


HELDOUT = "heldout"  # the eval split of --select-on heldout; its metrics are named <metric>_heldout


def selection_metric(task, config) -> str:
    """The metric that chooses the best epoch (and stops early): the task's main metric on the dev set,
    or on the held-out training slice with --select-on heldout."""
    return f"{task.main_metric}_{HELDOUT}" if config.select_on == HELDOUT else task.main_metric


@dataclass
class Data:
    """What a run trains on and evaluates: splits already cut to the run's subset sizes."""

    train: Split
    evals: dict[str, Split]  # by name: '' (the dev set), 'm'/'mm' (MNLI), 'loss' (generation's dev loss)
    label_names: list[str] | None = None  # classification: class names in id order, once the data is read


@dataclass
class Evaluation:
    metrics: dict[str, float]
    outputs: Any = None  # what write_outputs writes when this epoch is the best so far


@dataclass
class EvalContext:
    """What an objective's evaluate may use: the prepared model and loaders, the run folder, and a
    way to save the weights before an evaluation that might fail (decoding, external scorers)."""

    accelerator: Any
    model: Any
    tokenizer: Any
    task: Any
    config: Any
    data: Data
    loaders: dict[str, Any]  # prepared evaluation loaders (length-sorted batches) for the splits of ``batched_evals``
    run: Any  # harness.rundir.RunDir
    save_weights: Callable[[], None]
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    # Per loader: the split row of each output it gives (``in_split_order`` restores the split's order).
    orders: dict[str, list[int]] = field(default_factory=dict)


class Objective(Protocol):
    def load_model(self, spec, task, config) -> tuple[Any, Any, list[str]]:
        """(model, tokenizer, task-head module names) for this kind of task."""

    def load_data(self, task, config) -> Data:
        """The training and evaluation splits, cut to ``config``'s subset sizes."""

    def batched_evals(self, data: Data) -> dict[str, Split]:
        """The evaluation splits the loop should batch (through encode and collate) for evaluate."""

    def encode(self, split: Split, tokenizer, config) -> list[dict]:
        """Token rows: input_ids, attention_mask and labels (the loop reads no other key)."""

    def collate(self, tokenizer, config) -> Callable[[list[dict]], dict]:
        """The batch builder of encoded rows."""

    def loss(self, model, batch, config):
        """The scalar training loss of one batch."""

    def evaluate(self, ctx: EvalContext, epoch: int, last: bool) -> Evaluation:
        """Metrics after an epoch (``last``: the final one); may also return outputs to keep."""

    def write_outputs(self, run, data: Data, outputs) -> None:
        """Write the best epoch's outputs (e.g. per-example predictions) into the run folder."""

    def describe(self, task, config) -> dict[str, Any]:
        """Extra fields of the run record (e.g. decoding settings)."""


OBJECTIVES: Registry[Objective] = Registry(
    "task kind", group="harness.objectives",
    hint="A new kind is an Objective (harness.tasks.objective) registered with OBJECTIVES.add or named by import path.")
OBJECTIVES.add_lazy("classification", "harness.tasks.classification:CLASSIFICATION")
OBJECTIVES.add_lazy("regression", "harness.tasks.classification:REGRESSION")
OBJECTIVES.add_lazy("generation", "harness.tasks.generation:GENERATION")


def get_objective(kind: str) -> Objective:
    if kind not in OBJECTIVES and is_import_ref(kind):
        found = load_object(kind, "task kind")
        return found() if isinstance(found, type) else found
    return OBJECTIVES.get(kind)


def in_split_order(outputs, order: list[int]):
    """Outputs given in a loader's ``order`` (a numpy array or a tensor), in the split's order."""
    position = [0] * len(order)
    for k, row in enumerate(order):
        position[row] = k
    return outputs[position]


def pad_multiple(config) -> int | None:
    """The multiple a training batch's length is padded to: 8 under mixed precision on a GPU, whose
    tensor cores want such shapes. A CPU gains nothing from it (a batch's rows already make the GEMMs'
    m a multiple of 32 at batch 32) and pays for the padded positions: bf16 MiniLM-L6 steps on
    length-grouped SST-2 batches of 32 ran 1.18x faster without it over the same batches again,
    1.04x over an epoch in a fresh process, where the extra lengths cost oneDNN new kernels (paired,
    reports/bench/fast_paths_ab.json)."""
    import torch

    return 8 if config.mixed_precision != "no" and torch.cuda.is_available() else None
