"""Checkpoints that let a killed run continue exactly where it was.

A checkpoint (<run_dir>/checkpoint/) holds the trainable tensors (safetensors), the optimizer and
scheduler states and every RNG state (a weights-only torch file), and the loop's position and
best-so-far results (JSON). It is written to a temporary folder and renamed into place, so a kill
during the write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.methods.weights import load_tensors, save_tensors
from harness.rundir import CHECKPOINT



def rng_states(generator: torch.Generator, epoch_generator_state: torch.Tensor) -> dict[str, Any]:
    numpy_state = np.random.get_state()
    return {
        "python": random.getstate(),
        # weights-only loading accepts tensors, not NumPy arrays
        "numpy": (numpy_state[0], torch.from_numpy(numpy_state[1].copy()), *numpy_state[2:]),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "data_order": generator.get_state(),  # the shuffling generator, now
        "data_order_epoch_start": epoch_generator_state,  # ... and where this epoch's order came from
    }


def restore_rng(states: dict[str, Any], generator: torch.Generator) -> None:
    random.setstate(states["python"])
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    generator.set_state(states["data_order_epoch_start"])  # the epoch's batch order is drawn again


def save_checkpoint(run_dir: Path, model, optimizer, scheduler, rng: dict, position: dict) -> None:
    final, tmp = run_dir / CHECKPOINT, run_dir / f"{CHECKPOINT}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_tensors(model, tmp / "trainable.safetensors")
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng},
               tmp / "state.pt")
    (tmp / "position.json").write_text(json.dumps(position, indent=2))
    old = run_dir / f"{CHECKPOINT}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / CHECKPOINT / "position.json").is_file() or (run_dir / f"{CHECKPOINT}.old").is_dir()


def load_checkpoint(run_dir: Path, model, optimizer, scheduler, generator: torch.Generator) -> dict:
    """Restore everything into the prepared objects; returns the loop position."""
    folder = run_dir / CHECKPOINT
    if not (folder / "position.json").is_file() and (run_dir / f"{CHECKPOINT}.old").is_dir():
        folder = run_dir / f"{CHECKPOINT}.old"  # killed between the two renames
    load_tensors(model, folder / "trainable.safetensors", f"{folder} (was the config changed?)")
    state = torch.load(folder / "state.pt", weights_only=True)  # tensors and plain values only: no code runs
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    restore_rng(state["rng"], generator)
    return json.loads((folder / "position.json").read_text())
