"""Benchmarks: training efficiency (`compare_training_throughput`: LoRA vs full fine-tuning, the
harness loop vs a hand-written peft loop and the HF Trainer recipe, FLOP/s vs the GEMM peak),
inference latency (`measure_latency`, the paper's Table 1) and batched decoding (`compare_decoding`)."""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from harness.config import RunConfig
from harness.errors import HarnessError
from harness.rundir import RunDir, write_json
from harness.tasks.base import subsample
from harness.training.env import cpu_description, versions


def _reference_model(config: RunConfig, resolved):
    """The model and tokenizer the reference loops train: loaded as `harness run` loads them, then
    made a peft LoRA model with peft's own API (no harness method code)."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model

    torch.manual_seed(config.seed)
    model, tokenizer, _ = resolved.objective.load_model(resolved.model, resolved.task, config)
    if config.method == "lora":
        options = resolved.method_options
        model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=options["r"],
                                                 lora_alpha=options["alpha"], lora_dropout=options["dropout"],
                                                 target_modules=options["target_modules"]))
    return model, tokenizer


def minimal_peft_loop(config: RunConfig, resolved, train_split) -> dict[str, float]:
    """What a user writes by hand: tokenize each batch, forward, backward, AdamW step. No accelerate,
    no logging, no evaluation. Uses only torch, transformers and peft."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    model, tokenizer = _reference_model(config, resolved)
    examples = train_split.examples
    order = torch.randperm(len(examples)).tolist()
    batches = [order[i:i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=resolved.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.06 * len(batches)), len(batches))
    model.train()
    tic = time.perf_counter()
    for batch in batches:
        texts = [examples[i].text for i in batch]
        pairs = [examples[i].text_pair for i in batch] if examples[0].text_pair is not None else None
        inputs = tokenizer(texts, pairs, padding=True, truncation=True, max_length=config.max_seq_length,
                           return_tensors="pt")
        labels = torch.tensor([examples[i].label for i in batch])
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    seconds = time.perf_counter() - tic
    return {"train_time_s": seconds, "train_samples_per_s": len(examples) / seconds}


def seeds_recipe(config: RunConfig, resolved, train_split) -> dict[str, float]:
    """The way the tutorials fine-tune: the HF Trainer on a dataset tokenized up front with
    padding="max_length" (the tokenizer's maximum, 512, whatever the text length)."""
    import tempfile

    import torch
    from transformers import Trainer, TrainingArguments

    model, tokenizer = _reference_model(config, resolved)
    examples = train_split.examples
    pairs = [e.text_pair for e in examples] if examples[0].text_pair is not None else None
    max_length = min(getattr(tokenizer, "model_max_length", 512), 512)
    encoded = tokenizer([e.text for e in examples], pairs, padding="max_length", truncation=True, max_length=max_length)
    rows = [{**{k: v[i] for k, v in encoded.items()}, "labels": examples[i].label} for i in range(len(examples))]
    with tempfile.TemporaryDirectory(prefix="harness-trainer-") as tmp:
        args = TrainingArguments(output_dir=tmp, per_device_train_batch_size=config.batch_size, num_train_epochs=1,
                                 learning_rate=resolved.learning_rate, report_to=[], save_strategy="no",
                                 logging_strategy="no", disable_tqdm=True, seed=config.seed, use_cpu=not torch.cuda.is_available())
        trainer = Trainer(model=model, args=args, train_dataset=rows)
        tic = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - tic
    return {"train_time_s": seconds, "train_samples_per_s": len(examples) / seconds, "padded_length": max_length}


