"""`harness grid FILE --smoke`: every distinct setting of an experiment file, end to end, in minutes.

A smoke cell keeps what makes a cell's setting (task, method and its options, batch size, gradient
accumulation, learning rate, weight decay, warmup, clipping, precision, sequence length, label
smoothing, decoding settings, the MNLI start of MRPC/RTE/STS-B) and changes what makes it slow:

- the model is ``smoke:<model>`` (harness.models.smoke): a random 2-layer, width-32 model of the same
  architecture and module names, built from the model's config, no download;
- one epoch of ``STEPS`` optimizer steps (max_train_samples = STEPS x batch x accumulation);
- ``EVAL_SAMPLES`` examples per evaluation set; generation decodes the first ``DECODE_SAMPLES`` test
  inputs with at most ``NEW_TOKENS`` new tokens (beam size and penalties as the file says);
- one seed per setting (the first); every variant's settings that the base file does not have also run;
- ``SLOW_METRICS`` (METEOR: ~10 s of Java start per call) are computed in each task's first smoke cell, the
  base file's, which fills the paper's columns; later cells of the task compute the other metrics;
- fp16 without a CUDA GPU runs in full precision (said in the output; bf16 runs on a CPU);
- MLflow off unless the file names a tracking URI;
- data: the local data folder (``data_dir``, else $HARNESS_DATA_DIR). A split that is not there gets a
  stand-in in ``<output>/smoke-data`` (a copy of the folder made of links): another split of the same
  task (QNLI's dev set for its missing train set, DART's dev set for its train set), or, for a GLUE task
  with no file at all (MNLI, QQP here), synthetic rows in the task's own TSV layout. Each is named in the
  output and in the run's recorded data paths.

Smoke cells have ids of their own (a hash of the smoke config), so a smoke folder is never taken for a
real grid's; the experiment name is the file's, so `harness table --paper table2 --runs <output>/runs`
fills the paper's rows from smoke runs (marked 'ours (smoke)'). After the cells, the check: every cell
finished, and every row the file reproduces in the paper's tables (reference.PAPER_TABLES) has every
column filled, apart from metrics the smoke's few decoded inputs cannot give (WebNLG's unseen categories
come after its first 971 test inputs), which are listed.
"""

from __future__ import annotations

import csv
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import DATA_DIR_ENV, RunConfig, read_yaml_mapping
from harness.errors import HarnessError
from harness.grid.experiments import NOT_IN_ID, Cell, Experiment, cell_id, load_experiment
from harness.models.smoke import smoke_name

STEPS = 2  # optimizer steps per cell
EVAL_SAMPLES = 8  # examples per evaluation set
DECODE_SAMPLES = 2  # generation: test inputs decoded and scored
NEW_TOKENS = 8  # generation: new tokens per input at most
STAND_IN_ROWS = {"train": 512, "other": 64}  # synthetic rows per split
# Metrics whose every computation costs seconds whatever the input (METEOR starts a JVM and loads its
# paraphrase tables, ~10 s): computed in the first smoke cell of each task only.
SLOW_METRICS = ("meteor",)
DEFAULT_OUTPUT = "results/smoke"
WORDS = ("the", "a", "film", "story", "man", "woman", "city", "river", "was", "is", "not", "very", "good", "bad",
         "old", "new", "saw", "said", "and", "but", "of", "in", "on", "question", "answer", "why", "who", "what")


@dataclass
class Smoke:
    experiments: list[Experiment]  # the base file's (or the chosen variant's) cells, then each variant's new ones
    notes: list[str] = field(default_factory=list)  # what stands in for what

    @property
    def cells(self) -> int:
        return sum(len(e.cells) for e in self.experiments)


def variant_names(path) -> list[str]:
    return list((read_yaml_mapping(path, "experiment file").get("variants") or {}))


