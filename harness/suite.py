"""Suites: a named, versioned benchmark of methods on fixed tasks, for a leaderboard against a reference.

    name: cpu-quick
    version: 1                    # bump when anything below changes what a cell computes
    seeds: [0, 1, 2]
    reference: lora               # every verdict is a method against this entry
    floor: head                   # optional: an entry every method should beat (e.g. linear probing); verdicts too
    defaults: {...}               # RunConfig keys every cell shares (the frozen training config)
    tasks:                        # name: RunConfig keys of the task (task, model, budget)
      sst2: {task: glue/sst2, model: minilm-l6, max_train_samples: 1000, epochs: 2}
    search:                       # the learning rate of each method x model, chosen on held-out training data
      task: {minilm-l6: sst2}     # the task each model's search runs on (its rate serves all the model's tasks)
      per_task: false             # true: a search on every task instead (the paper tunes per task)
      factors: [0.3, 1, 3]        # times the entry's starting rate
      extend: 1                   # a best rate at an edge adds the next factor beyond it (this many times)
      heldout_samples: 500        # training examples held out (the reported dev/test sets are never used)
      seed: 0
      metric: {e2e: dev_loss}     # what a task's search selects on (default: its main metric)
      settings: {e2e: {...}}      # RunConfig keys of a task's search cells only
    methods_from: cpu-quick       # optional: another suite's method entries (this file's override them)
    methods:                      # entry name: how the method runs
      lora: {method: lora, method_options: {r: 8}, learning_rate: 3.0e-3}
      vera: {method: peft:VERA, learning_rate: {minilm-l6: 1.0e-2, smollm2-135m: 3.0e-3},
             model_options: {smollm2-135m: {r: 128}},           # per-model option overrides
             override: {why: "...", batch_size: 8}}              # frozen defaults changed, with the reason
      lora_r64: {method: lora, method_options: {r: 64}, rate_from: lora}  # the rate lora's search chose
      wq_r8: {same_as: "table5-cpu:wq"}  # another suite's entry: its runs are this entry's (same cells)

A method's entry may change the frozen defaults only through ``override``, whose ``why`` is printed
on the board. A method not listed (a plugin: ``file.py:OBJ`` or ``pkg.mod:obj``) runs with its own
default options and learning rate as the search centre.

``run_suite`` runs what is missing: the search cells, then the chosen rate's cells (tasks x seeds),
then the inference-overhead measurement; every step is a grid (resumable, finished cells skipped)
or a file written once. An entry ``same_as`` another suite's entry runs (what is missing of) that
entry in its own suite's folder and uses those runs, refused unless this suite would compute exactly
the same cells (so two tables share runs instead of training them twice, and nothing differing in more
than the seed is pooled). ``<output>/entries/<entry>.json`` records what ran: the search's scores and
choice, the cells, the inference timing. The leaderboard reads those files and the run folders.
"""

from __future__ import annotations

import copy
import json
import re
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.config import RunConfig, read_yaml_mapping
from harness.errors import HarnessError, check_keys, error_line
from harness.grid.experiments import Cell, Experiment, cell_id, merge
from harness.rundir import RunDir, write_json

SUITE_KEYS = {"name", "version", "description", "seeds", "reference", "floor", "defaults", "tasks", "search", "methods",
              "methods_from"}
SEARCH_KEYS = {"task", "factors", "extend", "heldout_samples", "seed", "metric", "settings", "per_task"}
ENTRY_KEYS = {"method", "method_options", "model_options", "learning_rate", "rate_from", "override", "note", "same_as",
              "tasks"}
SUITES_DIR = Path("experiments") / "suites"
NAME = re.compile(r"^[a-z0-9][a-z0-9_.]*$")


