"""The run folder, owned here: its place, its files, how it is created, read and written.

    <output_dir>/runs/<run name>/
      config.json          the resolved run config (what `harness run --config` takes, plus resolved values)
      metrics.json         the record: status, params, best epoch, history, throughput, versions
      predictions*.jsonl   classification: one row per dev example of the best epoch
      generations*.jsonl   generation: the decoded test inputs with their references
      weights/             what the method trained (see harness.methods.weights)
      checkpoint/          the loop's state while a run is unfinished (harness.training.checkpoint)

Every other module asks this one for a path or a record; none builds 'runs/<name>' itself.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

RUNS = "runs"
CONFIG, METRICS, WEIGHTS, CHECKPOINT = "config.json", "metrics.json", "weights", "checkpoint"
STATUSES = ("finished", "failed", "running", "pending")


def write_json(path: Path, data: Any) -> None:
    """Write atomically: a crash never leaves a half-written JSON file behind."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def runs_root(output_dir: str | os.PathLike) -> Path:
    return Path(output_dir) / RUNS


def suffixed(stem: str, suffix: str, extension: str = ".jsonl") -> str:
    """'predictions' + 'm' -> 'predictions_m.jsonl' (MNLI's mismatched set); '' -> 'predictions.jsonl'."""
    return f"{stem}{'_' + suffix if suffix else ''}{extension}"


@dataclass(frozen=True)
class RunDir:
    path: Path

    @classmethod
    def of(cls, output_dir: str | os.PathLike, name: str) -> RunDir:
        """The folder a run of this name has (or will have) under ``output_dir``."""
        return cls(runs_root(output_dir) / name)

    @classmethod
    def create(cls, output_dir: str | os.PathLike, name: str) -> RunDir:
        """A new folder; a taken name gets '-2', '-3', ... (a run never writes into another's folder)."""
        root = runs_root(output_dir)
        try:
            root.mkdir(parents=True, exist_ok=True)
            path, number = root / name, 1
            while path.exists():
                number += 1
                path = root / f"{name}-{number}"
            path.mkdir()
        except OSError as err:
            raise HarnessError(f"cannot create the run directory under '{root}': {err.strerror}; "
                               f"choose another --output-dir.") from None
        return cls(path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    def predictions(self, suffix: str = "") -> Path:
        return self.path / suffixed("predictions", suffix)

    def generations(self, suffix: str = "") -> Path:
        return self.path / suffixed("generations", suffix)

    def exists(self) -> bool:
        return self.path.exists()

    def read_config(self) -> dict[str, Any]:
        return _read(self.config_path)

    def run_config(self):
        """The RunConfig the run was started with (config.json also records resolved extras, such as the
        label names, which are not settings)."""
        import dataclasses

        from harness.config import RunConfig

        names = {f.name for f in dataclasses.fields(RunConfig)}
        return RunConfig.from_dict({k: v for k, v in self.read_config().items() if k in names}, str(self.config_path))

    def read_metrics(self) -> dict[str, Any]:
        return _read(self.metrics_path)

    def write_config(self, config: dict[str, Any]) -> None:
        write_json(self.config_path, config)

    def write_metrics(self, record: dict[str, Any]) -> None:
        write_json(self.metrics_path, record)

    def status(self) -> str:
        """'finished', 'failed', 'running' (or killed mid-run) or 'pending' (no folder yet)."""
        if self.metrics_path.is_file():
            try:
                return json.loads(self.metrics_path.read_text())["status"]
            except (json.JSONDecodeError, KeyError):
                return "failed"
        return "running" if self.path.exists() else "pending"

    def weights_bytes(self) -> int | None:
        folder = self.weights
        return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else None


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise HarnessError(f"{path}:{err.lineno}: invalid JSON ({err.msg}); fix or remove the file.") from None


def run_dirs(output_or_runs: str | os.PathLike) -> list[RunDir]:
    """The run folders under a runs folder, attempts set aside by the grid (.attempt-N) left out."""
    root = Path(output_or_runs)
    if not root.is_dir():
        raise HarnessError(f"runs folder '{root}' does not exist; point --runs at <output-dir>/runs.")
    return [RunDir(d) for d in sorted(root.iterdir()) if d.is_dir() and ".attempt-" not in d.name
            and not d.name.startswith(".")]
