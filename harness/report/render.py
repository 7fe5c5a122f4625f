"""Rendering rows of results as text, Markdown, LaTeX, CSV or HTML (one writer for every table), and
exporting a table or the runs' frame as data (CSV, JSON, Parquet) through pandas."""

from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError

FORMATS = ("text", "markdown", "latex", "csv", "html")
DATA_FORMATS = ("csv", "json", "parquet")  # `harness table`: the table (or --per-run frame) as data


def _latex_escape(value: str) -> str:
    for char, escaped in [("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                          ("$", r"\$"), ("~", r"\textasciitilde{}"), ("†", r"$^\dagger$"), ("✓", r"\checkmark{}")]:
        value = value.replace(char, escaped)
    return value


def render(rows: list[dict], columns: list[str], fmt: str = "text") -> str:
    cells = [[str(row.get(column, "")) for column in columns] for row in rows]
    if fmt == "csv":
        import pandas as pd

        return pd.DataFrame(cells, columns=columns).to_csv(index=False)
    if fmt == "markdown":
        escape = lambda text: text.replace("|", "\\|")  # noqa: E731
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in cells]
        return "\n".join(lines) + "\n"
    if fmt == "html":
        from html import escape as html_escape

        head = "".join(f"<th>{html_escape(c)}</th>" for c in columns)
        body = "\n".join("<tr>" + "".join(f"<td>{html_escape(c)}</td>" for c in row) + "</tr>" for row in cells)
        return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n"
    if fmt == "latex":
        lines = [r"\begin{tabular}{" + "l" * len(columns) + "}", r"\toprule",
                 " & ".join(_latex_escape(c) for c in columns) + r" \\", r"\midrule"]
        lines += [" & ".join(_latex_escape(c) for c in row) + r" \\" for row in cells]
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines) + "\n"
    widths = [max(len(column), *(len(row[i]) for row in cells)) for i, column in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines) + "\n"


def _typed_for_parquet(frame):
    """Parquet wants one type per column: a column mixing types (False and a path in optim.init_from,
    a number and 'n/a') is written as text, None kept as null."""
    frame = frame.copy()
    for column in frame.columns[frame.dtypes == object]:
        kinds = {type(v) for v in frame[column] if v is not None and v == v}
        if len(kinds) > 1:
            frame[column] = [None if v is None or v != v else str(v) for v in frame[column]]
    return frame


def export(frame, fmt: str, out: str | None) -> None:
    """Write a DataFrame as CSV, JSON (one object per row) or Parquet to ``out``; CSV and JSON go to
    stdout without ``out``. Parquet is binary and needs a file."""
    if fmt == "parquet":
        if not out:
            raise HarnessError("--format parquet writes a binary file: give --out FILE.parquet.")
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        _typed_for_parquet(frame).to_parquet(out, index=False)
        print(f"wrote {out} ({len(frame)} rows, {len(frame.columns)} columns)")
        return
    text = frame.to_csv(index=False) if fmt == "csv" else frame.to_json(orient="records", indent=1) + "\n"
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
    print(text, end="")
