"""Rendering rows of results as text, Markdown, LaTeX, CSV or HTML (one writer for every table)."""

from __future__ import annotations

import csv
import io

FORMATS = ("text", "markdown", "latex", "csv", "html")


def _latex_escape(value: str) -> str:
    for char, escaped in [("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                          ("$", r"\$"), ("~", r"\textasciitilde{}"), ("†", r"$^\dagger$"), ("✓", r"\checkmark{}")]:
        value = value.replace(char, escaped)
    return value


def render(rows: list[dict], columns: list[str], fmt: str = "text") -> str:
    cells = [[str(row.get(column, "")) for column in columns] for row in rows]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(cells)
        return buffer.getvalue()
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
