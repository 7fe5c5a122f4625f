"""Tables and plots read what a column means from the task and metric specs: the committed tables
regenerate byte for byte, and a new dataset or metric prints per its spec with no entry in the
report code. Nothing here trains: the committed run folders are read back."""

import pytest

from harness.metrics import METRICS, MetricSpec
from harness.report import specs
from harness.report.reference import PAPER_TABLES
from harness.report.render import render
from harness.report.results import RunRecord, records_from_experiment, records_from_runs_dir
from harness.report.results import run_score
from harness.report.tables import paper_table, results_table
from harness.tasks import TASKS, Task

from conftest import ROOT


def _experiment(name: str, by: tuple[str, ...] = ()):
    """The table README.md's `harness table --experiment experiments/cpu-mini/<name>.yaml` writes."""
    records = records_from_experiment(str(ROOT / f"experiments/cpu-mini/{name}.yaml"),
                                      ROOT / f"results/cpu-mini/{name}/runs")
    return results_table(records, by=by)


def _runs(folder: str):
    """The table of `harness table --runs <folder>`."""
    return results_table(records_from_runs_dir(ROOT / folder))


# committed file -> how README.md builds it (the CLI calls these functions and renders Markdown).
COMMITTED = {
    "reports/cpu-mini/e2e_smollm2.md": lambda: _experiment("e2e_smollm2"),
    "reports/cpu-mini/glue_minilm_7methods.md": lambda: _experiment("glue_minilm"),
    "reports/cpu-mini/glue_minilm_lr_sweep.md": lambda: _experiment("glue_minilm_lr_sweep", by=("learning_rate",)),
    "reports/cpu-mini/glue_minilm_cola_full.md": lambda: _experiment("glue_minilm_cola_full"),
    "reports/cpu-mini/sst2_methods.md": lambda: _runs("results/cpu-mini/sst2_methods_runs"),
    "reports/generation/e2e_smollm2_first100.md": lambda: _runs("results/generation/runs"),
    "reports/table2.md": lambda: paper_table("table2", []),  # no run fills a row yet: the paper's layout and numbers
    "reports/table3.md": lambda: paper_table("table3", []),
}


@pytest.mark.parametrize("path", list(COMMITTED))
def test_committed_tables_regenerate_byte_for_byte(path, tmp_path):
    out = tmp_path / "table.md"
    out.write_text(render(*COMMITTED[path](), "markdown"), encoding="utf-8")
    assert out.read_bytes() == (ROOT / path).read_bytes()


@pytest.fixture
def register(monkeypatch):
    """Register a task or a metric for one test only (and forget tasks the report code cached)."""
    monkeypatch.setattr(specs, "_TASKS", {})

    def add(item):
        if isinstance(item, MetricSpec):
            monkeypatch.setitem(METRICS._items, item.name, item)
        else:
            monkeypatch.setitem(TASKS._items, item.name, lambda: item)
        return item

    return add


def _run(task, seed, best, main, method="lora", epochs=2, model="m"):
    return RunRecord(name=f"{task}-{method}-{seed}", task=task, model=model, method=method, method_options={},
                     seed=seed, status="finished", main_metric=main, best=best, params={"trainable": 230400},
                     epochs=epochs, history=[{"epoch": 1, main: best[main]}, {"epoch": 2, main: best[main]}])


def test_a_new_generation_task_prints_per_its_metric_specs(register, tmp_path):
    register(Task(name="test/newgen", kind="generation", metrics=["bleu", "ter"], main_metric="bleu_all", source=None,
                  subsets=("in_domain", "out_domain"), label="NewGen"))
    best = [{"bleu_all": 41.0, "bleu_in_domain": 50.0, "bleu_out_domain": 30.0, "ter_all": 0.50,
             "ter_in_domain": 0.40, "ter_out_domain": 0.60, "dev_loss": 1.25},
            {"bleu_all": 42.0, "bleu_in_domain": 51.0, "bleu_out_domain": 33.0, "ter_all": 0.56,
             "ter_in_domain": 0.42, "ter_out_domain": 0.70, "dev_loss": 1.5}]
    records = [_run("test/newgen", seed, b, "bleu_all") for seed, b in enumerate(best)]
    rows, columns = results_table(records)
    # One generation task: a metric table, labels from the specs and the task's own subsets.
    assert columns[3:] == ["BLEU A", "BLEU I", "BLEU O", "TER A", "TER I", "TER O", "dev_loss", "seeds"]
    row = rows[0]
    # BLEU on the paper's scale (not x100), TER a fraction with 2 decimals; both the mean over seeds.
    assert row["BLEU A"] == "41.5±.7" and row["BLEU O"] == "31.5±2.1"
    assert row["TER A"] == "0.53±.04" and row["TER O"] == "0.65±.07" and row["dev_loss"] == "1.375±.177"
    # Beside a GLUE task: a task column with the task's label and main score, no Avg over BLEU and accuracy.
    glue = [_run("glue/sst2", seed, {"accuracy": 0.9}, "accuracy") for seed in (0, 1)]
    rows, columns = results_table(records + glue)
    assert columns[3:] == ["SST-2", "NewGen", "Avg", "seeds"]
    assert rows[0]["NewGen"] == "41.5±.7" and rows[0]["SST-2"] == "90.0±.0" and rows[0]["Avg"] == "n/a"
    from harness.report.plots import params_vs_score, validation_curves

    params_vs_score(records, tmp_path, paper=False)
    validation_curves(records, tmp_path)
    assert "dev BLEU (mean over seeds)" in (tmp_path / "params_vs_score.svg").read_text()
    assert ">NewGen: validation curves<" in (tmp_path / "validation_curves.svg").read_text()


