"""--compile (torch.compile of the whole model) trains the same run as eager mode: equal losses
for one seed (dropout included), the same decoded outputs, weights saved from the uncompiled module.
One test (a generation model: training, the dev loss and beam decoding all go through the compiled
model), since compiling costs most of a minute."""

import json
import textwrap
from pathlib import Path

import pytest

from harness.config import RunConfig
from harness.train import run


def _pair(tmp_path, **settings):
    records = {}
    for compiled in (False, True):
        config = RunConfig(**settings, compile=compiled, tracking_uri="none", save_weights=compiled,
                           output_dir=str(tmp_path / ("compiled" if compiled else "eager")), seed=3)
        records[compiled] = run(config, progress=False)
    return records[False], records[True]


def _generation_task(tmp_path, name: str, rows: list[str]) -> str:
    """A generation task YAML over the same rows in train, dev and test; its path."""
    for split in ("train", "dev", "test"):
        (tmp_path / f"{split}.csv").write_text("".join(["mr,ref\n", *rows]))
    (tmp_path / f"{name}.yaml").write_text(textwrap.dedent(f"""\
        task: {name}
        type: generation
        files: {{train: train.csv, dev: dev.csv, test: test.csv}}
        source_column: mr
        target_column: ref
        scorer: e2e
        metrics: [bleu]
        """))
    return str(tmp_path / f"{name}.yaml")


def test_compiled_generation_training_matches_eager_and_decodes(tmp_path, data_dir):
    task = _generation_task(tmp_path, "menus", [f'"name[{f}], price[{p}]",{f} is {p}.\n'
                                                for f in ("soup", "tea", "rice", "cake") for p in ("cheap", "dear")])
    eager, compiled = _pair(tmp_path, task=task, model="tiny-gpt2", method="lora", epochs=1,
                            data_dir=str(data_dir), num_beams=2, max_new_tokens=5, batch_size=4)
    assert compiled["history"][0]["train_loss"] == pytest.approx(eager["history"][0]["train_loss"], rel=1e-4)
    assert compiled["best"]["dev_loss"] == pytest.approx(eager["best"]["dev_loss"], rel=1e-4)
    hypotheses = [[json.loads(line)["hypothesis"] for line in (Path(r["run_dir"]) / "generations.jsonl").open()]
                  for r in (eager, compiled)]
    assert hypotheses[0] == hypotheses[1]
    saved = json.loads((Path(compiled["run_dir"]) / "weights" / "adapter_config.json").read_text())
    assert saved["peft_type"] == "LORA"
    from safetensors.torch import load_file

    names = list(load_file(Path(compiled["run_dir"]) / "weights" / "adapter_model.safetensors"))
    assert names and not any("_orig_mod" in name for name in names)


def test_harness_decoding_equals_generate_where_the_algorithms_agree(tmp_path, data_dir):
    """`harness bench generate` on a trained tiny run, its beam search and n-gram ban overridden: with
    one beam and no n-gram ban both decoders are greedy search to the first stop token, so their
    outputs must agree token for token; with 3 beams kept open (generate's rule) too."""
    from harness.bench import compare_with_generate

    task = _generation_task(tmp_path, "places", [f'"name[{f}], area[{a}]",{f} is in the {a}.\n'
                                                 for f in ("soup", "tea", "rice") for a in ("city", "park")])
    record = run(RunConfig(task=task, model="tiny-gpt2", method="lora", epochs=1,
                           data_dir=str(data_dir), num_beams=3, no_repeat_ngram_size=2, max_new_tokens=6,
                           max_decode_samples=0, tracking_uri="none", output_dir=str(tmp_path / "out")),
                 progress=False)
    report = compare_with_generate(record["run_dir"], str(data_dir), inputs=6, batch_size=4, num_beams=1,
                                   no_repeat_ngram_size=0, out=str(tmp_path / "cmp.json"))
    assert report["inputs"] == 6 and report["settings"]["num_beams"] == 1
    assert report["settings"]["no_repeat_ngram_size"] == 0
    sides = report["sides"]
    assert set(sides) == {"harness", "generate (early_stopping=False)", "generate (early_stopping='never')"}
    for name, side in sides.items():
        assert side["generated_tokens"] == sides["harness"]["generated_tokens"] > 0
        if name != "harness":
            assert side["identical_outputs"] == 6 and side["first_difference"] is None
            assert side["speedup_of_harness"] > 0
    assert json.loads((tmp_path / "cmp.json").read_text())["sides"] == sides
    # Beam search too, once the harness keeps k beams open as generate does.
    beams = compare_with_generate(record["run_dir"], str(data_dir), inputs=6, batch_size=4, num_beams=3,
                                  no_repeat_ngram_size=0, keep_k_open=True, stopping=("never",))
    assert beams["settings"]["num_beams"] == 3 and beams["settings"]["keep_k_open"] is True
    assert beams["sides"]["generate (early_stopping='never')"]["identical_outputs"] == 6
