"""Where a training step's time goes, for the bench job's fastest setting (fp32, --compile, --fast-dropout):

    python scripts/profile_train_step.py [--steps 15]   # writes reports/bench/train_step_profile.json
    python scripts/profile_train_step.py --padding-free --out reports/bench/train_step_profile_padding_free.json
    python scripts/profile_train_step.py --mixed-precision bf16 --out reports/bench/train_step_profile_bf16.json

The bench job's model and batches (scripts/bench_fast_paths.py builds them as a run does: MiniLM-L6 +
LoRA r=8 on query and value, length-grouped batches of 32 SST-2 sentences), compiled as --compile
compiles it (its inductor settings included), 10 warm-up steps, then ``--steps`` optimizer steps under
torch.profiler with FLOP counting.
Self time is grouped into matrix products (aten mm/addmm), attention's batched products (bmm), the
inductor's fused element-wise kernels, random draws, copies, the optimizer and the rest; the GEMMs'
own FLOP/s is set beside the fp32 GEMM peak (a 2048² product) and the best rate of the model's own GEMM
shapes, measured in the same sitting. It tells how far the GEMM-peak goal can move: the fraction of the
peak a step reaches is at most the GEMMs' share of the step times their own rate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from harness.rundir import write_json  # noqa: E402

OUT = ROOT / "reports" / "bench" / "train_step_profile.json"
COMMAND = "python scripts/profile_train_step.py"
GROUPS = (("matrix products (mm, addmm)", ("aten::mm", "aten::addmm")),
          ("attention's batched products (bmm)", ("aten::bmm",)),
          ("fused element-wise kernels (inductor)", ("graph_",)),
          ("random draws (dropout masks)", ("aten::random",)),
          ("copies", ("aten::copy_", "aten::clone", "aten::_to_copy")),
          ("packing (gathers and scatters of --padding-free)", ("aten::index_select", "aten::index_copy",
                                                                "aten::nonzero", "aten::index_add")),
          ("optimizer", ("Optimizer.", "aten::lerp_", "aten::addcdiv_", "aten::addcmul_", "aten::sqrt")))


def group_of(name: str) -> str:
    for label, prefixes in GROUPS:
        if name.startswith(prefixes):
            return label
    return "the rest (compiled-graph calls, autograd, Python)"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--padding-free", action="store_true", help="the step with --padding-free too")
    parser.add_argument("--mixed-precision", default="no", choices=("no", "bf16"),
                        help="bf16: the step under autocast, its GEMMs also set beside the bf16 peak")
    args = parser.parse_args(argv)
    import torch
    import torch._inductor.config
    from torch.profiler import ProfilerActivity, profile

    from bench_fast_paths import batches_and_model
    from harness.bench import gemm_flops, gemm_peak_flops
    from harness.config import RunConfig
    from harness.training.env import cpu_description
    from harness.training.fast_paths import FastPaths
    from harness.training.runner import dynamo_plugin

    # the inductor settings --compile sets
    dynamo_plugin(RunConfig(task="glue/sst2", compile=True, padding_free=args.padding_free))
    torch._inductor.config.cpp.enable_kernel_profile = True  # each fused kernel named in the profile
    model, optimizer, batches, loss = batches_and_model(args.mixed_precision, 10 + args.steps, args.data_dir)
    paths = FastPaths(model, args.mixed_precision, cast_frozen_once=True, fast_dropout=True,
                      padding_free=args.padding_free)
    model.forward = torch.compile(model.forward, dynamic=True)
    model.train()

    def steps(chosen):
        with paths.in_use():
            for batch in chosen:
                loss(batch).backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

    steps(batches[:10])  # compiles, then settles
    measured = batches[10:]
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        steps(measured)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    groups: dict[str, float] = {}
    for event in events:
        groups[group_of(event.key)] = groups.get(group_of(event.key), 0.0) + event.self_cpu_time_total
    gemm = [e for e in events if e.key in ("aten::mm", "aten::addmm")]
    profiled_flops = sum(e.flops for e in gemm)
    gemm_s = sum(e.self_cpu_time_total for e in gemm) / 1e6
    if not gemm_s:
        raise SystemExit("profile_train_step: the profile shows no matrix products (the inductor's C++ wrapper "
                         "calls them out of the profiler's sight); unset TORCHINDUCTOR_CPP_WRAPPER and run again.")
    tokens = [int(b["attention_mask"].sum()) for b in measured]
    padded = [b["attention_mask"].numel() for b in measured]
    rows = sum(padded) // len(padded)  # the GEMMs' m: every position of a batch, padding included
    peak = gemm_peak_flops()
    shapes = {f"{rows}x{k} @ {k}x{n}": gemm_flops(rows, k, n, repeats=30) for k, n in ((384, 384), (384, 1536),
                                                                                         (1536, 384))}
    report = {
        "command": " ".join([COMMAND, *(sys.argv[1:] if argv is None else argv)]),
        "padding_free": args.padding_free, "mixed_precision": args.mixed_precision, "steps": len(measured),
        "batch_size": 32, "machine": cpu_description(),
        "threads": torch.get_num_threads(),
        "self_time_share": {k: round(v / total, 4) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])},
        "top_kernels": [{"name": e.key[:90], "self_ms": round(e.self_cpu_time_total / 1e3, 1),
                         "share": round(e.self_cpu_time_total / total, 4), "calls": e.count}
                        for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:15]],
        "gemm_flops_per_s": profiled_flops / gemm_s, "gemm_peak_flops": peak,
        "gemm_rate_over_peak": profiled_flops / gemm_s / peak,
        "model_shape_rates": shapes, "best_model_shape_rate_over_peak": max(shapes.values()) / peak,
        # of the batches; with --padding-free the GEMMs' m is the real tokens (the shapes above stay padded)
        "padding_fraction": 1 - sum(tokens) / sum(padded),
        "note": "self CPU time under the profiler (which slows the step a little); shares of the profiled steps",
    }
    if args.mixed_precision == "bf16":  # the GEMMs run in bf16: their own peak beside the fp32 one
        report["gemm_peak_flops_bf16"] = gemm_peak_flops(dtype=torch.bfloat16)
        report["gemm_rate_over_bf16_peak"] = report["gemm_flops_per_s"] / report["gemm_peak_flops_bf16"]
    write_json(Path(args.out), report)
    for label, share in report["self_time_share"].items():
        print(f"{share:6.1%}  {label}")
    print(f"GEMMs at {report['gemm_flops_per_s'] / 1e9:.0f} GFLOP/s = {report['gemm_rate_over_peak']:.0%} of the "
          f"2048² peak ({peak / 1e9:.0f} GFLOP/s); padding {report['padding_fraction']:.1%}; wrote {args.out}")


if __name__ == "__main__":
    main()
