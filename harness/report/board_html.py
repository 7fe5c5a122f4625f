"""The leaderboard as one self-contained HTML page (no server, no network: data, script, styles and
plots inline), and a headless browser to check it: a screenshot, and the table read back from the
page as the browser rendered it.

The table is built by the page's script from the embedded board JSON, so reading it back through a
real browser checks the script too. ``#sort=KEY&desc=1&task=NAME`` in the address sets the initial
order and task filter (what the tests use); clicking a header sorts, the task menu filters.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

from harness.errors import HarnessError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 6px}
p.desc{max-width:1100px;color:#444}
table{border-collapse:collapse;font-size:12.5px;margin:12px 0}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#f3f3f3;cursor:pointer;position:sticky;top:0}
th.sorted::after{content:" \\25BE"} th.sorted.asc::after{content:" \\25B4"}
td.name,th.name{text-align:left} td.declares::after{content:" \\2020"}
td.better{background:#dff5df} td.worse{background:#fbe0e0} td.equivalent{background:#eef3fb}
td.reference{background:#f6f1dc} td.missing,td.cannot{color:#999;font-style:italic}
.controls{margin:10px 0} .controls label{margin-right:14px}
img{max-width:100%;border:1px solid #eee;margin:6px 0}
details{margin:10px 0} .legend span{margin-right:14px}
"""

