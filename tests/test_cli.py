"""The command line as users meet it: help texts, and one-line errors with exit code 2."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT


def harness(*args, env=None):
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    full_env.pop("HARNESS_DATA_DIR", None)
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=full_env, timeout=300)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr  # one line, no traceback
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("command", [[], ["run"], ["tasks"], ["models"], ["methods"], ["params"], ["bench", "train"]])
def test_every_command_has_help(command):
    result = harness(*command, "--help")
    assert result.returncode == 0 and "usage: harness" in result.stdout


def test_listings_name_the_registered_entries():
    assert "glue/mnli" in harness("tasks").stdout and "imdb" in harness("tasks").stdout
    assert "roberta-base" in harness("models").stdout
    methods = harness("methods").stdout
    assert "lora" in methods and "--lora-r" in methods


def test_unknown_task(tmp_path):
    assert_one_line_error(harness("run", "glue/sst3", "--output-dir", tmp_path),
                          "unknown task 'glue/sst3'", "Did you mean 'glue/sst2'", "glue/mnli")


def test_unknown_method(tmp_path):
    assert_one_line_error(harness("run", "glue/sst2", "--method", "lorra", "--output-dir", tmp_path),
                          "unknown method 'lorra'", "Did you mean 'lora'", "full")


def test_unknown_model(tmp_path):
    assert_one_line_error(harness("run", "glue/sst2", "--model", "robert-base", "--output-dir", tmp_path),
                          "unknown model 'robert-base'", "Did you mean 'roberta-base'", "minilm-l6")


def test_hub_model_offline_names_the_offline_alternatives(tmp_path, data_dir):
    result = harness("run", "glue/sst2", "--model", "roberta-base", "--data-dir", data_dir, "--output-dir", tmp_path,
                     "--max-train-samples", 8, "--tracking-uri", "none")
    assert_one_line_error(result, "FacebookAI/roberta-base", "not in the Hugging Face cache", "minilm-l6")


def test_missing_data_file(tmp_path):
    (tmp_path / "glue").mkdir()
    assert_one_line_error(harness("run", "glue/rte", "--data-dir", tmp_path, "--output-dir", tmp_path),
                          "missing train split of glue/rte", "RTE/train.tsv")


def test_malformed_tsv_row(tmp_path):
    folder = tmp_path / "glue" / "SST-2"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text("sentence\tlabel\ngood film\t1\nbroken\trow\textra\n")
    assert_one_line_error(harness("run", "glue/sst2", "--data-dir", tmp_path, "--output-dir", tmp_path),
                          "SST-2/train.tsv:3: malformed row")


@pytest.mark.parametrize("flag,value,message", [
    ("--max-train-samples", "0", "--max-train-samples must be a positive number"),
    ("--max-train-samples", "-5", "--max-train-samples must be a positive number"),
    ("--learning-rate", "-1e-4", "--learning-rate must be a positive number"),
    ("--lora-r", "0", "--lora-r must be a positive number"),
    ("--lora-r", "eight", "--lora-r: 'eight' is not a valid value"),
    ("--epochs", "two", "invalid int value: 'two'"),
])
def test_bad_numbers(tmp_path, flag, value, message):
    assert_one_line_error(harness("run", "glue/sst2", f"{flag}={value}", "--output-dir", tmp_path), message)


def test_option_of_another_method(tmp_path):
    assert_one_line_error(harness("run", "glue/sst2", "--method", "full", "--lora-r", "4", "--output-dir", tmp_path),
                          "--lora-r applies to --method lora")


def test_params_prints_the_paper_count():
    result = harness("params", "--model", "roberta-base", "--method", "lora", "--json")
    assert result.returncode == 0, result.stderr
    assert '"trainable": 294912' in result.stdout and '"head": 592130' in result.stdout


def test_config_file_with_an_unknown_key(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("task: glue/sst2\nlearning_rat: 1e-4\n")
    assert_one_line_error(harness("run", "--config", config, "--output-dir", tmp_path),
                          "run.yaml: unknown key 'learning_rat'", "Did you mean 'learning_rate'")


def test_empty_split(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\n")
    (tmp_path / "dev.csv").write_text("text,label\ngood,pos\n")
    assert_one_line_error(harness("run", "csv", "--train-file", tmp_path / "train.csv", "--eval-file",
                                  tmp_path / "dev.csv", "--output-dir", tmp_path), "train.csv: no examples")


def test_wrong_column_count_in_a_csv_row(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\ngood film,pos\nbad,neg,extra\n")
    assert_one_line_error(harness("run", "csv", "--train-file", tmp_path / "train.csv", "--eval-file",
                                  tmp_path / "train.csv", "--output-dir", tmp_path), "train.csv:3: malformed row")


def test_unknown_metric_in_a_task_file(tmp_path):
    (tmp_path / "t.yaml").write_text("task: t\ndataset: a/b\nmetrics: [acuracy]\n")
    assert_one_line_error(harness("run", tmp_path / "t.yaml", "--output-dir", tmp_path),
                          "unknown metric 'acuracy'", "Did you mean 'accuracy'")


def test_output_directory_that_is_not_writable(tmp_path, sentiment_files):
    train, dev = sentiment_files
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    assert_one_line_error(harness("run", "csv", "--train-file", train, "--eval-file", dev, "--model", "tiny-bert",
                                  "--output-dir", blocker / "out", "--tracking-uri", "none"),
                          "cannot create the run directory", "choose another --output-dir")


def test_quantize_on_cpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU can quantize")
    assert_one_line_error(harness("run", "glue/sst2", "--quantize", "4bit", "--output-dir", tmp_path),
                          "--quantize 4bit needs a CUDA GPU")


def test_malformed_jsonl_line(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "good", "label": "pos"}\n{"text": "bad", "label": \n')
    assert_one_line_error(harness("run", "csv", "--train-file", tmp_path / "train.jsonl", "--eval-file",
                                  tmp_path / "train.jsonl", "--output-dir", tmp_path), "train.jsonl:2: invalid JSON line")