def smoke_experiments(path, variant: str | None = None, overrides: dict | None = None,
                      output_dir: str = DEFAULT_OUTPUT) -> Smoke:
    """The smoke of an experiment file: with ``variant`` None, the base file and every variant's settings
    that came before in none of them; else that variant only."""
    names = [None, *variant_names(path)] if variant is None else [variant]
    data = StandIns(Path(output_dir) / "smoke-data")
    smoke, covered, scored, fp16 = Smoke([]), set(), set(), False
    for name in names:
        experiment = load_experiment(path, name, overrides)
        keys = setting_keys(experiment.cells)
        first: dict[str, Cell] = {}
        for cell in experiment.cells:  # one seed per setting
            first.setdefault(keys[cell.id], cell)
        wanted = [cell for key, cell in first.items() if key not in covered]
        covered.update(first)
        needed, todo = {}, list(wanted)
        while todo:  # with the cells they start from, which run again in this variant's grid
            cell = todo.pop()
            if cell.id not in needed:
                needed[cell.id] = cell
                if cell.depends_on:
                    todo.append(first[keys[cell.depends_on]])
        if not needed:
            smoke.notes.append(f"variant '{name}': every setting is one the smoke has run already")
            continue
        cells = [cell for cell in experiment.cells if cell.id in needed]
        smoke.experiments.append(_smoke_of(experiment, cells, lambda old: first[keys[old]].id, data, scored))
        fp16 = fp16 or any(cell.config.mixed_precision == "fp16" for cell in cells)
    smoke.notes += data.notes
    if fp16 and not _cuda():
        smoke.notes.append("mixed_precision fp16 needs a CUDA GPU: those cells run in full precision here")
    return smoke


def setting_keys(cells: list[Cell]) -> dict[str, str]:
    """Cell id -> its setting: the config without the seed (and where it runs), with the setting of the
    cell it starts from (an MRPC cell differs when its MNLI cell does)."""
    by_id, keys = {cell.id: cell for cell in cells}, {}

    def key(cell: Cell) -> str:
        if cell.id not in keys:
            values = {k: v for k, v in cell.config.to_dict().items() if k != "seed" and k not in NOT_IN_ID}
            if cell.depends_on:
                values["init_from"] = key(by_id[cell.depends_on])
            keys[cell.id] = json.dumps(values, sort_keys=True, default=str)
        return keys[cell.id]

    for cell in cells:
        key(cell)
    return keys


def _smoke_of(experiment: Experiment, cells: list[Cell], representative, data: StandIns, scored: set) -> Experiment:
    """The experiment with ``cells`` as smoke cells: smoke configs, their own ids, dependencies kept.
    ``scored``: the tasks whose slow metrics an earlier smoke cell computes (updated)."""
    new_ids, smoked = {}, {}
    for cell in cells:
        config = smoke_config(cell.config, data, slow_metrics=cell.config.task not in scored)
        scored.add(cell.config.task)
        new_ids[cell.id] = cell_id(config)
        # Two settings that differ only in what the smoke sets (e.g. epochs) are one smoke cell.
        smoked.setdefault(new_ids[cell.id], (Cell(new_ids[cell.id], config, dict(cell.labels)), cell))
    for new, old in smoked.values():
        if old.depends_on:
            new.depends_on = new_ids[representative(old.depends_on)]
    return Experiment(experiment.name, experiment.path, experiment.description, [new for new, _ in smoked.values()],
                      experiment.launch, experiment.variant)


def _cap(value: int | None, limit: int) -> int:
    return limit if value is None else min(value, limit)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def smoke_config(config: RunConfig, data: StandIns | None = None, slow_metrics: bool = True,
                 random_model: bool = True) -> RunConfig:
    """A cell's config as a smoke cell (see the module doc); without ``slow_metrics``, a generation task
    computes its metrics but SLOW_METRICS; without ``random_model``, the cell keeps its real model (a
    suite's smoke: whether a method fits the real model's shapes)."""
    from harness.training.runner import resolve

    task = resolve(config).task  # the real config resolves: task, method, options and model exist
    values = config.to_dict()
    if random_model:
        values["model"] = smoke_name(config.model)
    values["epochs"] = min(config.epochs, 1)
    values["max_train_samples"] = _cap(config.max_train_samples, STEPS * config.batch_size * config.grad_accum)
    values["max_eval_samples"] = _cap(config.max_eval_samples, EVAL_SAMPLES)
    if config.heldout_samples:
        values["heldout_samples"] = min(config.heldout_samples, EVAL_SAMPLES)
    if task.kind == "generation":
        values["max_decode_samples"] = _cap(config.max_decode_samples, DECODE_SAMPLES)
        values["max_new_tokens"] = min(config.max_new_tokens, NEW_TOKENS)
        if not slow_metrics:
            values["metrics"] = [m for m in config.metrics or task.metrics if m not in SLOW_METRICS] or None
    if config.mixed_precision == "fp16" and not _cuda():
        values["mixed_precision"] = "no"  # fp16 needs CUDA (bf16 runs on a CPU): said in the smoke's notes
    if config.tracking_uri is None:
        values["tracking_uri"] = "none"
    if data is not None:
        values["data_dir"] = data.folder(task, config.data_dir)
    return RunConfig.from_dict(values, where=f"smoke of {config.task}")


