"""The paper's data-to-text tasks (Tables 3, 13, 14): E2E NLG, WebNLG 2017 and DART.

Inputs are linearised the way microsoft/LoRA's format converters do (E2E: the MR as written;
WebNLG/DART: ``subject : property : object | ...``; DART lower-cases the property), so a model
trained here sees the paper's inputs. Every split is loaded grouped by input with all of its
references; training and the per-epoch loss use one (input, reference) pair per reference.

Local files (``--data-dir``): ``e2e/{trainset,devset,testset_w_refs}.csv`` (the official release),
``webnlg_challenge_2017/{train,dev,test}.json`` (LoRA's JSON; only lexicalisations marked
'good'), ``dart/dart-v1.1.1-full-{train,dev,test}.json`` (or the test ``.xml``). Without a data
directory they come from the hub.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.metrics.nlg import E2E_METRICS, WEBNLG_METRICS
from harness.tasks.base import DATA_DIR_ENV, GenerationExample, Split, field_of, read_records
from harness.tasks.sources import load_hub_dataset

if TYPE_CHECKING:
    from harness.tasks.base import Task

# WebNLG 2017: the test set's 10 categories that also occur in training, and the 5 that do not.
WEBNLG_SEEN = ("Airport", "Astronaut", "Building", "City", "ComicsCharacter", "Food", "Monument", "SportsTeam",
               "University", "WrittenWork")


def grouped(pairs, origin: str) -> Split:
    """(source, reference, subset) triples -> one example per distinct source, references in file order."""
    by_source: dict[tuple[str, str], list[str]] = {}
    for source, reference, subset in pairs:
        by_source.setdefault((source, subset), []).append(reference)
    if not by_source:
        raise HarnessError(f"{origin}: no examples; the split is empty.")
    return Split([GenerationExample(s, tuple(refs), subset) for (s, subset), refs in by_source.items()], origin)


def linearise(triples, lower_property: bool = False) -> str:
    return " | ".join(f"{s} : {p.lower() if lower_property else p} : {o}" for s, p, o in triples)


def _local(candidates: list[Path], task: str, split: str) -> Path:
    for path in candidates:
        if path.is_file():
            return path
    raise HarnessError(
        f"missing {split} split of {task}: looked for {candidates[0]}; put the file there or drop "
        f"--data-dir/${DATA_DIR_ENV} to load it from the hub."
    )


def _check_split(task: str, split: str, files: dict) -> None:
    if split not in files:
        raise HarnessError(f"task {task} has no split '{split}' (splits: {', '.join(files)}).")


@dataclass
class E2ESource:
    files = {"train": "trainset.csv", "dev": "devset.csv", "test": "testset_w_refs.csv"}
    hub = ("tuetschek/e2e_nlg", {"train": "train", "dev": "validation", "test": "test"})

    def describe(self) -> str:
        return "<data_dir>/e2e/{trainset,devset,testset_w_refs}.csv or hub tuetschek/e2e_nlg"

    def candidates(self, data_dir: Path, split: str) -> list[Path]:
        """Where a split's local file may be, in order."""
        return [data_dir / "e2e" / self.files[split]]

    def load(self, task: Task, split: str, data_dir: Path | None) -> Split:
        _check_split(task.name, split, self.files)
        if data_dir is None:
            rows, origin = load_hub_dataset(self.hub[0], None, self.hub[1][split])
            return grouped(((r["meaning_representation"], r["human_reference"], "") for r in rows), origin)
        path = _local(self.candidates(data_dir, split), task.name, split)
        pairs = []
        for line, record in read_records(path, "csv"):
            if "mr" not in record or "ref" not in record:
                raise HarnessError(f"{path}:{line}: an E2E file needs the columns mr,ref.")
            pairs.append((record["mr"].strip(), record["ref"].strip(), ""))
        return grouped(pairs, str(path))


