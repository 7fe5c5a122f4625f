import csv
import os
import random
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