@dataclass
class MethodEntry:
    name: str
    method: str
    method_options: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, dict] = field(default_factory=dict)
    learning_rate: float | dict[str, float] | None = None  # the search's centre, for all models or per model
    override: dict[str, Any] = field(default_factory=dict)  # RunConfig keys; its 'why' is kept apart
    why: str = ""
    note: str = ""
    listed: bool = True  # False: a plugin added from the command line
    rate_from: str | None = None  # another entry whose searched rate this one uses (e.g. every rank of a weight set)
    same_as: str | None = None  # 'suite:entry' of another suite whose runs are this entry's
    tasks: list[str] | None = None  # the suite's tasks this entry runs on (None: all of them)

    def runs_on(self, task_name: str) -> bool:
        return self.tasks is None or task_name in self.tasks

    def options_for(self, model: str) -> dict[str, Any]:
        return {**self.method_options, **self.model_options.get(model, {})}

    def centre(self, model: str) -> float:
        """The search's starting rate on ``model``: the entry's, else the method's default there."""
        if isinstance(self.learning_rate, dict) and model in self.learning_rate:
            return float(self.learning_rate[model])
        if isinstance(self.learning_rate, (int, float)):
            return float(self.learning_rate)
        from harness.training.runner import resolve

        return resolve(RunConfig(model=model, method=self.method, method_options=self.options_for(model),
                                 tracking_uri="none")).learning_rate


