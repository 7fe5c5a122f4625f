"""The paper's §7 analyses of trained LoRA updates: subspace similarity between runs (Eq. 4, Figures 3
and 4) and how ΔW relates to W (Table 7, the amplification factor).

Updates are read from a run folder's saved weights, whatever wrote them: peft's adapter files (the
built-in `lora` and `peft:LORA`), the built-in GPT-2 placement (q and v inside the fused `c_attn`),
peft LoRA on GPT-2's whole `c_attn` (split into q, k, v: the three share A), or merged full weights
(ΔW = merged − pretrained, A from its SVD). Definitions (lora_paper.md §1.8):

    φ(A₁, A₂, i, j) = ‖U₁^{i⊤} U₂^{j}‖²_F / min(i, j)     U^i: the top-i right-singular vectors of A
    amplification   = ‖ΔW‖_F / ‖U^⊤ W V‖_F                 U, V: the top-r singular directions of ΔW
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.rundir import RunDir

# The last module name of an attention weight -> the paper's weight type.
WEIGHT_TYPES = {"query": "q", "q_proj": "q", "q": "q", "key": "k", "k_proj": "k", "k": "k", "value": "v",
                "v_proj": "v", "v": "v", "o_proj": "o", "out_proj": "o", "o": "o"}
LAYER = re.compile(r"\.(?:layer|layers|h|block|blocks)\.(\d+)\.")


@dataclass
class Update:
    """One adapted weight of one layer: ΔW = scaling · B A (A: r x in, B: out x in, Linear orientation)."""

    layer: int
    weight: str  # q, k, v, o, or the module's own name
    module: str  # the module's name in the pretrained model (where W is)
    A: np.ndarray
    B: np.ndarray
    scaling: float
    note: str = ""

    @property
    def rank(self) -> int:
        return self.A.shape[0]

    @property
    def delta(self) -> np.ndarray:
        return self.scaling * self.B @ self.A

    @property
    def key(self) -> str:
        return f"{self.weight}{self.layer}"


def weight_type(module: str) -> str:
    parts = module.split(".")
    if parts[-1] == "dense" and len(parts) > 1 and parts[-2] == "output" and "attention" in parts:
        return "o"  # BERT's attention output projection
    if parts[-1] == "c_proj" and len(parts) > 1 and parts[-2] == "attn":
        return "o"  # GPT-2's
    return WEIGHT_TYPES.get(parts[-1], parts[-1])


def layer_of(module: str) -> int:
    found = LAYER.search(f".{module}.")
    return int(found.group(1)) if found else -1


def _tensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception:  # noqa: BLE001 - bf16 tensors: numpy cannot hold them, torch can
        from safetensors.torch import load_file as load_torch

        return {k: v.float().numpy() for k, v in load_torch(str(path)).items()}


def _peft_updates(folder: Path) -> list[Update]:
    config = json.loads((folder / "adapter_config.json").read_text())
    if config.get("peft_type") != "LORA":
        raise HarnessError(f"{folder}: a peft {config.get('peft_type')} adapter, not LoRA; the analyses need LoRA's A and B.")
    tensors = _tensors(folder / "adapter_model.safetensors")
    r, alpha = config["r"], config["lora_alpha"]
    scaling = alpha / (r ** 0.5 if config.get("use_rslora") else r)
    updates = []
    for name, a in tensors.items():
        if ".lora_A." not in name:
            continue
        module = name.split(".lora_A.")[0].removeprefix("base_model.model.")
        b = tensors[name.replace(".lora_A.", ".lora_B.")]
        if module.endswith("c_attn") and b.shape[0] == 3 * a.shape[1]:  # peft on GPT-2's fused q,k,v
            d = a.shape[1]
            updates += [Update(layer_of(module), kind, module, a, b[i * d:(i + 1) * d], scaling,
                               "split from c_attn (A shared by q, k, v)") for i, kind in enumerate("qkv")]
            continue
        updates.append(Update(layer_of(module), weight_type(module), module, a, b, scaling))
    return updates


def _fused_updates(folder: Path, run_config: dict) -> list[Update]:
    tensors = _tensors(folder / "trainable.safetensors")
    options = run_config.get("method_options") or {}
    r, alpha = options.get("r", 8), options.get("alpha", 8.0)
    updates = []
    for name, a in tensors.items():
        if not name.endswith(".lora_A") or a.ndim != 3:
            continue
        module = name.removesuffix(".lora_A")
        b = tensors[module + ".lora_B"]
        updates += [Update(layer_of(module), kind, module, a[i], b[i], alpha / r, "q/v inside GPT-2's fused c_attn")
                    for i, kind in enumerate("qv")]
    return updates


def read_updates(run: str | Path, merged_rank: int | None = None) -> list[Update]:
    """Every LoRA update a run saved, sorted by layer and weight type; one-line error when it has none.
    ``merged_rank``: the run saved a merged model whole; its updates are the weights' differences from
    the pretrained model, factored at this rank."""
    folder = Path(run)
    folder = folder if (folder / "adapter_config.json").is_file() or (folder / "trainable.safetensors").is_file() \
        else RunDir(folder).weights
    if not folder.is_dir():
        raise HarnessError(f"{run}: no saved weights (weights/); the analyses read a run saved with --save-weights.")
    config_path = folder.parent / "config.json"
    run_config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    if (folder / "adapter_config.json").is_file():
        updates = _peft_updates(folder)
    elif (folder / "trainable.safetensors").is_file():
        updates = _fused_updates(folder, run_config)
    elif merged_rank and (folder / "model.safetensors").is_file() and run_config:  # a merged model saved whole
        model = _pretrained_model(folder.parent)
        base = {name: _linear(model, name, p.detach().float().numpy()) for name, p in model.state_dict().items()}
        merged = {name: _linear(model, name, w) for name, w in _tensors(folder / "model.safetensors").items()}
        updates = updates_from_merged(merged, base, merged_rank)
    else:
        updates = []
    if not updates:
        method = run_config.get("method", "?")
        raise HarnessError(f"{run}: no LoRA weights in {folder} (method {method}); analyze runs of lora or peft:LORA "
                           f"(a merged model saved whole: pass --merged-rank R).")
    return sorted(updates, key=lambda u: (u.layer, "qkvo".find(u.weight) % 10, u.weight))


def updates_from_merged(merged: dict[str, np.ndarray], base: dict[str, np.ndarray], rank: int) -> list[Update]:
    """Updates of a merged model: ΔW = merged − pretrained per weight that changed, factored by its top-r
    SVD (B = U_r, A = S_r V_rᵀ), so φ and the amplification read it like an unmerged run."""
    updates = []
    for name, w in merged.items():
        if name not in base or w.ndim != 2 or name.endswith("embeddings.weight"):
            continue
        delta = w.astype(np.float64) - base[name].astype(np.float64)
        if not np.any(delta):
            continue
        u, s, vt = np.linalg.svd(delta, full_matrices=False)
        module, r = name.removesuffix(".weight"), min(rank, len(s))
        updates.append(Update(layer_of(module), weight_type(module), module, (s[:r, None] * vt[:r]),
                              u[:, :r], 1.0, "from merged weights (ΔW = merged - pretrained)"))
    return sorted(updates, key=lambda u: (u.layer, u.weight))


def select(updates: list[Update], modules: list[str] | None, layers: list[int] | None) -> list[Update]:
    chosen = [u for u in updates if (not modules or u.weight in modules or u.module in modules)
              and (not layers or u.layer in layers)]
    if not chosen:
        have = sorted({u.weight for u in updates})
        raise HarnessError(f"no LoRA update matches --module {modules} --layer {layers}; this run has weight types "
                           f"{', '.join(have)} in layers {min(u.layer for u in updates)}-{max(u.layer for u in updates)}.")
    return chosen


# ---------------------------------------------------------------------------------------------
# The measures


def right_singular(a: np.ndarray) -> np.ndarray:
    """The right-singular vectors of A (r x in) as rows, by decreasing singular value."""
    _, _, vt = np.linalg.svd(np.asarray(a, dtype=np.float64), full_matrices=False)
    return vt


# What φ compares (--of): the paper's A (its right-singular vectors), B (its left-singular vectors, which
# the paper says behave the same), or ΔW = BA (its top-r right-singular vectors: B starts at zero, so
# their order is what training put there, while A's order after a short run is mostly its random init's).
SUBSPACE_OF = ("A", "B", "delta")


def basis(update: Update, of: str = "A") -> np.ndarray:
    """The update's directions, as rows ordered by decreasing singular value, of A, B or ΔW."""
    if of == "A":
        return right_singular(update.A)
    if of == "B":
        return right_singular(np.asarray(update.B).T)
    if of == "delta":
        return right_singular(update.delta)[:update.rank]
    raise HarnessError(f"--of must be one of {', '.join(SUBSPACE_OF)}, got '{of}'.")


