"""`harness bench train | latency | decode`: the efficiency benchmarks (harness.bench)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.cli.common import Parser, add_run_options, config_from_args
from harness.report.render import FORMATS


def cmd_bench_train(args) -> int:
    from harness.bench import compare_training_throughput

    report = compare_training_throughput(config_from_args(args, ("repeats", "out", "recipe_examples")),
                                         repeats=args.repeats, out=args.out, recipe_examples=args.recipe_examples)
    print(json.dumps(report["summary"], indent=2))
    return 0


def add_train(bench_sub) -> None:
    bench_train = bench_sub.add_parser(
        "train", help="training efficiency: LoRA vs full FT, the harness vs a hand-written loop and HF Trainer",
        description="One report: full fine-tuning vs LoRA through `harness run` (samples/s, tokens/s, peak memory, "
                    "optimizer state, checkpoint size, FLOP/s against the measured fp32 GEMM peak), and the "
                    "harness loop (with --compile: compiled) against the best hand-written HF recipe (Trainer + peft, "
                    "dynamic padding, length-grouped sampling), a minimal hand-written peft loop and the seeds' "
                    "Trainer recipe with padding='max_length', on the same model, data and batch size.")
    add_run_options(bench_train)
    bench_train.add_argument("--repeats", type=int, default=1, help="alternate the two loops this many times")
    bench_train.add_argument("--recipe-examples", type=int, default=256,
                             help="examples for the slow HF Trainer recipe (default: 256)")
    bench_train.add_argument("--out", default="results/bench/train_throughput.json", help="JSON report path")
    bench_train.set_defaults(func=cmd_bench_train)


def cmd_bench_latency(args) -> int:
    from harness.bench import measure_latency
    from harness.report.render import render

    if args.paper:
        return _paper_latency(args)

    out = args.out or f"results/bench/latency_{args.model}_b{args.batch_size}_s{args.seq_len}.json"
    report = measure_latency(args.model, args.batch_size, args.seq_len, args.trials, args.warmup,
                             args.lora_r, args.adapter_r, out)
    rows = [{"variant": r["variant"], "latency (ms)": f"{r['mean_ms']:.1f} ± {r['std_ms']:.1f}",
             "overhead": f"{r['overhead_pct']:+.1f}%", "added params": f"{r['added_params']:,}"}
            for r in report["results"]]
    print(f"{args.model}, batch {args.batch_size}, sequence {args.seq_len}, {args.trials} trials ({out})")
    print(render(rows, ["variant", "latency (ms)", "overhead", "added params"]), end="")
    return 0


def _paper_latency(args) -> int:
    from harness.bench import paper_latency_table
    from harness.report.render import render

    out = args.out or f"results/bench/latency_table1_{args.model}.json"
    report = paper_latency_table(args.model, args.trials, args.warmup, args.max_tokens, out)
    rows = []
    for row in report["rows"]:
        ours = {r["variant"]: r for r in row["results"]}
        setting = f"{row['paper_batch_size']}/{row['seq_len']}/{row['adapter_params']}"
        if row["batch_size"] != row["paper_batch_size"]:
            setting += f" (batch {row['batch_size']} here)"
        for variant, paper_key in (("lora (merged)", "base"), ("adapter_l", "adapter_l"), ("adapter_h", "adapter_h")):
            r = ours[variant]
            rows.append({"batch / len / adapter": setting, "variant": variant,
                         "ours (ms)": f"{r['mean_ms']:.1f}±{r['std_ms']:.1f} ({r['overhead_pct']:+.1f}%)",
                         "base here (ms)": f"{ours['base']['mean_ms']:.1f}",
                         "paper (ms)": row["paper"][paper_key]})
    columns = ["batch / len / adapter", "variant", "ours (ms)", "base here (ms)", "paper (ms)"]
    print(f"{args.model}: the paper's Table 1 settings, {args.trials} trials each ({out})")
    text = render(rows, columns, args.format)
    print(text, end="")
    if args.table_out:
        Path(args.table_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.table_out).write_text(text, encoding="utf-8")
    return 0


def add_latency(bench_sub) -> None:
    latency = bench_sub.add_parser(
        "latency", help="inference latency: base vs merged/unmerged LoRA vs adapters (the paper's Table 1)",
        description="Time one forward pass of a model with random weights: no adapter, LoRA unmerged and merged, "
                    "AdapterL, AdapterH. Mean and std over trials, overhead against the base model.")
    latency.add_argument("--model", default="gpt2-medium", help="model preset (default: gpt2-medium)")
    latency.add_argument("--batch-size", type=int, default=1, help="batch size (default: 1)")
    latency.add_argument("--seq-len", type=int, default=128, help="sequence length (default: 128)")
    latency.add_argument("--trials", type=int, default=20, help="timed forward passes (default: 20; the paper: 100)")
    latency.add_argument("--warmup", type=int, default=3, help="untimed passes first (default: 3)")
    latency.add_argument("--lora-r", type=int, default=4, help="LoRA rank (default: 4, the paper's GPT-2 setting)")
    latency.add_argument("--adapter-r", type=int, default=8, help="adapter bottleneck (default: 8)")
    latency.add_argument("--paper", action="store_true",
                         help="the paper's three Table 1 settings (batch/length/adapter size), beside its numbers")
    latency.add_argument("--max-tokens", type=int, default=4096,
                         help="with --paper: lower the batch until batch x length <= this (default: 4096, for CPUs)")
    latency.add_argument("--format", default="markdown", choices=FORMATS,
                         help="with --paper: table format (default: markdown)")
    latency.add_argument("--table-out", help="with --paper: also write the table here")
    latency.add_argument("--out", help="JSON report (default: results/bench/latency_<model>_b<B>_s<S>.json)")
    latency.set_defaults(func=cmd_bench_latency)


def cmd_bench_decode(args) -> int:
    from harness.bench import compare_decoding

    out = args.out or f"results/bench/decode_{args.model}_{args.task}_beam{args.num_beams}.json"
    report = compare_decoding(args.model, args.task, args.data_dir, args.inputs, args.num_beams, args.batch_size,
                              args.max_new_tokens, out)
    for name, row in report["results"].items():
        print(f"{name:14} batch {row['batch_size']:3}  {row['seconds']:8.1f} s  {row['inputs_per_s']:.2f} inputs/s")
    print(f"speedup {report['speedup']:.2f}x, same outputs: {report['same_outputs']} ({out})")
    return 0


def add_decode(bench_sub) -> None:
    bench_decode = bench_sub.add_parser(
        "decode", help="batched beam search vs one input at a time",
        description="Decode the first N test inputs of a generation task with the same beam size, batched and one "
                    "input at a time; report both times, the speedup and whether the outputs are identical.")
    bench_decode.add_argument("--model", default="smollm2-135m", help="model preset (default: smollm2-135m)")
    bench_decode.add_argument("--task", default="e2e", help="generation task (default: e2e)")
    bench_decode.add_argument("--data-dir", help="data folder (default: $HARNESS_DATA_DIR, else the hub)")
    bench_decode.add_argument("--inputs", type=int, default=32, help="test inputs to decode (default: 32)")
    bench_decode.add_argument("--num-beams", type=int, default=10, help="beam size (default: 10, the paper's)")
    bench_decode.add_argument("--batch-size", type=int, default=16, help="inputs per batch (default: 16)")
    bench_decode.add_argument("--max-new-tokens", type=int, default=64, help="(default: 64)")
    bench_decode.add_argument("--out", help="JSON report (default: results/bench/decode_<model>_<task>_beam<B>.json)")
    bench_decode.set_defaults(func=cmd_bench_decode)


def cmd_bench_generate(args) -> int:
    from harness.bench import compare_with_generate

    rules = [{"heuristic": False, "never": "never", "first": True}[r] for r in args.early_stopping]
    out = args.out or f"results/bench/decode_vs_generate_{Path(args.run).name}.json"
    report = compare_with_generate(args.run, args.data_dir, args.inputs, args.batch_size, args.num_beams,
                                   args.max_new_tokens, rules, args.repeats, out, args.no_repeat_ngram_size,
                                   args.keep_k_open, args.ban_prompt_ngrams)
    print(f"{report['inputs']} inputs, beam {report['settings']['num_beams']}, batch {args.batch_size} ({out})")
    for name, side in report["sides"].items():
        versus = (f"; harness {side['speedup_of_harness']:.2f}x faster, identical outputs "
                  f"{side['identical_outputs']}/{report['inputs']}" if "speedup_of_harness" in side else "")
        print(f"  {name}: {side['s_per_input']:.3f} s/input, {side['ms_per_generated_token']:.1f} ms/token, "
              f"{side['generated_tokens']} tokens{versus}")
    return 0


def add_generate(bench_sub) -> None:
    bench = bench_sub.add_parser(
        "generate", help="the harness's beam search vs transformers' generate on a trained run",
        description="Loads a finished generation run (its adapter merged), decodes the first N test inputs with "
                    "the harness's beam search and with model.generate (same beams, length penalty, n-gram ban, "
                    "token budget, stop tokens, batch), alternating; reports time per input and per generated "
                    "token and compares the outputs token for token. Where they differ: generate keeps k open "
                    "beams (the harness closes a finished one, as the paper's decoder, unless --keep-k-open), "
                    "counts the prompt in no_repeat_ngram_size (the harness does not, unless "
                    "--ban-prompt-ngrams), and stops by its early_stopping rule.")
    bench.add_argument("run", help="a finished generation run folder (saved weights)")
    bench.add_argument("--data-dir", help="data folder (default: the run's)")
    bench.add_argument("--inputs", type=int, default=32, help="test inputs (default: 32)")
    bench.add_argument("--batch-size", type=int, default=16, help="inputs per batch, both sides (default: 16)")
    bench.add_argument("--num-beams", type=int, help="beam size (default: the run's)")
    bench.add_argument("--max-new-tokens", type=int, help="(default: the run's)")
    bench.add_argument("--no-repeat-ngram-size", type=int,
                       help="n-gram ban, 0: none (default: the run's; --num-beams 1 with 0 is greedy search on both "
                            "sides, equal outputs by construction)")
    bench.add_argument("--keep-k-open", action="store_true", default=None,
                       help="the harness keeps k beams open as generate does (default: the run's rule)")
    bench.add_argument("--ban-prompt-ngrams", action="store_true", default=None,
                       help="the harness's n-gram ban counts the prompt as generate's does (default: the run's rule)")
    bench.add_argument("--early-stopping", nargs="+", choices=["heuristic", "never", "first"],
                       default=["heuristic", "never"],
                       help="generate's stopping rules to measure: heuristic (its default, early_stopping=False), "
                            "never (exact, as the harness's), first (default: heuristic never)")
    bench.add_argument("--repeats", type=int, default=2, help="alternate both this many times (default: 2)")
    bench.add_argument("--out", help="JSON report (default: results/bench/decode_vs_generate_<run>.json)")
    bench.set_defaults(func=cmd_bench_generate)


def cmd_bench_scaling(args) -> int:
    import shlex
    import sys

    from harness.scaling import AXES, run_scaling, write_scaling_report

    axes = {axis: AXES[axis] for axis in args.axis} if args.axis else AXES
    for axis, values in (args.values or []):
        if axis not in AXES:
            from harness.errors import HarnessError

            raise HarnessError(f"--values: unknown axis '{axis}'; axes: {', '.join(AXES)}.")
        axes[axis] = [v if axis in ("method", "model") else int(v) for v in values.split(",")]
    report = run_scaling(axes, steps=args.steps)
    command = "harness bench scaling " + shlex.join(sys.argv[3:]) if sys.argv[1:3] == ["bench", "scaling"] else ""
    for path in write_scaling_report(report, args.out, command.strip()):
        print(path)
    return 0


def add_scaling(bench_sub) -> None:
    scaling = bench_sub.add_parser(
        "scaling", help="how step time and peak memory grow with length, rank, batch, method and model size",
        description="Trains a few steps at each point (one axis moved at a time from MiniLM-L6 + LoRA r=8, batch "
                    "16, length 128; each point in a fresh process), fits time and memory against each axis on "
                    "log-log axes, and writes scaling.json, README.md and scaling.png/svg, with the paper-scale "
                    "settings predicted from FLOPs.")
    scaling.add_argument("--axis", action="append", choices=["seq_len", "rank", "batch_size", "method", "model"],
                         help="measure only this axis (repeatable; default: all)")
    scaling.add_argument("--values", nargs=2, action="append", metavar=("AXIS", "V1,V2,..."),
                         help="the values of an axis (e.g. --values seq_len 64,128)")
    scaling.add_argument("--steps", type=int, default=3, help="measured steps per point (after one warm-up step)")
    scaling.add_argument("--out", default="reports/bench/scaling", help="folder for the report")
    scaling.set_defaults(func=cmd_bench_scaling)


def add(sub) -> None:
    bench = sub.add_parser("bench", help="benchmarks", description="Benchmarks.")
    bench_sub = bench.add_subparsers(dest="bench", metavar="BENCH", parser_class=Parser)
    bench_sub.required = True
    add_train(bench_sub)
    add_latency(bench_sub)
    add_decode(bench_sub)
    add_scaling(bench_sub)
    add_generate(bench_sub)