@dataclass
class Suite:
    name: str
    version: int
    path: Path
    description: str
    seeds: list[int]
    reference: str
    defaults: dict[str, Any]
    tasks: dict[str, dict[str, Any]]
    search: dict[str, Any]
    methods: dict[str, MethodEntry]
    smoke_run: bool = False  # every cell capped as `grid --smoke` caps it, on the real models (see smoke())
    floor: str | None = None  # an entry every method should beat (linear probing): the board's second verdicts

    @property
    def slug(self) -> str:
        """'cpu-quick-v1': names the results folder and every cell's experiment."""
        return f"{self.name}-v{self.version}"

    def models(self) -> list[str]:
        return list(dict.fromkeys(task["model"] for task in self.tasks.values()))

    def search_units(self) -> dict[str, str]:
        """Where learning rates are searched, as {rate key: task}: one search per model (on its
        search.task), or with search.per_task one per task. Chosen rates are keyed the same way."""
        if self.search.get("per_task"):
            return {name: name for name in self.tasks}
        return {model: self.search["task"][model] for model in self.models()}

    def rate_key(self, task_name: str) -> str:
        """Which chosen rate a task's cells train with."""
        return task_name if self.search.get("per_task") else self.tasks[task_name]["model"]

    def entry(self, name: str) -> MethodEntry:
        """A listed entry by name, or a method reference (a plugin) as an entry of its own."""
        if name in self.methods:
            return self.methods[name]
        from harness.methods import get_method

        spec = get_method(name)  # fails with the registry's one-line error on an unknown name
        slug = re.sub(r"[^a-z0-9_.]+", "_", spec.name.lower().rsplit(":", 1)[-1]).strip("_") or "plugin"
        if slug in self.methods:
            slug = f"{slug}_plugin"
        return MethodEntry(slug, name, listed=False)

    # -- the cells -------------------------------------------------------------------------------

    def _config(self, task_name: str, entry: MethodEntry, extra: dict[str, Any]) -> RunConfig:
        task = self.tasks[task_name]
        values = merge(merge(self.defaults, task), {"method": entry.method,
                                                    "method_options": entry.options_for(task["model"])})
        values = merge(merge(values, entry.override), extra)
        config = RunConfig.from_dict(values, where=f"{self.path} ({entry.name} on {task_name})")
        if self.smoke_run:
            from harness.grid.smoke import smoke_config

            config = smoke_config(config, random_model=False)
        return config

    def _experiment(self, name: str, cells: list[Cell]) -> Experiment:
        return Experiment(name, self.path, self.description, cells, {})

    def search_experiment(self, entry: MethodEntry, key: str, factors: list[float] | None = None) -> Experiment:
        task_name = self.search_units()[key]
        model = self.tasks[task_name]["model"]
        # The held-out slice replaces the reported sets in a search cell (select_on dev: nothing else is
        # evaluated), whatever the suite's cells select their epoch on.
        settings = {**self.search.get("settings", {}).get(task_name, {}),
                    "heldout_samples": self.search["heldout_samples"], "seed": self.search["seed"], "select_on": "dev"}
        cells = []
        for factor in factors or self.search["factors"]:
            rate = float(f"{entry.centre(model) * factor:.3g}")
            config = self._config(task_name, entry, {**settings, "learning_rate": rate})
            cells.append(Cell(cell_id(config), config, {"task": task_name, "learning_rate": rate}))
        return self._experiment(f"{self.slug}-{entry.name}-search-{_slug(key)}", cells)

    def experiment(self, entry: MethodEntry, rates: dict[str, float]) -> Experiment:
        """The entry's scored cells: every task of the entry whose model has a chosen rate, every seed."""
        cells = []
        for task_name in self.tasks:
            rate = rates.get(self.rate_key(task_name))
            if rate is None or not entry.runs_on(task_name):
                continue
            for seed in self.seeds:
                config = self._config(task_name, entry, {"learning_rate": rate, "seed": seed})
                cells.append(Cell(cell_id(config), config, {"task": task_name, "seed": seed}))
        return self._experiment(f"{self.slug}-{entry.name}", cells)

    def output_dir(self, root: str | Path = "results/leaderboard") -> Path:
        return Path(root) / self.slug

    def smoke(self) -> Suite:
        """The same entries with every cell capped as `harness grid --smoke` caps a cell (2 optimizer
        steps, 8 examples per evaluation set, 2 decoded inputs of at most 8 new tokens) but on the real
        models, one seed and one search candidate, named ``<name>-smoke`` (its own folder: nothing mixes
        with the real board). Whether a method fits every task shows in minutes, not after an hour."""
        return replace(self, name=f"{self.name}-smoke", seeds=self.seeds[:1], smoke_run=True,
                       search={**self.search, "factors": [1.0], "extend": 0})


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def find_suite(name_or_path: str) -> Path:
    """A suite file by path, or by name under experiments/suites/."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    candidate = SUITES_DIR / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    known = sorted(p.stem for p in SUITES_DIR.glob("*.yaml")) if SUITES_DIR.is_dir() else []
    raise HarnessError(f"suite '{name_or_path}' not found (not a file, not in {SUITES_DIR}/); "
                       f"suites here: {', '.join(known) or 'none'}.")


def load_suite(name_or_path: str) -> Suite:
    path = find_suite(name_or_path)
    where = str(path)
    spec = read_yaml_mapping(path, "suite file")
    check_keys(spec, SUITE_KEYS, where)
    if spec.get("methods_from"):  # another suite's entries (one list of methods), this file's on top
        base = read_yaml_mapping(find_suite(spec["methods_from"]), "suite file")
        spec["methods"] = {**(base.get("methods") or {}), **(spec.get("methods") or {})}
        spec.setdefault("reference", base.get("reference"))
        spec.setdefault("floor", base.get("floor"))
    required = ("name", "version", "seeds", "tasks", "methods", "reference")
    for key in required:
        if key not in spec:
            raise HarnessError(f"{where}: no '{key}'; a suite needs {', '.join(required)}.")
    run_keys = set(RunConfig.__dataclass_fields__)
    defaults = spec.get("defaults") or {}
    check_keys(defaults, run_keys, f"{where} (defaults)")
    tasks = spec["tasks"]
    for name, task in tasks.items():
        check_keys(task, run_keys, f"{where} (task {name})")
        if "task" not in task or "model" not in task:
            raise HarnessError(f"{where}: task '{name}' needs 'task' and 'model'.")
    search = spec.get("search") or {}
    check_keys(search, SEARCH_KEYS, f"{where} (search)")
    models = list(dict.fromkeys(t["model"] for t in tasks.values()))
    for model in [] if search.get("per_task") else models:
        if search.get("task", {}).get(model) not in tasks:
            raise HarnessError(f"{where}: search.task has no task of this suite for model '{model}'; "
                               f"name one of {', '.join(tasks)}.")
    search = {"factors": [1.0], "extend": 1, "seed": 0, "heldout_samples": 500, "metric": {}, "settings": {}, **search}
    for name, value in (spec["methods"] or {}).items():
        if isinstance(value, dict) and str(value.get("same_as", "")).rpartition(":")[0] in (spec["name"], str(path)):
            raise HarnessError(f"{where}: method '{name}' is same_as an entry of its own suite; use rate_from.")
    methods = {name: _entry(name, value, run_keys, where) for name, value in (spec["methods"] or {}).items()}
    for entry in methods.values():
        unknown = [t for t in entry.tasks or [] if t not in tasks]
        if unknown:
            raise HarnessError(f"{where}: method '{entry.name}' lists tasks {', '.join(map(str, unknown))}, which "
                               f"are not tasks of this suite ({', '.join(tasks)}).")
        if entry.rate_from and entry.rate_from not in methods:
            raise HarnessError(f"{where}: method '{entry.name}' takes its rate from '{entry.rate_from}', which is "
                               f"not one of the methods.")
    for role in ("reference", "floor"):
        if spec.get(role) is not None and spec[role] not in methods:
            raise HarnessError(f"{where}: the {role} '{spec[role]}' is not one of the methods; name one of them.")
    return Suite(spec["name"], int(spec["version"]), path, spec.get("description", ""), list(spec["seeds"]),
                 spec["reference"], defaults, tasks, search, methods, floor=spec.get("floor"))


def _entry(name: str, value: dict, run_keys: set[str], where: str) -> MethodEntry:
    if not NAME.match(str(name)):
        raise HarnessError(f"{where}: method entry '{name}' must be lower case letters, digits, '_' or '.'.")
    check_keys(value, ENTRY_KEYS, f"{where} (method {name})")
    override = dict(value.get("override") or {})
    why = override.pop("why", "")
    if override and not why:
        raise HarnessError(f"{where}: method '{name}' overrides {', '.join(override)} without a 'why'; "
                           f"say why the frozen defaults do not serve it.")
    check_keys(override, run_keys - {"task", "model", "seed", "learning_rate"}, f"{where} (method {name} override)")
    if value.get("same_as"):
        return _same_as_entry(name, value, where)
    if "method" not in value:
        raise HarnessError(f"{where}: method entry '{name}' has no 'method'.")
    tasks = value.get("tasks")
    if tasks is not None and (not isinstance(tasks, list) or not tasks):
        raise HarnessError(f"{where}: method '{name}': tasks must be a non-empty list of the suite's task names.")
    return MethodEntry(name, value["method"], dict(value.get("method_options") or {}),
                       dict(value.get("model_options") or {}), value.get("learning_rate"), override, why,
                       value.get("note", ""), rate_from=value.get("rate_from"), tasks=tasks)


def _same_as_entry(name: str, value: dict, where: str) -> MethodEntry:
    """An entry defined by another suite's: its definition copied, nothing else allowed beside it (a
    different option would make different cells, which are then not the same runs)."""
    extra = set(value) - {"same_as", "note"}
    if extra:
        raise HarnessError(f"{where}: method '{name}' is same_as {value['same_as']} and also sets "
                           f"{', '.join(sorted(extra))}; drop them (the other entry defines the runs) or drop same_as.")
    suite_name, _, other = str(value["same_as"]).rpartition(":")
    if not other:
        raise HarnessError(f"{where}: method '{name}': same_as must be 'SUITE:ENTRY', got '{value['same_as']}'.")
    base = load_suite(suite_name)
    if other not in base.methods:
        raise HarnessError(f"{where}: method '{name}': suite {suite_name} has no method '{other}' "
                           f"(it has {', '.join(base.methods)}).")
    entry = copy.deepcopy(base.methods[other])
    entry.name, entry.same_as, entry.rate_from = name, f"{suite_name}:{other}", None
    entry.note = value.get("note", entry.note)
    return entry


def shared_from(entry: MethodEntry) -> tuple[Suite, MethodEntry]:
    """(the other suite, its entry) of a same_as entry."""
    suite_name, _, other = entry.same_as.rpartition(":")
    base = load_suite(suite_name)
    return base, base.methods[other]


# ---------------------------------------------------------------------------------------------
# Running


def entry_file(output: Path, name: str) -> Path:
    """Where a suite run records an entry: its search, chosen rates, cells and inference timing."""
    return output / "entries" / f"{name}.json"


def choose_rate(suite: Suite, entry: MethodEntry, key: str, output: Path, factors: list[float] | None = None
                ) -> dict[str, Any]:
    """The search's record for one rate key (a model, or a task with search.per_task): each candidate's
    held-out score and the choice (or why none)."""
    from harness.grid.runner import run_dir_of
    from harness.report.specs import main_spec_of, spec_of

    experiment = suite.search_experiment(entry, key, factors)
    task_name = suite.search_units()[key]
    task = suite.tasks[task_name]["task"]
    metric = suite.search["metric"].get(task_name)
    candidates = []
    for cell in experiment.cells:
        run = RunDir(run_dir_of(experiment, cell, str(output)))
        record = run.read_metrics() if run.metrics_path.is_file() else {"status": run.status()}
        key = metric or record.get("main_metric")
        score = (record.get("best") or {}).get(key) if record.get("status") == "finished" else None
        candidates.append({"learning_rate": cell.config.learning_rate, "status": record.get("status"),
                           "score": score, "run": run.name, "error": record.get("error", "")})
    spec = spec_of(task, metric) if metric else main_spec_of(task)
    chosen = None
    for candidate in candidates:
        if candidate["score"] is not None and (chosen is None or spec.better(candidate["score"], chosen["score"])):
            chosen = candidate
    choice = {"task": task_name, "metric": metric or spec.name, "higher_is_better": spec.higher_is_better,
              "heldout_samples": suite.search["heldout_samples"], "seed": suite.search["seed"],
              "candidates": candidates, "chosen": chosen["learning_rate"] if chosen else None}
    if chosen is None:
        errors = [c["error"] for c in candidates if c["error"]]
        choice["reason"] = errors[0] if errors else "no search cell finished"
    elif chosen is candidates[0] or chosen is candidates[-1]:
        choice["edge"] = "low" if chosen is candidates[0] else "high"
        choice["note"] = "the chosen rate is at the edge of the searched range"
    return choice


def search_rates(suite: Suite, entry: MethodEntry, keys: list[str], output: Path, overrides: dict, jobs: int,
                 progress, launcher: str = "local") -> dict[str, dict[str, Any]]:
    """Run the searches of several rate keys round by round, each round's cells together so they share
    the workers; while a key's best rate is at an edge of its range, its next round adds the factor
    beyond it (at most ``search.extend`` times), so a poor starting rate does not decide the method's
    fate. Returns each key's choice (choose_rate)."""
    from harness.grid.runner import run_grid

    if entry.same_as:  # the other suite's search, run (what is missing) in its folder
        base, other = shared_from(entry)
        return search_rates(base, other if not other.rate_from else base.entry(other.rate_from), keys,
                            base.output_dir(output.parent), overrides, jobs, progress, launcher)
    factors = {key: sorted(suite.search["factors"]) for key in keys}
    choices, searching = {}, list(keys)
    for extension in range(int(suite.search["extend"]) + 1):
        run_grid([_with(suite.search_experiment(entry, key, factors[key]), overrides) for key in searching],
                 str(output), jobs=jobs, launcher=launcher, progress=progress)
        extended = []
        for key in searching:
            choices[key] = choice = choose_rate(suite, entry, key, output, factors[key])
            if "edge" not in choice or extension == suite.search["extend"] or len(factors[key]) < 2:
                continue
            ranked = factors[key]
            if choice["edge"] == "low":
                ranked.insert(0, ranked[0] ** 2 / ranked[1])
            else:
                ranked.append(ranked[-1] ** 2 / ranked[-2])
            progress(f"[{entry.name}] {key}: best rate at the {choice['edge']} edge; adding factor "
                     f"{ranked[0] if choice['edge'] == 'low' else ranked[-1]:.3g}")
            extended.append(key)
        if not extended:
            break
        searching = extended
    return choices


