"""`harness suite`: run a versioned suite's methods (resumable) and write its leaderboard."""

from __future__ import annotations

from harness.errors import HarnessError


def cmd_suite_run(args) -> int:
    from harness.suite import load_suite, run_suite

    suite = load_suite(args.suite)
    if args.smoke:
        suite = suite.smoke()
    names = list(suite.methods) if args.all else list(args.method or [])
    if not names:
        raise HarnessError("name the methods to run: --method NAME (a suite entry or a plugin such as "
                           "examples/plugins/lora_fa.py:LORA_FA), repeatable, or --all.")
    shared = [n for n in names if args.smoke and n in suite.methods and suite.methods[n].same_as]
    if shared:  # its cells are another suite's: a smoke run here would train that suite's full cells
        raise HarnessError(f"--smoke: '{shared[0]}' uses another suite's runs (same_as "
                           f"{suite.methods[shared[0]].same_as}); smoke-test that suite instead.")
    # a smoke run needs the reference only for a board (its verdicts)
    if suite.reference not in names and not (args.all or args.no_reference or args.smoke and not args.report):
        names.insert(0, suite.reference)  # verdicts need the reference's runs (finished cells are skipped)
    summary = run_suite(suite, names, args.output_dir, 1 if args.launcher == "inline" else args.jobs, args.data_dir,
                        measure_inference=not (args.no_inference or args.smoke), launcher=args.launcher)
    failed = {name: s for name, s in summary.items() if s["failed"] or not s["cells"]}
    if args.report:  # with --smoke, the smoke runs' board, not the real one
        _write_board(suite, args)
    for name, s in failed.items():
        print(f"{name}: {s['failed']} of {s['cells']} cells did not finish" if s["cells"]
              else f"{name}: no cells ran (no learning rate found on any model)")
    return 1 if failed else 0


def cmd_suite_report(args) -> int:
    from harness.suite import load_suite

    return _write_board(load_suite(args.suite), args)


def _write_board(suite, args) -> int:
    from harness.report.leaderboard import write_leaderboard

    for path in write_leaderboard(suite, args.output_dir, args.out, screenshot=getattr(args, "screenshot", False)):
        print(path)
    return 0


def cmd_suite_show(args) -> int:
    from harness.report.render import render
    from harness.suite import load_suite, read_entry

    suite = load_suite(args.suite)
    output = suite.output_dir(args.output_dir)
    rows = []
    for name, entry in suite.methods.items():
        record = read_entry(output, name) or {}
        rows.append({"entry": name, "method": entry.method, "options": str(entry.method_options or ""),
                     "learning rate": ", ".join(f"{m}: {r}" for m, r in (record.get("learning_rate") or {}).items())
                     or "-", "status": "ran" if record else "not run"})
    print(f"{suite.slug}: {len(suite.tasks)} tasks x {len(suite.seeds)} seeds, reference {suite.reference} "
          f"({suite.path})")
    print(render(rows, ["entry", "method", "options", "learning rate", "status"], "text"), end="")
    return 0


def add(sub) -> None:
    suite = sub.add_parser("suite", help="run a benchmark suite's methods and write its leaderboard",
                           description="A suite (experiments/suites/NAME.yaml) fixes tasks, budgets, seeds and the "
                                       "reference method; each method's learning rate is searched on held-out "
                                       "training data, then it runs every task x seed; the leaderboard compares "
                                       "each method with the reference using `harness check`'s statistics.")
    commands = suite.add_subparsers(dest="suite_command", metavar="SUBCOMMAND")
    commands.required = True

    def common(parser):
        parser.add_argument("suite", help="suite name (experiments/suites/NAME.yaml) or file")
        parser.add_argument("--output-dir", default="results/leaderboard",
                            help="results root; the suite's runs go to <root>/<name>-v<version>/ "
                                 "(default: results/leaderboard)")

    run = commands.add_parser("run", help="run what is missing of the named methods (resumable)")
    common(run)
    run.add_argument("--method", action="append", metavar="NAME", help="a suite entry, or a method reference "
                     "(plugin file.py:OBJ, pkg.mod:obj, peft:TYPE) added with its defaults; repeatable")
    run.add_argument("--all", action="store_true", help="every method the suite lists")
    run.add_argument("--jobs", type=int, default=2, help="cells at once (default: 2, one core each on 2 cores)")
    run.add_argument("--launcher", choices=("local", "inline"), default="local", help="local: each cell in its own "
                     "process (default); inline: one after another in this process (small models)")
    run.add_argument("--data-dir", help="data folder (default: $HARNESS_DATA_DIR)")
    run.add_argument("--no-reference", action="store_true", help="do not run the reference first")
    run.add_argument("--no-inference", action="store_true", help="skip the inference-overhead measurement")
    run.add_argument("--smoke", action="store_true", help="a quick check that the methods run on every task: "
                     "cells capped as grid --smoke caps them (real models), one seed, one search candidate, in "
                     "<suite>-smoke-v<version>/ "
                     "(the reference only with --report)")
    run.add_argument("--report", action="store_true", help="write the leaderboard afterwards")
    run.add_argument("--out", help="leaderboard folder with --report (default: reports/leaderboard/<suite>)")
    run.set_defaults(func=cmd_suite_run)

    report = commands.add_parser("report", help="write the leaderboard from the suite's run folders")
    common(report)
    report.add_argument("--out", help="leaderboard folder (default: reports/leaderboard/<suite>)")
    report.add_argument("--screenshot", action="store_true", help="also take a screenshot of the page with "
                        "headless Chromium (apt-get install chromium)")
    report.set_defaults(func=cmd_suite_report)

    show = commands.add_parser("show", help="list the suite's methods and which have run")
    common(show)
    show.set_defaults(func=cmd_suite_show)
