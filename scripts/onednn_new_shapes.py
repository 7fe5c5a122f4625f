"""What a new matrix shape costs a CPU's bf16 matrix products (oneDNN builds a kernel for each):

    python scripts/onednn_new_shapes.py   # writes reports/bench/onednn_new_shapes.json

One bf16 ``F.linear`` of MiniLM-L6's feed-forward output shape (m x 1536 @ 1536 x 384, with bias), timed
over 60 calls four ways: one m again and again; 60 values of m never seen before in the process; the
same 60 again (now cached); and 60 more new ones. In a training step m is the batch's positions (or its
packed token count), so a run whose m changes at every step pays the new-shape rate. fp32 products
(MKL's) are timed beside them, the same four ways.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.rundir import write_json  # noqa: E402

OUT = ROOT / "reports" / "bench" / "onednn_new_shapes.json"
COMMAND = "python scripts/onednn_new_shapes.py"


def rates(dtype, k: int = 1536, n: int = 384, calls: int = 60) -> dict:
    import torch
    import torch.nn.functional as F

    weight, bias = torch.randn(n, k, dtype=dtype), torch.randn(n, dtype=dtype)
    rows = torch.randn(1400, k, dtype=dtype)  # each m reads its first m rows: contiguous, m x k

    def gflops(ms):
        flops, start = 0, time.perf_counter()
        for m in ms:
            F.linear(rows[:m], weight, bias)
            flops += 2 * m * k * n
        return round(flops / (time.perf_counter() - start) / 1e9, 1)

    rng = random.Random(0)
    fresh = rng.sample(range(401, 1400), 2 * calls)  # 900 itself is left for the repeated shape
    gflops([900] * 3)  # the repeated shape's kernel, built before it is timed
    return {"one shape again and again": gflops([900] * calls), "a new shape at each call": gflops(fresh[:calls]),
            "the same shapes again": gflops(fresh[:calls]), "new shapes again": gflops(fresh[calls:])}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    import torch

    from harness.training.env import cpu_description

    report = {"command": COMMAND, "machine": cpu_description(), "threads": torch.get_num_threads(),
              "shape": "m x 1536 @ 1536 x 384 + bias, m in 400-1399",
              "gflop_per_s": {"bf16": rates(torch.bfloat16), "fp32": rates(torch.float32)}}
    write_json(Path(args.out), report)
    for dtype, rows in report["gflop_per_s"].items():
        print(dtype, rows)


if __name__ == "__main__":
    main()
