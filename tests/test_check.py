"""`harness check` (harness.report.check) and its calibration report: verdicts from per-example
predictions, one setting per side, baselines with predictions. No training: run folders are
written by hand in tmp_path in the format of the committed runs, or the committed runs are read."""

import json
from pathlib import Path

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.report.calibration import calibrate_command, calibration_report, seeds_needed
from harness.report.check import (check_against_baseline, check_command, compare_methods, load_baseline,
                                  ratio_reading, save_baseline, save_baseline_command)
from harness.report.results import records_from_experiment, records_from_runs_dir

ROOT = Path(__file__).resolve().parents[1]
N = 400  # dev examples of the hand-written runs
LABELS = np.random.default_rng(123).integers(0, 2, N)
VERSIONS = {"python": "3.11.7", "torch": "2.13.0+cpu", "transformers": "5.23.0", "peft": "0.21.2"}


def predictions(accuracy: float, seed: int, labels=LABELS) -> np.ndarray:
    """Predictions right on exactly round(accuracy x N) examples, which ones depending on the seed."""
    rng = np.random.default_rng(seed)
    wrong = rng.permutation(len(labels))[:round((1 - accuracy) * len(labels))]
    preds = labels.copy()
    preds[wrong] = 1 - preds[wrong]
    return preds


def write_run(root: Path, name: str, *, method="lora", seed=0, accuracy=0.8, lr=3e-3, max_train_samples=1000,
              task="glue/sst2", status="finished", versions=None, labels=LABELS, preds=None, train_time=30.0,
              peak_memory=1000.0, trainable=73728) -> Path:
    """A run folder as `harness run` writes it: config.json, metrics.json and predictions.jsonl."""
    run = root / "runs" / name
    run.mkdir(parents=True)
    preds = predictions(accuracy, 1000 * seed + hash(method) % 997, labels) if preds is None else preds
    config = {"task": task, "model": "minilm-l6", "method": method, "method_options": {}, "seed": seed,
              "learning_rate": lr, "max_train_samples": max_train_samples, "data_seed": 0, "epochs": 2,
              "batch_size": 16, "grad_accum": 1, "max_seq_length": 128, "warmup_ratio": 0.06,
              "group_by_length": True, "tracking_uri": "none"}
    metrics = {"status": status, "task": task, "model": "minilm-l6", "method": method, "main_metric": "accuracy",
               "params": {"trainable": trainable}, "global_batch_size": 16, "versions": versions or VERSIONS,
               "throughput": {"train_time_s": train_time, "peak_memory_mb": peak_memory}}
    if status == "finished":
        metrics["best"] = {"accuracy": float(np.mean(preds == labels))}
        rows = [{"index": i, "label": int(y), "prediction": int(p)} for i, (y, p) in enumerate(zip(labels, preds))]
        (run / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "config.json").write_text(json.dumps(config))
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def write_seeds(root, method, accuracy, seeds=(0, 1, 2), prefix=None, **options):
    for seed in seeds:
        write_run(root, f"{prefix or method}-s{seed}", method=method, seed=seed, accuracy=accuracy + 0.004 * seed,
                  **options)


def row_of(result, task="glue/sst2"):
    return next(r for r in result.rows if r["task"] == task)


@pytest.fixture(scope="module")
def minilm():
    return records_from_experiment(str(ROOT / "experiments/cpu-mini/glue_minilm.yaml"),
                                   ROOT / "results/cpu-mini/glue_minilm/runs")


# ---------------------------------------------------------------------------------------------
# The committed MiniLM runs


def test_prefix_layer_is_worse_than_lora_on_sst2(minilm):
    result = compare_methods(minilm, "prefix_layer", "lora", where={"task": "glue/sst2"})
    row = row_of(result)
    assert row["verdict"] == "worse" and result.exit_code == 1
    assert row["metric"] == "accuracy" and row["seeds"] == "3/3" and row["examples"] == "872"
    lo, hi = (float(x) for x in row["95% CI"].strip("[]").split(", "))
    assert lo < float(row["Δ"]) < hi < 0
    # the stored medians: PreLayer 74.8 (75.0, 74.7, 74.8), LoRA 81.1; the means over seeds are printed
    assert float(row["candidate"]) == pytest.approx(74.81, abs=0.01)
    assert float(row["reference"]) == pytest.approx(81.0, abs=0.01)
    text = result.render()
    assert "95% CI" in text and "worse" in text and "p (Holm)" in text and "23,040 / 73,728" in text


