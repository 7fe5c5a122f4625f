"""Suites and the leaderboard: a tiny suite run end to end (search on held-out data, seeds, a plugin
added by one command), the board's statistics, its files, and its HTML page read back in a browser."""

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from conftest import sentiment_rows, write_csv
from harness.cli import main
from harness.errors import HarnessError
from harness.report.leaderboard import _task_cell, board_data, write_leaderboard
from harness.suite import load_suite, run_suite

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "examples" / "plugins" / "lora_fa.py"


def suite_file(folder: Path, train: Path, dev: Path, extra_methods: str = "") -> Path:
    path = folder / "tiny.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: tiny
        version: 1
        description: a tiny suite for tests
        seeds: [0, 1, 2]
        reference: lora
        floor: full
        defaults: {{model: tiny-bert, epochs: 2, tracking_uri: none, save_weights: true, batch_size: 16}}
        tasks:
          senti: {{task: csv, model: tiny-bert, train_file: {train}, eval_file: {dev}}}
        search:
          task: {{tiny-bert: senti}}
          factors: [0.5, 2]
          extend: 0
          heldout_samples: 100
        methods:
          lora: {{method: lora, method_options: {{r: 4}}, learning_rate: 1.0e-2}}
          full: {{method: full, learning_rate: 1.0e-3}}
          nothing: {{method: "peft:PREFIX_TUNING", method_options: {{num_virtual_tokens: 2}}}}
          lora_r2: {{method: lora, method_options: {{r: 2}}, rate_from: lora, note: "half of lora's rank",
                    override: {{why: "smaller batches for the smaller rank", batch_size: 8}}}}
          later: {{method: bitfit, learning_rate: 1.0e-3}}
        {extra_methods}"""), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """One tiny suite run shared by the tests below: lora (the reference), full, a method that cannot
    run, then a plugin added by one `harness suite run` command, which also writes the board."""
    folder = tmp_path_factory.mktemp("suite")
    train = write_csv(folder / "train.csv", sentiment_rows(400, 0))
    dev = write_csv(folder / "dev.csv", sentiment_rows(120, 1))
    path = suite_file(folder, train, dev)
    suite, out = load_suite(str(path)), folder / "results"
    summary = run_suite(suite, ["lora", "full", "nothing", "lora_r2"], out, launcher="inline",
                        progress=lambda *_: None)
    plugin = folder / "lora_fa.py"
    shutil.copy(PLUGIN, plugin)
    code = main(["suite", "run", str(path), "--method", f"{plugin}:LORA_FA", "--launcher", "inline",
                 "--output-dir", str(out), "--no-inference", "--report", "--out", str(folder / "board")])
    return {"suite": suite, "out": out, "summary": summary, "cli_code": code, "board_dir": folder / "board",
            "folder": folder}


def test_suite_file_errors_name_the_problem(tmp_path):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(50, 0))
    path = suite_file(tmp_path, train, train)
    text = path.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("full: {method: full, learning_rate: 1.0e-3}",
                                "full: {method: full, override: {batch_size: 8}}"))
    with pytest.raises(HarnessError, match="overrides batch_size without a 'why'"):
        load_suite(str(bad))
    bad.write_text(text.replace("reference: lora", "reference: dora"))
    with pytest.raises(HarnessError, match="reference 'dora' is not one of the methods"):
        load_suite(str(bad))
    bad.write_text(text.replace("floor: full", "floor: head"))
    with pytest.raises(HarnessError, match="floor 'head' is not one of the methods"):
        load_suite(str(bad))
    bad.write_text(text.replace("task: {tiny-bert: senti}", "task: {tiny-bert: nope}"))
    with pytest.raises(HarnessError, match="search.task has no task of this suite for model 'tiny-bert'"):
        load_suite(str(bad))
    with pytest.raises(HarnessError, match="suite 'nope' not found"):
        load_suite("nope")


def test_search_cells_hold_out_training_data_and_main_cells_use_the_chosen_rate(tmp_path):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(50, 0))
    tiny_suite = load_suite(str(suite_file(tmp_path, train, train)))
    entry = tiny_suite.entry("lora")
    search = tiny_suite.search_experiment(entry, "tiny-bert")
    assert [c.config.learning_rate for c in search.cells] == [5e-3, 2e-2]
    assert all(c.config.heldout_samples == 100 and c.config.seed == 0 for c in search.cells)
    main_cells = tiny_suite.experiment(entry, {"tiny-bert": 5e-3}).cells
    assert [(c.config.seed, c.config.learning_rate, c.config.heldout_samples) for c in main_cells] == \
        [(0, 5e-3, None), (1, 5e-3, None), (2, 5e-3, None)]
    assert tiny_suite.experiment(entry, {"tiny-bert": None}).cells == []  # no rate: nothing to run


def test_smoke_runs_every_task_on_a_few_examples_in_its_own_folder(tmp_path, capsys):
    from harness.grid.smoke import EVAL_SAMPLES, STEPS

    """`suite run --smoke`: one search candidate and one seed per task, budgets capped, in
    <name>-smoke-v1 (the real board's folder is never written); a method that cannot run still exits 1."""
    train = write_csv(tmp_path / "train.csv", sentiment_rows(120, 0))
    path = suite_file(tmp_path, train, train)
    out = tmp_path / "results"
    code = main(["suite", "run", str(path), "--method", "full", "--method", f"{PLUGIN}:LORA_FA", "--smoke",
                 "--launcher", "inline", "--output-dir", str(out), "--report", "--out", str(tmp_path / "board")])
    assert code == 0
    board = json.loads((tmp_path / "board" / "leaderboard.json").read_text())  # the smoke runs' board
    assert board["suite"] == "tiny-smoke-v1" and {"full", "lora", "lora_fa"} <= {r["entry"] for r in board["rows"]}
    assert sorted(p.name for p in out.iterdir()) == ["tiny-smoke-v1"]  # not tiny-v1
    smoke = out / "tiny-smoke-v1"
    assert sorted(p.stem for p in (smoke / "entries").iterdir()) == ["full", "lora", "lora_fa"]  # a board: lora too
    record = json.loads((smoke / "entries" / "full.json").read_text())
    assert [c["learning_rate"] for c in record["search"]["tiny-bert"]["candidates"]] == [1e-3]  # the centre only
    assert len(record["cells"]) == 1 and record["inference"] == {}  # one task x one seed, no timing
    configs = sorted((smoke / "runs").glob("*/config.json"))
    assert len(configs) == 6  # each method: one search cell and one scored cell
    for found in configs:
        config = json.loads(found.read_text())
        # capped as `grid --smoke` caps a cell, on the suite's own (here tiny) model
        assert config["max_train_samples"] == STEPS * config["batch_size"] and config["epochs"] == 1
        assert config["max_eval_samples"] == EVAL_SAMPLES and config["model"] == "tiny-bert"
    alone = tmp_path / "alone"  # without --report no board, so no reference run either
    assert main(["suite", "run", str(path), "--method", "nothing", "--smoke", "--launcher", "inline",
                 "--output-dir", str(alone)]) == 1  # prefix tuning cannot run on BERT: shown, and a failing exit
    assert [p.stem for p in (alone / "tiny-smoke-v1" / "entries").iterdir()] == ["nothing"]
    assert "nothing: no cells ran" in capsys.readouterr().out
    shared = tmp_path / "shared.yaml"  # an entry made of another suite's runs would train that suite's cells
    shared.write_text(path.read_text().split("methods:\n")[0].replace("name: tiny", "name: shared")
                      .replace("reference: lora", "reference: lora_same").replace("floor: full\n", "")
                      + f'methods:\n  lora_same: {{same_as: "{path}:lora"}}\n', encoding="utf-8")
    assert main(["suite", "run", str(shared), "--method", "lora_same", "--smoke", "--output-dir", str(out)]) != 0
    assert "--smoke: 'lora_same' uses another suite's runs" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["tiny-smoke-v1"]


def test_tiny_suite_end_to_end_with_a_plugin_and_a_method_that_cannot_run(ran):
    summary, out, tiny_suite = ran["summary"], ran["out"], ran["suite"]
    assert summary["lora"]["cells"] == 3 and summary["lora"]["failed"] == 0
    assert summary["nothing"]["cells"] == 0  # peft prefix tuning needs a KV cache; BERT has none
    board = board_data(tiny_suite, out)
    rows = {r["entry"]: r for r in board["rows"]}
    assert set(rows) == {"lora", "full", "nothing", "lora_fa", "lora_r2"}
    lora = rows["lora"]
    # rate_from: lora_r2 trains at the rate lora's search chose, with no search of its own.
    assert rows["lora_r2"]["learning_rate"] == lora["learning_rate"]
    assert rows["lora_r2"]["search"]["tiny-bert"]["shared_from"] == "lora"
    assert not list((out / "tiny-v1" / "runs").glob("tiny-v1-lora_r2-search-*"))
    # The search: two candidates scored on the held-out slice, the better one chosen.
    search = lora["search"]["tiny-bert"]
    scores = {c["learning_rate"]: c["score"] for c in search["candidates"]}
    assert set(scores) == {5e-3, 2e-2} and search["chosen"] == max(scores, key=scores.get)
    held = json.loads((out / "tiny-v1" / "runs" / search["candidates"][0]["run"] / "metrics.json").read_text())
    assert held["eval_examples"] == {"": 100} and held["train_examples"] == 300
    cell = lora["tasks"]["senti"]
    assert cell["status"] == "ok" and sorted(cell["seeds"]) == [0, 1, 2] and cell["verdict"] == "reference"
    assert cell["lo"] < cell["value"] < cell["hi"]
    full = rows["full"]["tasks"]["senti"]
    assert full["verdict"] in ("better", "equivalent", "inconclusive", "worse") and "delta" in full
    assert full["delta"] == pytest.approx(full["value"] - cell["value"])
    # The floor (here full): every other entry is also judged against it, the floor itself is not.
    assert "floor" not in full and board["floor"] == "full"
    assert cell["floor"]["verdict"] in ("better", "equivalent", "inconclusive", "worse")
    assert cell["floor"]["delta"] == pytest.approx(cell["value"] - full["value"])
    assert cell["floor"]["delta_lo"] <= cell["floor"]["delta"] <= cell["floor"]["delta_hi"]
    nothing = rows["nothing"]["tasks"]["senti"]
    assert nothing["status"] == "cannot run" and "past key values" in nothing["reason"]
    assert rows["lora"]["efficiency"]["tiny-bert"]["weights_bytes"] > 0
    assert rows["full"]["efficiency"]["tiny-bert"]["trainable"] > rows["lora"]["efficiency"]["tiny-bert"]["trainable"]
    assert rows["lora"]["inference"]["tiny-bert"]["merged"] is True
    # Files: JSON, Markdown with the reason and the search, the page, the plots.
    written = write_leaderboard(tiny_suite, out, ran["folder"] / "board2")
    names = {p.name for p in written}
    assert {"leaderboard.json", "README.md", "index.html", "pareto_trainable.png", "pareto_trainable.svg"} <= names
    text = (ran["folder"] / "board2" / "README.md").read_text()
    assert "| nothing | csv (tiny-bert) | cannot run |" in text and "## Learning-rate search" in text
    assert "## Against the floor" in text and "against the suite's floor **full**" in text
    assert "## What the board says" in text and 'id="findings"' in (ran["folder"] / "board2" / "index.html").read_text()
    assert ("| lora_r2 | overrides batch_size=8 (smaller batches for the smaller rank); half of lora's rank |"
            in text)
    # A listed method that has not run is named, with the command that adds it.
    assert board["pending"] == ["later"] and "later" not in rows
    assert "1 of the suite's 5 listed methods have not run yet: later." in text
    assert "harness suite run tiny --method NAME" in text
    # Rerunning runs nothing new: every cell is finished.
    again = run_suite(tiny_suite, ["lora"], out, launcher="inline", progress=lambda *_: None)
    assert again["lora"]["failed"] == 0


def test_a_plugin_joins_the_board_with_one_command(ran):
    assert ran["cli_code"] == 0
    board = json.loads((ran["board_dir"] / "leaderboard.json").read_text())
    rows = {r["entry"]: r for r in board["rows"]}
    assert rows["lora_fa"]["listed"] is False  # not in the suite file: added from the command line
    assert rows["lora_fa"]["tasks"]["senti"]["verdict"] in ("better", "equivalent", "inconclusive", "worse")
    assert rows["lora_fa"]["learning_rate"]["tiny-bert"] is not None


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no headless chromium (apt-get install chromium)")
def test_leaderboard_page_renders_in_a_real_browser(ran, tmp_path):
    from harness.report.board_html import read_table, take_screenshot

    page = ran["board_dir"] / "index.html"
    board = json.loads((ran["board_dir"] / "leaderboard.json").read_text())
    rows = read_table(page)
    assert [r["method"] for r in rows] == [r["entry"] for r in board["rows"]]  # average, best first
    lora = next(r for r in rows if r["method"] == "lora")
    value = board["rows"][[r["entry"] for r in board["rows"]].index("lora")]["tasks"]["senti"]
    assert lora["csv (tiny-bert)"].startswith(f"{value['value'] * value['scale']:.{value['decimals']}f} [")
    assert next(r for r in rows if r["method"] == "nothing")["csv (tiny-bert)"] == "cannot run"
    # An entry's declared override and note: its name's hover text, and a list below the table.
    declares = "overrides batch_size=8 (smaller batches for the smaller rank); half of lora's rank"
    assert next(r for r in rows if r["method"] == "lora_r2")["method title"] == declares
    assert "method title" not in lora and "declares" in page.read_text()
    by_name = read_table(page, "sort=entry&desc=0")
    assert [r["method"] for r in by_name] == sorted(r["method"] for r in rows)
    shot = take_screenshot(page, tmp_path / "shot.png", 900, 600)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_committed_suites_load_and_name_every_installed_peft_tuner():
    from harness.methods import get_method
    from harness.methods.peft_any import peft_types

    quick = load_suite(str(ROOT / "experiments" / "suites" / "cpu-quick.yaml"))
    for entry in quick.methods.values():
        get_method(entry.method)  # every entry names a method this harness knows
    named = {e.method.removeprefix("peft:") for e in quick.methods.values() if e.method.startswith("peft:")}
    assert set(peft_types()) <= named  # the board covers whatever the installed peft offers
    paper = load_suite(str(ROOT / "experiments" / "suites" / "paper-gpu.yaml"))
    assert set(paper.methods) == set(quick.methods) and paper.reference == "lora"
    assert paper.methods["lora"].options_for("gpt2-medium")["fused_qv"] is True
    assert [t["model"] for t in paper.tasks.values()] == ["roberta-base"] * 3 + ["gpt2-medium"]


@pytest.mark.parametrize("path", sorted((ROOT / "experiments" / "suites").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_committed_suite_loads_and_its_cells_resolve(path):
    from harness.training.runner import resolve

    suite = load_suite(str(path))
    for entry in suite.methods.values():
        cells = suite.experiment(entry, {key: 1e-3 for key in suite.search_units()}).cells
        assert len(cells) == len(entry.tasks or suite.tasks) * len(suite.seeds)
        resolve(cells[0].config)  # task, model preset and method exist; options are the method's


def test_the_average_verdict_uses_each_cell_metric_margin():
    """The margin comes from the spec the cell was scored with (sacrebleu BLEU: 0.5 BLEU), not from a
    lookup by name that falls back to another spec's margin."""
    from types import SimpleNamespace

    from harness.metrics.nlg import sacrebleu_spec
    from harness.report.leaderboard import _average

    spec = sacrebleu_spec("bleu")
    cell = {"status": "ok", "value": 50.0, "se": 1.0, "df": 10.0, "scale": spec.scale, "metric": spec.name,
            "margin": spec.margin, "higher_is_better": True, "delta": 0.0, "delta_se": 0.05, "delta_df": 50.0}
    row = {"entry": "candidate", "tasks": {"e2e": dict(cell), "e2e_again": dict(cell)}}
    _average(row, SimpleNamespace(tasks={"e2e": {}, "e2e_again": {}}), "lora")
    assert row["average"]["margin"] == pytest.approx(0.5) and row["average"]["verdict"] == "equivalent"


def test_an_entry_same_as_another_suites_reuses_its_runs_and_refuses_different_cells(ran):
    """Table 6 shares Table 5's Wq r=8 runs: a same_as entry trains nothing, its board cell is the other
    suite's runs, a rate_from on it uses the other suite's search; a suite whose cells would differ
    (here one epoch instead of two) is refused instead of pooling different settings."""
    folder, out = ran["folder"], ran["out"]
    tiny = folder / "tiny.yaml"
    text = tiny.read_text().split("methods:\n")[0].replace("name: tiny", "name: tiny6").replace("floor: full\n", "")
    shared = folder / "tiny6.yaml"
    shared.write_text(text.replace("reference: lora", "reference: lora_same") + textwrap.dedent(f"""\
        methods:
          lora_same: {{same_as: "{tiny}:lora"}}
          lora_r1: {{method: lora, method_options: {{r: 1}}, rate_from: lora_same}}
        """), encoding="utf-8")
    suite6 = load_suite(str(shared))
    assert suite6.methods["lora_same"].method_options == {"r": 4}
    summary = run_suite(suite6, ["lora_same", "lora_r1"], out, launcher="inline", progress=lambda *_: None)
    assert summary["lora_r1"]["failed"] == 0
    runs6 = {p.name for p in (out / "tiny6-v1" / "runs").iterdir()}
    assert not any("lora_same" in name or "search" in name for name in runs6)  # nothing trained twice
    board6 = {r["entry"]: r for r in board_data(suite6, out)["rows"]}
    board = {r["entry"]: r for r in board_data(ran["suite"], out)["rows"]}
    assert board6["lora_same"]["tasks"]["senti"]["value"] == board["lora"]["tasks"]["senti"]["value"]
    assert sorted(board6["lora_same"]["tasks"]["senti"]["seeds"]) == [0, 1, 2]
    assert board6["lora_r1"]["learning_rate"] == board["lora"]["learning_rate"]
    assert board6["lora_r1"]["tasks"]["senti"]["status"] == "ok"
    differing = folder / "tiny7.yaml"
    differing.write_text(shared.read_text().replace("name: tiny6", "name: tiny7").replace("epochs: 2", "epochs: 1"))
    with pytest.raises(HarnessError, match="make different cells; the runs are not the same setting"):
        run_suite(load_suite(str(differing)), ["lora_same"], out, launcher="inline", progress=lambda *_: None)
    selfish = folder / "tiny8.yaml"
    selfish.write_text(shared.read_text().replace(f"{tiny}:lora", f"{selfish}:lora_r1"))
    with pytest.raises(HarnessError, match="same_as an entry of its own suite"):
        load_suite(str(selfish))


def test_per_task_search_and_heldout_epoch_selection(tmp_path):
    """search.per_task: every task gets its own held-out search and rate (the paper tunes per task);
    cells that select their epoch on a held-out slice still search with the slice replacing the dev set."""
    train = write_csv(tmp_path / "train.csv", sentiment_rows(240, 0))
    dev = write_csv(tmp_path / "dev.csv", sentiment_rows(60, 1))
    path = tmp_path / "pertask.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: pertask
        version: 1
        seeds: [0, 1]
        reference: lora
        defaults: {{model: tiny-bert, epochs: 2, tracking_uri: none, save_weights: false, batch_size: 16,
                    heldout_samples: 40, select_on: heldout, patience: 2}}
        tasks:
          a: {{task: csv, model: tiny-bert, train_file: {train}, eval_file: {dev}}}
          b: {{task: csv, model: tiny-bert, train_file: {train}, eval_file: {dev}, max_train_samples: 120}}
        search: {{per_task: true, factors: [0.5, 2], extend: 0, heldout_samples: 50}}
        methods:
          lora: {{method: lora, method_options: {{r: 2}}, learning_rate: 1.0e-2}}
          only_b: {{method: lora, method_options: {{r: 2}}, rate_from: lora, tasks: [b]}}
        """), encoding="utf-8")
    suite = load_suite(str(path))
    assert suite.search_units() == {"a": "a", "b": "b"} and suite.rate_key("b") == "b"
    search = suite.search_experiment(suite.entry("lora"), "b")
    assert all(c.config.select_on == "dev" and c.config.heldout_samples == 50 and c.config.max_train_samples == 120
               for c in search.cells)
    out = tmp_path / "results"
    lines = []
    summary = run_suite(suite, ["lora"], out, launcher="inline", progress=lines.append, measure_inference=False)
    assert summary["lora"]["failed"] == 0 and set(summary["lora"]["learning_rate"]) == {"a", "b"}
    # Both tasks' searches run as one round (their 4 cells share the workers), then the 4 main cells.
    counted = [line.split()[0] for line in lines if line.startswith("  [")]
    assert counted == ["[1/4", "[2/4", "[3/4", "[4/4"] * 2
    record = json.loads((out / "pertask-v1" / "entries" / "lora.json").read_text())
    assert set(record["search"]) == {"a", "b"} and record["search"]["b"]["task"] == "b"
    runs = [json.loads(p.read_text()) for p in (out / "pertask-v1" / "runs").glob("pertask-v1-lora-[0-9a-f]*/metrics.json")]
    assert len(runs) == 4 and all(r["selected_on"] == "accuracy_heldout" for r in runs)
    rates = record["learning_rate"]
    by_size = {r["train_examples"]: r["learning_rate"] for r in runs}  # task b trains on 120 examples
    assert by_size == {200: rates["a"], 120: rates["b"]}
    # An entry on some of the tasks (the paper's MNLI start is for three of them): cells on its tasks
    # only, at the rate its rate_from entry chose there; the board says where it does not run.
    run_suite(suite, ["only_b"], out, launcher="inline", progress=lambda *_: None, measure_inference=False)
    only = json.loads((out / "pertask-v1" / "entries" / "only_b.json").read_text())
    assert only["tasks"] == ["b"] and list(only["search"]) == ["b"] and len(only["cells"]) == 2
    cell, side = _task_cell(suite, "a", only, [])
    assert cell["status"] == "not in entry" and "runs on b only" in cell["reason"] and side is None


def test_an_entry_on_tasks_the_suite_lacks_is_refused(tmp_path):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(40, 0))
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: bad
        version: 1
        seeds: [0]
        reference: lora
        tasks:
          a: {{task: csv, model: tiny-bert, train_file: {train}, eval_file: {train}}}
        search: {{per_task: true}}
        methods:
          lora: {{method: lora, tasks: [a, rte]}}
        """), encoding="utf-8")
    with pytest.raises(HarnessError, match="lists tasks rte, which are not tasks of this suite"):
        load_suite(str(path))


def test_the_boards_findings_put_every_entry_in_one_group_with_its_intervals():
    """Better on any task wins the entry's group (its worse tasks are still listed); an unadjusted interval
    that excludes 0 is flagged only when Holm leaves the task inconclusive; no shared task: no verdict."""
    from harness.report.leaderboard import findings

    def cell(verdict=None, delta=0.0, lo=-1.0, hi=1.0, p=0.5):
        base = {"status": "ok", "scale": 100.0, "decimals": 1}
        return base if verdict is None else {**base, "verdict": verdict, "delta": delta, "delta_lo": lo,
                                              "delta_hi": hi, "p_holm": p}

    def row(name, trainable, a, b, avg=None):
        return {"entry": name, "efficiency": {"m": {"trainable": trainable}}, "tasks": {"a": a, "b": b},
                "average": avg}

    average = {"delta": -1.5, "delta_lo": -4.0, "delta_hi": 1.0, "verdict": "inconclusive"}
    board = {"reference": "lora", "alpha": 0.05, "models": ["m"],
             "tasks": [{"name": "a", "label": "SST-2"}, {"name": "b", "label": "STS-B"}],
             "rows": [row("lora", 1000, cell("reference"), cell("reference")),
                      row("mixed", 1000, cell("better", 0.02, 0.006, 0.033, 0.028),
                          cell("worse", -0.04, -0.056, -0.024, 0.003), average),
                      row("weaker", 100, cell("inconclusive"), cell("worse", -0.2, -0.3, -0.1, 0.001)),
                      row("hinted", 20000, cell("inconclusive", 0.028, 0.008, 0.047, 0.051), cell("inconclusive")),
                      row("elsewhere", 500, {"status": "cannot run"}, {"status": "cannot run"})]}
    text = "\n".join(findings(board))
    better = text.split("**Better than lora on at least one task** (1):")[1].split("**Worse")[0]
    assert ("- **mixed** (1.0k on m, 1.00x lora's): better on SST-2 +2.0 [+0.6, +3.3] (Holm p 0.028); "
            "worse on STS-B -4.0 [-5.6, -2.4] (Holm p 0.003); average -1.5 [-4.0, +1.0] inconclusive") in better
    worse = text.split("**Worse on at least one task, better on none** (1):")[1].split("**Equivalent")[0]
    assert "**weaker** (100 on m, 0.10x lora's): worse on STS-B -20.0" in worse and "mixed" not in worse
    assert "no average (not every task ran)" in worse
    assert "**Equivalent on some task (within the metric's margin), otherwise inconclusive** (0):\n\n- none" in text
    quiet = text.split("**Inconclusive on every task** (1):")[1]
    assert "**hinted** (20.0k on m, 20x lora's): excluding 0 before Holm only: SST-2 +2.8 [+0.8, +4.7]" in quiet
    assert "**No verdict** (ran on no task both it and the reference ran): elsewhere." in text
    assert "On average over the tasks: better 0; equivalent 0; inconclusive 1; worse 0." in text
    # The page shows the same words: items as a list, bold as bold, the heading left to the page's summary.
    from harness.report.board_html import summary_html

    html = summary_html(findings(board))
    assert "<li><b>mixed</b> (1.0k on m, 1.00x lora&#x27;s): better on SST-2" in html
    assert html.count("<ul>") == 4 and "##" not in html and "<p><b>No verdict</b>" in html


def test_the_floor_findings_name_each_entry_that_does_not_beat_it_on_some_task():
    """Against the floor: per task, how many entries beat it (the smaller group named); an entry beating it
    nowhere is listed with its intervals; the floor itself and entries it never met are left out."""
    from harness.report.board_html import summary_html
    from harness.report.leaderboard import findings

    def cell(floor_verdict=None, delta=0.1, lo=0.05, hi=0.15):
        base = {"status": "ok", "scale": 100.0, "decimals": 1, "verdict": "inconclusive", "delta": 0.0,
                "delta_lo": -0.01, "delta_hi": 0.01, "p_holm": 0.9}
        return base if floor_verdict is None else {**base, "floor": {"verdict": floor_verdict, "delta": delta,
                                                                      "delta_lo": lo, "delta_hi": hi, "p_holm": 0.01}}

    def row(name, a, b):
        return {"entry": name, "efficiency": {}, "tasks": {"a": a, "b": b}, "average": None}

    board = {"reference": "lora", "floor": "head", "alpha": 0.05, "models": ["m"],
             "tasks": [{"name": "a", "label": "SST-2"}, {"name": "b", "label": "E2E"}],
             "rows": [row("lora", {**cell("better"), "verdict": "reference"}, {**cell(), "verdict": "reference"}),
                      row("head", cell(), {"status": "cannot run"}),
                      row("flat", cell("inconclusive", 0.003, -0.02, 0.026), cell()),
                      row("strong", cell("better"), cell()),
                      row("unmet", {"status": "cannot run"}, cell())]}
    lines = findings(board)
    text = "\n".join(lines)
    part = text.split("## Against the floor")[1]
    assert "Entries better than head, per task: SST-2 2 of 3 (all but flat)." in part  # E2E: no entry met it
    assert "**Better than head on no task** (1):\n\n- **flat**: SST-2 +0.3 [-2.0, +2.6] inconclusive" in part
    assert "**Better than head on every task both ran** (2): lora, strong." in part
    assert "unmet" not in part
    assert "<h3>Against the floor</h3>" in summary_html(lines)
    board["rows"] = [r for r in board["rows"] if r["entry"] != "head"]
    assert "The floor **head** has not run yet" in "\n".join(findings(board))
    assert "Against the floor" not in "\n".join(findings({**board, "floor": None}))


def test_the_readme_counts_the_committed_boards_entries():
    """The README's digest of the board names how many entries ran: it must follow the committed board."""
    root = Path(__file__).resolve().parents[1]
    board = json.loads((root / "reports" / "leaderboard" / "cpu-quick-v1" / "leaderboard.json").read_text())
    listed = board["listed_methods"]
    ran = listed - len(board["pending"])
    said = f"all {listed} of the suite's entries have run" if ran == listed else \
        f"{ran} of the suite's {listed} entries have run"
    assert said in (root / "README.md").read_text()