def run_suite(suite: Suite, names: list[str], output_root: str | Path = "results/leaderboard", jobs: int = 1,
              data_dir: str | None = None, progress=print, measure_inference: bool = True,
              launcher: str = "local") -> dict[str, Any]:
    """Run (what is missing of) each named entry: search, chosen-rate cells, inference overhead."""
    from harness.grid.runner import run_grid

    output = suite.output_dir(output_root)
    overrides = {"data_dir": data_dir} if data_dir else {}
    summary = {}
    for name in names:
        entry = suite.entry(name)
        if entry.same_as:
            summary[entry.name] = _run_shared(suite, entry, output_root, jobs, data_dir, progress,
                                              measure_inference, launcher)
            continue
        started = time.monotonic()
        record = read_entry(output, entry.name) or {}
        units = suite.search_units()
        keys = [key for key in units
                if any(entry.runs_on(t) for t in suite.tasks if suite.rate_key(t) == key)]  # rates it trains with
        for key in keys:
            progress(f"[{entry.name}] learning-rate search for {key} ({units[key]}, held-out "
                     f"{suite.search['heldout_samples']} training examples)")
        searched = suite.entry(entry.rate_from) if entry.rate_from else entry
        searches = search_rates(suite, searched, keys, output, overrides, jobs, progress, launcher) if keys else {}
        rates = {}
        for key in keys:
            if entry.rate_from:
                searches[key]["shared_from"] = entry.rate_from
            rates[key] = searches[key]["chosen"]
            shown = rates[key] if rates[key] is not None else f"none ({searches[key]['reason']})"
            progress(f"[{entry.name}] {key}: learning rate {shown}")
        experiment = _with(suite.experiment(entry, rates), overrides)
        statuses = (run_grid(experiment, str(output), jobs=jobs, launcher=launcher, progress=progress)
                    if experiment.cells else {})
        inference = record.get("inference") or {}
        if measure_inference:
            for model in suite.models():
                trained = any(rates.get(suite.rate_key(t)) is not None for t, task in suite.tasks.items()
                              if task["model"] == model)
                if model not in inference and trained:
                    inference[model] = inference_overhead(entry, model)
        record = {"suite": suite.slug, "entry": entry.name, "method": entry.method, "listed": entry.listed,
                  "method_options": {m: entry.options_for(m) for m in suite.models()}, "override": entry.override,
                  "why": entry.why, "note": entry.note, "tasks": entry.tasks, "learning_rate": rates,
                  "search": searches,
                  "experiment": experiment.name, "cells": [c.id for c in experiment.cells],
                  "inference": inference,
                  "wall_time_s": round((record.get("wall_time_s") or 0) + time.monotonic() - started, 1)}
        entry_file(output, entry.name).parent.mkdir(parents=True, exist_ok=True)
        write_json(entry_file(output, entry.name), record)
        failed = sum(status != "finished" for status in statuses.values())
        summary[entry.name] = {"cells": len(experiment.cells), "failed": failed, "learning_rate": rates}
        progress(f"[{entry.name}] {len(experiment.cells) - failed}/{len(experiment.cells)} cells finished; "
                 f"{entry_file(output, entry.name)}")
    return summary