def test_lora_against_itself_is_not_a_difference(minilm):
    text, code = check_command(minilm, candidate="lora", against="lora", where={"task": "glue/sst2"})
    assert code == 0
    line = next(line for line in text.splitlines() if line.startswith("glue/sst2"))
    assert "+0.00" in line and ("equivalent" in line or "inconclusive" in line)
    assert "[-" in line  # the interval is printed


def test_all_five_tasks_get_holm_adjusted_verdicts(minilm):
    result = compare_methods(minilm, "prefix_layer", "lora")
    assert [r["task"] for r in result.rows] == ["glue/cola", "glue/mrpc", "glue/rte", "glue/sst2", "glue/stsb"]
    raw = {e["task"]: e for e in result.entries}
    # Holm: the adjusted p is at least the raw one, and STS-B's 29-point drop is found
    assert all(e["p_holm"] >= e["comparison"]["p_value"] for e in raw.values())
    stsb = row_of(result, "glue/stsb")
    assert stsb["verdict"] == "worse" and stsb["metric"] == "Pearson corr."


# ---------------------------------------------------------------------------------------------
# One setting per side


def test_a_pilot_and_a_full_run_are_not_pooled(tmp_path):
    write_seeds(tmp_path, "lora", 0.80)
    write_run(tmp_path, "lora-pilot", seed=3, max_train_samples=200, accuracy=0.7)
    write_seeds(tmp_path, "full", 0.80)
    with pytest.raises(HarnessError) as err:
        compare_methods(records_from_runs_dir(tmp_path / "runs"), "full", "lora")
    message = str(err.value)
    assert err.value.exit_code == 2 and "\n" not in message
    assert "runs of lora on glue/sst2 have 2 settings" in message and "subset.max_train_samples 1000 vs 200" in message


def test_another_learning_rate_is_an_error_until_selected(tmp_path):
    write_seeds(tmp_path, "lora", 0.80)
    write_run(tmp_path, "lora-lr", seed=0, lr=3e-5, accuracy=0.6)
    records = records_from_runs_dir(tmp_path / "runs")
    with pytest.raises(HarnessError, match=r"optim\.learning_rate 0\.003 vs 3e-05; keep one per method"):
        check_command(records, candidate="lora", against="lora")
    text, code = check_command(records, candidate="lora", against="lora", where={"learning_rate": 0.003})
    assert code == 0 and "3/3" in text
    # a --where value as the command line gives it: text
    assert compare_methods(records, "lora", "lora", where={"learning_rate": "3e-3"}).rows[0]["seeds"] == "3/3"


def test_duplicate_seeds_are_flagged_and_used_once(tmp_path):
    write_seeds(tmp_path, "lora", 0.80)
    write_run(tmp_path, "lora-s0-again", seed=0, accuracy=0.9)
    write_seeds(tmp_path, "full", 0.80)
    result = compare_methods(records_from_runs_dir(tmp_path / "runs"), "full", "lora")
    assert row_of(result)["seeds"] == "3/3"
    assert any("seed 0 appears more than once" in note and "lora-s0-again" in note for note in result.notes)
    assert "seed 0 appears more than once" in result.render()


def test_candidate_settings_must_match_the_reference_but_for_the_method(tmp_path):
    write_seeds(tmp_path, "lora", 0.80)  # learning rates differ between methods: allowed
    write_seeds(tmp_path, "full", 0.80, lr=1e-4, max_train_samples=2000)
    differ = r"full and lora on glue/sst2 differ in subset\.max_train_samples 2000 vs 1000;"
    with pytest.raises(HarnessError, match=differ):
        compare_methods(records_from_runs_dir(tmp_path / "runs"), "full", "lora")
    result = compare_methods(records_from_runs_dir(tmp_path / "runs"), "full", "lora",
                             ignore=["subset.max_train_samples"])
    assert result.rows[0]["verdict"] != "missing"


def test_different_dev_examples_are_refused(tmp_path):
    write_seeds(tmp_path, "lora", 0.80)
    other = LABELS.copy()
    other[:10] = 1 - other[:10]
    write_seeds(tmp_path, "full", 0.80, labels=other)
    with pytest.raises(HarnessError, match="different dev examples .labels differ at 10 of 400"):
        compare_methods(records_from_runs_dir(tmp_path / "runs"), "full", "lora")


