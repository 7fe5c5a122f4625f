"""`harness plot pareto`: the front respects each column's direction; the command plots committed runs."""

import subprocess
import sys
from pathlib import Path

from harness.report.pareto import front

ROOT = Path(__file__).resolve().parents[1]


def test_front_keeps_points_no_other_beats_in_each_columns_direction():
    points = [(1, 0.70), (2, 0.80), (3, 0.75), (4, 0.90), (2, 0.60)]
    # fewer parameters (lower x) and a higher score are better
    assert front(points, x_lower=True, y_lower=False) == [(1, 0.70), (2, 0.80), (4, 0.90)]
    # more samples/s (higher x) and less memory (lower y) are better
    assert front([(100, 900), (200, 1000), (150, 800), (50, 700)], x_lower=False, y_lower=True) == \
        [(50, 700), (150, 800), (200, 1000)]


def test_pareto_plot_of_committed_runs(tmp_path):
    done = subprocess.run([sys.executable, "-m", "harness", "plot", "pareto", "--runs",
                           str(ROOT / "results/cpu-mini/glue_minilm/runs"), "--x", "peak_memory_mb", "--y", "score",
                           "--out-dir", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "pareto_peak_memory_mb_vs_score.png").stat().st_size > 10_000
    assert "<svg" in (tmp_path / "pareto_peak_memory_mb_vs_score.svg").read_text()[:500]
