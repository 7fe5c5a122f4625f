"""What each training fast path (harness/training/fast_paths.py) gains, measured paired in one process:

    python scripts/bench_fast_paths.py [--rounds 6] [--batches 30]   # writes reports/bench/fast_paths_ab.json
    python scripts/bench_fast_paths.py --only "fast dropout, fp32"     # re-measures one row, keeps the others

One model (MiniLM-L6 + LoRA r=8 on query and value, the bench job's model and method), the same batches
of 32 SST-2 training sentences (the first batches of the bench job's length-grouped loader, built by the
harness's own objective and loader), optimizer steps timed with a fast path off and on,
alternated over the rounds so that drift in machine speed hits both sides alike (whole benchmark
commands on this machine vary by 15-30% from one run to the next). Reported: samples/s of each round
and the median of the per-round ratios (on / off).

- fast dropout (--fast-dropout), fp32: the masks of the model's nn.Dropout modules and of its attention
  probabilities;
- frozen weights cast once (--cast-frozen-once, the default), bf16 autocast;
- the inductor's C++ wrapper (TORCHINDUCTOR_CPP_WRAPPER=1; --compile leaves it off), fp32 with
  fast dropout (the bench job's fastest setting): compiled without and with it, each side in its own process
  per round (the inductor's settings hold for a whole process), timed after 5 warm-up batches;
- packed tokens (--padding-free), fp32 with fast dropout, eager and compiled: under --compile both sides
  share one compiled forward in one process (dynamo compiles a graph for each side: the packing's switch is
  guarded), each side warmed up (and compiled) on 5 batches first; and eager on shuffled batches (a run
  without --group-by-length, the default), where most positions are padding;
- batches padded to their own length instead of a multiple of 8 (what mixed precision did on a CPU
  before harness.tasks.objective.pad_multiple kept the multiple for GPUs), bf16 autocast: the same
  batches, the off side's padded further (masked positions, as the collator padded them); and the same
  over a whole epoch (the first 5 batches warm up, the next 120 are timed) in a fresh process per side
  and round, where each new batch shape costs oneDNN a new kernel (a bf16 product's), as in a run;
- bucketed token counts for packed tokens under bf16 (harness.training.padding_free.bucketed) against the
  exact counts, and packed tokens (bucketed) against padded batches under bf16 --compile, each over an
  epoch in a fresh process per side and round.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from types import SimpleNamespace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.rundir import write_json  # noqa: E402
from harness.training.fast_paths import FastPaths  # noqa: E402

OUT = ROOT / "reports" / "bench" / "fast_paths_ab.json"
COMMAND = "python scripts/bench_fast_paths.py"


def batches_and_model(mixed_precision: str, count: int, data_dir: str, group_by_length: bool = True):
    """The bench job's pieces, built as a run builds them: the objective's encoding and collation, the
    length-grouped (or shuffled) training loader, the method's model; the first ``count`` batches of 32."""
    import itertools

    import torch

    from harness.config import RunConfig
    from harness.training.batching import train_loader
    from harness.training.loop import adamw
    from harness.training.runner import load_model, make_accelerator, resolve

    config = RunConfig(task="glue/sst2", model="minilm-l6", method="lora", data_dir=data_dir, batch_size=32,
                       max_train_samples=4000, group_by_length=True, mixed_precision=mixed_precision,
                       tracking_uri="none", method_options={"r": 8})
    resolved = resolve(config)
    accelerator = make_accelerator(config)
    torch.manual_seed(0)
    model, tokenizer, _ = load_model(resolved, config)
    objective = resolved.objective
    rows = objective.encode(objective.load_data(resolved.task, config).train, tokenizer, config)
    loader = train_loader(rows, config.batch_size, group_by_length, objective.collate(tokenizer, config),
                          torch.Generator().manual_seed(0))
    batches = list(itertools.islice(loader, count))
    model, optimizer = accelerator.prepare(model, adamw(model, 1e-4, 0.0))
    return model, optimizer, batches, lambda batch: objective.loss(model, batch, config)


def samples_per_s(model, optimizer, batches, loss, side) -> float:
    paths, model.forward = side
    model.train()
    with paths.in_use():
        start = time.perf_counter()
        for batch in batches:
            loss(batch).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return sum(len(batch["labels"]) for batch in batches) / (time.perf_counter() - start)


