"""harness bench train: one report comparing LoRA with full fine-tuning and the reference loops."""

import json

import pytest

from conftest import harness_cli


def test_bench_train_reports_lora_vs_full_and_the_reference_loops(sentiment_files, tmp_path):
    train, dev = sentiment_files
    out = tmp_path / "bench.json"
    result = harness_cli("bench", "train", "csv", "--train-file", train, "--eval-file", dev, "--model", "tiny-bert",
                         "--method", "lora", "--max-train-samples", "128", "--recipe-examples", "16", "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(out.read_text())["summary"]
    lora, full = summary["lora"], summary["full"]
    for side in (lora, full):  # AdamW keeps two fp32 moments for every parameter it trains
        assert side["optimizer_state_bytes"] == 8 * (side["trainable_params"] + side["head_params"])
        assert side["train_samples_per_s"] > 0 and side["peak_memory_mb"] > 0
        assert 0 < side["fraction_of_gemm_peak"] < 1.5
    assert full["trainable_params"] > 100 * lora["trainable_params"]
    # Full FT saves the whole model; LoRA its adapter (and the small task head).
    assert full["checkpoint_bytes"] > 10 * lora["checkpoint_bytes"] > 0
    assert summary["lora_vs_full"]["checkpoint_ratio"] > 10
    assert summary["train_examples"] == 128 and summary["seeds_recipe_examples"] == 16
    assert summary["minimal_peft_loop_samples_per_s"] > 0 and summary["seeds_recipe_samples_per_s"] > 0
    assert summary["gemm_peak_flops"] > 1e8
    # The peak is measured before the repeat and after it; the fractions divide by their median.
    measured = summary["gemm_peak_flops_measured"]
    assert len(measured) == 2 and summary["gemm_peak_flops"] == pytest.approx(sum(measured) / 2)
    # The peer to beat: Trainer + peft with dynamic padding and length-grouped sampling, on every example.
    assert summary["trainer_recipe_samples_per_s"] > 0
    assert summary["ratio_harness_over_trainer_recipe"] == pytest.approx(  # both sides are rounded in the summary
        lora["train_samples_per_s"] / summary["trainer_recipe_samples_per_s"], rel=1e-2)
    # The rate after the first step (which holds a compilation) has its own ratio and GEMM fraction.
    assert lora["steady_samples_per_s"] > 0
    assert lora["first_step_s"] > 0
    assert summary["ratio_steady_harness_over_trainer_recipe"] == pytest.approx(
        lora["steady_samples_per_s"] / summary["trainer_recipe_samples_per_s"], rel=1e-2)
    assert lora["steady_fraction_of_gemm_peak"] == pytest.approx(
        lora["steady_achieved_flops"] / summary["gemm_peak_flops"])


def test_bench_train_needs_lora(sentiment_files):
    train, dev = sentiment_files
    result = harness_cli("bench", "train", "csv", "--train-file", train, "--eval-file", dev, "--model", "tiny-bert",
                         "--method", "bitfit")
    assert result.returncode == 2 and "use --method lora" in result.stderr


def test_bench_latency_paper_settings_scaled_for_the_cpu(tmp_path):
    out, table = tmp_path / "t1.json", tmp_path / "t1.md"
    result = harness_cli("bench", "latency", "--paper", "--model", "tiny-gpt2", "--trials", "2", "--warmup", "1",
                         "--max-tokens", "512", "--out", out, "--table-out", table)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["paper_batch_size"], r["batch_size"], r["seq_len"]) for r in rows] == [(32, 1, 512), (16, 2, 256),
                                                                                   (1, 1, 128)]
    # The paper's adapter sizes: AdapterL r=224 / AdapterH r=112 in the 11M rows.
    added = {r["variant"]: r["added_params"] for r in rows[1]["results"]}
    assert added["adapter_l"] > added["adapter_h"] > 0
    text = table.read_text()
    assert "1449.4±0.8" in text and "(batch 1 here)" in text and "+30.3%" in text
