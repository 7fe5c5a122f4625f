"""A user's own method, from a file outside the project, through every command: run, a 2-cell grid,
params, table and check; saved, reloaded and counted like the built-ins."""

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import harness_cli, sentiment_rows, write_csv

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "examples" / "plugins" / "lora_fa.py"
# tiny-bert: hidden 32, 2 layers, query and value adapted, rank 4: only B (32 x 4) trains per module.
EXPECTED_TRAINABLE = 2 * 2 * 32 * 4


def harness(cwd: Path, *args) -> subprocess.CompletedProcess:
    return harness_cli(*args, cwd=cwd)


@pytest.fixture
def user_folder(tmp_path):
    """A folder outside the project with the user's method file and data."""
    shutil.copy(PLUGIN, tmp_path / "lora_fa.py")
    write_csv(tmp_path / "train.csv", sentiment_rows(256, 0))
    write_csv(tmp_path / "dev.csv", sentiment_rows(64, 1))
    return tmp_path


def test_a_plugin_method_runs_through_run_grid_params_and_table(user_folder):
    ran = harness(user_folder, "run", "csv", "--train-file", "train.csv", "--eval-file", "dev.csv",
                  "--model", "tiny-bert", "--method", "lora_fa.py:lora_fa", "--method-opt", "r=4", "--epochs", 1,
                  "--tracking-uri", "none", "--output-dir", "out")
    assert ran.returncode == 0, ran.stderr
    assert f"trainable params {EXPECTED_TRAINABLE:,} (head 1,122 excluded)" in ran.stdout
    run_dir = next((user_folder / "out" / "runs").iterdir())
    assert run_dir.name.startswith("train-lora_fa-tiny-bert-s42-")  # the function's name, safe in paths
    saved = json.loads((run_dir / "weights" / "method.json").read_text())
    assert saved == {"method": "lora_fa.py:lora_fa", "options": {"r": 4}}

    (user_folder / "grid.yaml").write_text(textwrap.dedent("""\
        name: plugin-demo
        base: {task: csv, train_file: train.csv, eval_file: dev.csv, model: tiny-bert, epochs: 1,
               method: lora_fa.py:LORA_FA, method_options: {r: 4}, tracking_uri: none, save_weights: false}
        axes:
          seed: [0, 1]
        """))
    grid = harness(user_folder, "grid", "grid.yaml", "--output-dir", "grid-out")
    assert grid.returncode == 0, grid.stdout + grid.stderr
    assert "2 of 2 cells finished" in grid.stdout

    params = harness(user_folder, "params", "--model", "tiny-bert", "--method", "lora_fa.py:lora_fa",
                     "--method-opt", "r=4", "--json")
    assert params.returncode == 0, params.stderr
    assert json.loads(params.stdout)["trainable"] == EXPECTED_TRAINABLE

    table = harness(user_folder, "table", "--runs", "grid-out/runs", "--format", "csv", "--out", "table.csv")
    assert table.returncode == 0, table.stderr
    row = [line for line in table.stdout.splitlines() if "lora_fa" in line]
    assert len(row) == 1 and ",0.5K," in row[0] and row[0].endswith(",\"0,1\"")

    # check: the plugin against LoRA run on the same data and budget (3 seeds, so a verdict is possible);
    # the reference runs in this process (as `harness run` would) to keep the test short.
    from harness.config import RunConfig
    from harness.train import run

    for seed in (0, 1, 2):
        run(RunConfig(task="csv", train_file=str(user_folder / "train.csv"), eval_file=str(user_folder / "dev.csv"),
                      model="tiny-bert", epochs=1, method="lora", method_options={"r": 4}, tracking_uri="none",
                      save_weights=False, seed=seed, output_dir=str(user_folder / "grid-out")), progress=False)
    check = harness(user_folder, "check", "--runs", "grid-out/runs", "--candidate", "lora_fa.py:LORA_FA",
                    "--against", "lora", "--out", "reports/check.md")
    assert check.returncode in (0, 1), check.stderr  # a verdict, not a grouping or input error
    assert (user_folder / "reports" / "check.md").read_text() == check.stdout  # kept, not only printed
    entry = next(line for line in check.stdout.splitlines() if line.startswith("csv "))
    assert "[" in entry and any(v in entry for v in ("better", "equivalent", "inconclusive", "worse"))
    assert f"{EXPECTED_TRAINABLE:,} / 1,024" in check.stdout  # trainable: the plugin's B only vs LoRA's A and B


def test_a_plugin_run_reloads_from_its_saved_tensors(user_folder):
    """Only B is saved; A is rebuilt from its seed, so the reloaded model predicts what the run did."""
    from harness.config import RunConfig
    from harness.methods import load_trained
    from harness.models import get_model_spec, load_for_classification
    from harness.train import run

    method = f"{user_folder / 'lora_fa.py'}:lora_fa"
    record = run(RunConfig(task="csv", train_file=str(user_folder / "train.csv"), eval_file=str(user_folder / "dev.csv"),
                           model="tiny-bert", method=method, method_options={"r": 4}, epochs=1, learning_rate=1e-2,
                           tracking_uri="none", output_dir=str(user_folder / "out"), seed=3), progress=False)
    assert record["params"]["trainable"] == EXPECTED_TRAINABLE
    run_dir = Path(record["run_dir"])
    from safetensors.torch import load_file

    saved = load_file(run_dir / "weights" / "trainable.safetensors")
    assert sum(".lora_B" in name for name in saved) == 4 and not any(".lora_A" in name for name in saved)
    torch.manual_seed(3)  # tiny-bert's backbone is random: the run's seed rebuilds the same one
    base, tokenizer = load_for_classification(get_model_spec("tiny-bert"), 2, "single_label_classification")
    model = load_trained(base, method, {"r": 4}, run_dir / "weights").eval()
    assert all(float(t.abs().sum()) > 0 for name, t in model.state_dict().items() if name.endswith("lora_B"))
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").open()]
    texts = [r["text"] for r in sentiment_rows(64, 1)]
    with torch.no_grad():
        logits = model(**tokenizer(texts, return_tensors="pt", padding=True)).logits
    assert logits.argmax(-1).tolist() == [r["prediction"] for r in rows]