SCRIPT = r"""
const marks = {better: "\u25B2", equivalent: "\u2248", inconclusive: "?", worse: "\u25BC", reference: "ref"};
const models = BOARD.models, tasks = BOARD.tasks;
function fmt(v, d) { return v === null || v === undefined ? "-" : v.toFixed(d); }
function count(n) { return n == null ? "-" : n >= 1e6 ? (n / 1e6).toFixed(2) + "M" : n >= 1e3 ? (n / 1e3).toFixed(1) + "k" : String(n); }
function size(b) { return b == null ? "-" : b >= 1048576 ? (b / 1048576).toFixed(1) + " MB" : (b / 1024).toFixed(0) + " KB"; }
function columns(task) {
  const cols = [{key: "entry", label: "method", cls: "name", get: r => r.entry,
    show: r => r.entry, title: r => r.declares || ""}];
  for (const m of models) cols.push({key: "trainable:" + m, label: "trainable (" + m + ")",
    get: r => (r.efficiency[m] || {}).trainable ?? null, show: r => count((r.efficiency[m] || {}).trainable)});
  for (const t of tasks) {
    if (task && t.name !== task) continue;
    cols.push({key: "task:" + t.name, label: t.label + " (" + t.model + ")", task: t.name,
      get: r => r.tasks[t.name].status === "ok" ? r.tasks[t.name].value * r.tasks[t.name].scale : null,
      show: r => { const c = r.tasks[t.name]; if (c.status !== "ok") return c.status;
        const d = c.decimals; return fmt(c.value * c.scale, d) + " [" + fmt(c.lo * c.scale, d) + ", " +
          fmt(c.hi * c.scale, d) + "] " + (marks[c.verdict] || ""); }});
  }
  if (!task) {
    cols.push({key: "average", label: "average", get: r => r.average ? r.average.value : null,
      show: r => r.average ? fmt(r.average.value, 1) + " [" + fmt(r.average.lo, 1) + ", " + fmt(r.average.hi, 1) + "]" : "-"});
    cols.push({key: "delta", label: "\u0394 avg vs " + BOARD.reference, get: r => r.average && r.average.delta != null ? r.average.delta : null,
      show: r => r.average && r.average.delta != null ? (r.average.delta >= 0 ? "+" : "") + fmt(r.average.delta, 1) + " " + marks[r.average.verdict] :
        (r.entry === BOARD.reference ? "ref" : "-")});
  }
  for (const m of models) {
    cols.push({key: "peak:" + m, label: "peak MB (" + m + ")", get: r => (r.efficiency[m] || {}).peak_memory_mb ?? null,
      show: r => fmt((r.efficiency[m] || {}).peak_memory_mb, 0)});
    cols.push({key: "time:" + m, label: "train s (" + m + ")", get: r => (r.efficiency[m] || {}).train_time_s ?? null,
      show: r => fmt((r.efficiency[m] || {}).train_time_s, 0)});
    cols.push({key: "weights:" + m, label: "weights (" + m + ")", get: r => (r.efficiency[m] || {}).weights_bytes ?? null,
      show: r => size((r.efficiency[m] || {}).weights_bytes)});
    cols.push({key: "inference:" + m, label: "inference (" + m + ")",
      get: r => { const i = (r.inference || {})[m]; return i && i.overhead_pct != null ? i.overhead_pct : null; },
      show: r => { const i = (r.inference || {})[m]; return !i ? "-" : i.error ? "n/a" :
        (i.overhead_pct >= 0 ? "+" : "") + i.overhead_pct.toFixed(0) + "%" + (i.merged ? " (merged)" : ""); }});
  }
  cols.push({key: "cells", label: "cells min", get: r => r.cell_time_s / 60, show: r => fmt(r.cell_time_s / 60, 0)});
  return cols;
}
const state = {sort: "average", desc: true, task: ""};
function render() {
  const cols = columns(state.task), table = document.getElementById("board");
  table.innerHTML = "";
  const head = table.createTHead().insertRow();
  for (const c of cols) {
    const th = document.createElement("th");
    th.textContent = c.label; th.dataset.key = c.key; if (c.cls) th.className = c.cls;
    if (c.key === state.sort) th.classList.add("sorted"), state.desc || th.classList.add("asc");
    th.onclick = () => { state.desc = state.sort === c.key ? !state.desc : c.key !== "entry"; state.sort = c.key; render(); };
    head.appendChild(th);
  }
  const col = cols.find(c => c.key === state.sort) || cols[0];
  const rows = BOARD.rows.slice().sort((a, b) => {
    const x = col.get(a), y = col.get(b);
    if (x === null && y === null) return a.entry < b.entry ? -1 : 1;
    if (x === null) return 1; if (y === null) return -1;
    const order = typeof x === "string" ? x.localeCompare(y) : x - y;
    return state.desc ? -order : order;
  });
  const body = table.createTBody();
  for (const r of rows) {
    const tr = body.insertRow(); tr.dataset.entry = r.entry;
    for (const c of cols) {
      const td = tr.insertCell(); td.textContent = c.show(r); td.dataset.key = c.key;
      if (c.cls) td.className = c.cls;
      if (c.title && c.title(r)) td.title = c.title(r), td.classList.add("declares");
      if (c.task) { const cell = r.tasks[c.task]; td.classList.add(cell.status === "ok" ? (cell.verdict || "") : cell.status.split(" ")[0]);
        td.title = cell.status === "ok" ? (cell.verdict_reason || "") : (cell.reason || ""); }
    }
  }
  document.getElementById("shown").textContent = rows.length + " methods";
}
function fromHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  if (p.get("task") !== null) state.task = p.get("task");
  if (p.get("sort")) state.sort = p.get("sort");
  if (p.get("desc") !== null) state.desc = p.get("desc") === "1";
  document.getElementById("task").value = state.task;
}
document.getElementById("task").onchange = e => { state.task = e.target.value; if (state.task) { state.sort = "task:" + state.task; state.desc = true; } render(); };
fromHash(); render();
"""


def summary_html(lines: list[str]) -> str:
    """The board's findings (Markdown lines: headings, paragraphs, '- ' items, **bold**) as HTML."""
    import re
    from html import escape

    out, items = [], []
    for line in lines:
        text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escape(line))
        if line.startswith("- "):
            items.append(f"<li>{text[2:]}</li>")
            continue
        if items:
            out.append("<ul>" + "".join(items) + "</ul>")
            items = []
        if line.startswith("#"):  # the first heading is the page's own; later ones head their part
            if out:
                out.append(f"<h3>{text.lstrip('# ')}</h3>")
        elif line.strip():
            out.append(f"<p>{text}</p>")
    return "".join(out + (["<ul>" + "".join(items) + "</ul>"] if items else []))


