"""Data sources: the GLUE download layout, the user's own files, and Hugging Face hub datasets."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.tasks.base import DATA_DIR_ENV, ColumnSpec, Split, examples_from_records, field_of, read_records

if TYPE_CHECKING:
    from harness.tasks.base import Task


def load_hub_dataset(dataset: str, config: str | None, split: str):
    """(rows, origin) of one split of a hub dataset; offline failures become one-line errors."""
    origin = f"hub:{dataset}{'/' + config if config else ''}[{split}]"
    try:
        import datasets

        return datasets.load_dataset(dataset, config, split=split), origin
    except Exception as err:  # datasets raises many types for 'not cached and unreachable'
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HarnessError(
            f"could not load {origin} from the Hugging Face hub ({first_line[:200]}); "
            f"for offline use pass --data-dir (or ${DATA_DIR_ENV}) pointing at local files."
        ) from None


def load_hub_split(task: Task, dataset: str, config: str | None, split: str, columns: ColumnSpec) -> Split:
    """Load one split of a hub dataset through `datasets`; offline failures become one-line errors."""
    data, origin = load_hub_dataset(dataset, config, split)
    label_feature = data.features.get(columns.label) if isinstance(columns.label, str) else None
    if task.kind == "classification" and task.label_names is None:
        names = getattr(label_feature, "names", None)
        task.label_names = list(names) if names else _sorted_labels(data[columns.label])
    has_class_ids = getattr(label_feature, "names", None) is not None

    def records():
        for index, row in enumerate(data, 1):
            if has_class_ids and task.kind == "classification":
                row = dict(row)
                row[columns.label] = task.label_names[row[columns.label]] if row[columns.label] >= 0 else row[columns.label]
            yield index, row

    return examples_from_records(task, records(), columns, origin)


def _sorted_labels(values) -> list[str]:
    """Distinct labels as strings, numerically ordered when they are all numbers."""
    distinct = {str(v).strip() for v in values}
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return sorted(distinct)


@dataclass
class GlueSource:
    """A GLUE task: `<data_dir>/glue/<folder>/<split>.tsv` when a data dir is set, else `nyu-mll/glue`."""

    folder: str
    hub_config: str
    columns: ColumnSpec  # TSV columns
    hub_columns: ColumnSpec
    header: bool = True
    hub_splits: dict[str, str] = field(default_factory=lambda: {"train": "train", "dev": "validation"})

    def describe(self) -> str:
        return f"<data_dir>/glue/{self.folder}/*.tsv or hub nyu-mll/glue/{self.hub_config}"

    def candidates(self, data_dir: Path, split: str) -> list[Path]:
        """Where a split's file may be, in order: <data_dir>/glue/<TASK> (this project's layout), or a
        glue_data folder itself."""
        return [data_dir / "glue" / self.folder / f"{split}.tsv", data_dir / self.folder / f"{split}.tsv"]

    def path(self, data_dir: Path, split: str) -> Path:
        candidates = self.candidates(data_dir, split)
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise HarnessError(
            f"missing {split} split of glue/{self.hub_config}: looked for {candidates[0]}; put the GLUE "
            f"files there (the layout download_glue_data.py writes) or drop --data-dir/${DATA_DIR_ENV} "
            f"to load nyu-mll/glue from the hub."
        )

    def load(self, task: Task, split: str, data_dir: Path | None) -> Split:
        if data_dir is None:
            if split not in self.hub_splits:
                raise HarnessError(f"glue/{self.hub_config} has no split '{split}' on the hub.")
            return load_hub_split(task, "nyu-mll/glue", self.hub_config, self.hub_splits[split], self.hub_columns)
        path = self.path(data_dir, split)
        # GLUE TSVs contain unbalanced quotes inside sentences: never treat quotes specially.
        records = read_records(path, "tsv", header=self.header, quoting=csv.QUOTE_NONE)
        return examples_from_records(task, records, self.columns, str(path))


@dataclass
class FileSource:
    """The user's own CSV/TSV/JSONL/JSON files, one per split."""

    files: dict[str, str]  # split -> path
    columns: ColumnSpec
    base_dir: Path | None = None  # relative paths in a task YAML resolve against the YAML's folder
    infers_labels = True
    data_dir: Path | None = None  # ... and then against the run's data folder (a file of the shared data)
    quote_fields: bool = True  # False: quotes are text (GLUE's TSV files), never field delimiters

    def describe(self) -> str:
        return ", ".join(f"{split}={path}" for split, path in self.files.items())

    def path(self, split: str) -> Path:
        if split not in self.files:
            raise HarnessError(
                f"no file for the {split} split; give it with --{'train' if split == 'train' else 'eval'}-file "
                f"(or 'files: {{{split}: …}}' in the task YAML)."
            )
        given = Path(self.files[split]).expanduser()
        candidates = [given] if given.is_absolute() else \
            [given, *(folder / given for folder in (self.base_dir, self.data_dir) if folder is not None)]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            raise HarnessError(f"missing {split} file {given} (looked in {', '.join(str(c) for c in candidates)}); "
                               f"check the path or --data-dir.")
        return path

    def load(self, task: Task, split: str, data_dir: Path | None) -> Split:
        self.data_dir = Path(data_dir) if data_dir else None
        quoting = csv.QUOTE_MINIMAL if self.quote_fields else csv.QUOTE_NONE
        path = self.path(split)
        if task.kind == "classification" and task.label_names is None:
            # Class ids follow the sorted label values of the training file.
            train = self.path(task.train_split)
            task.label_names = _sorted_labels(
                field_of(record, self.columns.label, f"{train}:{line}")
                for line, record in read_records(train, quoting=quoting)
            )
        return examples_from_records(task, read_records(path, quoting=quoting), self.columns, str(path))


@dataclass
class HubSource:
    """Any classification/regression dataset on the Hugging Face hub (e.g. stanfordnlp/imdb)."""

    dataset: str
    columns: ColumnSpec
    config: str | None = None
    infers_labels = True

    def describe(self) -> str:
        return f"hub {self.dataset}{'/' + self.config if self.config else ''}"

    def load(self, task: Task, split: str, data_dir: Path | None) -> Split:
        return load_hub_split(task, self.dataset, self.config, split, self.columns)
