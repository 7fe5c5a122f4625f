"""End-to-end training runs with a tiny random model: results, MLflow tracking, determinism."""

import json
import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from harness.config import RunConfig
from harness.train import run

from conftest import ROOT, harness_cli, write_csv


def tiny_config(tmp_path, train, dev, **overrides) -> RunConfig:
    values = dict(task="csv", train_file=str(train), eval_file=str(dev), model="tiny-bert", method="lora",
                  epochs=3, batch_size=16, seed=0, output_dir=str(tmp_path / "results"), log_every=2,
                  tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", warmup_ratio=0.0)
    values.update(overrides)
    return RunConfig(**values)


def test_lora_run_is_fully_tracked_in_mlflow(tmp_path, sentiment_files):
    record = run(tiny_config(tmp_path, *sentiment_files), progress=False)
    assert record["status"] == "finished"

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    mlflow_run = client.get_run(record["mlflow_run_id"])
    assert mlflow_run.info.status == "FINISHED"
    params, metrics = mlflow_run.data.params, mlflow_run.data.metrics
    # The full resolved config, method settings included.
    assert params["task"] == "csv" and params["model"] == "tiny-bert" and params["method"] == "lora"
    assert params["method_options.r"] == "8" and params["method_options.alpha"] == "8.0"
    assert float(params["learning_rate"]) == record["learning_rate"] == 1e-2  # tiny-bert's LoRA default
    assert params["label_names"] == '["neg", "pos"]'
    # Parameter counts in the paper's convention: head apart.
    assert metrics["params_trainable"] == record["params"]["trainable"] == 2 * 2 * 2 * 32 * 8
    assert metrics["params_head"] == record["params"]["head"] == (32 * 32 + 32) + (32 * 2 + 2)
    # Per-step loss, per-epoch evaluation, best metrics, speed and memory.
    steps = [m.step for m in client.get_metric_history(mlflow_run.info.run_id, "train_loss")]
    assert steps == list(range(2, record["optimizer_steps"] + 1, 2))
    epochs = client.get_metric_history(mlflow_run.info.run_id, "eval_accuracy")
    assert [m.step for m in epochs] == [1, 2, 3]
    assert max(m.value for m in epochs) == metrics["best_accuracy"] == record["best"]["accuracy"]
    for key in ["best_epoch", "wall_time_s", "train_samples_per_s", "train_tokens_per_s", "peak_memory_mb"]:
        assert metrics[key] > 0
    # Artifacts: resolved config, metrics, dev predictions, adapter weights as safetensors.
    artifacts = {a.path for a in client.list_artifacts(mlflow_run.info.run_id)}
    assert {"config.json", "metrics.json", "predictions.jsonl", "weights"} <= artifacts
    weights = {a.path for a in client.list_artifacts(mlflow_run.info.run_id, "weights")}
    assert {"weights/adapter_model.safetensors", "weights/adapter_config.json"} <= weights

    run_dir = tmp_path / "results" / "runs" / record["run_name"]
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["best"] == record["best"] and saved["status"] == "finished"
    predictions = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 64
    accuracy = sum(p["label"] == p["prediction"] for p in predictions) / 64
    assert accuracy == pytest.approx(record["best"]["accuracy"])  # predictions are the best epoch's


def test_saved_adapter_reloads_to_the_same_predictions(tmp_path, sentiment_files):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from harness.models import build_config, get_model_spec, load_tokenizer

    record = run(tiny_config(tmp_path, *sentiment_files, epochs=2, tracking_uri="none"), progress=False)
    run_dir = tmp_path / "results" / "runs" / record["run_name"]
    spec = get_model_spec("tiny-bert")
    torch.manual_seed(0)  # tiny models have a random backbone: rebuild the run's from its seed
    base = AutoModelForSequenceClassification.from_config(build_config(spec, num_labels=2))
    model = PeftModel.from_pretrained(base, run_dir / "weights").eval()
    tokenizer = load_tokenizer(spec)
    dev = [line.split(",")[0] for line in sentiment_files[1].read_text().splitlines()[1:]]
    with torch.no_grad():
        preds = model(**tokenizer(dev, padding=True, return_tensors="pt")).logits.argmax(-1).tolist()
    saved = [json.loads(line)["prediction"] for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert preds == saved


def test_same_seed_gives_identical_metrics(tmp_path, sentiment_files):
    first = run(tiny_config(tmp_path, *sentiment_files, epochs=1, tracking_uri="none", save_weights=False), progress=False)
    second = run(tiny_config(tmp_path, *sentiment_files, epochs=1, tracking_uri="none", save_weights=False), progress=False)
    assert first["history"] == second["history"]
    assert first["run_name"] != second["run_name"]  # a second run never overwrites the first


def test_regression_task_reports_pearson_and_spearman(tmp_path):
    rows = [{"text": f"{'good ' * k}movie {'bad ' * (4 - k)}", "label": str(float(k))} for k in range(5)] * 80
    train = write_csv(tmp_path / "train.csv", rows)
    config = tiny_config(tmp_path, train, train, task_type="regression", method="full", epochs=3,
                         tracking_uri="none", save_weights=False)
    record = run(config, progress=False)
    assert set(record["best"]) == {"pearson", "spearman"} and record["main_metric"] == "pearson"
    assert record["best"]["pearson"] > 0.8


def test_unreachable_tracking_server_does_not_cost_the_run(tmp_path, sentiment_files, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    config = tiny_config(tmp_path, *sentiment_files, epochs=1, tracking_uri="http://127.0.0.1:9")
    with pytest.warns(UserWarning, match="MLflow"):
        record = run(config, progress=False)
    assert record["status"] == "finished" and record["tracking_problems"]
    saved = json.loads((tmp_path / "results" / "runs" / record["run_name"] / "metrics.json").read_text())
    assert saved["best"]["accuracy"] == record["best"]["accuracy"]


def test_csv_task_from_the_command_line(tmp_path, sentiment_files):
    train, dev = sentiment_files
    result = harness_cli("run", "csv", "--train-file", train, "--eval-file", dev, "--model", "tiny-bert", "--method",
                         "full", "--epochs", "2", "--output-dir", tmp_path / "out", "--tracking-uri", "none",
                         "--run-name", "cli-csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "best epoch" in result.stdout
    saved = json.loads((tmp_path / "out" / "runs" / "cli-csv" / "metrics.json").read_text())
    assert saved["task"] == "csv" and saved["best"]["accuracy"] >= 0.9
    assert (tmp_path / "out" / "runs" / "cli-csv" / "weights" / "model.safetensors").is_file()


def test_two_process_data_parallel_matches_one_process(tmp_path, sentiment_files):
    """accelerate launch with 2 CPU processes (gloo DDP) reaches the same dev accuracy as 1 process
    at the same global batch size (16 = 2 x 8), within 0.05."""
    train, dev = sentiment_files
    common = ["run", "csv", "--train-file", train, "--eval-file", dev, "--model", "tiny-bert", "--method", "full",
              "--epochs", "3", "--seed", "0", "--warmup-ratio", "0", "--tracking-uri", "none",
              "--no-save-weights", "--output-dir", tmp_path / "out",
              "--eval-batch-size", "12"]  # 6 evaluation batches, the last of 4
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29533",
              "-m", "harness"]
    ddp = subprocess.run([*launch, *common, "--batch-size", "8", "--run-name", "ddp"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    single = subprocess.run([sys.executable, "-m", "harness", *common, "--batch-size", "16", "--run-name", "single"],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    two = json.loads((tmp_path / "out" / "runs" / "ddp" / "metrics.json").read_text())
    one = json.loads((tmp_path / "out" / "runs" / "single" / "metrics.json").read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["global_batch_size"] == one["global_batch_size"] == 16
    assert two["optimizer_steps"] == one["optimizer_steps"]
    assert two["best"]["accuracy"] >= 0.9 and abs(two["best"]["accuracy"] - one["best"]["accuracy"]) <= 0.05
    # Gathered from both processes' length-sorted batches, each prediction still sits beside its own dev row.
    predictions = (tmp_path / "out" / "runs" / "ddp" / "predictions.jsonl").read_text().splitlines()
    lines = [json.loads(line) for line in predictions]
    assert len(lines) == 64
    assert sum(x["label"] == x["prediction"] for x in lines) / 64 == pytest.approx(two["best"]["accuracy"])


def test_gradient_accumulation_and_bf16(tmp_path, sentiment_files):
    config = tiny_config(tmp_path, *sentiment_files, method="full", epochs=2, batch_size=8, grad_accum=2,
                         warmup_steps=5, mixed_precision="bf16", tracking_uri="none", save_weights=False)
    record = run(config, progress=False)
    assert record["global_batch_size"] == 16
    assert record["optimizer_steps"] == 2 * (512 // 8 // 2)  # one step per two batches
    assert record["best"]["accuracy"] >= 0.9


def test_fp16_on_cpu_is_a_clear_error(tmp_path, sentiment_files):
    import torch

    from harness.errors import HarnessError

    if torch.cuda.is_available():
        pytest.skip("fp16 is valid with a GPU")
    with pytest.raises(HarnessError, match="fp16 needs a CUDA GPU"):
        run(tiny_config(tmp_path, *sentiment_files, mixed_precision="fp16"), progress=False)


def test_length_grouped_batches_cover_every_example_once_with_little_padding():
    import random

    import torch

    from harness.training.batching import LengthGroupedBatches

    lengths = [random.Random(i).randint(5, 120) for i in range(1000)]
    batches = list(LengthGroupedBatches(lengths, 16, torch.Generator().manual_seed(0), window=10))
    assert sorted(i for b in batches for i in b) == list(range(1000)) and len(batches) == 63
    again = list(LengthGroupedBatches(lengths, 16, torch.Generator().manual_seed(0), window=10))
    assert again == batches  # the order is drawn from the generator: a resumed epoch redraws it

    def padding(groups):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in groups)

    order = torch.randperm(1000, generator=torch.Generator().manual_seed(0)).tolist()
    shuffled = [order[i:i + 16] for i in range(0, 1000, 16)]
    assert padding(batches) < padding(shuffled) / 4


def test_evaluation_batches_run_longest_first_and_outputs_come_back_in_the_splits_order():
    import numpy as np
    import torch

    from harness.tasks.objective import in_split_order
    from harness.training.batching import LengthSortedBatches

    lengths = [3, 9, 1, 9, 4, 7, 2]
    sampler = LengthSortedBatches(lengths, 3)
    batches = list(sampler)
    assert batches == [[1, 3, 5], [4, 0, 6], [2]] and len(sampler) == 3  # ties keep the split's order
    given = np.array([10 * row for batch in batches for row in batch])  # each output names its row
    assert in_split_order(given, sampler.order).tolist() == [10 * i for i in range(len(lengths))]
    assert in_split_order(torch.tensor(given), sampler.order).tolist() == [10 * i for i in range(len(lengths))]
    from harness.training.batching import eval_loader

    # An objective whose rows carry no input_ids keeps the split's order.
    assert list(eval_loader([{"x": i} for i in range(5)], 2, lambda b: b).batch_sampler) == [[0, 1], [2, 3], [4]]


def test_predictions_come_out_in_the_dev_files_order_from_sorted_evaluation(tmp_path, sentiment_files):
    """Evaluation runs in length-sorted batches; each prediction is still written beside its own dev row:
    the accuracy recomputed from the file equals the run's (rows of 1 to 16 words, so sorting moves most)."""
    import random

    from conftest import FILLER, NEGATIVE, POSITIVE

    rng = random.Random(3)
    rows = []
    for _ in range(96):
        label = rng.randint(0, 1)
        words = [rng.choice(FILLER) for _ in range(rng.randint(0, 15))] + [rng.choice(POSITIVE if label else NEGATIVE)]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": "pos" if label else "neg"})
    dev = write_csv(tmp_path / "varied.csv", rows)
    record = run(tiny_config(tmp_path, sentiment_files[0], dev, method="full", epochs=3, tracking_uri="none",
                             save_weights=False), progress=False)
    lines = [json.loads(line) for line in (tmp_path / "results" / "runs" / record["run_name"] /
                                           "predictions.jsonl").read_text().splitlines()]
    assert [line["label_name"] for line in lines] == [row["label"] for row in rows]
    recomputed = sum(line["label"] == line["prediction"] for line in lines) / len(lines)
    assert record["best"]["accuracy"] >= 0.8 and recomputed == pytest.approx(record["best"]["accuracy"])


def test_group_by_length_run_trains(tmp_path, sentiment_files):
    train, dev = sentiment_files
    record = run(RunConfig(task="csv", train_file=str(train), eval_file=str(dev), model="tiny-bert", method="full",
                           epochs=3, group_by_length=True, tracking_uri="none", output_dir=str(tmp_path),
                           save_weights=False), progress=False)
    assert record["status"] == "finished" and record["optimizer_steps"] == 3 * 32
    assert record["history"][-1]["train_loss"] < 0.8 * record["history"][0]["train_loss"]


def test_training_peak_memory_starts_at_the_reset_and_sees_what_training_allocates():
    """In a fresh process (a test worker's heap may hand back freed pages that stay resident)."""
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("VmHWM is Linux's")
    script = """
import json, numpy as np
from harness.training.env import peak_memory_mb, reset_training_peak, training_peak_memory_mb
peak_memory_mb(), training_peak_memory_mb()  # their imports (torch) loaded before measuring
big = np.ones(300 * 2**20 // 8)  # 300 MB, touched: counted before the reset
del big
reset_training_peak()
after_reset, process_peak = training_peak_memory_mb(), peak_memory_mb()
again = np.ones(100 * 2**20 // 8)
print(json.dumps([after_reset, process_peak, training_peak_memory_mb()]))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    after_reset, process_peak, with_training = json.loads(out.stdout.strip().splitlines()[-1])
    # What was freed before the reset no longer counts for training, and still counts for the process.
    assert after_reset < process_peak - 200
    assert with_training > after_reset + 80


def test_select_on_heldout_chooses_the_epoch_without_the_dev_set_and_stops_early(tmp_path, sentiment_files):
    """--select-on heldout: the best epoch is the held-out slice's best (the dev set only reported);
    --patience stops once that metric has not improved for that many epochs."""
    train, dev = sentiment_files
    record = run(tiny_config(tmp_path, train, dev, epochs=8, heldout_samples=60, select_on="heldout", patience=1,
                             learning_rate=5e-3, tracking_uri="none", save_weights=False), progress=False)
    history = record["history"]
    assert record["selected_on"] == "accuracy_heldout"
    assert all("accuracy" in h and "accuracy_heldout" in h for h in history)
    heldout = [h["accuracy_heldout"] for h in history]
    assert record["best_epoch"] == history[heldout.index(max(heldout))]["epoch"]  # the first best held-out epoch
    chosen = history[record["best_epoch"] - 1]
    assert record["best"] == {k: v for k, v in chosen.items() if k not in ("epoch", "train_loss")}  # dev reported
    if record["stopped_early_at"] is not None:
        assert record["stopped_early_at"] == record["best_epoch"] + 1 == len(history) < 8
    else:
        assert len(history) == 8 and record["best_epoch"] >= 7
    run_dir = record["run_dir"]
    assert os.path.isfile(os.path.join(run_dir, "predictions_heldout.jsonl"))
    with open(os.path.join(run_dir, "predictions.jsonl")) as handle:
        assert sum(1 for _ in handle) == record["eval_examples"][""]  # dev predictions as usual
    with pytest.raises(Exception, match="--select-on heldout needs --heldout-samples"):
        tiny_config(tmp_path, train, dev, select_on="heldout")


def test_frozen_weights_cast_once_gives_autocast_bit_for_bit(tmp_path, sentiment_files):
    """bf16 mixed precision with each frozen linear layer's weights cast once per epoch: the same losses,
    scores and trained weights as autocast casting them at every step (dropout included)."""
    import torch
    from safetensors.torch import load_file

    from harness.models import get_model_spec, load_for_classification
    from harness.training.fast_paths import FrozenCasts

    records = {}
    for once in (True, False):
        config = tiny_config(tmp_path / str(once), *sentiment_files, epochs=2, max_train_samples=128,
                             mixed_precision="bf16", tracking_uri="none", cast_frozen_once=once,
                             method_options={"dropout": 0.1})
        records[once] = run(config, progress=False)
    assert [h["train_loss"] for h in records[True]["history"]] == [h["train_loss"] for h in records[False]["history"]]
    assert records[True]["best"] == records[False]["best"]
    weights = [load_file(f"{records[once]['run_dir']}/weights/adapter_model.safetensors") for once in (True, False)]
    assert weights[0].keys() == weights[1].keys() and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])

    # What it replaces: every frozen nn.Linear (not the LoRA matrices, not the trainable head), only inside in_use.
    from harness.methods import get_method

    model, _ = load_for_classification(get_model_spec("tiny-bert"), 2, "single_label_classification")
    method = get_method("lora")
    model = method.prepare(model, method.resolve_options({}), ["classifier"])
    casts = FrozenCasts(model, "bf16")
    frozen = {m for m in model.modules() if type(m) is torch.nn.Linear and not m.weight.requires_grad}
    assert frozen and set(casts.copies) == frozen
    module = next(iter(frozen))
    x = torch.randn(2, 3, module.in_features)
    plain = torch.nn.functional.linear
    with casts.in_use():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(module(x), plain(x, module.weight, module.bias))
            casts.copies[module][0].zero_()  # the copy, not the weight, is what the layer reads in training
            assert torch.equal(module(x), plain(x, torch.zeros_like(module.weight), module.bias).to(torch.bfloat16))
        assert torch.equal(module(x), plain(x, module.weight, module.bias))  # no autocast: fp32
    with torch.autocast("cpu", dtype=torch.bfloat16):  # evaluation, decoding: the weights themselves
        assert torch.equal(module(x), plain(x, module.weight, module.bias))
    assert FrozenCasts(model, "no").copies == {}


def test_fast_dropout_keeps_each_element_with_probability_1_minus_p_and_keeps_the_expectation():
    import torch

    from harness.training.fast_paths import fast_dropout

    torch.manual_seed(0)
    ones = torch.ones(1000, 4000)
    for p in (0.1, 0.5):
        out = fast_dropout(ones, p)
        kept = out > 0
        n, q = kept.numel(), round((1 - p) * 32768) / 32768
        assert abs(kept.float().mean().item() - (1 - p)) < 4 * (p * (1 - p) / n) ** 0.5 + abs(q - (1 - p))
        assert abs(out.mean().item() - 1) < 4 * (p / (1 - p) / n) ** 0.5  # unbiased, as torch's dropout
        assert out.unique().tolist() == [0.0, torch.tensor(32768 / round((1 - p) * 32768)).item()]
        # the four numbers of one 64-bit draw (neighbouring elements) are independent
        pairs = kept.reshape(-1, 4).float()
        corr = torch.corrcoef(pairs.T)
        assert (corr - torch.eye(4)).abs().max() < 0.01
    torch.manual_seed(5)
    first = fast_dropout(ones, 0.1)
    torch.manual_seed(5)
    assert torch.equal(first, fast_dropout(ones, 0.1))  # torch's generator: seeds and checkpoints hold
    assert not torch.equal(first, fast_dropout(ones, 0.1))
    assert torch.equal(fast_dropout(ones[:3, :5].T, 1.0), torch.zeros(5, 3))
    # the masks are those of Tensor.random_'s 63-bit draws, four 15-bit numbers each
    x = torch.randn(7, 9)
    torch.manual_seed(4)
    numbers = torch.empty(16, dtype=torch.int64).random_().view(torch.int16)[:63].view(7, 9) & 0x7FFF
    torch.manual_seed(4)
    assert torch.equal(fast_dropout(x, 0.1), x * (numbers < round(0.9 * 32768)) * (32768 / round(0.9 * 32768)))


def assert_trains_as_another_setting(tmp_path, files, flag: str) -> None:
    """A run with ``flag`` (one that draws dropout from another random stream) trains the tiny task, its
    masks differ from the run without it, and the fingerprint differs by ``optim.<flag>`` alone."""
    from harness.fingerprint import fingerprint
    from harness.rundir import RunDir

    records = {}
    for on in (False, True):
        config = tiny_config(tmp_path / str(on), *files, method="full", epochs=2, batch_size=8,
                             tracking_uri="none", save_weights=False, **{flag: on})
        records[on] = run(config, progress=False)
    assert records[True]["history"][0]["train_loss"] != records[False]["history"][0]["train_loss"]  # other masks
    assert records[True]["best"]["accuracy"] >= 0.9
    prints = [fingerprint(RunDir.of(str(tmp_path / str(on) / "results"), records[on]["run_name"]).read_config(),
                          records[on]) for on in (False, True)]
    assert prints[1].pop(f"optim.{flag}") is True and f"optim.{flag}" not in prints[0]
    assert prints[0] == prints[1]


def test_fast_dropout_run_trains_patches_only_the_training_steps_and_is_another_setting(tmp_path, sentiment_files):
    assert_trains_as_another_setting(tmp_path, sentiment_files, "fast_dropout")

    import torch

    from harness.methods import get_method
    from harness.models import get_model_spec, load_for_classification
    from harness.training.fast_paths import FastPaths, fast_dropout

    model, _ = load_for_classification(get_model_spec("tiny-bert"), 2, "single_label_classification")
    method = get_method("lora")
    model = method.prepare(model, method.resolve_options({"dropout": 0.1}), ["classifier"])
    paths = FastPaths(model, "no", cast_frozen_once=True, fast_dropout=True)
    dropouts = [m for m in model.modules() if type(m) is torch.nn.Dropout and m.p > 0]
    assert dropouts and paths.dropout.modules == dropouts and paths.casts.copies == {}
    x = torch.ones(64, 32)
    p = dropouts[0].p

    def seeded(fn):
        torch.manual_seed(1)
        return fn(x)

    with paths.in_use():
        assert torch.equal(seeded(dropouts[0]), seeded(lambda x: fast_dropout(x, p)))
        dropouts[0].eval()
        assert torch.equal(dropouts[0](x), x)
        dropouts[0].train()
    # outside the training steps: torch's own dropout
    assert torch.equal(seeded(dropouts[0]), seeded(lambda x: torch.nn.functional.dropout(x, p)))
    assert not torch.equal(seeded(dropouts[0]), seeded(lambda x: fast_dropout(x, p)))


def test_fast_dropout_drops_attention_probabilities_with_its_masks_only_in_the_training_steps():
    """--fast-dropout routes a transformers model's attention through a function that, in the training
    steps, computes eager attention with fast_dropout on the probabilities; other calls (evaluation, a
    step outside in_use) go to the model's own implementation, with the same masks as before."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from harness.models import get_model_spec, load_for_classification
    from harness.training.fast_paths import FastPaths, fast_dropout

    model, _ = load_for_classification(get_model_spec("tiny-bert"), 2, "single_label_classification")
    ids, mask = torch.randint(5, 100, (3, 7)), torch.ones(3, 7, dtype=torch.long)
    mask[0, 4:] = 0
    model.eval()
    before = model(input_ids=ids, attention_mask=mask).logits
    paths = FastPaths(model, "no", cast_frozen_once=True, fast_dropout=True)
    assert paths.dropout.attention == "sdpa" and model.config._attn_implementation == "harness_fast_dropout_sdpa"
    assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, before)  # evaluation: unchanged

    attention = next(m for m in model.modules() if hasattr(m, "_harness_attention") and hasattr(m, "query"))
    q, k, v = (torch.randn(3, 2, 7, 8) for _ in range(3))
    keys = torch.ones(3, 1, 7, 7, dtype=torch.bool)
    keys[0, :, :, 4:] = False  # padding: sdpa's boolean mask, as transformers builds it

    def seeded(fn, v=v):
        torch.manual_seed(3)
        return fn(attention, q, k, v, keys, dropout=0.1, scaling=0.5)[0]

    def expected(module, q, k, v, keys, dropout, scaling):
        scores = (q @ k.transpose(2, 3) * scaling).masked_fill(~keys, torch.finfo(q.dtype).min)
        return (fast_dropout(scores.softmax(-1), dropout) @ v).transpose(1, 2), None

    from harness.training.fast_paths import _attention_with_fast_dropout as routed

    with paths.in_use():
        assert torch.allclose(seeded(routed), seeded(expected), atol=1e-6)
        padded_values = v.clone()
        padded_values[0, :, 4:] = 1e3
        assert torch.allclose(seeded(routed, padded_values), seeded(routed), atol=1e-5)  # padded keys get no weight
    assert torch.equal(seeded(routed), seeded(sdpa_attention_forward))  # outside the training steps: sdpa's own


def test_fast_dropout_under_compile_traces_the_peft_model_in_one_graph():
    """Under --compile fast_dropout is traced into the model's graph with the masks of eager mode: a
    ``Tensor.random_`` broke the graph inside peft's forward hooks and sent the whole forward back to eager."""
    import torch

    from harness.methods import get_method
    from harness.models import get_model_spec, load_for_classification
    from harness.training.fast_paths import FastPaths, fast_dropout

    model, _ = load_for_classification(get_model_spec("tiny-bert"), 2, "single_label_classification")
    method = get_method("peft:LORA")
    model = method.prepare(model, method.resolve_options({"r": 4, "lora_dropout": 0.1}), ["classifier"])
    paths = FastPaths(model, "no", cast_frozen_once=True, fast_dropout=True)
    ids, mask = torch.randint(5, 100, (3, 7)), torch.ones(3, 7, dtype=torch.long)
    model.train()
    torch._dynamo.reset()
    with paths.in_use():
        explained = torch._dynamo.explain(model)(input_ids=ids, attention_mask=mask)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1

    # compiled (torch's generator, as --compile sets it up), the same masks as in eager mode
    x = torch.randn(5, 11)
    torch._dynamo.reset()
    with torch._inductor.config.patch(fallback_random=True):
        compiled = torch.compile(lambda x: fast_dropout(x, 0.1), fullgraph=True, dynamic=True)
        torch.manual_seed(2)
        masked = compiled(x)
    torch.manual_seed(2)
    assert torch.allclose(masked, fast_dropout(x, 0.1)) and (masked == 0).any()


def test_fast_paths_under_compile_do_not_recompile_at_each_epoch():
    """The fast paths switch patched forwards on and off; replacing the forwards at every epoch made
    --compile compile the model again for each epoch (the old forward's guard failed)."""
    import torch
    from torch._dynamo.utils import counters

    from harness.training.fast_paths import FastPaths

    class Adapted(torch.nn.Module):  # a frozen layer called by its owner, as peft's LoRA layers call theirs
        def __init__(self):
            super().__init__()
            self.base_layer = torch.nn.Linear(8, 16).requires_grad_(False)
            self.dropout, self.extra, self.head = torch.nn.Dropout(0.1), torch.nn.Linear(8, 16), torch.nn.Linear(16, 2)

        def forward(self, x):
            return self.head(self.base_layer(x) + self.extra(self.dropout(x)))

    torch.manual_seed(0)
    model = Adapted()
    paths = FastPaths(model, "bf16", cast_frozen_once=True, fast_dropout=True)
    compiled = torch.compile(model, dynamic=True)
    x = torch.randn(4, 8)
    torch._dynamo.reset()
    counters.clear()

    def epoch():
        model.train()
        with paths.in_use(), torch.autocast("cpu", dtype=torch.bfloat16):
            compiled(x).float().sum().backward()
        model.eval()
        with torch.no_grad():
            compiled(x)

    epoch()
    graphs = counters["stats"]["unique_graphs"]
    assert graphs >= 2  # training and evaluation
    epoch()
    epoch()
    assert counters["stats"]["unique_graphs"] == graphs
