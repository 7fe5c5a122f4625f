"""`harness analyze`: the paper's §7 analyses of trained LoRA runs (subspace similarity, amplification)."""

from __future__ import annotations

from pathlib import Path


def _modules(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _layers(value: str | None) -> list[int] | None:
    return [int(v) for v in value.split(",") if v.strip()] if value else None


def cmd_subspace(args) -> int:
    from harness.report.lora_analysis import heatmaps, subspace_report
    from harness.rundir import write_json

    report = subspace_report(args.run_a, args.run_b, _modules(args.module), _layers(args.layer), args.seed,
                             args.merged_rank, args.of)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{args.name}.json", report)
    paths = heatmaps(report, out, args.name)
    for entry in report["entries"]:
        print(f"ΔW{entry['weight']} layer {entry['layer']} (r={entry['r_a']} vs r={entry['r_b']}): "
              f"φ(1,1) = {entry['phi'][0][0]:.3f} (random {entry['phi_random'][0][0]:.3f})")
    for path in [out / f"{args.name}.json", *paths]:
        print(path)
    return 0


def cmd_amplification(args) -> int:
    from harness.report.lora_analysis import amplification_markdown, amplification_report
    from harness.rundir import write_json

    report = amplification_report(args.run, _modules(args.module), _layers(args.layer), args.seed, args.merged_rank)
    text = amplification_markdown(report)
    print(text, end="")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / f"{args.name}.json", report)
        (out / f"{args.name}.md").write_text(text, encoding="utf-8")
        print(out / f"{args.name}.json")
    return 0


def add(sub) -> None:
    analyze = sub.add_parser("analyze", help="the paper's §7 analyses of trained LoRA runs",
                             description="Subspace similarity between two runs' LoRA updates (Eq. 4, Figures 3/4) "
                                         "and how ΔW relates to W (Table 7). Reads any saved LoRA run: the built-in "
                                         "lora, peft:LORA, GPT-2's fused c_attn, or merged weights.")
    commands = analyze.add_subparsers(dest="analyze_command", metavar="SUBCOMMAND")
    commands.required = True
    sub_a = commands.add_parser("subspace", help="φ(A1, A2, i, j) between two runs, with a random baseline")
    sub_a.add_argument("run_a", help="run folder (e.g. r=8)")
    sub_a.add_argument("run_b", help="run folder (e.g. r=64, or another seed)")
    sub_a.add_argument("--out", default="reports/analysis", help="folder for the JSON and heatmaps")
    sub_a.add_argument("--name", default="subspace", help="file name stem (default: subspace)")
    sub_a.add_argument("--of", choices=["A", "B", "delta"], default="A",
                       help="compare A's right-singular vectors (the paper's, default), B's left-singular vectors, "
                            "or ΔW's top-r right-singular vectors (ordered by what training learned: B starts at 0)")
    sub_a.set_defaults(func=cmd_subspace)
    amp = commands.add_parser("amplification", help="Table 7: ‖ΔW‖, ‖UᵀWV‖ and the amplification factor")
    amp.add_argument("run", help="run folder")
    amp.add_argument("--out", help="also write <name>.json and <name>.md here")
    amp.add_argument("--name", default="amplification", help="file name stem (default: amplification)")
    amp.set_defaults(func=cmd_amplification)
    for parser in (sub_a, amp):
        parser.add_argument("--module", help="weight types or module names, comma-separated (q,v; default: all)")
        parser.add_argument("--layer", help="layer indices, comma-separated (default: all)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the random baseline")
        parser.add_argument("--merged-rank", type=int, help="the run saved a merged model whole (model.safetensors): "
                            "read ΔW as merged minus pretrained, factored at this rank")
