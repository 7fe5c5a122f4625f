"""`harness analyze`: subspace similarity and amplification on matrices with known answers, and on
tiny trained runs (peft LoRA, GPT-2's fused placement, merged weights), end to end."""

import json

import numpy as np
import pytest

from conftest import sentiment_rows, write_csv
from harness.cli import main
from harness.config import RunConfig
from harness.errors import HarnessError
from harness.report.lora_analysis import amplification, phi, read_updates, updates_from_merged
from harness.train import run


def test_identical_subspaces_give_one_and_orthogonal_give_zero():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 16))
    mixed = rng.standard_normal((4, 4)) @ a  # same row space, other basis
    assert np.allclose(np.diag(phi(a, a)), 1.0) and np.allclose(phi(a, mixed)[3, 3], 1.0)
    eye = np.eye(16)
    assert np.allclose(phi(eye[:4], eye[4:12]), 0.0)
    # One shared direction of eight: φ(i, j) counts it once over min(i, j).
    basis, _ = np.linalg.qr(np.hstack([a.T, rng.standard_normal((16, 12))]))  # columns 4+: outside a's rows
    b = np.vstack([a[:1], 100 * basis[:, 4:11].T])  # a's first row (the weakest direction) and 7 orthogonal ones
    values = phi(a[:1], b)
    assert np.allclose(values[0, :7], 0.0) and values[0, 7] == pytest.approx(1.0)
    assert phi(a, b).shape == (4, 8) and np.all((phi(a, b) >= -1e-12) & (phi(a, b) <= 1 + 1e-12))


def test_amplification_of_an_update_along_w_own_top_directions():
    rng = np.random.default_rng(1)
    u, _ = np.linalg.qr(rng.standard_normal((32, 32)))
    v, _ = np.linalg.qr(rng.standard_normal((24, 24)))
    s = np.linspace(10, 1, 24)
    w = u[:, :24] @ np.diag(s) @ v.T
    r = 3
    delta = 0.5 * u[:, :r] @ v[:, :r].T  # along W's top-3 directions
    result = amplification(w, delta, r)
    expected_projection = np.sqrt(np.sum(s[:r] ** 2))  # UᵀWV keeps W's top-3 singular values
    assert result["proj_delta"] == pytest.approx(expected_projection)
    assert result["proj_w"] == pytest.approx(expected_projection)
    assert result["factor"] == pytest.approx(np.linalg.norm(delta) / expected_projection)
    # Along W's weakest directions the same ΔW is amplified much more.
    weak = 0.5 * u[:, 21:24] @ v[:, 21:24].T
    assert amplification(w, weak, r)["factor"] > 5 * result["factor"]
    assert result["proj_random"] < result["proj_w"]


def _tiny_run(tmp_path, name, method="lora", model="tiny-bert", options=None, **extra):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(96, 0))
    config = RunConfig(task="csv", train_file=str(train), eval_file=str(train), model=model, method=method,
                       method_options=options or {}, epochs=1, tracking_uri="none", output_dir=str(tmp_path),
                       run_name=name, **extra)
    run(config, progress=False)
    return tmp_path / "runs" / name


def test_analyze_reads_tiny_runs_end_to_end(tmp_path):
    r2 = _tiny_run(tmp_path, "r2", options={"r": 2})
    r4 = _tiny_run(tmp_path, "r4", options={"r": 4}, seed=1)
    updates = read_updates(r4)
    assert {(u.weight, u.rank) for u in updates} == {("q", 4), ("v", 4)} and len(updates) == 4  # 2 layers
    out = tmp_path / "analysis"
    assert main(["analyze", "subspace", str(r2), str(r4), "--module", "q", "--layer", "1", "--out", str(out)]) == 0
    report = json.loads((out / "subspace.json").read_text())
    entry = report["entries"][0]
    assert (entry["weight"], entry["layer"], entry["r_a"], entry["r_b"]) == ("q", 1, 2, 4)
    assert np.asarray(entry["phi"]).shape == (2, 4) and (out / "subspace.png").is_file()
    assert main(["analyze", "amplification", str(r4), "--out", str(out)]) == 0
    rows = json.loads((out / "amplification.json").read_text())["rows"]
    assert len(rows) == 4 and all(row["delta_norm"] > 0 and row["w_norm"] > 0 for row in rows)
    full = _tiny_run(tmp_path, "full", method="full")
    with pytest.raises(HarnessError, match="no LoRA weights"):
        read_updates(full)


def test_gpt2_fused_qv_and_merged_updates(tmp_path, data_dir):

    rows = [{"source": f"name[{i}]", "target": f"place {i}"} for i in range(16)]
    write_csv(tmp_path / "train.csv", rows)
    (tmp_path / "gen.yaml").write_text("task: gen\ntype: generation\nfiles: {train: train.csv, dev: train.csv, "
                                       "test: train.csv}\nsource_column: source\ntarget_column: target\n"
                                       "scorer: e2e\nmetrics: [bleu]\n")
    config = RunConfig(task=str(tmp_path / "gen.yaml"), model="tiny-gpt2", method="lora",
                       method_options={"r": 2, "fused_qv": True}, epochs=1, tracking_uri="none",
                       output_dir=str(tmp_path), run_name="fused", max_decode_samples=0,
                       data_dir=str(data_dir))
    run(config, progress=False)
    updates = read_updates(tmp_path / "runs" / "fused")
    assert {u.weight for u in updates} == {"q", "v"} and all(u.delta.shape == (32, 32) for u in updates)
    # A merged update is recovered from the weights' difference, with ΔW's rank.
    rng = np.random.default_rng(0)
    base = {"h.0.attn.q.weight": rng.standard_normal((8, 8))}
    low = rng.standard_normal((8, 2)) @ rng.standard_normal((2, 8))
    merged = updates_from_merged({"h.0.attn.q.weight": base["h.0.attn.q.weight"] + low}, base, rank=2)
    assert len(merged) == 1 and merged[0].weight == "q" and np.allclose(merged[0].delta, low)


def test_subspace_of_a_b_or_delta():
    """--of: A's right-singular vectors, B's left-singular vectors, or ΔW's top-r right-singular
    vectors, which lie in A's row space ordered by what B learned."""
    from harness.report.lora_analysis import Update, basis, phi_of_bases

    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((4, 20)), rng.standard_normal((12, 4))
    update = Update(0, "q", "m", a, b, 2.0)
    delta = basis(update, "delta")
    assert delta.shape == (4, 20)
    row_space = np.linalg.qr(a.T)[0]  # 20 x 4, orthonormal
    assert np.allclose(np.linalg.norm(delta @ row_space, axis=1), 1.0)  # every direction inside A's rows
    assert np.allclose(phi_of_bases(delta, basis(update, "A"))[3, 3], 1.0)  # same 4-dim space, other order
    column_space = np.linalg.qr(b)[0]
    assert basis(update, "B").shape == (4, 12)
    assert np.allclose(np.linalg.norm(basis(update, "B") @ column_space, axis=1), 1.0)
    with pytest.raises(HarnessError, match="--of must be one of"):
        basis(update, "C")