def paired(name: str, mixed_precision: str, off: dict, on: dict, rounds: int, count: int, data_dir: str) -> dict:
    # The inductor's settings hold for a whole process, and two compilations of one forward in a process
    # share dynamo's cache: a compile setting is measured in a fresh process per side and round.
    in_process = not {"cpp_wrapper", "fresh_process_batches"} & off.keys()
    count = off.get("fresh_process_batches", count)
    if in_process:
        model, optimizer, batches, loss = batches_and_model(mixed_precision, count, data_dir,
                                                            group_by_length=name not in SHUFFLED)
        # One FastPaths (a second on the same model would replace the first's patches); each side turns on its parts.
        paths = FastPaths(model, mixed_precision, **{key: off.get(key, False) or on.get(key, False) for key in PARTS})
        sides = {side: make_side(model, mixed_precision, flags, paths) for side, flags in (("off", off), ("on", on))}
        inputs = {side: padded(batches, flags.get("pad_multiple")) for side, flags in (("off", off), ("on", on))}
        for side, warm in sides.items():
            samples_per_s(model, optimizer, inputs[side][:5], loss, warm)
    runs = {"off": [], "on": []}
    for _ in range(rounds):
        for side in ("off", "on"):
            rate = (samples_per_s(model, optimizer, inputs[side], loss, sides[side]) if in_process
                    else in_subprocess(name, side, count, data_dir))
            runs[side].append(round(rate, 2))
        print(f"{name}: off {runs['off'][-1]:.1f}, on {runs['on'][-1]:.1f} samples/s", flush=True)
    ratios = [b / a for a, b in zip(runs["off"], runs["on"])]
    return {"name": name, "mixed_precision": mixed_precision, "off": off, "on": on, "samples_per_s": runs,
            "ratios": [round(r, 3) for r in ratios], "median_ratio": round(statistics.median(ratios), 3)}


def padded(batches, multiple: int | None):
    """The batches right-padded to a multiple of ``multiple`` positions (masked, as a collator pads)."""
    import torch.nn.functional as F

    if not multiple:
        return batches
    grown = []
    for batch in batches:
        extra = -batch["input_ids"].shape[1] % multiple
        grown.append({key: F.pad(value, (0, extra)) if value.dim() == 2 else value for key, value in batch.items()})
    return grown


# FastPaths' flags and the part of it each turns on
PARTS = {"cast_frozen_once": "casts", "fast_dropout": "dropout", "padding_free": "padding_free"}


def make_side(model, mixed_precision: str, flags: dict, paths=None):
    """One side's fast paths (its parts of ``paths``, or a FastPaths of its own) and forward: eager, or
    (``compile``, or a ``cpp_wrapper`` choice) compiled as --compile compiles the model."""
    import torch

    from harness.config import RunConfig
    from harness.training.runner import dynamo_plugin

    flags = dict(flags)
    for key in ("pad_multiple", "fresh_process_batches"):  # the side's batches and process, not its model
        flags.pop(key, None)
    buckets = flags.pop("buckets", True)
    wrapper = flags.pop("cpp_wrapper", None)
    forward = model.forward
    if flags.pop("compile", False) or wrapper is not None:
        # the inductor settings --compile sets (with --padding-free's when a side packs)
        dynamo_plugin(RunConfig(task="glue/sst2", compile=True, padding_free=flags.get("padding_free", False)))
        forward = torch.compile(forward, dynamic=True, options={} if wrapper is None else {"cpp_wrapper": wrapper})
    if paths is None:
        paths = FastPaths(model, mixed_precision, **{key: flags.get(key, False) for key in PARTS})
        paths.padding_free.buckets = buckets
    elif paths.padding_free.buckets != buckets:  # one FastPaths serves both sides of an in-process row
        raise ValueError("sides that differ in buckets need a process each: give the row fresh_process_batches")
    side = SimpleNamespace(in_use=partial(paths.in_use, [part for flag, part in PARTS.items() if flags.get(flag)]))
    return side, forward


