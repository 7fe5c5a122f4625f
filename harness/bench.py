"""Benchmarks. `compare_training_throughput`: samples/s of the harness's training loop against a
minimal hand-written peft loop on the same model, data, method and batch size."""

from __future__ import annotations

import copy
import dataclasses
import os
import platform
import time
from pathlib import Path
from typing import Any

from harness.config import RunConfig
from harness.tracking import write_json


def minimal_peft_loop(config: RunConfig, resolved, train_split) -> dict[str, float]:
    """What a user writes by hand: tokenize each batch, forward, backward, AdamW step. No accelerate,
    no logging, no evaluation. Uses only torch, transformers and peft."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification, get_linear_schedule_with_warmup

    from harness.models import get_model_spec, load_tokenizer, model_source

    torch.manual_seed(config.seed)
    spec = get_model_spec(config.model)
    tokenizer = load_tokenizer(spec, config.data_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_source(spec), num_labels=resolved.task.num_labels)
    if config.method == "lora":
        options = resolved.method_options
        model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=options["r"],
                                                 lora_alpha=options["alpha"], lora_dropout=options["dropout"],
                                                 target_modules=options["target_modules"]))
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


def compare_training_throughput(config: RunConfig, repeats: int = 1, out: str | None = None) -> dict[str, Any]:
    import torch

    from harness.train import resolve, run, subsample, versions

    from harness.errors import HarnessError

    if config.method not in ("lora", "full"):
        raise HarnessError(f"bench train compares against a hand-written loop for lora and full only, not "
                           f"'{config.method}'.")
    config = dataclasses.replace(config, epochs=1, save_weights=False)
    resolved = resolve(config)
    task = resolved.task
    train = subsample(task.load(task.train_split, config.data_dir), config.max_train_samples, config.data_seed)
    harness_runs, minimal_runs = [], []
    for _ in range(repeats):  # alternate, so drift in machine load hits both sides alike
        record = run(config, progress=False)
        harness_runs.append(record["throughput"]["train_samples_per_s"])
        minimal_runs.append(minimal_peft_loop(config, resolved, train)["train_samples_per_s"])
    harness_speed, minimal_speed = max(harness_runs), max(minimal_runs)
    report = {
        "summary": {
            "task": task.name, "model": config.model, "method": config.method, "batch_size": config.batch_size,
            "train_examples": len(train.examples), "harness_samples_per_s": round(harness_speed, 2),
            "minimal_peft_loop_samples_per_s": round(minimal_speed, 2),
            "ratio_harness_over_minimal": round(harness_speed / minimal_speed, 3),
        },
        "all_runs": {"harness": harness_runs, "minimal_peft_loop": minimal_runs},
        "note": "best of the repeats for each loop; one epoch each, evaluation and model loading excluded",
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "platform": platform.platform(), "cuda": torch.cuda.is_available()},
        "versions": versions(),
        "config": config.to_dict(),
    }
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(out), report)
    return report


def _random_model(model_name: str):
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


def latency_variants(model_name: str, lora_r: int, adapter_r: int):
    """(name, model) pairs: the base model, LoRA merged and unmerged, AdapterL and AdapterH."""
    from harness.methods import get_method
    from harness.methods.lora import merge_fused_qv
    from harness.models import head_module_names

    def prepared(method, options):
        model = _random_model(model_name)
        spec = get_method(method)
        return spec.apply(model, spec.resolve_options(options), head_module_names(model))

    from harness.models import build_config, get_model_spec

    is_gpt2 = build_config(get_model_spec(model_name)).model_type == "gpt2"
    lora_options = {"r": lora_r, "fused_qv": is_gpt2}
    yield "base", _random_model(model_name)
    unmerged = prepared("lora", lora_options)
    yield "lora (unmerged)", unmerged
    merged = copy.deepcopy(unmerged)  # merging works in place; keep the unmerged variant intact
    if is_gpt2:
        merge_fused_qv(merged)
        yield "lora (merged)", merged
    else:
        yield "lora (merged)", merged.merge_and_unload()
    yield "adapter_l", prepared("adapter_l", {"r": adapter_r})
    yield "adapter_h", prepared("adapter_h", {"r": adapter_r})


def measure_latency(model_name: str, batch_size: int, seq_len: int, trials: int, warmup: int = 3,
                    lora_r: int = 4, adapter_r: int = 8, out: str | None = None) -> dict[str, Any]:
    """Forward-pass latency (ms, mean and std over ``trials``) of each variant on the same input,
    and each one's overhead over the base model: the paper's Table 1 measurement."""
    import statistics

    import torch

    from harness.train import versions

    variants = [(name, model.eval()) for name, model in latency_variants(model_name, lora_r, adapter_r)]
    vocab = variants[0][1].config.vocab_size
    ids = torch.randint(0, vocab, (batch_size, seq_len), generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {name: [] for name, _ in variants}
    with torch.inference_mode():
        # Round-robin over the variants, so slow drift of the machine (clock, other load) hits all alike.
        for i in range(warmup + trials):
            for name, model in variants:
                tic = time.perf_counter()
                model(input_ids=ids)
                if i >= warmup:
                    times[name].append((time.perf_counter() - tic) * 1000)
    results = []
    for name, model in variants:
        total = sum(p.numel() for n, p in model.named_parameters() if ".original_module." not in n)
        results.append({"variant": name, "mean_ms": statistics.mean(times[name]), "std_ms": statistics.stdev(times[name]),
                        "params_total": total, "added_params": total - (results[0]["params_total"] if results else total)})
    base = results[0]["mean_ms"]
    for row in results:
        row["overhead_pct"] = 100 * (row["mean_ms"] - base) / base
    report = {"model": model_name, "batch_size": batch_size, "seq_len": seq_len, "trials": trials,
              "lora_r": lora_r, "adapter_r": adapter_r, "threads": torch.get_num_threads(),
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

    from harness.generation import DecodeSettings, decode
    from harness.models import get_model_spec, load_for_causal_lm
    from harness.tasks import get_task
    from harness.train import versions

    task = get_task(task_name)
    sources = [e.source for e in task.load(next(iter(task.eval_splits.values())), data_dir).examples[:inputs]]
    torch.manual_seed(0)
    model, tokenizer = load_for_causal_lm(get_model_spec(model_name), data_dir)
    penalty = task.decode_defaults.get("length_penalty", 1.0)
    results, texts = {}, {}
    for name, size in (("one_at_a_time", 1), ("batched", batch_size)):
        settings = DecodeSettings(num_beams=num_beams, length_penalty=penalty, max_new_tokens=max_new_tokens,
                                  batch_size=size)
        tic = time.perf_counter()
        texts[name] = decode(model, tokenizer, sources, settings, progress=False)
        seconds = time.perf_counter() - tic
        results[name] = {"batch_size": size, "seconds": round(seconds, 3), "inputs_per_s": len(sources) / seconds}
    report = {"model": model_name, "task": task.name, "inputs": len(sources), "num_beams": num_beams,
              "max_new_tokens": max_new_tokens, "length_penalty": penalty, "threads": torch.get_num_threads(),
              "results": results, "speedup": results["one_at_a_time"]["seconds"] / results["batched"]["seconds"],
              "same_outputs": texts["batched"] == texts["one_at_a_time"], "versions": versions()}
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(out), report)
    return report