def trainer_recipe(config: RunConfig, resolved, train_split) -> dict[str, float]:
    """The best hand-written HF recipe, the peer to beat: the Trainer on the peft model with dynamic
    padding (DataCollatorWithPadding) and length-grouped sampling, truncation at --max-seq-length, the
    same data, batch size, learning rate, warmup and mixed precision as the harness run; one epoch, no
    evaluation."""
    import tempfile

    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    model, tokenizer = _reference_model(config, resolved)
    examples = train_split.examples
    pairs = [e.text_pair for e in examples] if examples[0].text_pair is not None else None
    encoded = tokenizer([e.text for e in examples], pairs, truncation=True, max_length=config.max_seq_length)
    rows = [{**{k: v[i] for k, v in encoded.items()}, "labels": examples[i].label} for i in range(len(examples))]
    with tempfile.TemporaryDirectory(prefix="harness-trainer-") as tmp:
        args = TrainingArguments(output_dir=tmp, per_device_train_batch_size=config.batch_size, num_train_epochs=1,
                                 learning_rate=resolved.learning_rate,
                                 warmup_steps=int(config.warmup_ratio * math.ceil(len(rows) / config.batch_size)),
                                 train_sampling_strategy="group_by_length", report_to=[], save_strategy="no",
                                 logging_strategy="no", disable_tqdm=True, seed=config.seed,
                                 bf16=config.mixed_precision == "bf16", fp16=config.mixed_precision == "fp16",
                                 use_cpu=not torch.cuda.is_available())
        trainer = Trainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer,
                          data_collator=DataCollatorWithPadding(tokenizer))
        tic = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - tic
    return {"train_time_s": seconds, "train_samples_per_s": len(examples) / seconds}


def gemm_peak_flops(size: int = 2048, repeats: int = 10, dtype=None) -> float:
    """The machine's matrix-multiply rate (FLOP/s; fp32 unless ``dtype``): the best of ``repeats``
    size x size products."""
    return gemm_flops(size, size, size, repeats, dtype)


def gemm_flops(m: int, k: int, n: int, repeats: int = 10, dtype=None) -> float:
    """The best rate (FLOP/s) of ``repeats`` (m x k) @ (k x n) products, after one warm-up."""
    import torch

    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    torch.matmul(a, b)  # warm-up
    best = math.inf
    for _ in range(repeats):
        tic = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - tic)
    return 2 * m * k * n / best


def _isolated_run(config: RunConfig, folder: Path) -> dict[str, Any]:
    """`harness run` in its own process, so that each run's peak memory is its own."""
    import subprocess
    import sys

    import yaml

    path = folder / f"{config.run_name}.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    done = subprocess.run([sys.executable, "-m", "harness", "run", "--config", str(path)], capture_output=True,
                          text=True)
    run = RunDir.of(config.output_dir, config.run_name)
    if done.returncode or not run.metrics_path.is_file():
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise HarnessError(f"bench run {config.run_name} failed: {lines[-1] if lines else 'no output'}")
    record = run.read_metrics()
    # The checkpoint is the weight files; the tokenizer files saved beside them are not counted.
    record["checkpoint_bytes"] = sum(f.stat().st_size for f in run.weights.rglob("*")
                                     if f.suffix in (".safetensors", ".bin"))
    return record


def _nonembedding_params(config: RunConfig) -> int:
    """Parameters that every token's forward pass multiplies by: the backbone without its embedding
    tables (built on the meta device, nothing downloaded)."""
    import torch
    from transformers import AutoModel

    from harness.models import build_config, get_model_spec

    with torch.device("meta"):
        model = AutoModel.from_config(build_config(get_model_spec(config.model)))
    embeddings = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding))
    return sum(p.numel() for p in model.parameters()) - embeddings


