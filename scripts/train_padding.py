"""How much of a training batch is padding: length-grouped batches (``--group-by-length``) and shuffled ones
(the default), on MiniLM-L6's tokenizer, for the training subsets of the bench job and of cpu-quick cells.
What ``--padding-free`` can leave out of a step is about this share of its positions.

    python scripts/train_padding.py --data-dir ../shared/data --out reports/bench/train_padding.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (task, training examples, batch size): the bench job, the check's SST-2 cells, cpu-quick's MRPC and STS-B cells
JOBS = [("glue/sst2", 4000, 32), ("glue/sst2", 2000, 16), ("glue/mrpc", 1500, 16), ("glue/stsb", 1500, 16)]


def padding_share(lengths: list[int], batches) -> float:
    padded = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)
    return 1 - sum(lengths) / padded


def main() -> None:
    import torch

    from harness.config import RunConfig
    from harness.training.batching import LengthGroupedBatches
    from harness.training.runner import resolve

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out")
    args = parser.parse_args()
    rows = []
    for task, examples, batch_size in JOBS:
        config = RunConfig(task=task, model="minilm-l6", method="lora", data_dir=args.data_dir, tracking_uri="none",
                           max_train_samples=examples, batch_size=batch_size)
        resolved = resolve(config)
        _, tokenizer, _ = resolved.objective.load_model(resolved.model, resolved.task, config)
        split = resolved.objective.load_data(resolved.task, config).train
        lengths = [len(r["input_ids"]) for r in resolved.objective.encode(split, tokenizer, config)]
        grouped = list(LengthGroupedBatches(lengths, batch_size, torch.Generator().manual_seed(0)))
        order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0)).tolist()
        shuffled = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        rows.append({"task": task, "examples": examples, "batch_size": batch_size,
                     "mean_length": round(sum(lengths) / len(lengths), 1),
                     "padding_length_grouped": round(padding_share(lengths, grouped), 4),
                     "padding_shuffled": round(padding_share(lengths, shuffled), 4)})
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"command": "python scripts/train_padding.py --data-dir ../shared/data "
                                              f"--out {args.out}", "seed": 0, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