def phi(a1: np.ndarray, a2: np.ndarray) -> np.ndarray:
    """φ(A₁, A₂, i, j) for 1 <= i <= r₁, 1 <= j <= r₂ (Eq. 4): the (r₁, r₂) matrix, entry [i-1, j-1]."""
    if a1.shape[1] != a2.shape[1]:
        raise HarnessError(f"A matrices of different input sizes ({a1.shape[1]} vs {a2.shape[1]}): not the same weight.")
    return phi_of_bases(right_singular(a1), right_singular(a2))


def phi_of_bases(u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """φ(i, j) between two orthonormal bases given as rows, strongest direction first."""
    overlap = (u1 @ u2.T) ** 2  # [i, j]: squared cosine between direction i of A1 and j of A2
    sums = overlap.cumsum(axis=0).cumsum(axis=1)  # ‖U1^{i⊤} U2^{j}‖²_F for every (i, j)
    i, j = np.indices(sums.shape) + 1
    return sums / np.minimum(i, j)


def random_like(a: np.ndarray, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(a.shape)


def _orthonormal(rows: int, size: int, rng) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((size, rows)))
    return q[:, :rows]


def amplification(w: np.ndarray, delta: np.ndarray, r: int, seed: int = 0) -> dict[str, float]:
    """Table 7 for one weight: ‖ΔW‖_F, ‖W‖_F and ‖UᵀWV‖_F with U, V the top-r left/right singular
    directions of ΔW, of W, and random orthonormal ones; the amplification factor ‖ΔW‖_F / ‖UᵀWV‖_F (ΔW's)."""
    w, delta = np.asarray(w, dtype=np.float64), np.asarray(delta, dtype=np.float64)
    if w.shape != delta.shape:
        raise HarnessError(f"W {w.shape} and ΔW {delta.shape} differ in shape.")
    rng = np.random.default_rng(seed)
    projected = {}
    for source, (u, v) in {"delta": _top(delta, r), "w": _top(w, r),
                           "random": (_orthonormal(r, w.shape[0], rng), _orthonormal(r, w.shape[1], rng))}.items():
        projected[source] = float(np.linalg.norm(u.T @ w @ v))
    norm = float(np.linalg.norm(delta))
    return {"r": r, "delta_norm": norm, "w_norm": float(np.linalg.norm(w)), "proj_delta": projected["delta"],
            "proj_w": projected["w"], "proj_random": projected["random"],
            "factor": norm / projected["delta"] if projected["delta"] > 0 else float("inf")}


def _top(matrix: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    u, _, vt = np.linalg.svd(matrix, full_matrices=False)
    return u[:, :r], vt[:r].T


# ---------------------------------------------------------------------------------------------
# Pretrained weights, reports and figures


def _pretrained_model(run: str | Path):
    """The run's model as pretrained (no method applied), loaded as the run loaded it."""
    from harness.config import RunConfig
    from harness.training.runner import resolve

    config = json.loads((Path(run) / "config.json").read_text())
    config.update(tracking_uri="none", resume=False)
    resolved = resolve(RunConfig.of_run(config, where=str(run)))
    model, _, _ = resolved.objective.load_model(resolved.model, resolved.task, resolved.config)
    return model


def _linear(model, name: str, weight: np.ndarray) -> np.ndarray:
    """A weight in Linear orientation (out x in): GPT-2's Conv1D stores in x out."""
    module = name.rsplit(".", 1)[0]
    try:
        conv = type(model.get_submodule(module)).__name__ == "Conv1D"
    except AttributeError:
        conv = False
    return weight.T if conv and weight.ndim == 2 else weight


def pretrained_weights(run: str | Path, modules: list[str]) -> dict[str, np.ndarray]:
    """W of each named module from the run's pretrained model (Linear orientation: out x in)."""
    model = _pretrained_model(run)
    weights = {name: model.get_submodule(name.removesuffix(".base_layer")).weight for name in modules}
    return {name: _linear(model, f"{name.removesuffix('.base_layer')}.weight", w.detach().float().numpy())
            for name, w in weights.items()}


def subspace_report(run_a: str | Path, run_b: str | Path, modules=None, layers=None, seed: int = 0,
                    merged_rank: int | None = None, of: str = "A") -> dict[str, Any]:
    """φ between the matching updates of two runs (their A, B or ΔW), with the random-Gaussian baseline
    of the same shapes."""
    first = {u.key: u for u in select(read_updates(run_a, merged_rank), modules, layers)}
    second = {u.key: u for u in select(read_updates(run_b, merged_rank), modules, layers)}
    common = [k for k in first if k in second]
    if not common:
        raise HarnessError(f"{run_a} and {run_b} adapt no common weight (have {sorted(first)} and {sorted(second)}).")
    entries = []
    for n, key in enumerate(common):
        a, b = first[key], second[key]
        u1, u2 = basis(a, of), basis(b, of)
        if u1.shape[1] != u2.shape[1]:
            raise HarnessError(f"{key}: the runs' updates have different sizes ({u1.shape[1]} vs {u2.shape[1]}): "
                               f"not the same weight.")
        random_a, random_b = (random_like(np.empty((u.shape[0], u.shape[1])), seed + 2 * n + k)
                              for k, u in enumerate((u1, u2)))
        entries.append({"layer": a.layer, "weight": a.weight, "module": a.module, "r_a": a.rank, "r_b": b.rank,
                        "phi": phi_of_bases(u1, u2).tolist(), "phi_random": phi(random_a, random_b).tolist(),
                        "note": a.note or b.note})
    return {"run_a": str(run_a), "run_b": str(run_b), "of": of, "entries": entries}


def amplification_report(run: str | Path, modules=None, layers=None, seed: int = 0,
                         merged_rank: int | None = None) -> dict[str, Any]:
    updates = select(read_updates(run, merged_rank), modules, layers)
    weights = pretrained_weights(run, sorted({u.module for u in updates}))
    rows = [{"layer": u.layer, "weight": u.weight, "module": u.module, "note": u.note,
             **amplification(weights[u.module], u.delta, u.rank, seed)} for u in updates]
    return {"run": str(run), "rows": rows}


def heatmaps(report: dict, out_dir: Path, name: str = "subspace") -> list[Path]:
    """Figures 3/4: φ(i, j) per weight (rows), beside the random baseline; PNG and SVG."""
    from harness.report.plots import _pyplot, _save

    plt = _pyplot()
    entries = report["entries"]
    fig, axes = plt.subplots(len(entries), 2, figsize=(10, 2.9 * len(entries) + 0.6), squeeze=False)
    fig.subplots_adjust(hspace=0.6)  # room for each row's axis label above the next row's titles
    for row, entry in zip(axes, entries):
        for ax, key, title in ((row[0], "phi", "runs"), (row[1], "phi_random", "random Gaussian")):
            values = np.asarray(entry[key])
            image = ax.imshow(values, vmin=0, vmax=1, cmap="viridis", aspect="auto", origin="upper",
                              extent=(0.5, values.shape[1] + 0.5, values.shape[0] + 0.5, 0.5))
            matrix = {"A": "A", "B": "B", "delta": "ΔW"}[report.get("of", "A")]
            ax.set_title(f"ΔW{entry['weight']} layer {entry['layer']}, {matrix}: {title}", fontsize=9)
            ax.set_xlabel(f"j (run B, r={entry['r_b']})")
            ax.set_ylabel(f"i (run A, r={entry['r_a']})")
        fig.colorbar(image, ax=row.tolist(), fraction=0.025, label="φ(i, j)")
    return _save(fig, out_dir, name)


def amplification_markdown(report: dict) -> str:
    lines = [f"Run: `{report['run']}`", "",
             "| layer | weight | r | ‖ΔW‖_F | ‖W‖_F | ‖UᵀWV‖_F (ΔW's U,V) | (W's) | (random) | amplification |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        lines.append(f"| {row['layer']} | {row['weight']} | {row['r']} | {row['delta_norm']:.3f} | {row['w_norm']:.2f} "
                     f"| {row['proj_delta']:.3f} | {row['proj_w']:.2f} | {row['proj_random']:.3f} | {row['factor']:.1f} |")
    return "\n".join(lines) + "\n"
