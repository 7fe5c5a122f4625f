"""harness bench scaling: every point measured in its own process (the shared base point once), the
power-law fit, the report files, the paper-scale rows labelled as predictions."""

import json
import math
import subprocess
import sys

import pytest

from harness.errors import HarnessError
from harness.scaling import _step_flops, fit_exponent, points, run_scaling


def test_the_fit_recovers_a_known_power_law():
    xs = [64, 128, 256, 512]
    fit = fit_exponent(xs, [3.0 * x ** 1.5 for x in xs])
    assert fit["exponent"] == pytest.approx(1.5) and fit["r2"] == pytest.approx(1.0)
    assert math.exp(fit["intercept"]) == pytest.approx(3.0)
    noisy = fit_exponent(xs, [2.0 * x * (1.1 if i % 2 else 0.9) for i, x in enumerate(xs)])
    assert 0.8 < noisy["exponent"] < 1.2 and noisy["r2"] < 1
    assert fit_exponent([1], [2]) is None


def test_one_axis_moves_at_a_time_from_the_base():
    todo = points({"seq_len": [64, 128], "rank": [2]}, {"model": "tiny-bert"})
    assert [(axis, p.seq_len, p.rank, p.model) for axis, p in todo] == \
        [("seq_len", 64, 8, "tiny-bert"), ("seq_len", 128, 8, "tiny-bert"), ("rank", 128, 2, "tiny-bert")]


def test_frozen_backbone_step_flops():
    # 4N per token plus attention (3 x 4 L d per token and position): 10 x 20 tokens here.
    assert _step_flops(1000, 10, 20, (2, 8)) == 4 * 1000 * 200 + 12 * 2 * 8 * 20 * 200


def test_a_typo_fails_before_anything_runs():
    with pytest.raises(HarnessError, match="unknown method 'lorra'"):
        run_scaling({"method": ["lorra"]}, progress=lambda *_: None)


def test_bench_scaling_writes_its_report(tmp_path):
    code = ("from harness.scaling import run_scaling, write_scaling_report\n"
            f"r = run_scaling({{'seq_len': [16, 32], 'method': ['lora', 'full']}}, steps=1, "
            f"base={{'model': 'tiny-bert', 'seq_len': 16, 'batch_size': 4}}, progress=lambda *_: None)\n"
            f"write_scaling_report(r, {str(tmp_path)!r}, 'cmd')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "scaling.json").read_text())
    rows = report["rows"]
    assert [(r["axis"], r.get(r["axis"])) for r in rows] == \
        [("seq_len", 16), ("seq_len", 32), ("method", "lora"), ("method", "full")]
    assert rows[0] == {**rows[2], "axis": "seq_len"}  # the base point, measured once, serves both axes
    assert all(r["step_s"] > 0 and r["peak_mb"] > 0 for r in rows)
    assert rows[3]["trainable"] > 10 * rows[2]["trainable"]  # full FT trains every weight
    assert set(report["fits"]) == {"seq_len"} and report["fits"]["seq_len"]["time"] is not None
    predictions = report["paper_predictions"]
    assert [p["model"] for p in predictions] == ["roberta-large", "gpt2-medium"]
    assert all(p["label"] == "prediction (not measured)" and p["predicted_cpu_step_s"] > 0 for p in predictions)
    text = (tmp_path / "README.md").read_text()
    assert "predictions, not measurements" in text and "`cmd`" in text and (tmp_path / "scaling.png").is_file()