def compare_training_throughput(config: RunConfig, repeats: int = 1, out: str | None = None,
                                recipe_examples: int | None = 256) -> dict[str, Any]:
    """One report on training efficiency, for ``config`` (LoRA) against full fine-tuning:

    - full FT vs LoRA through `harness run`, each in its own process: samples/s, tokens/s, peak
      memory, optimizer state (AdamW: two fp32 moments per trained parameter) and checkpoint size;
    - the harness loop (length-grouped batches; compiled with --compile) against the best hand-written
      HF recipe (Trainer + peft, dynamic padding, length-grouped sampling: the peer to beat), a minimal
      hand-written peft loop and the seeds' recipe (Trainer, padding to 512), same model, method,
      data and batch size, alternated over the repeats;
    - achieved training FLOP/s (6N per token for FT, 4N for frozen-weight methods: no weight
      gradients; N = non-embedding parameters) against the fp32 GEMM peak, the median of measurements
      taken before every repeat and after the last.
    """
    import tempfile

    from harness.training.runner import resolve

    if config.method != "lora":
        raise HarnessError(f"bench train compares LoRA with full fine-tuning and the reference loops; use "
                           f"--method lora (got '{config.method}').")
    config = dataclasses.replace(config, epochs=1, group_by_length=True, tracking_uri="none")
    resolved = resolve(config)
    task = resolved.task
    train = subsample(task.load(task.train_split, config.data_dir), config.max_train_samples, config.data_seed)
    nonembedding = _nonembedding_params(config)
    runs: dict[str, list[dict]] = {"lora": [], "full": []}
    minimal, trainer, peaks = [], [], []
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        for repeat in range(repeats):  # alternate, so drift in machine load hits every side alike
            peaks.append(gemm_peak_flops())
            for method in ("lora", "full"):
                cell = dataclasses.replace(config, method=method, output_dir=tmp, run_name=f"{method}-{repeat}",
                                           learning_rate=None if method != config.method else config.learning_rate,
                                           method_options=config.method_options if method == config.method else {})
                runs[method].append(_isolated_run(cell, Path(tmp)))
            trainer.append(trainer_recipe(config, resolved, train))
            minimal.append(minimal_peft_loop(config, resolved, train)["train_samples_per_s"])
        peaks.append(gemm_peak_flops())
    # The peak moves within one sitting (107-180 GFLOP/s on a 2-core VM), so the fractions divide by
    # the median of the measurements taken around every repeat rather than by one taken at the start.
    peak = statistics.median(peaks)
    recipe_split = subsample(train, recipe_examples, config.data_seed)
    recipe = seeds_recipe(config, resolved, recipe_split)
    lora, full = (_loop_summary(runs[m], m == "full", nonembedding, peak) for m in ("lora", "full"))
    report = _throughput_report(config, task, train, lora, full, max(minimal), recipe, recipe_split, peak, nonembedding)
    trainer_best = max(t["train_samples_per_s"] for t in trainer)
    # The Trainer's rate is its whole epoch; the harness's is given both ways, since with --compile its
    # first step holds the compilation, which a longer run amortizes.
    report["summary"].update(trainer_recipe_samples_per_s=round(trainer_best, 2),
                             ratio_harness_over_trainer_recipe=round(lora["train_samples_per_s"] / trainer_best, 3),
                             ratio_steady_harness_over_trainer_recipe=round(
                                 lora["steady_samples_per_s"] / trainer_best, 3))
    if config.mixed_precision == "bf16":  # the rate the run's GEMMs could reach, beside the fp32 one
        import torch

        bf16_peak = gemm_peak_flops(dtype=torch.bfloat16)
        report["summary"].update(gemm_peak_flops_bf16=bf16_peak,
                                 lora_steady_fraction_of_bf16_gemm_peak=lora["steady_achieved_flops"] / bf16_peak)
    report["summary"]["gemm_peak_flops_measured"] = peaks
    report["all_runs"] = {"harness_lora": [r["throughput"] for r in runs["lora"]],
                          "harness_full": [r["throughput"] for r in runs["full"]], "minimal_peft_loop": minimal,
                          "trainer_recipe": trainer, "seeds_recipe": recipe}
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(out), report)
    return report