# ---------------------------------------------------------------------------------------------
# Verdicts and exit codes


def test_missing_and_failed_runs_exit_1_unless_allowed(tmp_path):
    write_seeds(tmp_path, "lora", 0.80)
    write_seeds(tmp_path, "lora", 0.80, task="glue/rte", prefix="lora-rte")
    write_seeds(tmp_path, "full", 0.80)
    records = records_from_runs_dir(tmp_path / "runs")
    result = compare_methods(records, "full", "lora")
    rte = row_of(result, "glue/rte")
    assert rte["verdict"] == "missing" and "no finished runs of full" in rte["reason"] and result.exit_code == 1
    assert compare_methods(records, "full", "lora", allow_missing=True).exit_code == 0
    write_run(tmp_path, "full-rte-failed", method="full", task="glue/rte", status="failed")
    result = compare_methods(records_from_runs_dir(tmp_path / "runs"), "full", "lora")
    assert "1 failed run(s)" in row_of(result, "glue/rte")["reason"] and result.exit_code == 1


def test_one_reference_seed_is_inconclusive_even_for_a_large_drop(tmp_path):
    write_seeds(tmp_path, "lora", 0.85, seeds=(0,))
    write_seeds(tmp_path, "full", 0.70)
    result = compare_methods(records_from_runs_dir(tmp_path / "runs"), "full", "lora")
    row = row_of(result)
    assert row["verdict"] == "inconclusive" and "only 1 reference seed" in row["reason"] and result.exit_code == 0
    assert float(row["Δ"]) < -10


def test_an_improved_candidate_is_better(tmp_path):
    write_seeds(tmp_path, "lora", 0.78)
    write_seeds(tmp_path, "full", 0.88)
    result = compare_methods(records_from_runs_dir(tmp_path / "runs"), "full", "lora")
    assert row_of(result)["verdict"] == "better" and result.exit_code == 0
    assert result.counts()["better"] == 1


def test_the_margin_argument_is_in_printed_points(tmp_path):
    write_seeds(tmp_path, "lora", 0.80)
    write_seeds(tmp_path, "full", 0.80)
    records = records_from_runs_dir(tmp_path / "runs")
    row = row_of(compare_methods(records, "full", "lora", margin=10))
    assert row["verdict"] == "equivalent"  # a 10-point margin holds any CI of a few points
    assert row_of(compare_methods(records, "full", "lora", margin=0.01))["verdict"] != "equivalent"


def test_another_library_major_version_needs_ignore_versions(tmp_path):
    write_seeds(tmp_path, "lora", 0.80)
    write_seeds(tmp_path, "full", 0.80, versions={**VERSIONS, "transformers": "6.0.1"})
    records = records_from_runs_dir(tmp_path / "runs")
    with pytest.raises(HarnessError, match=r"versions\.transformers 6 vs 5"):
        compare_methods(records, "full", "lora")
    assert compare_methods(records, "full", "lora", ignore=["versions"]).rows[0]["verdict"] in (
        "equivalent", "inconclusive")


def test_a_candidate_needs_a_reference():
    with pytest.raises(HarnessError, match="needs a reference"):
        check_command([], candidate="full")
    with pytest.raises(HarnessError, match="not both"):
        check_command([], candidate="full", against="lora", baseline={})


def test_unknown_method_names_the_labels(tmp_path):
    write_seeds(tmp_path, "lora", 0.80)
    with pytest.raises(HarnessError, match="unknown candidate method 'lorra'. Did you mean 'lora'"):
        compare_methods(records_from_runs_dir(tmp_path / "runs"), "lorra", "lora")


def test_ratio_readings_of_train_time():
    assert ratio_reading([10, 11, 10.5], [20, 21, 19])["reading"] == "lower"
    assert ratio_reading([30, 31, 29], [20, 21, 19])["reading"] == "higher"
    assert ratio_reading([19, 22, 20], [20, 21, 19])["reading"] == "inconclusive"
    single = ratio_reading([10], [20])
    assert single["reading"] == "inconclusive" and single["ratio"] == 0.5 and single["lo"] is None


# ---------------------------------------------------------------------------------------------
# Baselines