def test_a_new_metric_prints_per_its_spec(register, tmp_path):
    register(MetricSpec("test_error", "Err.", higher_is_better=False, scale=1000.0, decimals=2, aggregate="mean"))
    register(Task(name="test/errors", kind="classification", metrics=["test_error"], main_metric="test_error",
                  source=None, label_names=["a", "b"], label="Errors"))
    records = [_run("test/errors", seed, {"test_error": e}, "test_error")
               for seed, e in enumerate([0.010, 0.012, 0.020])]
    rows, columns = results_table(records)
    assert columns[3:] == ["Errors", "Avg", "seeds"]
    # x1000, 2 decimals, the mean (14.0) not the median (12.0); an Avg only over GLUE-style medians.
    assert rows[0]["Errors"] == "14.00±5.29" and rows[0]["Avg"] == "n/a"
    # A run of an unregistered task (csv) with that metric prints per the metric's spec too.
    rows, columns = results_table([_run("csv", seed, {"test_error": e}, "test_error")
                                   for seed, e in enumerate([0.01, 0.02])])
    assert columns[3] == "csv" and rows[0]["csv"] == "15.00±7.07"
    from harness.report.plots import params_vs_score

    params_vs_score(records, tmp_path, paper=False)
    assert "dev Err. (x1000, mean over seeds)" in (tmp_path / "params_vs_score.svg").read_text()


def test_an_unknown_task_and_metric_fall_back_without_errors():
    records = [_run("gone.yaml", seed, {"weird": w}, "weird") for seed, w in enumerate([3.14159, 2.5])]
    records.append(_run("csv", 0, {"accuracy": 0.75}, "accuracy"))
    rows, columns = results_table(records)
    assert columns[3:] == ["csv", "gone.yaml", "Avg", "seeds"]
    # accuracy is a registered metric (x100); 'weird' is printed as stored; no mean across the two scales.
    assert rows[0]["csv"] == "75.0" and rows[0]["gone.yaml"] == "2.8208±.4537" and rows[0]["Avg"] == "n/a"
    assert run_score(records[0]) == 3.14159


def test_runs_of_a_task_yaml_given_by_path_report_by_its_specs(register, tmp_path):
    """`harness run my/menus.yaml`: the task is in no registry, but the run's config names its file."""
    path = tmp_path / "menus.yaml"
    path.write_text("task: test_menus\ntype: generation\nfiles: {train: t.csv, dev: d.csv, test: e.csv}\n"
                    "source_column: mr\ntarget_column: ref\nscorer: e2e\nmetrics: [bleu, nist]\n")
    records = [_run("test_menus", seed, {"dev_loss": 2.0, "bleu": b, "nist": 3.0}, "bleu")
               for seed, b in enumerate([40, 42])]
    for record in records:
        record.config = {"task": str(path)}
    rows, columns = results_table(records)
    assert columns[3:] == ["BLEU", "NIST", "dev_loss", "seeds"] and rows[0]["BLEU"] == "41.0±1.4"
    path.unlink()  # the file is gone: a task column, printed by its main metric's registered spec alone
    specs._TASKS.clear()
    rows, columns = results_table(records)
    assert columns[3:] == ["test_menus", "Avg", "seeds"] and rows[0]["test_menus"] == "41.0±1.4"
    assert rows[0]["Avg"] == "n/a"


def test_mnli_scores_over_both_dev_sets_and_the_average_is_glue_only():
    mnli = _run("glue/mnli", 0, {"accuracy_m": 0.80, "accuracy_mm": 0.90}, "accuracy_m")
    assert run_score(mnli) == pytest.approx((0.80 * 9815 + 0.90 * 9832) / (9815 + 9832))
    rte = _run("glue/rte", 0, {"accuracy": 0.70}, "accuracy")
    rows, columns = results_table([mnli, rte])
    assert columns[3:] == ["MNLI", "RTE", "Avg", "seeds"]
    assert rows[0]["MNLI"] == "85.0" and rows[0]["Avg"] == f"{100 * (run_score(mnli) + 0.70) / 2:.1f}"


def test_paper_tables_take_their_column_names_from_the_specs():
    expected = {"table2": ["MNLI", "SST-2", "MRPC", "CoLA", "QNLI", "QQP", "RTE", "STS-B", "Avg"],
                "table3": ["BLEU", "NIST", "MET", "ROUGE-L", "CIDEr"],
                "table13": [f"{m} {s}" for m in ("BLEU", "MET", "TER") for s in "USA"],
                "table14": ["BLEU", "MET", "TER"]}
    for name in PAPER_TABLES:
        assert paper_table(name, [], with_paper=False)[1][3:] == expected[name]


def test_report_code_keys_nothing_by_task_or_metric_name():
    source = "".join((ROOT / "harness/report" / f).read_text() for f in ("tables.py", "plots.py", "specs.py"))
    for name in [*TASKS.names(), *METRICS.names(), "nlg", "NLG_TASKS", "COLUMN_NAMES", "METRIC_NAMES"]:
        assert f'"{name}"' not in source and f"'{name}'" not in source, name