def _loop_summary(records: list[dict], full: bool, nonembedding: int, peak: float) -> dict[str, Any]:
    """The best of a loop's repeats: speed, memory, optimizer state, checkpoint, achieved FLOP/s."""
    best = max(records, key=lambda r: r["throughput"]["train_samples_per_s"])
    trained = best["params"]["trainable"] + best["params"]["head"]
    speed = best["throughput"]
    per_token = (6 if full else 4) * nonembedding
    # Past the first step (with --compile: the compilation); a run of one step has only the whole rate.
    steady_tokens = speed.get("steady_tokens_per_s") or speed["train_tokens_per_s"]
    flops = per_token * speed["train_tokens_per_s"]
    return {"train_samples_per_s": round(speed["train_samples_per_s"], 2),
            "steady_samples_per_s": round(speed.get("steady_samples_per_s") or speed["train_samples_per_s"], 2),
            "first_step_s": speed["first_step_s"],
            "train_tokens_per_s": round(speed["train_tokens_per_s"], 1),
            "peak_memory_mb": round(speed["peak_memory_mb"], 1),
            "trainable_params": best["params"]["trainable"], "head_params": best["params"]["head"],
            "optimizer_state_bytes": 8 * trained, "checkpoint_bytes": best["checkpoint_bytes"],
            "achieved_flops": flops, "fraction_of_gemm_peak": flops / peak,
            "steady_achieved_flops": per_token * steady_tokens,
            "steady_fraction_of_gemm_peak": per_token * steady_tokens / peak}


def _throughput_report(config, task, train, lora, full, minimal_speed, recipe, recipe_split, peak,
                       nonembedding) -> dict[str, Any]:
    import torch

    return {
        "summary": {
            "task": task.name, "model": config.model, "batch_size": config.batch_size,
            "train_examples": len(train.examples), "lora": lora, "full": full,
            "lora_vs_full": {
                "throughput_ratio": round(lora["train_samples_per_s"] / full["train_samples_per_s"], 3),
                "peak_memory_ratio": round(lora["peak_memory_mb"] / full["peak_memory_mb"], 3),
                "checkpoint_ratio": round(full["checkpoint_bytes"] / max(lora["checkpoint_bytes"], 1), 1),
            },
            "minimal_peft_loop_samples_per_s": round(minimal_speed, 2),
            "ratio_harness_over_minimal": round(lora["train_samples_per_s"] / minimal_speed, 3),
            "seeds_recipe_samples_per_s": round(recipe["train_samples_per_s"], 2),
            "seeds_recipe_examples": len(recipe_split.examples),
            "ratio_harness_over_seeds_recipe": round(lora["train_samples_per_s"] / recipe["train_samples_per_s"], 1),
            "gemm_peak_flops": peak, "nonembedding_params": nonembedding,
        },
        "note": ("best of the repeats for each loop; one epoch each, evaluation and model loading excluded; "
                 "the harness runs use --group-by-length; the seeds' recipe runs on a subset (it pads to 512)"),
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "platform": platform.platform(), "cuda": torch.cuda.is_available(), **cpu_description()},
        "versions": versions(),
        "config": config.to_dict(),
    }


