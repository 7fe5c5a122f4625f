"""Experiment files: a base run config plus grid axes, expanded into cells (one run each).

    name: table2-roberta-base
    description: ...
    base:                       # RunConfig keys shared by every cell (as `harness run --config`)
      model: roberta-base
      method: lora
    axes:                       # the grid is the product of the axes, in this order
      task:                     # an axis of variants: each a dict of overrides
        - {task: glue/mnli, batch_size: 16, epochs: 30}
        - {task: glue/sst2, batch_size: 16, epochs: 60}
      seed: [0, 1, 2, 3, 4]     # shorthand: one key, a list of values
    variants:                   # named alternatives (--variant NAME): override rules applied to
      scripts:                  # every cell after the axes, or to those that 'when' selects
        - {method_options: {alpha: 16}, grad_accum: 8}
        - {when: {task: glue/cola}, grad_accum: 2}
    launch:                     # how each cell runs (harness grid)
      num_processes: 1          # > 1: through `accelerate launch --multi_gpu`

Each cell has a stable id: a hash of its resolved config, so a rerun recognises finished cells.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.config import RunConfig, read_yaml_mapping
from harness.errors import HarnessError, check_keys

FILE_KEYS = {"name", "description", "base", "axes", "variants", "launch"}
LAUNCH_KEYS = {"num_processes"}
# Where a cell reads and writes, and how it logs, do not change what it computes: left out of its id,
# so the same grid resumes from another data path or results folder.
NOT_IN_ID = {"output_dir", "run_name", "tracking_uri", "experiment", "save_weights", "log_every",
             "checkpoint_every", "resume", "data_dir", "include_tasks"}
# The fields of the first cell ids: always hashed, so the ids of committed grids never change. Every
# field added since (and any added later) enters a cell's id only when it differs from its default,
# so adding a field with a default never renames a grid's cells (a resumed grid skips what it ran).
FIRST_ID_FIELDS = {
    "batch_size", "data_seed", "epochs", "eval_batch_size", "eval_file", "grad_accum", "init_from", "label_column",
    "labels", "learning_rate", "max_eval_samples", "max_grad_norm", "max_seq_length", "max_train_samples", "method",
    "method_options", "mixed_precision", "model", "quantize", "seed", "task", "task_type", "text_column",
    "text_pair_column", "train_file", "trust_remote_code", "warmup_ratio", "warmup_steps", "weight_decay",
}


@dataclass
class Cell:
    id: str
    config: RunConfig
    labels: dict[str, Any] = field(default_factory=dict)  # the axis values that make this cell
    depends_on: str | None = None  # the id of the cell whose weights this one starts from


@dataclass
class Experiment:
    name: str
    path: Path
    description: str
    cells: list[Cell]
    launch: dict[str, Any]
    variant: str | None = None

    @property
    def num_processes(self) -> int:
        """Processes per cell (> 1: through `accelerate launch`)."""
        return int(self.launch.get("num_processes", 1))

    def run_name(self, cell: Cell) -> str:
        """A cell's run folder name: '<experiment>-<cell id>' (results readers parse it back)."""
        return f"{self.name}-{cell.id}"


def merge(base: dict, override: dict) -> dict:
    """``override`` on top of ``base``; method_options merge key by key."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if key == "method_options" and isinstance(value, dict):
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def cell_id(config: RunConfig) -> str:
    return identity_hash(config.to_dict(), {f.name: f.default for f in dataclasses.fields(RunConfig)})


def identity_hash(values: dict[str, Any], defaults: dict[str, Any]) -> str:
    """12 hex digits of the settings that change what a cell computes (see FIRST_ID_FIELDS)."""
    kept = {k: v for k, v in values.items()
            if k not in NOT_IN_ID and (k in FIRST_ID_FIELDS or v != defaults.get(k))}
    return hashlib.sha1(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _axis_variants(name: str, axis, where: str) -> list[dict]:
    if isinstance(axis, list) and all(isinstance(v, dict) for v in axis):
        return axis
    if isinstance(axis, list):
        return [{name: value} for value in axis]
    raise HarnessError(f"{where}: axis '{name}' must be a list of values or a list of mappings.")


def _link_dependencies(cells: list[Cell], where: str) -> None:
    """Resolve `init_from: "cell:task=glue/mnli"`: the cell with this cell's axis values except
    those given (the paper starts MRPC, RTE and STS-B from the same seed's MNLI run)."""
    for cell in cells:
        reference = cell.config.init_from
        if not reference or not reference.startswith("cell:"):
            continue
        wanted = dict(cell.labels)
        for pair in reference.removeprefix("cell:").split(","):
            key, _, value = pair.partition("=")
            if key not in wanted:
                raise HarnessError(f"{where}: init_from '{reference}' names '{key}', which is not an axis "
                                   f"({', '.join(wanted)}).")
            wanted[key] = yaml.safe_load(value)
        matches = [other for other in cells if {k: str(v) for k, v in other.labels.items()}
                   == {k: str(v) for k, v in wanted.items()}]
        if len(matches) != 1 or matches[0] is cell:
            raise HarnessError(f"{where}: init_from '{reference}' of cell {cell.labels} matches no other cell.")
        cell.depends_on = matches[0].id


def load_experiment(path: str | Path, variant: str | None = None, overrides: dict | None = None) -> Experiment:
    path = Path(path)
    where = str(path)
    spec = read_yaml_mapping(path, "experiment file")
    check_keys(spec, FILE_KEYS, where)
    run_keys = {f for f in RunConfig.__dataclass_fields__}
    base = spec.get("base") or {}
    check_keys(base, run_keys, f"{where} (base)")
    variants = spec.get("variants") or {}
    rules = []
    if variant is not None:
        if variant not in variants:
            raise HarnessError(f"{where}: no variant '{variant}'; variants: {', '.join(variants) or 'none'}.")
        rules = variants[variant] if isinstance(variants[variant], list) else [variants[variant]]
        for rule in rules:
            check_keys(rule, run_keys | {"when"}, f"{where} (variant {variant})")
    axes = spec.get("axes") or {}
    expanded = []
    for name, axis in axes.items():
        options = _axis_variants(name, axis, where)
        for option in options:
            check_keys(option, run_keys, f"{where} (axis {name})")
        expanded.append([(name, option) for option in options])
    cells, seen = [], set()
    for combination in itertools.product(*expanded):
        values, labels = base, {}
        for name, option in combination:
            values = merge(values, option)
            labels[name] = option.get(name, next(iter(option.values()))) if len(option) else None
        for rule in rules:  # a variant: rules applied to every cell, or to the cells its 'when' selects
            when = rule.get("when", {})
            if all(str(labels.get(k)) == str(v) for k, v in when.items()):
                values = merge(values, {k: v for k, v in rule.items() if k != "when"})
        values = merge(values, overrides or {})
        config = RunConfig.from_dict(values, where=where)
        identity = cell_id(config)
        if identity in seen:
            raise HarnessError(f"{where}: two cells have the same config ({labels}); remove the duplicate.")
        seen.add(identity)
        cells.append(Cell(identity, config, labels))
    _link_dependencies(cells, where)
    launch = spec.get("launch") or {}
    check_keys(launch, LAUNCH_KEYS, f"{where} (launch)")
    name = spec.get("name") or path.stem
    return Experiment(name + (f"-{variant}" if variant else ""), path, spec.get("description", ""), cells,
                      launch, variant)
