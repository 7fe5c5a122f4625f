"""How much of an evaluation batch is padding: each GLUE dev set on MiniLM-L6's tokenizer, batched in the
split's own order (the harness before length-sorted evaluation) and by ``LengthSortedBatches`` (now), at
the default evaluation batch of 64. Counts positions (batch x longest row) and, for attention, the
squared lengths.

    python scripts/eval_padding.py --data-dir ../shared/data --out reports/bench/eval_padding.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TASKS = ["glue/sst2", "glue/mrpc", "glue/stsb", "glue/cola", "glue/rte"]


def cost(lengths: list[int], batches: list[list[int]]) -> tuple[int, int]:
    """(padded positions, padded attention cells) of these batches."""
    positions = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    return positions, sum(max(lengths[i] for i in b) ** 2 * len(b) for b in batches)


def main() -> None:
    from harness.config import RunConfig
    from harness.training.batching import LengthSortedBatches
    from harness.training.runner import resolve

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out")
    args = parser.parse_args()
    rows = []
    for task in TASKS:
        config = RunConfig(task=task, model="minilm-l6", method="lora", data_dir=args.data_dir, tracking_uri="none",
                           epochs=0)
        resolved = resolve(config)
        data = resolved.objective.load_data(resolved.task, config)
        _, tokenizer, _ = resolved.objective.load_model(resolved.model, resolved.task, config)
        for suffix, split in data.evals.items():
            lengths = [len(r["input_ids"]) for r in resolved.objective.encode(split, tokenizer, config)]
            real = sum(lengths)
            size = args.batch_size
            in_order = [list(range(i, min(i + size, len(lengths)))) for i in range(0, len(lengths), size)]
            (p0, a0), (p1, a1) = cost(lengths, in_order), cost(lengths, list(LengthSortedBatches(lengths, size)))
            rows.append({"task": task + (f" ({suffix})" if suffix else ""), "examples": len(lengths),
                         "padding_in_split_order": round(1 - real / p0, 4),
                         "padding_length_sorted": round(1 - real / p1, 4),
                         "positions_ratio": round(p0 / p1, 3), "attention_ratio": round(a0 / a1, 3)})
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"command": "python scripts/eval_padding.py --data-dir ../shared/data "
                                              f"--out {args.out}", "batch_size": args.batch_size, "rows": rows},
                                             indent=1) + "\n")


if __name__ == "__main__":
    main()