def test_a_plugin_that_trains_nothing_is_reported_and_the_head_still_trains(user_folder, recwarn):
    """A method that freezes everything (head included) leaves a trainable head and a loud warning."""
    from harness.config import RunConfig
    from harness.train import run

    (user_folder / "frozen.py").write_text(textwrap.dedent("""\
        def freeze_all(model):
            for parameter in model.parameters():
                parameter.requires_grad_(False)
            return model
        """))
    record = run(RunConfig(task="csv", train_file=str(user_folder / "train.csv"),
                           eval_file=str(user_folder / "dev.csv"), model="tiny-bert",
                           method=f"{user_folder / 'frozen.py'}:freeze_all", epochs=1, tracking_uri="none",
                           output_dir=str(user_folder / "out")), progress=False)
    assert record["params"]["trainable"] == 0 and record["params"]["head"] == 1122
    assert any("left no parameter trainable outside the task head" in str(w.message) for w in recwarn)
    saved = json.loads((Path(record["run_dir"]) / "metrics.json").read_text())
    assert saved["status"] == "finished"


def test_linear_probing_trains_the_head_alone_without_the_frozen_method_warning(user_folder, recwarn):
    """The built-in 'head' method means what a frozen plugin does by mistake: the same counts, only the
    head's tensors saved, and no warning."""
    import torch
    from safetensors.torch import load_file

    from harness.config import RunConfig
    from harness.train import run

    record = run(RunConfig(task="csv", train_file=str(user_folder / "train.csv"),
                           eval_file=str(user_folder / "dev.csv"), model="tiny-bert", method="head", epochs=1,
                           tracking_uri="none", output_dir=str(user_folder / "out")), progress=False)
    assert record["params"]["trainable"] == 0 and record["params"]["head"] == 1122
    assert not [w for w in recwarn if "left no parameter trainable" in str(w.message)]
    saved = load_file(next((Path(record["run_dir"]) / "weights").glob("*.safetensors")))
    assert saved and all(name.startswith(("classifier.", "bert.pooler.")) for name in saved)
    assert sum(t.numel() for t in saved.values()) == 1122 and all(torch.isfinite(t).all() for t in saved.values())


def test_an_unknown_plugin_is_a_one_line_error(user_folder):
    missing = harness(user_folder, "run", "csv", "--train-file", "train.csv", "--eval-file", "dev.csv",
                      "--model", "tiny-bert", "--method", "nowhere.py:method", "--tracking-uri", "none")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1].startswith("harness: error: method 'nowhere.py:method': file ")
    bad_name = harness(user_folder, "run", "csv", "--train-file", "train.csv", "--eval-file", "dev.csv",
                       "--model", "tiny-bert", "--method", "lora_fa.py:nothing", "--tracking-uri", "none")
    assert bad_name.returncode == 2 and "has no 'nothing'" in bad_name.stderr


def test_an_installed_package_publishes_a_method_under_the_entry_point_group(tmp_path, monkeypatch):
    """A distribution with `[harness.methods] lora_fa = ...` makes the name work like a built-in."""
    package = tmp_path / "site"
    (package / "my_methods").mkdir(parents=True)
    shutil.copy(PLUGIN, package / "my_methods" / "__init__.py")
    info = package / "my_methods-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-methods\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[harness.methods]\nlora_fa = my_methods:lora_fa\n")
    monkeypatch.syspath_prepend(str(package))
    from harness.methods import METHODS, get_method, method_specs
    from harness.params import count_without_weights

    monkeypatch.setattr(METHODS, "_items", dict(METHODS._items))  # the found plugin is forgotten afterwards

    spec = get_method("lora_fa")
    assert spec.description.startswith("LoRA-FA") and "lora_fa" in dict(method_specs())
    assert count_without_weights("tiny-bert", "lora_fa", {"r": 4}).trainable == EXPECTED_TRAINABLE


def test_a_method_that_leaves_nothing_to_train_on_a_headless_model_is_a_one_line_failure(user_folder, data_dir):
    """A causal LM has no task head: a method that trains none of its parameters (BitFit on a model
    without biases) fails with the method's description in the record and on stderr, not a traceback."""
    if not (data_dir / "e2e").is_dir():
        pytest.skip("E2E data not found")
    (user_folder / "frozen.py").write_text(textwrap.dedent("""\
        def freeze_all(model):
            for parameter in model.parameters():
                parameter.requires_grad_(False)
            return model
        """))
    result = harness(user_folder, "run", "e2e", "--model", "tiny-gpt2", "--method", "frozen.py:freeze_all",
                     "--data-dir", data_dir, "--max-train-samples", 8, "--max-eval-samples", 4,
                     "--max-decode-samples", 2, "--max-new-tokens", 4, "--tracking-uri", "none", "--output-dir", "out")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "leaves no parameter of model 'tiny-gpt2' to train" in result.stderr.strip().splitlines()[-1]
    record = json.loads(next((user_folder / "out" / "runs").glob("*/metrics.json")).read_text())
    assert record["status"] == "failed" and "the method cannot adapt this model" in record["error"]