def _run_shared(suite: Suite, entry: MethodEntry, output_root, jobs, data_dir, progress, measure_inference,
                launcher) -> dict[str, Any]:
    """A same_as entry: the other suite runs its entry; this suite's record points at those runs after
    checking that this suite's own cells (its tasks, defaults and seeds at the same rates) are the
    very same cells."""
    base, other = shared_from(entry)
    progress(f"[{entry.name}] the runs of {base.name}:{other.name}")
    summary = run_suite(base, [other.name], output_root, jobs, data_dir, progress, measure_inference, launcher)
    base_output = base.output_dir(output_root)
    record = read_entry(base_output, other.name) or {}
    mine = suite.experiment(entry, record.get("learning_rate") or {})
    if sorted(c.id for c in mine.cells) != sorted(record.get("cells") or []):
        raise HarnessError(f"{suite.path}: method '{entry.name}' is same_as {entry.same_as}, but {suite.name}'s "
                           f"tasks, defaults or seeds make different cells; the runs are not the same setting. "
                           f"Make the suites agree or drop same_as.")
    output = suite.output_dir(output_root)
    shared = {**record, "suite": suite.slug, "entry": entry.name, "note": entry.note, "same_as": entry.same_as,
              "runs_dir": str(Path("..") / base.slug)}  # relative to this suite's folder
    entry_file(output, entry.name).parent.mkdir(parents=True, exist_ok=True)
    write_json(entry_file(output, entry.name), shared)
    return summary[other.name]


