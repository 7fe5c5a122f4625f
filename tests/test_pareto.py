"""`harness plot pareto`: the front respects each column's direction; the command plots committed runs."""

from harness.report.pareto import front

from conftest import ROOT, harness_cli


def test_front_keeps_points_no_other_beats_in_each_columns_direction():
    points = [(1, 0.70), (2, 0.80), (3, 0.75), (4, 0.90), (2, 0.60)]
    # fewer parameters (lower x) and a higher score are better
    assert front(points, x_lower=True, y_lower=False) == [(1, 0.70), (2, 0.80), (4, 0.90)]
    # more samples/s (higher x) and less memory (lower y) are better
    assert front([(100, 900), (200, 1000), (150, 800), (50, 700)], x_lower=False, y_lower=True) == \
        [(50, 700), (150, 800), (200, 1000)]


def test_pareto_plot_of_committed_runs(tmp_path):
    done = harness_cli("plot", "pareto", "--runs", ROOT / "results/cpu-mini/glue_minilm/runs", "--x", "peak_memory_mb",
                       "--y", "score", "--out-dir", tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "pareto_peak_memory_mb_vs_score.png").stat().st_size > 10_000
    assert "<svg" in (tmp_path / "pareto_peak_memory_mb_vs_score.svg").read_text()[:500]


def test_a_figure_saved_twice_gives_the_same_svg_bytes(tmp_path):
    """Committed plots change only when their data does: no random ids, no date in the SVG."""
    from harness.report.plots import _pyplot, _save

    plt = _pyplot()
    saved = []
    for name in ("first", "second"):
        fig, ax = plt.subplots()
        ax.errorbar([1, 10], [0.5, 0.7], yerr=[0.1, 0.05], fmt="o")
        ax.set_title("score vs params")
        png, svg = _save(fig, tmp_path / name, "figure")
        saved.append(svg.read_bytes())
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert saved[0] == saved[1] and b"<dc:date>" not in saved[0]