def test_baseline_round_trip_and_a_regression_against_it(tmp_path):
    write_seeds(tmp_path, "lora", 0.80)
    path = tmp_path / "baseline.json"
    baseline, notes = save_baseline(records_from_runs_dir(tmp_path / "runs"), path)
    entry = load_baseline(path)["entries"]["glue/sst2|minilm-l6|lora"]
    assert [s["seed"] for s in entry["seeds"]] == [0, 1, 2] and len(entry["seeds"][0]["predictions"]) == N
    assert entry["labels"] == LABELS.tolist() and entry["efficiency"]["trainable"] == 73728
    assert entry["fingerprint"]["subset.max_train_samples"] == 1000 and notes == []

    text, code = check_command(records_from_runs_dir(tmp_path / "runs"), baseline=str(path))
    assert code == 0 and "worse" not in text.split("\n\n")[1]

    current = tmp_path / "current"
    write_seeds(current, "lora", 0.72)
    result = check_against_baseline(records_from_runs_dir(current / "runs"), load_baseline(path))
    assert result.rows[0]["verdict"] == "worse" and result.exit_code == 1 and result.rows[0]["method"] == "lora"


def test_a_baseline_of_another_budget_is_refused_unless_ignored(tmp_path):
    baseline_runs, current = tmp_path / "b", tmp_path / "c"
    write_seeds(baseline_runs, "lora", 0.80, max_train_samples=4000)
    write_seeds(current, "lora", 0.80, max_train_samples=2000)
    save_baseline(records_from_runs_dir(baseline_runs / "runs"), tmp_path / "b.json")
    records = records_from_runs_dir(current / "runs")
    with pytest.raises(HarnessError, match=r"subset\.max_train_samples 2000 vs 4000"):
        check_command(records, baseline=tmp_path / "b.json")
    _, code = check_command(records, baseline=tmp_path / "b.json", ignore=["subset.max_train_samples"])
    assert code == 0


def test_a_release_rerun_with_identical_predictions_is_equivalent_only_with_pair_seeds(tmp_path):
    """The release check: the baseline's seeds rerun under a new library version give the same predictions.
    Unpaired, new seeds could differ as much as the baseline's do (inconclusive); paired by seed, equivalent."""
    write_seeds(tmp_path / "b", "lora", 0.80, seeds=(0, 1, 2, 3))
    save_baseline(records_from_runs_dir(tmp_path / "b" / "runs"), tmp_path / "b.json")
    newer = {**VERSIONS, "transformers": "6.0.0"}
    write_seeds(tmp_path / "c", "lora", 0.80, seeds=(0, 1, 2, 3), versions=newer)
    current = records_from_runs_dir(tmp_path / "c" / "runs")
    baseline = load_baseline(tmp_path / "b.json")
    unpaired = check_against_baseline(current, baseline, ignore=["versions"])
    assert row_of(unpaired)["verdict"] == "inconclusive" and unpaired.exit_code == 0
    paired = check_against_baseline(current, baseline, ignore=["versions"], pair_seeds=True)
    assert row_of(paired)["verdict"] == "equivalent" and paired.entries[0]["comparison"]["se"] == 0
    text, code = check_command(current, baseline=tmp_path / "b.json", ignore=["versions"], pair_seeds=True)
    assert code == 0 and "runs paired by seed: --pair-seeds" in text and "1 equivalent" in text


def test_pair_seeds_leaves_out_unmatched_seeds_and_refuses_sides_without_a_shared_seed(tmp_path):
    write_seeds(tmp_path, "lora", 0.80, seeds=(0, 1, 2, 3))
    write_seeds(tmp_path, "full", 0.80, seeds=(1, 2, 3, 5))
    result = compare_methods(records_from_runs_dir(tmp_path / "runs"), "full", "lora", pair_seeds=True)
    assert result.entries[0]["comparison"]["n_candidate"] == 3 == result.entries[0]["comparison"]["n_reference"]
    assert any("left out full seed(s) 5 and lora seed(s) 0" in note for note in result.notes)
    write_seeds(tmp_path, "bitfit", 0.80, seeds=(7, 8, 9))
    with pytest.raises(HarnessError, match="share no seed on glue/sst2"):
        compare_methods(records_from_runs_dir(tmp_path / "runs"), "bitfit", "lora", pair_seeds=True)