def random_model(model_name: str):
    """A preset's architecture with random weights (latency does not depend on the values)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from harness.models import build_config, get_model_spec

    spec = get_model_spec(model_name)
    config = build_config(spec)
    torch.manual_seed(0)
    if config.model_type in ("gpt2", "llama"):
        return AutoModelForCausalLM.from_config(config)
    return AutoModelForSequenceClassification.from_config(config)


def latency_variants(model_name: str, lora_r: int, adapter_r: int, adapter_h_r: int | None = None):
    """(name, model) pairs: the base model, LoRA merged and unmerged, AdapterL and AdapterH."""
    from harness.methods import get_method
    from harness.models import build_config, get_model_spec, head_module_names

    def prepared(method, options):
        model = random_model(model_name)
        spec = get_method(method)
        return spec.prepare(model, spec.resolve_options(options), head_module_names(model))

    # GPT-2: the paper's placement (q and v inside the fused c_attn), as the paper measured it.
    lora_options = {"r": lora_r, "fused_qv": build_config(get_model_spec(model_name)).model_type == "gpt2"}
    yield "base", random_model(model_name)
    unmerged = prepared("lora", lora_options)
    yield "lora (unmerged)", unmerged
    # Merging works in place; keep the unmerged variant intact.
    yield "lora (merged)", get_method("lora").merge(copy.deepcopy(unmerged))
    yield "adapter_l", prepared("adapter_l", {"r": adapter_r})
    yield "adapter_h", prepared("adapter_h", {"r": adapter_h_r or adapter_r})


def interleaved_ms(variants, inputs: dict, warmup: int, trials: int, tick=lambda: None) -> dict[str, list[float]]:
    """Forward times (ms) of each (name, model) on the same inputs, ``trials`` each after ``warmup``.
    Round-robin over the variants, so slow drift of the machine (clock, other load) hits all alike."""
    import torch

    times: dict[str, list[float]] = {name: [] for name, _ in variants}
    with torch.inference_mode():
        for i in range(warmup + trials):
            for name, model in variants:
                tic = time.perf_counter()
                model(**inputs)
                if i >= warmup:
                    times[name].append((time.perf_counter() - tic) * 1000)
                tick()
    return times


def measure_latency(model_name: str, batch_size: int, seq_len: int, trials: int, warmup: int = 3,
                    lora_r: int = 4, adapter_r: int = 8, out: str | None = None,
                    adapter_h_r: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Forward-pass latency (ms, mean and std over ``trials``) of each variant on the same input,
    and each one's overhead over the base model: the paper's Table 1 measurement."""
    import statistics

    import torch
    from tqdm.auto import tqdm

    variants = [(name, model.eval()) for name, model in latency_variants(model_name, lora_r, adapter_r, adapter_h_r)]
    vocab = variants[0][1].config.vocab_size
    ids = torch.randint(0, vocab, (batch_size, seq_len), generator=torch.Generator().manual_seed(0))
    bar = tqdm(total=(warmup + trials) * len(variants), desc=f"latency batch {batch_size} x length {seq_len}",
               unit="pass", disable=not progress, dynamic_ncols=True)
    with bar:
        times = interleaved_ms(variants, {"input_ids": ids}, warmup, trials, bar.update)
    results = []
    for name, model in variants:
        total = sum(p.numel() for n, p in model.named_parameters() if ".original_module." not in n)
        results.append({"variant": name, "mean_ms": statistics.mean(times[name]), "std_ms": statistics.stdev(times[name]),
                        "params_total": total, "added_params": total - (results[0]["params_total"] if results else total)})
    base = results[0]["mean_ms"]
    for row in results:
        row["overhead_pct"] = 100 * (row["mean_ms"] - base) / base
    report = {"model": model_name, "batch_size": batch_size, "seq_len": seq_len, "trials": trials,
              "lora_r": lora_r, "adapter_r": adapter_r, "adapter_h_r": adapter_h_r or adapter_r, "threads": torch.get_num_threads(),
              "results": results, "versions": versions()}
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(out), report)
    return report


def compare_decoding(model_name: str, task_name: str, data_dir, inputs: int, num_beams: int, batch_size: int,
                     max_new_tokens: int = 64, out: str | None = None) -> dict[str, Any]:
    """Beam search over the first ``inputs`` test inputs, batched (``batch_size`` inputs per forward)
    and one input at a time, same beam size; both must produce the same text."""
    import torch

    from harness.models import get_model_spec, load_for_causal_lm
    from harness.tasks import get_task
    from harness.tasks.decoding import decode
    from harness.tasks.generation import decode_settings

    task = get_task(task_name)
    sources = [e.source for e in task.load(next(iter(task.eval_splits.values())), data_dir).examples[:inputs]]
    torch.manual_seed(0)
    model, tokenizer = load_for_causal_lm(get_model_spec(model_name), data_dir)
    results, texts = {}, {}
    for name, size in (("one_at_a_time", 1), ("batched", batch_size)):
        # The settings `harness run` would decode with (the task's length penalty), at this batch size.
        settings = decode_settings(RunConfig(task=task_name, model=model_name, num_beams=num_beams,
                                             max_new_tokens=max_new_tokens, decode_batch_size=size), task)
        tic = time.perf_counter()
        texts[name] = decode(model, tokenizer, sources, settings, progress=False)
        seconds = time.perf_counter() - tic
        results[name] = {"batch_size": size, "seconds": round(seconds, 3), "inputs_per_s": len(sources) / seconds}
    report = {"model": model_name, "task": task.name, "inputs": len(sources), "num_beams": num_beams,
              "max_new_tokens": max_new_tokens, "length_penalty": settings.length_penalty, "threads": torch.get_num_threads(),
              "results": results, "speedup": results["one_at_a_time"]["seconds"] / results["batched"]["seconds"],
              "same_outputs": texts["batched"] == texts["one_at_a_time"], "versions": versions()}
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(out), report)
    return report