def needed_splits(task) -> list[str]:
    splits = [task.train_split, *task.eval_splits.values()]
    if task.kind == "generation":
        splits.append(task.loss_split)
    return list(dict.fromkeys(splits))


class StandIns:
    """The data folder of smoke cells: the real one when it has every split a task needs, else a copy of
    it (links to its files) in which the missing splits have stand-ins."""

    def __init__(self, folder: Path):
        self.folder_path = folder
        self.notes: list[str] = []
        self._done: dict[tuple[str, str], str] = {}
        self._mirrored: set[str] = set()

    def folder(self, task, data_dir: str | None) -> str | None:
        candidates = getattr(task.source, "candidates", None)
        if candidates is None:  # the task's own files (or the hub): nothing stands in
            return data_dir
        value = data_dir or os.environ.get(DATA_DIR_ENV)
        if not value:
            raise HarnessError(f"--smoke runs on local data: task {task.name} needs a data folder; pass "
                               f"--set data_dir=DIR or set ${DATA_DIR_ENV}.")
        real = Path(value).expanduser().resolve()
        if not real.is_dir():
            raise HarnessError(f"data directory '{real}' does not exist.")
        if (task.name, str(real)) not in self._done:
            self._done[task.name, str(real)] = self._prepare(task, real)
        return self._done[task.name, str(real)]

    def _prepare(self, task, real: Path) -> str:
        splits = needed_splits(task)
        found = {split: next((p for p in task.source.candidates(real, split) if p.is_file()), None) for split in splits}
        missing = [split for split, path in found.items() if path is None]
        if not missing:
            return str(real)
        mirror = self.folder_path.resolve()
        self._mirror(real, mirror)
        present = {split: path for split, path in found.items() if path is not None}
        written = []
        for split in missing:
            targets = task.source.candidates(mirror, split)
            # Another split of the task, under the missing split's name: one that is not evaluated (DART's dev
            # set, not its test set, stands in for its train set), of the format the split would have.
            same_kind = sorted([(s, p) for s, p in present.items() if p.suffix in {t.suffix for t in targets}],
                               key=lambda item: (item[0] in task.eval_splits.values(), item[1].suffix != targets[0].suffix))
            if same_kind:
                other, path = same_kind[0]
                target = next(t for t in targets if t.suffix == path.suffix)
                _link(path, target)
                self.notes.append(f"{task.name}: no {split} split in {real}; its {other} split stands in ({target})")
            elif hasattr(task.source, "columns") and hasattr(task.source, "header"):
                rows = STAND_IN_ROWS["train" if split == task.train_split else "other"]
                _write_glue_rows(task, split, targets[0], rows)
                written.append(f"{split} ({rows})")
            else:
                raise HarnessError(f"--smoke: task {task.name} has no {split} split in {real} and no other split "
                                   f"to stand in for it.")
        if written:
            self.notes.append(f"{task.name}: not in {real}; synthetic rows in its own layout stand in for "
                              f"{', '.join(written)} ({targets[0].parent})")
        return str(mirror)

    def _mirror(self, real: Path, mirror: Path) -> None:
        """``mirror``: the folders of ``real`` with a link to each of its files."""
        if str(real) in self._mirrored:
            return
        for path in real.rglob("*"):
            if path.is_file():
                target = mirror / path.relative_to(real)
                if not target.exists():
                    _link(path, target)
        self._mirrored.add(str(real))


