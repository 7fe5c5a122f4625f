"""`harness grid FILE --smoke`: every paper experiment file runs end to end (every distinct setting, seeds
collapsed, variants included, on small random models of the real architectures) and fills the rows of
the paper's tables that it reproduces."""

import json
import shutil

import pytest

from harness.grid.experiments import load_experiment
from harness.grid.smoke import run_smoke, smoke_experiments
from harness.models import get_model_spec

from conftest import ROOT, harness_cli

PAPER_FILES = sorted((ROOT / "experiments" / "paper").glob("*.yaml"))


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("smoke")


def needs_java(path) -> bool:
    return any(cell.config.task in ("e2e", "webnlg", "dart") for cell in load_experiment(path).cells)


@pytest.mark.parametrize("path", PAPER_FILES, ids=lambda path: path.stem)
def test_every_paper_file_runs_end_to_end_and_fills_its_paper_rows(path, data_dir, smoke_dir):
    if needs_java(path) and shutil.which("java") is None:
        pytest.skip("the NLG metrics of Table 3 (METEOR, ROUGE-L, CIDEr) need Java")
    smoke = smoke_experiments(path, overrides={"data_dir": str(data_dir)}, output_dir=str(smoke_dir))
    result = run_smoke(smoke, str(smoke_dir), progress=lambda *_: None)
    assert not result.not_finished, [
        json.loads((smoke_dir / "runs" / name / "metrics.json").read_text()).get("error") for name in result.not_finished]
    # Each distinct setting ran once: every task of the file, every variant's settings (seeds collapsed).
    tasks = {cell.config.task for cell in load_experiment(path).cells}
    assert {cell.config.task for cell in smoke.experiments[0].cells} == tasks
    assert all(cell.config.seed == smoke.experiments[0].cells[0].config.seed for e in smoke.experiments for cell in e.cells)
    assert {cell.config.model for e in smoke.experiments for cell in e.cells} == {"smoke:" + load_experiment(path).cells[0].config.model}
    # The paper's rows this file reproduces are built from its runs: every column of Tables 2 and 3
    # (Tables 13 and 14: all but WebNLG's unseen categories, after the first inputs the smoke decodes).
    tables = {row.table for row in result.rows}
    assert tables == ({"table3", "table13", "table14"} if "table3" in path.stem else {"table2"})
    for row in result.rows:
        assert row.ok, (row.table, row.row, row.unfilled)
        if row.table in ("table2", "table3", "table14"):
            assert not row.not_computed, (row.table, row.not_computed)


def test_smoke_models_keep_the_architecture_and_its_module_names():
    """The smoke model of each paper model: the same model type and module names as the real model (built
    on the meta device from the preset's config), fewer and narrower blocks."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from harness.models import build_config

    def names(model) -> set[str]:
        return {".".join("N" if part.isdigit() else part for part in name.split(".")) for name, _ in model.named_modules()}

    for model_name, auto in [("roberta-base", AutoModelForSequenceClassification),
                             ("roberta-large", AutoModelForSequenceClassification),
                             ("deberta-v2-xxlarge", AutoModelForSequenceClassification),
                             ("gpt2-medium", AutoModelForCausalLM), ("gpt2-large", AutoModelForCausalLM)]:
        real_config, smoke_config = (build_config(get_model_spec(name)) for name in (model_name, "smoke:" + model_name))
        with torch.device("meta"):
            real, smoke = auto.from_config(real_config), auto.from_config(smoke_config)
        assert type(real) is type(smoke) and real_config.model_type == smoke_config.model_type
        assert names(real) == names(smoke), model_name
        assert smoke_config.num_hidden_layers == 2 and smoke_config.hidden_size == 32
        assert smoke_config.vocab_size == real_config.vocab_size


def test_smoke_cli_checks_the_paper_rows(data_dir, smoke_dir):
    """The command itself (its cells are the ones the test above ran in this folder, or run now); then
    `harness table --paper`'s table from the folder marks the row as smoke runs'."""
    from harness.report.results import records_from_runs_dir
    from harness.report.tables import paper_table

    path = ROOT / "experiments" / "paper" / "table2_roberta_large_adapter_h_0_8m.yaml"
    result = harness_cli("grid", path, "--smoke", "--set", f"data_dir={data_dir}", "--output-dir", smoke_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "table2 row 'RoBlarge (AdptH)†': every column filled" in result.stdout
    assert "note: glue/mnli: not in" in result.stdout  # what stands in for missing data is said
    rows, _ = paper_table("table2", records_from_runs_dir(smoke_dir / "runs"))
    # The row of this file (r=8): RoBERTa-large's count (24 blocks x 2 adapters), not the smoke model's.
    ours = next(row for row in rows if row["row"] == "RoBlarge (AdptH)†" and row["# Trainable"] == "0.84M")
    assert ours[""] == "ours (smoke)" and "missing" not in ours.values()
    assert rows[rows.index(ours) + 2]["MNLI"] == ""  # no Δ to the paper for a random model's numbers
