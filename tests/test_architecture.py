"""The design's promises, kept by tests: a new generation dataset is one YAML file, a new task kind
is one objective written outside the package, the loop chooses the best epoch by the metric's
spec, grid cell ids survive new config fields, and the package has no import cycle and no
function longer than 80 lines."""

import ast
import csv
import dataclasses
import json
import textwrap
from pathlib import Path

import pytest

from harness.config import RunConfig
from harness.grid.experiments import FIRST_ID_FIELDS, identity_hash, load_experiment
from harness.train import run

ROOT = Path(__file__).resolve().parents[1]


def write_rows(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_a_new_generation_dataset_is_one_yaml_file(tmp_path, data_dir):
    """Files + a YAML with type: generation; nothing registered in code. It trains, decodes, scores
    with the named scorer and its metrics print on their own scale in a table."""
    from harness.report.render import render
    from harness.report.results import records_from_runs_dir
    from harness.report.tables import results_table

    foods = ["soup", "bread", "pasta", "rice", "cake", "tea"]
    rows = [{"mr": f"name[{f}], price[{p}]", "ref": f"{f} is {p}."} for f in foods for p in ("cheap", "dear")]
    for split, part in (("train", rows), ("dev", rows[:4]), ("test", rows[4:8])):
        write_rows(tmp_path / f"{split}.csv", part)
    (tmp_path / "menus.yaml").write_text(textwrap.dedent("""\
        task: menus
        type: generation
        files: {train: train.csv, dev: dev.csv, test: test.csv}
        source_column: mr
        target_column: ref
        scorer: e2e
        metrics: [bleu, nist]
        length_penalty: 0.9
        """))
    record = run(RunConfig(task=str(tmp_path / "menus.yaml"), model="tiny-gpt2", method="lora", epochs=1,
                           data_dir=str(data_dir), num_beams=2, max_new_tokens=6, tracking_uri="none",
                           output_dir=str(tmp_path / "out"), save_weights=False), progress=False)
    assert record["status"] == "finished" and set(record["best"]) == {"dev_loss", "bleu", "nist"}
    assert record["decode"]["length_penalty"] == 0.9 and record["eval_examples"] == {"loss": 4, "": 4}
    generations = [json.loads(line) for line in (Path(record["run_dir"]) / "generations.jsonl").open()]
    assert [g["source"] for g in generations] == [r["mr"] for r in rows[4:8]]
    rows_out, columns = results_table(records_from_runs_dir(tmp_path / "out" / "runs"))
    assert columns[-4:] == ["BLEU", "NIST", "dev_loss", "seeds"]  # the metric table of one generation task
    bleu = record["best"]["bleu"]
    assert rows_out[0]["BLEU"] == f"{bleu:.1f}"  # stored on the paper's scale: printed as it is, not x100
    assert f"| {bleu:.1f} |" in render(rows_out, columns, "markdown")


TOY_OBJECTIVE = '''
from harness.metrics import METRICS, MetricSpec
from harness.tasks.classification import ClassificationObjective
from harness.tasks.objective import Evaluation

METRICS.add("error_rate", MetricSpec("error_rate", "error", lambda p, l: float((p != l).mean()),
                                     higher_is_better=False))


class ErrorRateObjective(ClassificationObjective):
    """A toy task kind: classification scored by its error rate (lower is better)."""

    def __init__(self):
        super().__init__(regression=False)
        self.epochs_seen = []

    def evaluate(self, ctx, epoch, last):
        evaluation = super().evaluate(ctx, epoch, last)
        real = evaluation.metrics.pop("error_rate")
        # A made-up schedule so the best epoch is known: epoch 2 has the lowest error.
        evaluation.metrics["error_rate"] = {1: 0.4, 2: 0.1, 3: 0.3}[epoch]
        evaluation.metrics["real_error"] = real
        return evaluation
'''


def test_a_new_task_kind_is_an_objective_written_outside_the_package(tmp_path, sentiment_files):
    """The task YAML names the objective by file path; the loop keeps the epoch with the LOWEST
    error rate because the metric's spec says lower is better."""
    (tmp_path / "toy.py").write_text(TOY_OBJECTIVE)
    train, dev = sentiment_files
    (tmp_path / "toy.yaml").write_text(textwrap.dedent(f"""\
        task: toy-errors
        type: {tmp_path / 'toy.py'}:ErrorRateObjective
        files: {{train: {train}, dev: {dev}}}
        labels: [neg, pos]
        metrics: [error_rate]
        """))
    record = run(RunConfig(task=str(tmp_path / "toy.yaml"), model="tiny-bert", method="lora", epochs=3,
                           tracking_uri="none", output_dir=str(tmp_path / "out")), progress=False)
    assert [h["error_rate"] for h in record["history"]] == [0.4, 0.1, 0.3]
    assert record["best_epoch"] == 2 and record["best"]["error_rate"] == 0.1
    predictions = (Path(record["run_dir"]) / "predictions.jsonl").read_text().splitlines()
    assert len(predictions) == 64  # the objective's outputs of the best epoch were written


def test_cell_ids_do_not_change_when_a_field_with_a_default_is_added():
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    values = RunConfig(task="glue/sst2", seed=3).to_dict()
    before = identity_hash(values, defaults)
    assert identity_hash({**values, "a_new_field": 7}, {**defaults, "a_new_field": 7}) == before
    assert identity_hash({**values, "a_new_field": 8}, {**defaults, "a_new_field": 7}) != before
    assert identity_hash({**values, "seed": 4}, defaults) != before
    assert "seed" in FIRST_ID_FIELDS


def test_committed_grid_cells_keep_their_ids():
    """Every cell of the committed GLUE grid still finds its committed run folder (a resumed grid
    reruns nothing)."""
    experiment = load_experiment(ROOT / "experiments/cpu-mini/glue_minilm.yaml")
    runs = ROOT / "results/cpu-mini/glue_minilm/runs"
    missing = [c.labels for c in experiment.cells if not (runs / experiment.run_name(c) / "metrics.json").is_file()]
    assert len(experiment.cells) == 105 and missing == []


def _modules():
    found = {}
    for path in (ROOT / "harness").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def test_no_import_cycle_in_the_package_function_level_imports_included():
    modules = _modules()

    def owner(name):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    edges = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness"):
                targets = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("harness")]
            else:
                continue
            edges[name] |= {owner(t) for t in targets} - {name, ""}

    def reaches(start, goal, seen):
        return any(nxt == goal or (nxt not in seen and not seen.add(nxt) and reaches(nxt, goal, seen))
                   for nxt in edges[start])

    cycles = sorted(name for name in modules if reaches(name, name, set()))
    assert cycles == []


def test_no_function_in_the_package_is_longer_than_80_lines():
    long = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in _modules().values() for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80]
    assert long == []


@pytest.mark.parametrize("name", ["glue/sst2", "e2e", "webnlg"])
def test_every_metric_a_task_reports_has_a_spec(name):
    from harness.metrics import METRICS
    from harness.tasks import get_task

    task = get_task(name)
    for key in task.metric_names():
        assert task.metric_spec(key).name in METRICS, key


def test_a_lazily_registered_entry_survives_its_cache_being_reset():
    """Registries import by path on first use and keep the path: a test that restores a registry's
    cache (monkeypatch) must not lose built-in methods for the tests after it."""
    from harness.registry import Registry

    registry = Registry("thing")
    registry.add_lazy("json_dumps", "json:dumps")
    assert registry.get("json_dumps")({"a": 1}) == '{"a": 1}'
    registry._items = {}  # what restoring a cache snapshot taken before the first use does
    assert "json_dumps" in registry and registry.get("json_dumps")([1]) == "[1]"
