"""Tables, plots and regression checks from tracked runs (made here with a tiny model)."""

import json
import os
import statistics
import subprocess
import sys

import pytest

from harness.config import RunConfig
from harness.report.reference import PAPER_TABLE2, PAPER_TABLE3
from harness.report.results import records_from_experiment, records_from_runs_dir
from harness.report.tables import paper_table, results_table
from harness.train import run

from conftest import ROOT, harness_cli

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def tracked_runs(tmp_path_factory):
    """full and LoRA x 3 seeds on a small CSV task, tracked in run folders."""
    from conftest import sentiment_rows, write_csv

    root = tmp_path_factory.mktemp("tables")
    train = write_csv(root / "train.csv", sentiment_rows(256, 0))
    dev = write_csv(root / "dev.csv", sentiment_rows(48, 1))
    records = {}
    for method in ("full", "lora"):
        for seed in SEEDS:
            records[(method, seed)] = run(RunConfig(
                task="csv", train_file=str(train), eval_file=str(dev), model="tiny-bert", method=method, seed=seed,
                epochs=2, tracking_uri="none", output_dir=str(root / "results"), run_name=f"{method}-s{seed}"),
                progress=False)
    return root / "results" / "runs", records


def test_table_cells_are_the_median_and_std_over_seeds(tracked_runs):
    runs_dir, records = tracked_runs
    rows, columns = results_table(records_from_runs_dir(runs_dir))
    assert columns == ["model", "method", "# trainable", "csv", "Avg", "seeds"]
    for method in ("full", "lora"):
        scores = [100 * records[(method, s)]["best"]["accuracy"] for s in SEEDS]
        median, std = statistics.median(scores), statistics.stdev(scores)
        expected = f"{median:.1f}±" + f"{std:.1f}".removeprefix("0")
        row = next(r for r in rows if r["method"] == method)
        assert row["csv"] == expected and row["seeds"] == "0,1,2"
        trainable = records[(method, 0)]["params"]["trainable"]
        assert row["# trainable"] == ("2.0K" if method == "lora" else f"{trainable / 1e6:.2f}M")
        assert method == "full" or trainable == 2048  # tiny-bert LoRA: 2 layers x (q, v) x (A, B) x 32 x 8


def test_missing_and_failed_runs_are_never_zero(tracked_runs, tmp_path):
    runs_dir, _ = tracked_runs
    bad = runs_dir.parent.parent / "bad"
    bad.mkdir(exist_ok=True)
    failed = runs_dir / "broken-run"
    failed.mkdir(exist_ok=True)
    (failed / "config.json").write_text(json.dumps({"task": "csv", "model": "tiny-bert", "method": "bitfit",
                                                    "method_options": {}, "seed": 0}))
    (failed / "metrics.json").write_text(json.dumps({"status": "failed", "task": "csv"}))
    rows, _ = results_table(records_from_runs_dir(runs_dir))
    assert next(r for r in rows if r["method"] == "bitfit")["csv"] == "failed (1)"
    experiment = tmp_path / "never.yaml"
    experiment.write_text("name: never\nbase: {task: glue/rte, model: tiny-bert}\naxes: {seed: [0, 1]}\n")
    rows, _ = results_table(records_from_experiment(str(experiment), runs_dir))
    assert rows[0]["RTE"] == "missing" and rows[0]["Avg"] == "n/a"
    failed.joinpath("metrics.json").unlink()
    failed.joinpath("config.json").unlink()
    failed.rmdir()


def _fake_run(runs_dir, name, task, model, method, options, seed, best, main):
    folder = runs_dir / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"task": task, "model": model, "method": method,
                                                    "method_options": options, "seed": seed}))
    (folder / "metrics.json").write_text(json.dumps({"status": "finished", "task": task, "main_metric": main,
                                                     "best": best, "params": {"trainable": 294912}}))


