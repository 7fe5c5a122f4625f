"""Every parameter-count cell of the paper's Tables 2, 3, 13 and 14 beside the exact count."""

from __future__ import annotations

from harness.params import count_without_weights
from harness.report.reference import PARAM_CELLS


def rounded_like(exact: int, printed: str) -> str:
    """``exact`` in millions with as many decimals as the printed figure ('0.35M' -> 2)."""
    digits = printed.rstrip("M")
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    return f"{exact / 1e6:.{decimals}f}M"


def paper_param_table() -> list[dict]:
    """Every parameter-count cell of the paper's Tables 2, 3, 13 and 14: the exact count from the
    model config, rounded as the paper rounds, beside the printed figure, with why they differ."""
    cache: dict = {}
    rows = []
    for cell in PARAM_CELLS:
        key = (cell.model, cell.method, tuple(sorted(cell.options.items())), cell.causal_lm)
        if key not in cache:
            cache[key] = count_without_weights(cell.model, cell.method, cell.options, causal_lm=cell.causal_lm)
        counts = cache[key]
        ours = rounded_like(counts.trainable, cell.printed)
        setting = ", ".join(f"{k}={v}" for k, v in cell.options.items())
        rows.append({
            "table": cell.table, "model": cell.model, "method": f"{cell.label}{cell.marker}",
            "harness method": cell.method + (f" ({setting})" if setting else ""),
            "exact": f"{counts.trainable:,}", "ours": ours, "paper": cell.printed,
            "agrees": "yes" if ours == cell.printed else "NO",
            "note": cell.note.format(exact=f"{counts.trainable:,}", n=cell.options.get("tokens", "")),
            "head": f"{counts.head:,}",
        })
    return rows


PAPER_TABLE_COLUMNS = ["table", "model", "method", "harness method", "exact", "ours", "paper", "agrees", "note"]