def runs_dirs(output: Path, records: list[dict]) -> list[Path]:
    """The run folders a suite's entries read: its own, then those of the suites it shares runs with."""
    from harness.rundir import runs_root

    dirs = [runs_root(output)]
    for record in records:
        if record.get("runs_dir"):
            shared = runs_root((output / record["runs_dir"]).resolve())
            if shared not in dirs:
                dirs.append(shared)
    return [d for d in dirs if d.is_dir()]


def entry_run_folders(output: Path, record: dict) -> list[Path]:
    """The run folders of an entry's scored cells that exist (in its suite's runs, or those it shares)."""
    return [path for folder in runs_dirs(output, [record]) for cell in record["cells"]
            if (path := folder / f"{record['experiment']}-{cell}").is_dir()]


def _with(experiment: Experiment, overrides: dict[str, Any]) -> Experiment:
    """The experiment with settings that do not enter cell ids (the data folder) applied."""
    for cell in experiment.cells:
        for key, value in overrides.items():
            setattr(cell.config, key, value)
    return experiment


def read_entry(output: Path, name: str) -> dict[str, Any] | None:
    path = entry_file(output, name)
    return json.loads(path.read_text()) if path.is_file() else None


def inference_overhead(entry: MethodEntry, model: str, batch_size: int = 16, seq_len: int = 128,
                       trials: int = 10, warmup: int = 2) -> dict[str, Any]:
    """Forward latency of the method's model (merged where the method can merge) over the base model's,
    interleaved so that drifting machine load hits both alike; random weights (latency does not
    depend on the values). Returns the medians and the ratio, or why it could not be measured."""
    import torch

    from harness.bench import interleaved_ms, random_model
    from harness.methods import get_method
    from harness.models import head_module_names

    try:
        spec = get_method(entry.method)
        base = random_model(model).eval()
        adapted = copy.deepcopy(base)
        adapted = spec.prepare(adapted, spec.resolve_options(entry.options_for(model)), head_module_names(adapted))
        merged = False
        if spec.merge is not None:
            try:
                adapted, merged = spec.merge(adapted), True
            except Exception:  # noqa: BLE001 - a tuner that cannot merge runs unmerged
                merged = False
        adapted = adapted.eval()
        ids = torch.randint(0, base.config.vocab_size, (batch_size, seq_len), generator=torch.Generator().manual_seed(0))
        times = interleaved_ms([("base", base), ("method", adapted)],
                               {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, warmup, trials)
    except Exception as err:  # noqa: BLE001 - the board shows why instead of a blank
        return {"error": error_line(err)}
    base_ms, method_ms = (statistics.median(times[k]) for k in ("base", "method"))
    return {"merged": merged, "base_ms": round(base_ms, 2), "method_ms": round(method_ms, 2),
            "overhead_pct": round(100 * (method_ms / base_ms - 1), 1), "batch_size": batch_size, "seq_len": seq_len,
            "trials": trials, "threads": torch.get_num_threads()}


def estimate_minutes(records: list[dict]) -> float | None:
    """Median wall minutes per entry (search included) over entries that ran everything."""
    times = [r["wall_time_s"] / 60 for r in records if r.get("wall_time_s")]
    return statistics.median(times) if times else None