def test_paper_table2_layout_rows_markers_and_delta(tmp_path):
    rows, columns = paper_table("table2", [])
    assert columns == ["row", "", "# Trainable", "MNLI", "SST-2", "MRPC", "CoLA", "QNLI", "QQP", "RTE", "STS-B", "Avg"]
    ours = [r for r in rows if r[""] == "ours"]
    assert [r["row"] for r in ours] == [f"{p.label}{p.marker}" for p in PAPER_TABLE2]
    assert ours[7]["row"] == "RoBlarge (AdptP)†" and ours[0]["row"] == "RoBbase (FT)*"
    assert all(r["SST-2"] == "missing" for r in ours)  # nothing ran: shown as missing, never 0
    # Runs of the RoBERTa-base LoRA experiment fill that row: median over seeds, then paper and Δ.
    runs = tmp_path / "runs"
    for seed, accuracy in enumerate([0.95, 0.94, 0.96, 0.93, 0.955]):
        _fake_run(runs, f"table2-roberta-base-{seed:012x}", "glue/sst2", "roberta-base", "lora",
                  {"r": 8, "alpha": 8}, seed, {"accuracy": accuracy}, "accuracy")
    rows, _ = paper_table("table2", records_from_runs_dir(runs))
    index = next(i for i, r in enumerate(rows) if r["row"] == "RoBbase (LoRA)")
    assert rows[index]["SST-2"].startswith("95.0±")  # median of 95, 94, 96, 93, 95.5
    assert rows[index + 1]["SST-2"] == "95.1±.2" and rows[index + 2]["SST-2"] == "-0.1"
    other = next(r for r in rows if r["row"] == "RoBlarge (LoRA)†")
    assert other["SST-2"] == "missing"  # another experiment's row is not filled by these runs


def test_paper_table3_layout():
    rows, columns = paper_table("table3", [], with_paper=False)
    assert columns == ["row", "", "# Trainable", "BLEU", "NIST", "MET", "ROUGE-L", "CIDEr"]
    assert [r["row"] for r in rows] == [f"{p.label}{p.marker}" for p in PAPER_TABLE3]
    # "ours" is always our count (r=112: 11,064,576); the paper's printed 11.09M is in its own row.
    assert rows[3]["row"] == "GPT-2 M (AdapterH)" and rows[3]["# Trainable"] == "11.06M"
    with_paper, _ = paper_table("table3", [], with_paper=True)
    lora = with_paper[[r["row"] for r in with_paper].index("GPT-2 M (LoRA)")]
    assert lora["# Trainable"] == "0.39M" and with_paper[with_paper.index(lora) + 1]["# Trainable"] == "0.35M"


harness = harness_cli


def test_table_command_writes_every_format(tracked_runs, tmp_path):
    runs_dir, _ = tracked_runs
    for fmt, marker in [("markdown", "| model |"), ("latex", r"\begin{tabular}"), ("csv", "model,method"),
                        ("html", "<table>")]:
        out = tmp_path / f"t.{fmt}"
        result = harness("table", "--runs", runs_dir, "--format", fmt, "--out", out)
        assert result.returncode == 0, result.stderr
        assert marker in out.read_text()


