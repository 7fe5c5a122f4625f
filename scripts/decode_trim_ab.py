"""Paired check of the beam search's dead-column drop (harness/tasks/decoding.py, _drop_dead_columns):
the same merged adapter decodes the first N E2E test MRs at decode batch 40, with and without dropping
the cache columns only departed inputs attended to; time, the attention width per step, and whether
the outputs are identical. One thread, so a job beside it does not share this one's cores.

    python scripts/decode_trim_ab.py 240 --out reports/bench/decode_trim_ab.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUN = ROOT / "results/paper-analyses/table5-cpu-v1/runs/table5-cpu-v1-wq_wv-a15de59a29ee"


def main() -> None:
    import torch

    import harness.tasks.decoding as decoding
    from harness.methods import get_method, load_trained
    from harness.models import get_model_spec, load_for_causal_lm
    from harness.rundir import RunDir
    from harness.tasks import get_task
    from harness.tasks.generation import decode_settings

    parser = argparse.ArgumentParser()
    parser.add_argument("inputs", type=int)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    run = RunDir(RUN)
    config = run.run_config()
    task = get_task(config.task)
    settings = decode_settings(dataclasses.replace(config, decode_batch_size=40), task)
    split = next(iter(task.eval_splits.values()))
    sources = [e.source for e in task.load(split, args.data_dir).examples[:args.inputs]]
    base, tokenizer = load_for_causal_lm(get_model_spec(config.model), args.data_dir)
    spec = get_method(config.method)
    model = spec.merge(load_trained(base, spec, config.method_options, run.weights, []))
    widths: list[int] = []
    model.register_forward_pre_hook(lambda _, a, k: widths.append(k["attention_mask"].shape[1]), with_kwargs=True)
    keep = decoding._drop_dead_columns
    sides, outputs = {}, {}
    for name, drop in (("drop dead columns", keep), ("keep every column", lambda live: None)):
        decoding._drop_dead_columns = drop
        widths.clear()
        tic = time.perf_counter()
        outputs[name] = decoding.decode_ids(model, tokenizer, sources, settings)
        sides[name] = {"seconds": round(time.perf_counter() - tic, 1), "max_width": max(widths),
                       "mean_width": round(sum(widths) / len(widths), 1), "steps": len(widths)}
        print(name, sides[name], flush=True)
    decoding._drop_dead_columns = keep
    a, b = outputs.values()
    report = {"run": str(RUN.relative_to(ROOT)), "inputs": args.inputs, "decode_batch_size": 40,
              "num_beams": settings.num_beams, "threads": 1, "sides": sides,
              "identical_outputs": sum(x == y for x, y in zip(a, b))}
    print(json.dumps(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