def test_a_baseline_entry_without_current_runs_is_missing(tmp_path):
    write_seeds(tmp_path, "lora", 0.80)
    write_seeds(tmp_path, "full", 0.80)
    save_baseline(records_from_runs_dir(tmp_path / "runs"), tmp_path / "b.json")
    only_lora = [r for r in records_from_runs_dir(tmp_path / "runs") if r.method == "lora"]
    result = check_against_baseline(only_lora, load_baseline(tmp_path / "b.json"))
    assert {r["method"]: r["verdict"] for r in result.rows}["full"] == "missing" and result.exit_code == 1
    assert check_against_baseline(only_lora, load_baseline(tmp_path / "b.json"), allow_missing=True).exit_code == 0
    assert check_command(only_lora, candidate="lora", baseline=tmp_path / "b.json")[1] == 0  # only lora's entry


def test_a_baseline_refuses_mixed_settings_and_warns_on_few_seeds(tmp_path):
    write_seeds(tmp_path, "lora", 0.80, seeds=(0, 1))
    text, code = save_baseline_command(records_from_runs_dir(tmp_path / "runs"), tmp_path / "b.json")
    assert code == 0 and "only 2 seed(s)" in text
    write_run(tmp_path, "lora-lr", seed=5, lr=1e-3)
    with pytest.raises(HarnessError, match=r"have 2 settings: optim\.learning_rate"):
        save_baseline(records_from_runs_dir(tmp_path / "runs"), tmp_path / "c.json")
    assert not (tmp_path / "c.json").exists()


def test_an_old_baseline_file_asks_to_re_save(tmp_path):
    old = tmp_path / "old.json"  # the format before predictions were stored: medians and tolerances
    old.write_text(json.dumps({"created": "2026-11-22 00:48:38", "k_std": 2.0, "floor": 0.005, "entries": {
        "glue/sst2|minilm-l6|lora": {"metric": "accuracy", "value": 0.82, "std": 0.0, "n": 1, "failed": 0,
                                     "trainable": 73728, "tolerance": 0.005}}}))
    with pytest.raises(HarnessError) as err:
        load_baseline(old)
    assert "old format" in str(err.value) and "re-save" in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------
# Generation and calibration