def paper_latency_table(model_name: str = "gpt2-medium", trials: int = 10, warmup: int = 2, max_tokens: int = 4096,
                        out: str | None = None) -> dict[str, Any]:
    """The paper's Table 1 settings (batch, length, adapter size) measured here, beside its numbers.
    A CPU cannot run batch 32 x 512 tokens of GPT-2 M 100 times in reasonable time, so the batch is
    lowered until batch x length <= ``max_tokens`` (recorded in each row)."""
    from harness.report.reference import PAPER_TABLE1

    rows = []
    for paper in PAPER_TABLE1:
        batch = min(paper["batch_size"], max(1, max_tokens // paper["seq_len"]))
        report = measure_latency(model_name, batch, paper["seq_len"], trials, warmup, lora_r=4,
                                 adapter_r=paper["adapter_l_r"], adapter_h_r=paper["adapter_h_r"])
        ours = {r["variant"]: r for r in report["results"]}
        rows.append({"paper_batch_size": paper["batch_size"], "batch_size": batch, "seq_len": paper["seq_len"],
                     "adapter_params": paper["adapter_params"], "paper": paper, "results": report["results"],
                     "overhead_pct": {k: ours[k]["overhead_pct"] for k in ("lora (merged)", "adapter_l", "adapter_h")}})
    result = {"model": model_name, "trials": trials, "warmup": warmup, "max_tokens": max_tokens, "rows": rows,
              "threads": report["threads"], "versions": report["versions"]}
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(out), result)
    return result


def generate_outputs(model, tokenizer, sources: list[str], settings, early_stopping) -> tuple[list[list[int]], float]:
    """transformers' ``generate`` on the same prompts (left-padded batches of ``settings.batch_size``,
    same beam size, length penalty, n-gram ban, token budget, stop tokens, at least one token):
    (the generated ids of each input without its stop token, seconds)."""
    import torch

    from harness.tasks.decoding import left_padded, prompts_of, stop_token_ids

    stops = stop_token_ids(tokenizer)
    prompts, order, pad = prompts_of(tokenizer, sources)  # in the harness's order
    outputs: list[list[int]] = [[] for _ in sources]
    model.eval()
    tic = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(order), settings.batch_size):
            chunk = order[start:start + settings.batch_size]
            ids, mask = left_padded([prompts[i] for i in chunk], pad)
            width = ids.shape[1]
            generated = model.generate(input_ids=ids, attention_mask=mask, num_beams=settings.num_beams,
                                       length_penalty=settings.length_penalty,
                                       no_repeat_ngram_size=settings.no_repeat_ngram_size,
                                       max_new_tokens=settings.max_new_tokens, min_new_tokens=1, do_sample=False,
                                       eos_token_id=stops, pad_token_id=pad, early_stopping=early_stopping)
            for index, row in zip(chunk, generated[:, width:].tolist()):
                cut = next((j for j, t in enumerate(row) if t in stops), len(row))
                outputs[index] = row[:cut]
    return outputs, time.perf_counter() - tic


