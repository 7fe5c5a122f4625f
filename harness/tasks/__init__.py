"""The task registry: GLUE, E2E/WebNLG/DART, task YAML files (built-in and the user's), and ad-hoc
file tasks.

A task YAML file declares a task, the way lm-evaluation-harness declares tasks. Classification or
regression::

    task: imdb
    type: classification          # or regression
    dataset: stanfordnlp/imdb     # a hub dataset ...
    files: {train: train.csv, dev: dev.csv}   # ... or local files (paths relative to the YAML)
    train_split: train
    eval_split: test
    text_column: text
    text_pair_column: null
    label_column: label
    labels: [neg, pos]            # optional: inferred from the training data
    metrics: [accuracy]           # registered metrics, pkg.mod:spec, or evaluate:NAME (a cached evaluate metric)

Generation (data-to-text with a causal LM; rows sharing a source are one input with several references)::

    task: my-d2t
    type: generation
    files: {train: train.csv, dev: dev.csv, test: test.csv}
    source_column: mr
    target_column: ref
    scorer: e2e                   # e2e (BLEU NIST METEOR ROUGE-L CIDEr chrF), webnlg (BLEU METEOR TER chrF), pkg.mod:fn
    metrics: [bleu, nist]         # the scorer's metrics (default: all) or evaluate:NAME; the first is the main one
    eval_split: test              # decoded and scored after the last epoch
    loss_split: dev               # its target-token loss is computed after every epoch
    length_penalty: 0.9           # beam search default for this task

Any other ``type`` names a registered objective (harness.tasks.objective), e.g. a user's
``my_pkg.objectives:MyObjective``, and reads the classification keys.

Drop such files in a folder and pass it with --include-tasks (or $HARNESS_TASK_PATH), or pass
the YAML path itself as the task name.
"""

from __future__ import annotations

import copy
import inspect
import os
from collections.abc import Callable
from pathlib import Path

import yaml

from harness.errors import HarnessError, check_keys
from harness.registry import Registry
from harness.tasks.base import ColumnSpec, Example, GenerationExample, Split, Task, resolve_data_dir
from harness.tasks.glue import glue_tasks
from harness.tasks.nlg import nlg_tasks
from harness.tasks.objective import get_objective
from harness.tasks.sources import FileSource, HubSource

__all__ = ["Example", "GenerationExample", "Split", "Task", "TASKS", "find_task", "get_task", "file_task", "resolve_data_dir", "task_from_yaml"]

TASK_PATH_ENV = "HARNESS_TASK_PATH"
BUILTIN_TASK_DIR = Path(__file__).parent / "configs"

TASKS: Registry[Callable[[], Task]] = Registry(
    "task", hint="Add one with a task YAML file (see `harness tasks --help`) or use 'csv' with --train-file/--eval-file."
)
for _task in glue_tasks() + nlg_tasks():
    TASKS.add(_task.name, lambda _task=_task: copy.deepcopy(_task))

YAML_KEYS = {
    "task", "type", "dataset", "dataset_config", "files", "train_split", "eval_split", "text_column",
    "text_pair_column", "label_column", "labels", "metrics", "main_metric", "description", "quoting",
}
GENERATION_KEYS = {"task", "type", "files", "train_split", "eval_split", "loss_split", "source_column",
                   "target_column", "scorer", "metrics", "main_metric", "length_penalty", "description"}


def task_from_yaml(path: str | os.PathLike) -> Task:
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise HarnessError(f"{path}: cannot read task YAML ({str(err).splitlines()[0]}).") from None
    if not isinstance(spec, dict):
        raise HarnessError(f"{path}: a task YAML file must be a mapping of keys to values.")
    if "task" not in spec:
        raise HarnessError(f"{path}: missing key 'task' (the task's name).")
    if spec.get("type") == "generation":
        return generation_task_from_yaml(spec, path)
    check_keys(spec, YAML_KEYS, str(path))
    columns = ColumnSpec(
        spec.get("text_column", "text"), spec.get("label_column", "label"), spec.get("text_pair_column")
    )
    train_split, eval_split = spec.get("train_split", "train"), spec.get("eval_split", "dev")
    if ("dataset" in spec) == ("files" in spec):
        raise HarnessError(f"{path}: give exactly one of 'dataset' (hub) or 'files' (local).")
    if "dataset" in spec:
        source = HubSource(spec["dataset"], columns, spec.get("dataset_config"))
    else:
        if spec.get("quoting", "csv") not in ("csv", "none"):
            raise HarnessError(f"{path}: quoting must be 'csv' (fields may be quoted) or 'none' (quotes are text, "
                               f"as in GLUE's TSV files), got '{spec['quoting']}'.")
        source = FileSource(dict(spec["files"]), columns, base_dir=path.parent,
                            quote_fields=spec.get("quoting", "csv") == "csv")
    return build_task(
        spec["task"], spec.get("type", "classification"), source, spec.get("labels"), spec.get("metrics"),
        spec.get("main_metric"), train_split, eval_split, spec.get("description", f"from {path}"), where=str(path),
    )