def _link(path: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    target.symlink_to(path.resolve())


def _write_glue_rows(task, split: str, path: Path, count: int) -> None:
    """Synthetic rows in a GLUE task's TSV layout (its header or column positions): random words, the
    task's labels in turn (a regression task: scores 0-5)."""
    columns, header = task.source.columns, task.source.header
    rng = random.Random(f"{task.name}/{split}")
    fields = [c for c in (columns.text, columns.text_pair, columns.label) if c is not None]
    rows = []
    for index in range(count):
        label = f"{rng.uniform(0, 5):.2f}" if task.kind == "regression" else task.label_names[index % task.num_labels]
        values = {columns.text: " ".join(rng.choices(WORDS, k=rng.randint(4, 12))), columns.label: label}
        if columns.text_pair is not None:
            values[columns.text_pair] = " ".join(rng.choices(WORDS, k=rng.randint(4, 12)))
        rows.append(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        if header:
            writer.writerow(fields)
            writer.writerows([[row[f] for f in fields] for row in rows])
        else:  # columns by position
            width = max(fields) + 1
            writer.writerows([[row.get(i, "x") for i in range(width)] for row in rows])


@dataclass
class RowCheck:
    table: str
    row: str
    unfilled: dict[str, str]  # column -> what the table shows (missing, failed (1), ...)
    not_computed: list[str]  # columns of metrics the smoke's runs did not compute (too few decoded inputs)

    @property
    def ok(self) -> bool:
        return not self.unfilled

    def describe(self) -> str:
        text = "every column filled" if self.ok else "not filled: " + ", ".join(
            f"{column} ({shown})" for column, shown in self.unfilled.items())
        if self.not_computed:
            text += (f"; {', '.join(self.not_computed)} not computed: no test input of theirs among the first "
                     f"{DECODE_SAMPLES} the smoke decodes")
        return text


@dataclass
class SmokeResult:
    smoke: Smoke
    statuses: dict[str, str]  # run name -> final status
    rows: list[RowCheck]  # the paper's rows the file reproduces, built from its smoke runs

    @property
    def not_finished(self) -> list[str]:
        return [name for name, status in self.statuses.items() if status not in ("finished", "claimed by another worker")]

    @property
    def passed(self) -> bool:
        return not self.not_finished and all(row.ok for row in self.rows)


def run_smoke(smoke: Smoke, output_dir: str = DEFAULT_OUTPUT, jobs: int = 1, launcher: str | None = None,
              slurm: dict | None = None, progress=print) -> SmokeResult:
    """Run the smoke's cells (one after another in this process unless ``launcher`` says otherwise), then
    build the paper's rows the file reproduces from them."""
    import torch

    from harness.grid.runner import run_dir_of, run_grid
    from harness.report.results import record_from_dir

    statuses, threads = {}, torch.get_num_threads()
    try:
        for experiment in smoke.experiments:
            processes = experiment.num_processes
            chosen = launcher or ("inline" if processes == 1 and jobs == 1 else "local")
            if chosen == "inline" and "OMP_NUM_THREADS" not in os.environ:
                torch.set_num_threads(1)  # width-32 models gain nothing from more threads; a busy machine's spin costs
            results = run_grid(experiment, output_dir, jobs, chosen, slurm, progress)
            statuses.update({experiment.run_name(cell): results[cell.id] for cell in experiment.cells})
            done = sum(results[cell.id] == "finished" for cell in experiment.cells)
            progress(f"{experiment.name}: {done} of {len(experiment.cells)} cells finished")
    finally:
        torch.set_num_threads(threads)
    base = smoke.experiments[0] if smoke.experiments else None
    records = [] if base is None else [
        r for r in (record_from_dir(run_dir_of(base, cell, output_dir)) for cell in base.cells) if r is not None]
    return SmokeResult(smoke, statuses, check_paper_tables(base.name, records) if base else [])


def check_paper_tables(experiment_name: str, records) -> list[RowCheck]:
    """Each paper table row that ``experiment_name`` reproduces, built from ``records``: which of its
    columns are not filled."""
    from harness.report.reference import PAPER_TABLES
    from harness.report.tables import paper_columns, paper_table

    checks = []
    for table, (paper_rows, _, task) in PAPER_TABLES.items():
        if not any(row.experiment == experiment_name for row in paper_rows):
            continue
        ours, _ = paper_table(table, records, with_paper=False)
        for paper_row, row in zip(paper_rows, ours):
            if paper_row.experiment != experiment_name:
                continue
            unfilled, not_computed = {}, []
            for key, label, _, _ in paper_columns(table):
                text = row[label]
                if text != "missing" and not text.startswith(("failed", "running")):
                    continue
                finished = [r for r in records if r.status == "finished" and r.task == (task or key)]
                if task is not None and finished and not any(key in r.best for r in finished):
                    not_computed.append(label)
                else:
                    unfilled[label] = text
            checks.append(RowCheck(table, f"{paper_row.label}{paper_row.marker}", unfilled, not_computed))
    return checks