def test_table_prints_to_stdout_and_writes_nothing_without_out(tracked_runs, tmp_path):
    runs_dir, _ = tracked_runs
    result = subprocess.run([sys.executable, "-m", "harness", "table", "--runs", str(runs_dir)], capture_output=True,
                            text=True, cwd=tmp_path, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "| model |" in result.stdout and list(tmp_path.iterdir()) == []


def test_runs_frame_has_one_row_per_run_and_exports_as_data(tracked_runs, tmp_path):
    import pandas as pd
    from harness.report.results import frame

    runs_dir, records = tracked_runs
    runs = frame(runs_dir)
    assert len(runs) == len(records) and set(runs["label"]) == {"full", "lora"}
    for column in ("task", "method.options", "optim.learning_rate", "best_accuracy", "params_trainable",
                   "train_samples_per_s", "version_torch", "setting"):
        assert column in runs, column
    # The table's cells are the frame's groupby: median over seeds of the best-epoch accuracy.
    medians = runs.groupby("label")["score"].median()
    rows, _ = results_table(records_from_runs_dir(runs_dir))
    assert {r["method"]: r["csv"].split("±")[0] for r in rows} == {k: f"{v * 100:.1f}" for k, v in medians.items()}
    # --per-run exports that frame; csv/json/parquet of the aggregated table are data too.
    for fmt in ("csv", "json", "parquet"):
        out = tmp_path / f"runs.{fmt}"
        result = harness("table", "--runs", runs_dir, "--per-run", "--format", fmt, "--out", out)
        assert result.returncode == 0, result.stderr
        read = {"csv": pd.read_csv, "json": pd.read_json, "parquet": pd.read_parquet}[fmt](out)
        assert len(read) == len(records) and sorted(read["run"]) == sorted(runs["run"])
        assert read["best_accuracy"].round(6).tolist() == runs.set_index("run").loc[read["run"], "best_accuracy"].round(6).tolist()
    eff, columns = results_table(records_from_runs_dir(runs_dir), efficiency=True)
    assert columns[-6:] == ["weights (MB)", "peak memory (MB)", "training peak (MB)", "train samples/s",
                            "train time (s)", "seeds"]
    lora = runs[runs["label"] == "lora"]
    assert next(r for r in eff if r["method"] == "lora")["train samples/s"] == f"{lora['train_samples_per_s'].median():.1f}"
    result = harness("table", "--runs", runs_dir, "--format", "json")
    assert result.returncode == 0 and {r["method"] for r in json.loads(result.stdout)} == {"full", "lora"}
    result = harness("table", "--runs", runs_dir, "--format", "parquet")
    assert result.returncode != 0 and "--out" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_plots_are_written_as_png_and_svg(tracked_runs, tmp_path):
    runs_dir, _ = tracked_runs
    result = harness("plot", "--runs", runs_dir, "--out-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("params_vs_score", "validation_curves", "rank_sweep"):
        for ext in ("png", "svg"):
            assert (tmp_path / f"{name}.{ext}").stat().st_size > 1000


def test_runs_read_from_mlflow_give_the_same_table(tmp_path):
    from conftest import sentiment_rows, write_csv
    from harness.report.results import records_from_mlflow

    train = write_csv(tmp_path / "train.csv", sentiment_rows(64, 0))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    # LoRA with alpha given as YAML gives it (an int, 32) and with a boolean option at its default.
    settings = [("bitfit", {}, 0), ("bitfit", {}, 1), ("lora", {"alpha": 32, "fused_qv": False}, 0)]
    for method, options, seed in settings:
        run(RunConfig(task="csv", train_file=str(train), eval_file=str(train), model="tiny-bert", method=method,
                      method_options=options, seed=seed, epochs=1, tracking_uri=uri, experiment="tables",
                      output_dir=str(tmp_path / "out"), save_weights=False), progress=False)
    from_mlflow, _ = results_table(records_from_mlflow(uri, "tables"))
    from_dirs, _ = results_table(records_from_runs_dir(tmp_path / "out" / "runs"))
    # One label per setting, the same from both sources: no 'fused_qv=False' (the default), no 'alpha=32.0'.
    assert [r["method"] for r in from_mlflow] == [r["method"] for r in from_dirs] == ["bitfit", "lora (alpha=32)"]
    assert [r["csv"] for r in from_mlflow] == [r["csv"] for r in from_dirs]
    assert [r["# trainable"] for r in from_mlflow] == [r["# trainable"] for r in from_dirs]


def test_generation_runs_give_a_metric_table_on_the_paper_scale():
    from harness.report.results import RunRecord

    def run(seed, bleu, nist, epochs=1):
        return RunRecord(name=f"r{seed}{epochs}", task="e2e", model="smollm2-135m", method="lora",
                         method_options={"r": 4}, seed=seed, status="finished", main_metric="bleu",
                         best={"dev_loss": 1.5, "bleu": bleu, "nist": nist}, params={"trainable": 230400},
                         epochs=epochs)

    rows, columns = results_table([run(0, 68.0, 7.5), run(1, 69.0, 7.7), run(0, 4.6, 1.6, epochs=0)])
    assert columns == ["model", "method", "# trainable", "BLEU", "NIST", "dev_loss", "seeds"]
    trained = next(r for r in rows if r["method"] == "lora (r=4)")
    # The mean of the seeds (the paper's NLG convention); stored on the paper's scale, printed as is.
    assert trained["BLEU"] == "68.5±.7" and trained["NIST"] == "7.60±.14" and trained["# trainable"] == "0.23M"
    untrained = next(r for r in rows if r["method"] == "untrained (--epochs 0)")
    assert untrained["BLEU"] == "4.6" and untrained["# trainable"] == "0"


def test_paper_tables_13_and_14_read_webnlg_and_dart_runs():
    from harness.report.results import RunRecord

    def run(task, seed, best):
        return RunRecord(name=f"{task}{seed}", task=task, model="gpt2-medium", method="lora",
                         method_options={"r": 4, "alpha": 32, "fused_qv": True}, seed=seed, status="finished",
                         main_metric="bleu", best=best, experiment="table3-gpt2-medium-lora", epochs=5)

    webnlg = {"bleu_unseen": 46.0, "bleu_seen": 62.0, "bleu_all": 55.0, "meteor_unseen": 0.38, "meteor_seen": 0.44,
              "meteor_all": 0.41, "ter_unseen": 0.47, "ter_seen": 0.33, "ter_all": 0.39}
    rows, columns = paper_table("table13", [run("webnlg", 0, webnlg), run("dart", 0, {"bleu": 47.0})])
    assert columns[3:6] == ["BLEU U", "BLEU S", "BLEU A"] and columns[-1] == "TER A"
    index = next(i for i, r in enumerate(rows) if r["row"] == "GPT-2 M (LoRA)")
    ours, paper, delta = rows[index:index + 3]
    assert ours["BLEU U"] == "46.0" and ours["MET A"] == "0.41" and ours["TER U"] == "0.47"
    assert paper["BLEU U"] == "46.7±.4" and delta["BLEU U"] == "-0.7" and delta["TER U"] == "+0.01"
    rows, columns = paper_table("table14", [run("dart", 0, {"bleu": 47.0, "meteor": 0.39, "ter": 0.47})])
    assert columns[3:] == ["BLEU", "MET", "TER"]
    dart = next(r for r in rows if r["row"] == "GPT-2 M (LoRA)")
    assert dart["BLEU"] == "47.0" and dart["TER"] == "0.47"
    assert next(r for r in rows if r["row"] == "GPT-2 L (LoRA)")["BLEU"] == "missing"


def test_by_splits_rows_by_a_run_setting_in_numeric_order(tmp_path):
    from harness.report.results import RunRecord

    def run(lr, seed, accuracy):
        return RunRecord(name=f"{lr}-{seed}", task="glue/sst2", model="minilm-l6", method="lora", method_options={},
                         seed=seed, status="finished", main_metric="accuracy", best={"accuracy": accuracy},
                         params={"trainable": 73728}, epochs=2, config={"learning_rate": lr, "seed": seed})

    records = [run(1e-2, 0, 0.80), run(1e-3, 0, 0.70), run(3e-3, 0, 0.90), run(3e-3, 1, 0.92)]
    rows, columns = results_table(records, by=("learning_rate",))
    assert columns[:4] == ["model", "method", "learning_rate", "# trainable"]
    assert [r["learning_rate"] for r in rows] == ["0.001", "0.003", "0.01"]
    assert [r["SST-2"] for r in rows] == ["70.0", "91.0±1.4", "80.0"]
    # Without --by the learning rates are still never pooled: each row names its setting.
    split, _ = results_table(records)
    assert [r["method"] for r in split] == ["lora [optim.learning_rate=0.001]", "lora [optim.learning_rate=0.003]",
                                            "lora [optim.learning_rate=0.01]"]
    assert [r["SST-2"] for r in split] == ["70.0", "91.0±1.4", "80.0"]


def test_by_names_an_unknown_setting_with_a_one_line_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "harness", "table", "--runs", str(tmp_path), "--by", "learning_rat"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "unknown --by setting 'learning_rat'" in result.stderr and "Did you mean 'learning_rate'?" in result.stderr


def test_paper_layout_says_so_when_no_run_fills_any_of_its_rows(tmp_path):
    runs = tmp_path / "runs"
    _fake_run(runs, "minilm-lora-0", "glue/sst2", "minilm-l6", "lora", {"r": 8, "alpha": 8}, 0,
              {"accuracy": 0.8}, "accuracy")
    result = harness("table", "--runs", runs, "--paper", "table2", "--out", tmp_path / "t.md")
    assert result.returncode == 0 and "none of the 1 runs fills a row of the paper's table2" in result.stderr
    assert "leave out --paper" in result.stderr
    _fake_run(runs, "table2-roberta-base-000000000000", "glue/sst2", "roberta-base", "lora",
              {"r": 8, "alpha": 8}, 0, {"accuracy": 0.95}, "accuracy")
    result = harness("table", "--runs", runs, "--paper", "table2", "--out", tmp_path / "t.md")
    assert result.returncode == 0 and "none of" not in result.stderr


def test_params_plot_has_one_legend_metric_axis_labels_and_optional_paper_points(tmp_path):
    runs = tmp_path / "runs"
    for seed in (0, 1):
        _fake_run(runs, f"sst2-lora-{seed}", "glue/sst2", "minilm-l6", "lora", {}, seed, {"accuracy": 0.8}, "accuracy")
        _fake_run(runs, f"stsb-lora-{seed}", "glue/stsb", "minilm-l6", "lora", {}, seed, {"pearson": 0.7}, "pearson")
        _fake_run(runs, f"stsb-bitfit-{seed}", "glue/stsb", "minilm-l6", "bitfit", {}, seed, {"pearson": 0.6}, "pearson")
    for flags, paper in (((), True), (("--no-paper-values",), False)):
        out = tmp_path / ("with" if paper else "without")
        result = harness("plot", "params", "--runs", runs, "--out-dir", out, *flags)
        assert result.returncode == 0, result.stderr
        svg = (out / "params_vs_score.svg").read_text()
        assert svg.count(">lora<") == 1 and svg.count(">bitfit<") == 1  # one legend for both panels
        assert "dev Pearson corr." in svg and "dev accuracy" in svg
        assert ("paper (RoBERTa/DeBERTa, Table 2)" in svg) == paper


def test_a_running_cell_joins_its_row_instead_of_splitting_it():
    """A cell still running has a config but no metrics.json: its fingerprint lacks the data hashes and versions
    the finished seeds record, which must not read as a different setting."""
    from harness.report.results import RunRecord

    def run(seed, status, accuracy=None):
        record = {"task": "glue/sst2", "data": {"train": "glue/SST-2/train.tsv"}, "versions": {"torch": "2.13.0"}}
        return RunRecord(name=f"s{seed}", task="glue/sst2", model="minilm-l6", method="lora", method_options={},
                         seed=seed, status=status, main_metric="accuracy" if accuracy else None,
                         best={"accuracy": accuracy} if accuracy else {}, epochs=1, config={"seed": seed},
                         record=record if accuracy else {})

    rows, _ = results_table([run(0, "finished", 0.80), run(1, "finished", 0.82), run(2, "running")])
    assert [r["method"] for r in rows] == ["lora"] and rows[0]["SST-2"] == "81.0±1.4 (2/3 runs)"