def test_generation_runs_are_compared_on_sacrebleu_bleu(tmp_path):
    pytest.importorskip("sacrebleu")
    rng = np.random.default_rng(0)
    words = "the cafe serves cheap food near the river and has a high rating for families".split()
    refs = [[" ".join(rng.choice(words, 8)) for _ in range(2)] for _ in range(60)]
    for method, keep in (("lora", 0.9), ("full", 0.4)):
        for seed in range(3):
            run = write_run(tmp_path, f"{method}-s{seed}", method=method, seed=seed)
            (run / "predictions.jsonl").unlink()
            r = np.random.default_rng(seed + (10 if method == "full" else 0))
            hyps = [" ".join(w if r.random() < keep else "xyz" for w in rs[0].split()) for rs in refs]
            rows = [{"index": i, "source": f"mr {i}", "hypothesis": h, "references": rs}
                    for i, (h, rs) in enumerate(zip(hyps, refs))]
            (run / "generations.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
            metrics = json.loads((run / "metrics.json").read_text())
            metrics.update(main_metric="bleu", best={"bleu": 50.0})
            (run / "metrics.json").write_text(json.dumps(metrics))
    result = compare_methods(records_from_runs_dir(tmp_path / "runs"), "full", "lora", n_boot=500)
    row = result.rows[0]
    assert row["metric"] == "BLEU (sacrebleu)" and row["verdict"] == "worse" and row["examples"] == "60"


def test_where_grid_selects_one_suite_entry_among_others_in_one_folder(tmp_path):
    """A suite's runs folder holds every entry's cells and searches; --where grid=... picks one entry per side."""
    for seed in range(3):
        write_run(tmp_path, f"suite-v1-lora-{seed:012x}", seed=seed, accuracy=0.80 + 0.004 * seed)
        write_run(tmp_path, f"suite-v1-peft_lora-{seed:012x}", method="peft_lora", seed=seed,
                  preds=predictions(0.80 + 0.004 * seed, 1000 * seed + hash("lora") % 997))
        write_run(tmp_path, f"suite-v1-peft_lora-search-{seed:012x}", method="peft_lora", seed=0, lr=1e-2)
    records = records_from_runs_dir(tmp_path / "runs")
    with pytest.raises(HarnessError, match="2 settings"):
        compare_methods(records, "peft_lora", "lora")
    result = compare_methods(records, "peft_lora", "lora", where={"candidate:grid": "suite-v1-peft_lora"},
                             pair_seeds=True)
    assert row_of(result)["verdict"] == "equivalent" and result.entries[0]["candidate_runs"] == [
        f"suite-v1-peft_lora-{seed:012x}" for seed in range(3)]


def test_calibration_report_from_the_runs_there_are(tmp_path):
    write_seeds(tmp_path, "lora", 0.80, seeds=range(6), prefix="ref")
    for seed in range(3):
        write_run(tmp_path, f"reg-s{seed}", seed=seed, lr=1.5e-3, accuracy=0.70 + 0.004 * seed)
    records = records_from_runs_dir(tmp_path / "runs")
    reference = [r for r in records if r.config["learning_rate"] == 3e-3]
    regressed = [r for r in records if r.config["learning_rate"] == 1.5e-3]
    text, data = calibration_report(reference, regressed, draws=10, n_boot=200, mde_draws=2, mde_ks=(1, 3),
                                    fractions=(0.5, 1.0))
    assert data["reference"]["seeds"] == [0, 1, 2, 3, 4, 5] and data["regression"]["seeds"] == [0, 1, 2]
    a = {row["k"]: row for row in data["false_alarms"]}
    assert a[3]["draws"] == 10 and a[3]["distinct_splits"] == 20 and "without_seed_rule" in a[1]
    assert a[1]["counts"]["inconclusive"] == 10  # one reference seed: never a verdict
    assert data["detection"]["effect"]["delta"] < -0.05 and data["detection"]["rates"][0]["rate"] > 0.5
    assert "needs 5 seeds per side" in data["detection"]["rates"][1]["skipped"]
    assert [c["k"] for c in data["mde"]] == [1, 1, 3, 3] and all(c["median_mde"] > 0 for c in data["mde"])
    assert "n_boot 200" in text and "6 seeds (0, 1, 2, 3, 4, 5)" in text and "harness check calibrate" in text
    assert "optim.learning_rate 0.0015 vs 0.003" in text
    assert [r["k"] for r in data["se_check"]] == [1, 2, 3] and all(r["bootstrap_se"] > 0 for r in data["se_check"])
    one = data["one_candidate_seed"]
    assert (one["draws"], one["k_reference"], sum(one["counts"].values())) == (10, 3, 10)
    out = tmp_path / "reports" / "calibration.md"
    written = calibrate_command(records, out, where={"task": "glue/sst2"}, draws=5, n_boot=100, mde_draws=1,
                                mde_ks=(1,), fractions=(1.0,))
    assert out.read_text() == written and "regression setting 3 seeds (0, 1, 2)" in written
    pairing = data["pairing"]
    assert [r["k"] for r in pairing["false_alarms"]] == [3] and pairing["rerun"] is None  # 6 seeds: k = 3 only
    assert [r["k"] for r in pairing["detection"]] == [3] and pairing["detection"][0]["draws"] == 10
    assert "## (d) Seed-paired checks" in text and "none given (`--reruns DIR`)" in text


def test_calibration_counts_reruns_of_the_same_seeds_under_both_modes(tmp_path):
    write_seeds(tmp_path / "grid", "lora", 0.80, seeds=range(6), prefix="ref")
    write_seeds(tmp_path / "again", "lora", 0.80, seeds=range(5), prefix="ref")  # the same predictions
    write_run(tmp_path / "again", "ref-s5", seed=5, accuracy=0.79)  # one seed's numerics diverged
    reference = records_from_runs_dir(tmp_path / "grid" / "runs")
    text, data = calibration_report(reference, (), records_from_runs_dir(tmp_path / "again" / "runs"), draws=20,
                                    n_boot=200, mde_draws=1, mde_ks=(3,), fractions=(1.0,))
    rerun = data["pairing"]["rerun"]
    assert rerun["identical"] == 5 and rerun["seeds"] == [0, 1, 2, 3, 4, 5] and rerun["max_shift"] > 0
    assert rerun["paired"]["counts"]["equivalent"] > rerun["unpaired"]["counts"]["equivalent"]
    assert sum(rerun["paired"]["counts"].values()) == 20 and "| --pair-seeds | 20 |" in text
    from conftest import harness_cli

    done = harness_cli("check", "calibrate", "--runs", tmp_path / "grid" / "runs", "--reruns", tmp_path / "none")
    assert done.returncode == 2 and "--reruns" in done.stderr and "no such folder" in done.stderr
    write_run(tmp_path / "other", "ref-s0", seed=0, lr=1e-3)
    with pytest.raises(HarnessError, match="reruns are not the reference setting"):
        calibration_report(reference, (), records_from_runs_dir(tmp_path / "other" / "runs"), draws=2, n_boot=50,
                           mde_draws=1, mde_ks=(3,), fractions=(1.0,))


def test_seeds_needed_is_measured_or_extrapolated():
    cells = [{"k": k, "fraction": 1.0, "median_mde": mde} for k, mde in ((1, 2.0), (2, 1.5), (4, 0.9))]
    assert seeds_needed(cells, 1.0, 0.05) == {"k": 4, "how": "measured"}
    # MDE = z sqrt(a + b / k) with a = 0.01, b = 0.5 (z = 2.80): MDE <= 1 needs k >= b / ((1 / z)^2 - a) = 4.3
    z = 2.8016
    cells = [{"k": k, "fraction": 1.0, "median_mde": z * (0.01 + 0.5 / k) ** 0.5} for k in (3, 4)]
    cells += [{"k": 1, "fraction": 1.0, "median_mde": 9.0}, {"k": 2, "fraction": 1.0, "median_mde": 7.0}]
    need = seeds_needed(cells, 1.0, 0.05)  # k < 3 (few degrees of freedom, no seed spread) is not in the fit
    assert need["k"] == 5 and need["how"].startswith("extrapolated")
    cells = [{"k": k, "fraction": 1.0, "median_mde": z * (0.2 + 0.5 / k) ** 0.5} for k in (1, 3, 4)]
    assert seeds_needed(cells, 1.0, 0.05)["k"] is None  # the example term alone is above 1 point
    assert "too few" in seeds_needed(cells[:2], 1.0, 0.05)["how"]  # one seed count >= 3: no fit
    # An extrapolation never answers a k that was measured and fell short.
    cells = [{"k": k, "fraction": 1.0, "median_mde": mde} for k, mde in ((3, 2.0), (5, 1.4), (8, 1.06))]
    assert seeds_needed(cells, 1.0, 0.05)["k"] >= 9


def test_a_learning_rate_sweep_needs_one_rate_per_side():
    records = records_from_runs_dir(ROOT / "results/cpu-mini/glue_minilm_lr_sweep/runs")
    with pytest.raises(HarnessError, match=r"lora on glue/sst2 have 3 settings: optim\.learning_rate "
                                           r"(0\.01|0\.001|0\.003) vs (0\.01|0\.001|0\.003) vs (0\.01|0\.001|0\.003);"):
        compare_methods(records, "prefix_layer", "lora")
    where = {"candidate:learning_rate": 0.01, "reference:learning_rate": "3e-3"}
    row = compare_methods(records, "prefix_layer", "lora", where=where).rows[0]
    assert row["seeds"] == "1/1" and row["verdict"] == "inconclusive" and float(row["Δ"]) < 0


def test_one_method_against_itself_under_two_settings_is_not_an_a_a_check():
    """The same method on both sides with side filters (e.g. 4-bit vs fp32, or two learning rates) compares the
    two selections; only the unfiltered method against itself is the A/A check."""
    records = records_from_runs_dir(ROOT / "results/cpu-mini/glue_minilm_lr_sweep/runs")
    where = {"candidate:learning_rate": 0.01, "reference:learning_rate": "3e-3"}
    result = compare_methods(records, "lora", "lora", where=where, ignore=["optim.learning_rate"])
    row = result.rows[0]
    high = [r.score for r in records if r.method == "lora" and r.config.get("learning_rate") == 0.01]
    low = [r.score for r in records if r.method == "lora" and r.config.get("learning_rate") == 3e-3]
    assert float(row["Δ"]) == pytest.approx((high[0] - low[0]) * 100, abs=0.06) and float(row["Δ"]) != 0
    assert not any("A/A" in note for note in result.notes)
    with pytest.raises(HarnessError, match="optim.learning_rate"):  # the difference must be ignored explicitly
        compare_methods(records, "lora", "lora", where=where)
