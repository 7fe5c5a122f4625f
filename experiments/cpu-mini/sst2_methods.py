"""Every method on MiniLM-L6 + GLUE SST-2 (4,000 training sentences, 1 epoch, full dev set) on a CPU.

    python experiments/cpu-mini/sst2_methods.py --data-dir ../shared/data

Writes results/cpu-mini/sst2_methods.{json,md}: accuracy, trainable parameters (head excluded)
and time per method, with the settings used. The learning rates were chosen once, by hand, for a
single short epoch on this small model; they are recorded in the table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from harness.config import RunConfig
from harness.train import run

# method -> (method options, learning rate)
SETTINGS = {
    "full": ({}, 1e-4),
    "bitfit": ({}, 5e-3),
    "fttop2": ({"k": 2}, 3e-4),
    "lora": ({"r": 8, "alpha": 8}, 3e-3),
    "adapter_h": ({"r": 8}, 2e-3),
    "adapter_l": ({"r": 8}, 2e-3),
    "adapter_p": ({"r": 16}, 2e-3),
    "adapter_d": ({"r": 16, "skip_lowest": 2}, 2e-3),
    "prefix_embed": ({"tokens": 10}, 3e-2),
    "prefix_layer": ({"tokens": 10}, 1e-2),
    "peft:IA3": ({}, 1e-2),
    "peft:DORA": ({"r": 8, "lora_alpha": 8, "target_modules": ["query", "value"]}, 3e-3),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--methods", nargs="+", default=list(SETTINGS))
    parser.add_argument("--out", default="results/cpu-mini/sst2_methods")
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else {}
    for method in args.methods:
        options, lr = SETTINGS[method]
        tic = time.perf_counter()
        record = run(RunConfig(task="glue/sst2", model="minilm-l6", method=method, method_options=options,
                               learning_rate=lr, data_dir=args.data_dir, max_train_samples=4000, epochs=1,
                               seed=42, tracking_uri="none", save_weights=False, output_dir="results"),
                     progress=False)
        rows[method] = {"accuracy": record["best"]["accuracy"], "trainable": record["params"]["trainable"],
                        "head": record["params"]["head"], "options": options, "learning_rate": lr,
                        "train_time_s": record["throughput"]["train_time_s"],
                        "wall_time_s": round(time.perf_counter() - tic, 1)}
        out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")  # after every method: resumable
        print(method, rows[method], flush=True)
    lines = ["| method | settings | learning rate | dev accuracy | trainable params (head excluded) | train time (s) |",
             "|---|---|---|---|---|---|"]
    for method, row in rows.items():
        settings = ", ".join(f"{k}={v}" for k, v in row["options"].items()) or "-"
        lines.append(f"| {method} | {settings} | {row['learning_rate']:g} | {row['accuracy']:.4f} | "
                     f"{row['trainable']:,} | {row['train_time_s']:.0f} |")
    out.with_suffix(".md").write_text(
        "MiniLM-L6 on GLUE SST-2: 4,000 training sentences, 1 epoch, seed 42, full dev set (872), 2 CPU cores. "
        f"The classification head ({next(iter(rows.values()))['head']:,} parameters with BERT's pooler) trains "
        "in every method and is excluded from the counts, as in the paper.\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