def generation_task_from_yaml(spec: dict, path: Path) -> Task:
    from harness.metrics.nlg import get_scorer
    from harness.tasks.nlg import GenerationFileSource

    check_keys(spec, GENERATION_KEYS, str(path))
    for key in ("files", "source_column", "target_column"):
        if key not in spec:
            raise HarnessError(f"{path}: a generation task needs '{key}' (see `harness tasks --help`).")
    scorer = spec.get("scorer", "e2e")
    metrics = spec.get("metrics") or inspect.signature(get_scorer(scorer)).parameters["metrics"].default
    if not metrics or metrics is inspect.Parameter.empty:
        raise HarnessError(f"{path}: give 'metrics' (scorer '{scorer}' declares no default metrics).")
    metrics = list(metrics)
    main = spec.get("main_metric", metrics[0])
    decode = {"length_penalty": float(spec["length_penalty"])} if "length_penalty" in spec else {}
    source = GenerationFileSource(dict(spec["files"]), spec["source_column"], spec["target_column"], path.parent)
    return Task(name=spec["task"], kind="generation", metrics=metrics, main_metric=main, source=source,
                scorer=scorer, train_split=spec.get("train_split", "train"), loss_split=spec.get("loss_split", "dev"),
                eval_splits={"": spec.get("eval_split", "test")}, decode_defaults=decode,
                description=spec.get("description", f"from {path}"))


def build_task(name, kind, source, labels=None, metrics=None, main_metric=None, train_split="train",
               eval_split="dev", description="", where="") -> Task:
    if kind not in ("classification", "regression"):
        get_objective(kind)  # an unknown kind fails here, with the kinds there are
    metrics = list(metrics or (["pearson", "spearman"] if kind == "regression" else ["accuracy"]))
    return Task(
        name=name, kind=kind, metrics=metrics, main_metric=main_metric or metrics[0], source=source,
        label_names=[str(label) for label in labels] if labels else None, train_split=train_split,
        eval_splits={"": eval_split}, description=description,
    )


def file_task(train_file, eval_file, text_column="text", label_column="label", text_pair_column=None,
              kind="classification", labels=None, metrics=None, name="csv") -> Task:
    """The ad-hoc task of `harness run csv --train-file … --eval-file …`."""
    if not train_file or not eval_file:
        raise HarnessError("task 'csv' needs --train-file and --eval-file (CSV, TSV, JSONL or JSON).")
    source = FileSource({"train": str(train_file), "dev": str(eval_file)},
                        ColumnSpec(text_column, label_column, text_pair_column))
    return build_task(name, kind, source, labels, metrics, description=f"{train_file} -> {eval_file}")


def _register_yaml_dir(folder: Path) -> None:
    for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
        name = task_from_yaml(path).name  # validates the file when it is found, not when it is used
        if name not in TASKS:
            TASKS.add(name, lambda path=path: task_from_yaml(path))


def include_task_dirs(dirs=()) -> None:
    """Register the YAML tasks of the built-in folder, $HARNESS_TASK_PATH and ``dirs``."""
    env = [d for d in os.environ.get(TASK_PATH_ENV, "").split(os.pathsep) if d]
    for folder in [BUILTIN_TASK_DIR, *map(Path, env), *map(Path, dirs)]:
        if not folder.is_dir():
            raise HarnessError(f"task folder '{folder}' does not exist (from --include-tasks or ${TASK_PATH_ENV}).")
        _register_yaml_dir(folder)


def get_task(name: str, include_dirs=()) -> Task:
    """A fresh Task for a registered name or a path to a task YAML file."""
    if name.endswith((".yaml", ".yml")):
        if not Path(name).is_file():
            raise HarnessError(f"task file '{name}' does not exist.")
        return task_from_yaml(name)
    include_task_dirs(include_dirs)
    return TASKS.get(name)()


def find_task(name: str) -> Task | None:
    """The registered task of this name, or None (a run's task may be a file that is gone): for
    readers of finished runs, which fall back to the metric names alone. A broken task folder or
    YAML file does not hide the built-in tasks."""
    factory = TASKS.find(name)
    if factory is None:
        try:
            include_task_dirs()
            factory = TASKS.find(name)
        except HarnessError:
            return None
    return factory() if factory is not None else None
