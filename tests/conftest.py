import contextlib
import csv
import io
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Parallel workers share the cores: one thread each (and for the harness processes tests start),
    # set before any test module imports torch.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
# The shared benchmark data sits beside the project (../shared/data); $HARNESS_DATA_DIR overrides.
DATA_DIR = Path(os.environ.get("HARNESS_DATA_DIR") or ROOT.parent / "shared" / "data")

POSITIVE = ["good", "great", "wonderful", "excellent", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "terrible", "boring", "poor", "dull"]
FILLER = ["the", "movie", "film", "plot", "actors", "was", "really", "quite", "story", "and", "ending"]


def sentiment_rows(n: int, seed: int) -> list[dict]:
    """A small sentiment task a tiny random model can learn: the label is the polarity word's."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randint(0, 1)
        words = rng.sample(FILLER, 5) + [rng.choice(POSITIVE if label else NEGATIVE)]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": "pos" if label else "neg"})
    return rows


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def sentiment_files(tmp_path):
    return (write_csv(tmp_path / "train.csv", sentiment_rows(512, 0)),
            write_csv(tmp_path / "dev.csv", sentiment_rows(64, 1)))


@pytest.fixture
def data_dir():
    if not (DATA_DIR / "glue").is_dir():
        pytest.skip(f"shared data not found at {DATA_DIR}")
    return DATA_DIR


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    # Tests never reach the hub: fail fast instead of waiting on network timeouts.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)  # each test names its data explicitly


def harness_cli(*args, cwd=ROOT, env=None, own_process=False, timeout=600) -> subprocess.CompletedProcess:
    """`harness ARGS`: its exit code, stdout and stderr. It runs main() in this process, as `python -m harness`
    does (a new process spends seconds importing torch and transformers again), with cwd, the environment and
    torch's thread count restored afterwards. own_process=True starts `python -m harness` for what only a new
    process shows: the interpreter boundary, settings read at import (HF_HUB_OFFLINE), a crash. ``timeout``
    bounds only such a process (in this process, pytest's own limits apply)."""
    argv = [str(a) for a in args]
    if own_process:
        return subprocess.run([sys.executable, "-m", "harness", *argv], capture_output=True, text=True, cwd=cwd,
                              env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}, timeout=timeout)
    import torch

    from harness.cli import main

    saved_env, saved_cwd, threads = dict(os.environ), os.getcwd(), torch.get_num_threads()
    out, err = io.StringIO(), io.StringIO()
    try:
        os.environ.update(env or {})
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit:  # argparse: --help (0) and usage errors (2)
                code = exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(["harness", *argv], code, out.getvalue(), err.getvalue())
