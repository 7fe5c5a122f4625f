"""The command line as users meet it: help texts, and one-line errors with exit code 2."""

import csv
import json
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, harness_cli


harness = harness_cli  # in this process; own_process=True where a new process matters


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr  # one line, no traceback
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("command", [[], ["run"], ["tasks"], ["models"], ["methods"], ["params"], ["bench", "train"]])
def test_every_command_has_help(command):
    result = harness(*command, "--help", own_process=command == [])  # once as `python -m harness`
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
                     "--max-train-samples", 8, "--tracking-uri", "none", own_process=True)  # offline from import on
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
    result = harness("params", "--model", "roberta-base", "--method", "lora", "--json", own_process=True)  # imports
    assert result.returncode == 0, result.stderr
    assert '"trainable": 294912' in result.stdout and '"head": 592130' in result.stdout
    # nothing else: no library chatter (bitsandbytes' failed hub-kernel fetch at import) on stderr
    assert result.stderr == "", result.stderr


def test_config_file_with_an_unknown_key(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("task: glue/sst2\nlearning_rat: 1e-4\n")
    assert_one_line_error(harness("run", "--config", config, "--output-dir", tmp_path),
                          "run.yaml: unknown key 'learning_rat'", "Did you mean 'learning_rate'")


def test_a_runs_own_config_json_reruns_it_and_a_user_file_stays_strict(tmp_path):
    from harness.config import RunConfig

    stored = RunConfig(task="glue/sst2", model="tiny-bert", method="lora", learning_rate=3e-3, seed=2).to_dict()
    record = tmp_path / "config.json"  # what a finished run wrote: its config plus what it only records
    record.write_text(json.dumps({**stored, "label_names": ["0", "1"], "mlflow_run_id": None}))
    rerun = parsed_config("run", "--output-dir", str(tmp_path / "again"), config_file=record)
    assert {**rerun.to_dict(), "output_dir": stored["output_dir"]} == stored
    assert rerun.output_dir == str(tmp_path / "again")  # flags still override the file
    mistaken = tmp_path / "run.yaml"  # without the record's mark, a recorded key is a user's mistake
    mistaken.write_text("task: glue/sst2\nlabel_names: [a, b]\n")
    assert_one_line_error(harness("run", "--config", mistaken, "--output-dir", tmp_path),
                          "unknown key 'label_names'")


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


def test_quantize_8bit_on_cpu(tmp_path):
    import importlib.util

    import torch

    if torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("a GPU can quantize to 8 bits; without bitsandbytes the error names the package")
    assert_one_line_error(harness("run", "glue/sst2", "--quantize", "8bit", "--output-dir", tmp_path),
                          "--quantize 8bit trains only on a CUDA GPU")


def test_malformed_jsonl_line(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "good", "label": "pos"}\n{"text": "bad", "label": \n')
    assert_one_line_error(harness("run", "csv", "--train-file", tmp_path / "train.jsonl", "--eval-file",
                                  tmp_path / "train.jsonl", "--output-dir", tmp_path), "train.jsonl:2: invalid JSON line")


def cli_main(capsys, *args):
    """Run `harness ARGS` in this process; (exit code, stdout)."""
    from harness.cli import main

    code = main([str(a) for a in args])
    return code, capsys.readouterr().out


def parsed_config(*args, config_file=None):
    from harness.cli import build_parser
    from harness.cli.common import config_from_args

    args = build_parser().parse_args([*args, *(["--config", str(config_file)] if config_file else [])])
    del args.func
    return config_from_args(args, ("repeats", "out", "recipe_examples", "num_labels", "json", "format"))


def test_method_opt_values_are_yaml_scalars_and_lists():
    config = parsed_config("run", "--method", "peft:LORA", "--method-opt", "r=64", "--method-opt", "use_dora=true",
                           "--method-opt", "target_modules=[q,v]", "--method-opt", "lora_dropout=0.1")
    assert config.method_options == {"r": 64, "use_dora": True, "target_modules": ["q", "v"], "lora_dropout": 0.1}


def test_method_opt_merges_after_the_config_file_and_the_last_flag_wins(tmp_path):
    config_file = tmp_path / "run.yaml"
    config_file.write_text("method: lora\nmethod_options: {r: 16, alpha: 32}\n")
    config = parsed_config("run", "--method-opt", "r=4", config_file=config_file)
    assert config.method_options == {"r": 4, "alpha": 32}
    # Either flag form, in command-line order: the last of a key wins.
    assert parsed_config("run", "--method-opt", "r=4", "--lora-r", "2").method_options == {"r": "2"}
    assert parsed_config("run", "--lora-r", "2", "--method-opt", "r=4").method_options == {"r": 4}
    assert parsed_config("run", "--method-opt", "r=4", "--method-opt", "r=6").method_options == {"r": 6}
    # The same flag on the other commands that build a run.
    assert parsed_config("params", "--method", "peft:VERA", "--method-opt", "r=64").method_options == {"r": 64}
    assert parsed_config("bench", "train", "--method-opt", "alpha=16").method_options == {"alpha": 16}


def test_method_opt_reaches_a_peft_tuner(capsys):
    base = ["params", "--model", "tiny-bert", "--method", "peft:LORA", "--json"]
    code, default = cli_main(capsys, *base)
    assert code == 0
    code, rank4 = cli_main(capsys, *base, "--method-opt", "r=4")
    assert code == 0
    default, rank4 = json.loads(default), json.loads(rank4)
    assert rank4["method"] == "peft:LORA" and rank4["head"] == default["head"]
    assert rank4["trainable"] * 2 == default["trainable"]  # peft's LoRA default is r=8


@pytest.mark.parametrize("command", [["params"], ["run"], ["bench", "train"]])
@pytest.mark.parametrize("pair", ["r", "=4"])
def test_malformed_method_opt(command, pair):
    assert_one_line_error(harness(*command, "--method-opt", pair),
                          "argument --method-opt", "expected KEY=VALUE", f"got '{pair}'")


def test_grid_set_is_repeatable(capsys, tmp_path, sentiment_files):
    train, dev = sentiment_files
    spec = dict(name="mini", base=dict(task="csv", model="tiny-bert", train_file=str(train), eval_file=str(dev),
                                         tracking_uri="none"),
                axes=dict(method=["lora", "bitfit"]))
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    base = ["grid", path, "--dry-run", "--format", "csv", "--output-dir", tmp_path / "out"]
    code, repeated = cli_main(capsys, *base, "--set", "epochs=7", "--set", "max_seq_length=48",
                              "learning_rate=0.0123")
    assert code == 0
    rows = list(csv.DictReader(repeated.splitlines()[1:]))
    assert [r["method"] for r in rows] == ["lora", "bitfit"]
    assert all((r["epochs"], r["max len"], r["lr"]) == ("7", "48", "0.0123") for r in rows), rows
    code, together = cli_main(capsys, *base, "--set", "epochs=7", "max_seq_length=48", "learning_rate=0.0123")
    assert code == 0 and together == repeated


def test_methods_lists_the_peft_tuners(capsys):
    code, out = cli_main(capsys, "methods")
    assert code == 0
    lines = [line.strip() for line in out.splitlines()]
    assert "peft:LORA" in lines and "peft:IA3" in lines
    assert any(line.startswith("peft:DORA") for line in lines)
    assert any("--method-opt" in line for line in lines)


def test_importing_the_cli_and_its_help_leave_torch_unimported():
    code = ("import sys, contextlib, io\n"
            "import harness.cli\n"
            "print('torch' in sys.modules)\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n"
            "        harness.cli.main(['--help'])\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print('torch' in sys.modules, 'transformers' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "False"]