@dataclass
class WebNLGSource:
    files = {"train": "train.json", "dev": "dev.json", "test": "test.json"}
    hub = ("webnlg-challenge/web_nlg", "webnlg_challenge_2017")

    def describe(self) -> str:
        return "<data_dir>/webnlg_challenge_2017/{train,dev,test}.json or hub webnlg-challenge/web_nlg"

    def candidates(self, data_dir: Path, split: str) -> list[Path]:
        """Where a split's local file may be, in order."""
        return [data_dir / "webnlg_challenge_2017" / self.files[split]]

    def load(self, task: Task, split: str, data_dir: Path | None) -> Split:
        _check_split(task.name, split, self.files)
        subset = (lambda category: "seen" if category in WEBNLG_SEEN else "unseen") if split == "test" else (
            lambda category: "")
        if data_dir is None:
            rows, origin = load_hub_dataset(self.hub[0], self.hub[1], split)
            pairs = []
            for row in rows:
                triples = [t.split(" | ") for t in row["modified_triple_sets"]["mtriple_set"][0]]
                source = linearise(triples)
                for comment, text in zip(row["lex"]["comment"], row["lex"]["text"]):
                    if comment == "good":
                        pairs.append((source, text, subset(row["category"])))
            return grouped(pairs, origin)
        path = _local(self.candidates(data_dir, split), task.name, split)
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))["entries"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise HarnessError(f"{path}: not a WebNLG benchmark JSON file ({{\"entries\": [...]}}): {err}.") from None
        pairs = []
        for index, wrapper in enumerate(entries, 1):
            entry = next(iter(wrapper.values())) if len(wrapper) == 1 else wrapper  # LoRA's {"<n>": {...}}
            try:
                triples = [(t["subject"], t["property"], t["object"]) for t in entry["modifiedtripleset"]]
                lexicalisations, category = entry["lexicalisations"], entry["category"]
            except (KeyError, TypeError):
                raise HarnessError(f"{path}: entry {index} is not in the WebNLG benchmark JSON format.") from None
            source = linearise(triples)
            pairs += [(source, lex["lex"], subset(category)) for lex in lexicalisations if lex.get("comment") == "good"]
        return grouped(pairs, str(path))


@dataclass
class DartSource:
    files = {"train": "dart-v1.1.1-full-train", "dev": "dart-v1.1.1-full-dev", "test": "dart-v1.1.1-full-test"}
    hub = ("Yale-LILY/dart", {"train": "train", "dev": "validation", "test": "test"})

    def describe(self) -> str:
        return "<data_dir>/dart/dart-v1.1.1-full-{train,dev,test}.{json,xml} or hub Yale-LILY/dart"

    def candidates(self, data_dir: Path, split: str) -> list[Path]:
        """Where a split's local file may be, in order (the JSON, else the XML)."""
        return [data_dir / "dart" / f"{self.files[split]}.{extension}" for extension in ("json", "xml")]

    def load(self, task: Task, split: str, data_dir: Path | None) -> Split:
        _check_split(task.name, split, self.files)
        if data_dir is None:
            rows, origin = load_hub_dataset(self.hub[0], None, self.hub[1][split])
            return grouped(((linearise(r["tripleset"], True), text, "") for r in rows
                            for text in r["annotations"]["text"]), origin)
        path = _local(self.candidates(data_dir, split), task.name, split)
        if path.suffix == ".xml":
            return grouped(self._xml_pairs(path), str(path))
        pairs = []
        for index, entry in read_records(path, "json"):
            try:
                source = linearise(entry["tripleset"], True)
                pairs += [(source, a["text"], "") for a in entry["annotations"]]
            except (KeyError, TypeError, ValueError):
                raise HarnessError(f"{path}: entry {index} is not in the DART JSON format.") from None
        return grouped(pairs, str(path))

    @staticmethod
    def _xml_pairs(path: Path):
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as err:
            raise HarnessError(f"{path}: invalid XML ({err}).") from None
        for entry in root.iter("entry"):
            triples = [tuple(part.strip() for part in t.text.split(" | ")) for t in entry.iter("mtriple")]
            source = linearise(triples, True)
            for lex in entry.iter("lex"):
                yield source, (lex.text or "").strip(), ""


@dataclass
class GenerationFileSource:
    """A generation task's own files (CSV, TSV, JSONL, JSON): one (source, target) pair per row; rows
    with the same source form one input with several references."""

    files: dict[str, str]  # split -> path
    source_column: str
    target_column: str
    base_dir: Path | None = None  # relative paths in a task YAML resolve against the YAML's folder

    def describe(self) -> str:
        return ", ".join(f"{split}={path}" for split, path in self.files.items())

    def load(self, task: Task, split: str, data_dir: Path | None) -> Split:
        _check_split(task.name, split, self.files)
        path = Path(self.files[split]).expanduser()
        if not path.is_absolute() and self.base_dir is not None and not path.exists():
            path = self.base_dir / path
        if not path.is_file():
            raise HarnessError(f"missing {split} file {path} of task {task.name}; check 'files' in its YAML.")
        pairs = [(str(field_of(r, self.source_column, f"{path}:{line}")).strip(),
                  str(field_of(r, self.target_column, f"{path}:{line}")).strip(), "")
                 for line, r in read_records(path)]
        return grouped(pairs, str(path))


def nlg_tasks() -> list[Task]:
    from harness.tasks.base import Task

    return [
        Task(name="e2e", kind="generation", metrics=list(E2E_METRICS), main_metric="bleu", source=E2ESource(),
             scorer="e2e", eval_splits={"": "test"}, decode_defaults={"length_penalty": 0.9},
             description="E2E NLG restaurant MRs -> text; BLEU/NIST/METEOR/ROUGE-L/CIDEr as e2e-metrics, chrF"),
        Task(name="webnlg", kind="generation", metrics=list(WEBNLG_METRICS), main_metric="bleu_all",
             source=WebNLGSource(), scorer="webnlg", eval_splits={"": "test"}, subsets=("seen", "unseen"),
             metric_specs={"meteor": "meteor_fraction"},
             decode_defaults={"length_penalty": 0.8},
             description="WebNLG 2017 triples -> text; BLEU/METEOR/TER (and chrF) on all, seen and unseen categories"),
        Task(name="dart", kind="generation", metrics=list(WEBNLG_METRICS), main_metric="bleu", source=DartSource(),
             scorer="webnlg", eval_splits={"": "test"}, decode_defaults={"length_penalty": 0.8},
             metric_specs={"meteor": "meteor_fraction"}, description="DART open-domain triples -> text; BLEU/METEOR/TER as the WebNLG script, chrF"),
    ]
