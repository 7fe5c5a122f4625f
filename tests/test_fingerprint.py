"""Run fingerprints: what makes two runs seeds of one setting, and tables that never pool settings."""

import json
from pathlib import Path

from harness.fingerprint import describe, differences, fields_set_by, fingerprint, fingerprint_id, major
from harness.report.results import records_from_runs_dir
from harness.report.tables import results_table

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results/cpu-mini/glue_minilm/runs/cpu-mini-glue-minilm-f75da30d7e73"


def fake_run(root: Path, name: str, seed: int, accuracy: float, **config) -> Path:
    """A finished run folder as `harness run` writes it (config.json + metrics.json), from a committed one."""
    folder = root / "runs" / name
    folder.mkdir(parents=True)
    stored = json.loads((COMMITTED / "config.json").read_text())
    stored.update(seed=seed, **config)
    record = json.loads((COMMITTED / "metrics.json").read_text())
    record.update(best={"accuracy": accuracy}, run_name=name)
    (folder / "config.json").write_text(json.dumps(stored))
    (folder / "metrics.json").write_text(json.dumps(record))
    return folder


def test_a_committed_run_has_a_fingerprint_from_its_stored_config():
    config = json.loads((COMMITTED / "config.json").read_text())
    record = json.loads((COMMITTED / "metrics.json").read_text())
    fields = fingerprint(config, record)
    assert fields["task"] == "glue/sst2" and fields["subset.max_train_samples"] == 2000
    assert fields["data.train"].startswith("glue/SST-2/train.tsv")  # under the data folder, wherever that is
    assert fields["optim.learning_rate"] == 0.003 and fields["versions.peft"] == "0.21"
    assert "seed" not in fields and fields["subset.data_seed"] == 0  # the data seed is in, the seed is not
    other_seed = fingerprint({**config, "seed": 7}, record)
    assert fingerprint_id(other_seed) == fingerprint_id(fields)


def test_differences_name_the_fields_and_ignore_groups():
    config = json.loads((COMMITTED / "config.json").read_text())
    record = json.loads((COMMITTED / "metrics.json").read_text())
    base = fingerprint(config, record)
    pilot = fingerprint({**config, "max_train_samples": 200, "learning_rate": 3e-5}, record)
    diffs = differences(base, pilot)
    assert sorted(diffs) == ["optim.learning_rate", "subset.max_train_samples"]
    assert describe(diffs) == "optim.learning_rate 0.003 vs 3e-05, subset.max_train_samples 2000 vs 200"
    upgraded = fingerprint(config, {**record, "versions": {**record["versions"], "transformers": "6.0.1"}})
    assert list(differences(base, upgraded)) == ["versions.transformers"]
    assert differences(base, upgraded, ignore=["versions"]) == {}
    # A file known by name only (an old run) matches the same file with a hash.
    assert differences({"data.train": "glue/SST-2/train.tsv"}, {"data.train": "glue/SST-2/train.tsv#abc"}) == {}
    assert major("2.13.0+cpu") == "2" and major("0.21.2") == "0.21"


def test_an_entrys_declared_override_covers_exactly_the_fields_it_changes():
    config = json.loads((COMMITTED / "config.json").read_text())
    record = json.loads((COMMITTED / "metrics.json").read_text())
    base = fingerprint(config, record)
    override = {"init_from": "results/runs/start", "epochs": 15, "patience": 3}
    variant = fingerprint({**config, **override}, record)
    assert sorted(differences(base, variant)) == ["optim.epochs", "optim.init_from", "optim.patience"]
    assert differences(base, variant, ignore=fields_set_by(override)) == {}
    # What the override does not declare still counts as a mismatch.
    other = fingerprint({**config, **override, "max_train_samples": 100}, record)
    assert list(differences(base, other, ignore=fields_set_by(override))) == ["subset.max_train_samples"]


def test_tables_never_pool_runs_that_differ_in_more_than_the_seed(tmp_path):
    """A 200-example pilot beside 1,000-example runs: two rows, each naming what differs; a seed run
    twice is flagged."""
    fake_run(tmp_path, "pilot-s0", 0, 0.60, max_train_samples=200)
    fake_run(tmp_path, "full-s0", 0, 0.80, max_train_samples=1000)
    fake_run(tmp_path, "full-s1", 1, 0.82, max_train_samples=1000)
    fake_run(tmp_path, "full-s1-again", 1, 0.81, max_train_samples=1000)
    rows, columns = results_table(records_from_runs_dir(tmp_path / "runs"))
    by_method = {row["method"]: row for row in rows}
    assert set(by_method) == {"lora [subset.max_train_samples=1000]", "lora [subset.max_train_samples=200]"}
    pilot = next(row for method, row in by_method.items() if method.endswith("=200]"))
    full = next(row for method, row in by_method.items() if method.endswith("=1000]"))
    assert pilot["SST-2"] == "60.0" and pilot["seeds"] == "0"
    assert full["SST-2"].startswith("81.0±") and full["SST-2"].endswith("(seed 1 repeated)")


def test_runs_of_one_setting_stay_one_row(tmp_path):
    for seed, accuracy in [(0, 0.80), (1, 0.82), (2, 0.81)]:
        fake_run(tmp_path, f"s{seed}", seed, accuracy)
    rows, _ = results_table(records_from_runs_dir(tmp_path / "runs"))
    assert len(rows) == 1 and "[" not in rows[0]["method"] and rows[0]["SST-2"] == "81.0±1.0"


def test_the_beam_rule_splits_generation_runs_only_when_generates_rule_is_chosen():
    """keep_k_open changes the outputs, so runs with it are another setting; runs without it (every run
    written before it existed) keep their fingerprint ids."""
    config = {"task": "e2e", "model": "smollm2-135m", "method": "lora", "learning_rate": 0.009}
    decode = {"num_beams": 4, "length_penalty": 0.9, "no_repeat_ngram_size": 4, "max_new_tokens": 48}
    older = fingerprint(config, {"decode": decode})
    default = fingerprint(config, {"decode": {**decode, "keep_k_open": False, "batch_size": 12}})
    generates = fingerprint(config, {"decode": {**decode, "keep_k_open": True}})
    assert fingerprint_id(default) == fingerprint_id(older)
    assert list(differences(older, generates)) == ["decode.keep_k_open"]
    prompt_ban = fingerprint(config, {"decode": {**decode, "ban_prompt_ngrams": True}})
    assert list(differences(older, prompt_ban)) == ["decode.ban_prompt_ngrams"]