def page(board: dict, figures: list[Path], findings: list[str] = ()) -> str:
    """The page: the board's JSON, the table script, the task filter, what the board says and the
    figures inline."""
    def esc(text) -> str:
        from html import escape

        return escape(str(text))

    options = "".join(f'<option value="{esc(t["name"])}">{esc(t["label"])} ({esc(t["model"])})</option>'
                      for t in board["tasks"])
    images = "".join(f'<h3>{esc(p.stem.replace("_", " "))}</h3><img alt="{esc(p.stem)}" src="data:image/png;base64,'
                     f'{base64.b64encode(p.read_bytes()).decode()}">' for p in figures)
    notes = "".join(f"<li><b>{esc(r['entry'])}</b>: {esc(r['declares'])}</li>" for r in board["rows"] if r.get("declares"))
    declared = f'<details open id="declares"><summary>What an entry declares</summary><ul>{notes}</ul></details>' if notes else ""
    said = (f'<details open id="findings"><summary>What the board says</summary>{summary_html(list(findings))}'
            f'</details>' if findings else "")
    data = json.dumps(board, default=str).replace("</", "<\\/")  # no '</script>' inside the script
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Leaderboard {esc(board['suite'])}</title>
<style>{STYLE}</style></head><body>
<h1>PEFT leaderboard: {esc(board['suite'])}</h1>
<p class="desc">{esc(board['description'])}</p>
<p class="desc">Scores: mean over seeds {esc(', '.join(map(str, board['seeds'])))} with a 95% interval (seed and example
noise; cut at the metric's range, e.g. 0-100% accuracy).
Marks: the verdict against <b>{esc(board['reference'])}</b> from <code>harness check</code>'s statistics
(Holm over a method's tasks, alpha {board['alpha']}). Regenerate: <code>{esc(board['command'])}</code>.</p>
<p class="legend"><span>&#9650; better</span><span>&#8776; equivalent</span><span>? inconclusive</span>
<span>&#9660; worse</span><span>&dagger; the entry declares an override or a note (hover it; listed below)</span>
<span>hover a score for the reason</span></p>
<div class="controls"><label>Task <select id="task"><option value="">all tasks</option>{options}</select></label>
<span id="shown"></span> &middot; click a header to sort</div>
<noscript>This table is drawn by the page's script; leaderboard.json beside this page has the same data.</noscript>
<table id="board"></table>
{said}{declared}<details open><summary>Figures: score vs trainable parameters, memory and training time (95% intervals)</summary>{images}
</details>
<script>const BOARD = {data};
{SCRIPT}</script>
</body></html>
"""


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise HarnessError("no headless browser found (chromium); install one (Debian: apt-get install chromium) "
                       "to take the leaderboard's screenshot or read its page back.")


def _run_browser(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:  # a fresh profile: no state shared with other runs
        command = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                   "--no-first-run", f"--user-data-dir={profile}", *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise HarnessError(f"the browser failed ({' '.join(command[:2])}): {lines[-1] if lines else result.returncode}")
    return result


def take_screenshot(page_path: Path, out: Path, width: int = 1700, height: int = 1400) -> Path:
    _run_browser([f"--screenshot={out.resolve()}", f"--window-size={width},{height}",
                  page_path.resolve().as_uri()])
    if not out.is_file():
        raise HarnessError(f"the browser wrote no screenshot to {out}.")
    return out


class _TableReader(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self.titles: list[list[str]] = []  # each cell's hover text
        self._in_table = self._in_cell = False

    def handle_starttag(self, tag, attrs):
        if tag == "table" and dict(attrs).get("id") == "board":
            self._in_table = True
        elif self._in_table and tag == "tr":
            self.rows.append([])
            self.titles.append([])
        elif self._in_table and tag in ("td", "th"):
            self._in_cell = True
            self.rows[-1].append("")
            self.titles[-1].append(dict(attrs).get("title") or "")

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = False
        elif tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data):
        if self._in_table and self._in_cell:
            self.rows[-1][-1] += data


def read_table(page_path: Path, fragment: str = "") -> list[dict[str, str]]:
    """The board table as the browser rendered it (after the script ran): one dict per row, by header;
    a cell's hover text under 'HEADER title'."""
    uri = page_path.resolve().as_uri() + (f"#{fragment}" if fragment else "")
    dom = _run_browser(["--dump-dom", "--virtual-time-budget=5000", uri]).stdout
    reader = _TableReader()
    reader.feed(dom)
    if not reader.rows:
        raise HarnessError(f"{page_path}: the rendered page has no board table (did its script fail?).")
    header, *rows = reader.rows
    return [{**dict(zip(header, row)), **{f"{h} title": t for h, t in zip(header, titles) if t}}
            for row, titles in zip(rows, reader.titles[1:])]
