"""`harness sync`: upload to MLflow the runs it missed."""

from __future__ import annotations

from harness.errors import HarnessError


def cmd_sync(args) -> int:
    from harness.config import RunConfig, resolved_tracking_uri
    from harness.tracking.sync import sync_runs

    uri = resolved_tracking_uri(RunConfig(tracking_uri=args.tracking_uri))
    if uri is None:
        raise HarnessError("harness sync needs a tracking URI (--tracking-uri or $MLFLOW_TRACKING_URI).")
    actions = sync_runs(args.runs, uri, args.experiment)
    for name, action in actions:
        if action != "in MLflow" or args.verbose:
            print(f"{name}: {action}")
    counts = {a: sum(1 for _, b in actions if b == a) for a in ("uploaded", "completed", "in MLflow")}
    print(", ".join(f"{n} {a}" for a, n in counts.items()))
    return 0


def add(sub) -> None:
    sync = sub.add_parser("sync", help="upload runs that MLflow missed (server down), without duplicates",
                          description="Log to MLflow every finished or failed run folder that MLflow lacks or "
                                      "holds only in part (a run whose server went away); runs already there are "
                                      "left alone, so syncing twice changes nothing.")
    sync.add_argument("--runs", default="results/runs", help="folder of run folders (default: results/runs)")
    sync.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    sync.add_argument("--experiment", default="harness", help="MLflow experiment (default: harness)")
    sync.add_argument("--verbose", action="store_true", help="also list runs that were already in MLflow")
    sync.set_defaults(func=cmd_sync)