def in_subprocess(name: str, side: str, count: int, data_dir: str) -> float:
    import subprocess

    done = subprocess.run([sys.executable, __file__, "--worker", name, "--side", side, "--batches", str(count),
                           "--data-dir", data_dir], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def worker(name: str, side: str, count: int, data_dir: str) -> None:
    """One side of a compile setting, in this process: compiled, 5 warm-up batches, then the rate."""
    mixed_precision, off, on = PATHS[name]
    flags = off if side == "off" else on
    model, optimizer, batches, loss = batches_and_model(mixed_precision, count + 5, data_dir)
    batches = padded(batches, flags.get("pad_multiple"))
    chosen = make_side(model, mixed_precision, flags)
    samples_per_s(model, optimizer, batches[:5], loss, chosen)
    print(samples_per_s(model, optimizer, batches[5:], loss, chosen))


# bf16 on a CPU with AMX: the epoch's first 5 batches warm up, the next 120 are timed
BF16_EPOCH = {"cast_frozen_once": True, "fast_dropout": True, "fresh_process_batches": 120}
# name -> (mixed precision, flags off, flags on)
PATHS = {
    "fast dropout, fp32": ("no", {"cast_frozen_once": True, "fast_dropout": False},
                           {"cast_frozen_once": True, "fast_dropout": True}),
    "frozen weights cast once, bf16": ("bf16", {"cast_frozen_once": False, "fast_dropout": False},
                                       {"cast_frozen_once": True, "fast_dropout": False}),
    "C++ wrapper under --compile, fp32": ("no", {"cast_frozen_once": True, "fast_dropout": True, "cpp_wrapper": False},
                                          {"cast_frozen_once": True, "fast_dropout": True, "cpp_wrapper": True}),
    "packed tokens, fp32, fast dropout": ("no", {"cast_frozen_once": True, "fast_dropout": True},
                                          {"cast_frozen_once": True, "fast_dropout": True, "padding_free": True}),
    "packed tokens under --compile, fp32, fast dropout": (
        "no", {"cast_frozen_once": True, "fast_dropout": True, "compile": True},
        {"cast_frozen_once": True, "fast_dropout": True, "padding_free": True, "compile": True}),
    "packed tokens, shuffled batches, fp32, fast dropout": (
        "no", {"cast_frozen_once": True, "fast_dropout": True},
        {"cast_frozen_once": True, "fast_dropout": True, "padding_free": True}),
    # harness.tasks.objective.pad_multiple: the multiple of 8 is for a GPU's tensor cores
    "own length instead of a multiple of 8, bf16": ("bf16", {"cast_frozen_once": True, "pad_multiple": 8},
                                                    {"cast_frozen_once": True}),
    # oneDNN builds a kernel per new matrix shape: measured over the epoch's batches in a fresh process
    "own length instead of a multiple of 8, bf16, fast dropout, an epoch in a fresh process": (
        "bf16", {**BF16_EPOCH, "pad_multiple": 8}, BF16_EPOCH),
    "bucketed token counts, packed tokens, bf16, fast dropout, an epoch in a fresh process": (
        "bf16", {**BF16_EPOCH, "padding_free": True, "buckets": False}, {**BF16_EPOCH, "padding_free": True}),
    "packed tokens (bucketed) against padded, bf16 --compile, fast dropout, an epoch in a fresh process": (
        "bf16", {**BF16_EPOCH, "compile": True}, {**BF16_EPOCH, "compile": True, "padding_free": True}),
}
SHUFFLED = {"packed tokens, shuffled batches, fp32, fast dropout"}  # without --group-by-length: the default batches


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--only", choices=sorted(PATHS),
                        help="measure this fast path alone; the other rows of --out are kept as they are")
    parser.add_argument("--worker", choices=sorted(PATHS), help=argparse.SUPPRESS)  # one side, in a subprocess
    parser.add_argument("--side", choices=("off", "on"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.side, args.batches, args.data_dir)
    import json

    import torch

    from harness.training.env import cpu_description

    kept = []
    if args.only and Path(args.out).is_file():
        before = json.loads(Path(args.out).read_text())
        kept = [r for r in before["results"] if r["name"] != args.only]
        for row in kept:  # a row keeps the sitting it was measured in (older files kept it at the top level)
            for key in ("machine", "threads", "rounds", "batches"):
                row.setdefault(key, before.get(key))
    measured = [paired(name, *PATHS[name], args.rounds, args.batches, args.data_dir)
                for name in PATHS if args.only in (None, name)]
    for result in measured:  # each row is paired within itself, so rows from different sittings stay valid
        result.update(machine=cpu_description(), threads=torch.get_num_threads(), rounds=args.rounds,
                      batches=args.batches)
    results = sorted(kept + measured, key=lambda r: list(PATHS).index(r["name"]))
    # machine, threads, rounds and batches are each row's: rows from different sittings share the file
    write_json(Path(args.out), {"command": COMMAND, "batch_size": 32, "results": results})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