def compare_with_generate(run_dir: str | Path, data_dir=None, inputs: int = 32, batch_size: int = 16,
                          num_beams: int | None = None, max_new_tokens: int | None = None,
                          stopping=(False, "never"), repeats: int = 1, out: str | None = None,
                          no_repeat_ngram_size: int | None = None, keep_k_open: bool | None = None,
                          ban_prompt_ngrams: bool | None = None) -> dict[str, Any]:
    """The harness's beam search against ``model.generate`` on a trained run's model (adapter merged),
    the same test inputs and settings: time per input and per generated token, and the outputs compared
    token for token. ``stopping``: generate's early_stopping values to measure (False: its default
    heuristic; "never": exact, like the harness's). The sides alternate over ``repeats`` (best time of
    each kept). ``num_beams``, ``max_new_tokens`` and ``no_repeat_ngram_size`` override the run's (beam 1
    without an n-gram ban is greedy search on both sides: equal outputs by construction), and
    ``keep_k_open`` and ``ban_prompt_ngrams`` the beam and n-gram rules (both True: generate's, equal
    outputs)."""
    import torch

    from harness.methods import get_method, load_trained
    from harness.models import get_model_spec, load_for_causal_lm
    from harness.tasks import get_task
    from harness.tasks.decoding import decode_ids
    from harness.tasks.generation import decode_settings

    run = RunDir(Path(run_dir))
    config = run.run_config()
    if not run.weights.is_dir():
        raise HarnessError(f"{run.path}: no weights/ folder; compare a generation run saved with --save-weights.")
    task = get_task(config.task, config.include_tasks or ())
    if task.kind != "generation":
        raise HarnessError(f"{run.path}: task {task.name} is not a generation task.")
    overrides = {"no_repeat_ngram_size": no_repeat_ngram_size, "keep_k_open": keep_k_open,
                 "ban_prompt_ngrams": ban_prompt_ngrams}  # None: the run's
    settings = decode_settings(dataclasses.replace(
        config, decode_batch_size=batch_size, num_beams=num_beams or config.num_beams,
        max_new_tokens=max_new_tokens or config.max_new_tokens,
        **{key: value for key, value in overrides.items() if value is not None}), task)
    split = next(iter(task.eval_splits.values()))
    sources = [e.source for e in task.load(split, data_dir or config.data_dir).examples[:inputs]]
    base, tokenizer = load_for_causal_lm(get_model_spec(config.model), data_dir or config.data_dir)
    spec = get_method(config.method)
    model = load_trained(base, spec, config.method_options, run.weights, [])
    if spec.merge is not None:
        model = spec.merge(model)
    model.eval()
    names = {rule: f"generate (early_stopping={rule!r})" for rule in stopping}
    times: dict[str, list[float]] = {"harness": [], **{name: [] for name in names.values()}}
    outputs: dict[str, list[list[int]]] = {}
    for _ in range(repeats):  # alternate, so drift in machine load hits every side alike
        tic = time.perf_counter()
        outputs["harness"] = decode_ids(model, tokenizer, sources, settings)
        times["harness"].append(time.perf_counter() - tic)
        for rule, name in names.items():
            outputs[name], seconds = generate_outputs(model, tokenizer, sources, settings, rule)
            times[name].append(seconds)
    sides = {}
    for name, ids in outputs.items():
        tokens, best = sum(len(x) for x in ids), min(times[name])
        sides[name] = {"seconds": round(best, 3), "all_seconds": [round(t, 3) for t in times[name]],
                       "s_per_input": best / len(sources), "generated_tokens": tokens,
                       "ms_per_generated_token": 1000 * best / max(tokens, 1)}
        if name != "harness":
            same = [a == b for a, b in zip(outputs["harness"], ids)]
            sides[name].update(
                speedup_of_harness=best / min(times["harness"]), identical_outputs=sum(same),
                first_difference=next(({"input": i, "source": sources[i],
                                        "harness": tokenizer.decode(outputs["harness"][i]),
                                        "generate": tokenizer.decode(ids[i])} for i, s in enumerate(same) if not s),
                                      None))
    report = {"run": str(run.path), "model": config.model, "task": task.name, "inputs": len(sources),
              "settings": dataclasses.asdict(settings), "repeats": repeats, "threads": torch.get_num_threads(),
              "sides": sides, "versions": versions()}
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(out), report)
    return report
