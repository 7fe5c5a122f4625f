"""Training batches are padded to a multiple of 8 only where it pays: mixed precision on a GPU."""

import pytest
import torch

from harness.config import RunConfig
from harness.models import get_model_spec, load_tokenizer
from harness.tasks.objective import get_objective


def rows(kind: str, lengths):
    """Token rows as each objective's encode makes them (a generation row's labels are token ids)."""
    made = []
    for n in lengths:
        ids = list(range(5, 5 + n))
        made.append({"input_ids": ids, "attention_mask": [1] * n,
                     "labels": list(ids) if kind == "generation" else 1})
    return made


@pytest.mark.parametrize("kind", ["classification", "generation"])
@pytest.mark.parametrize("precision,gpu,width", [("no", False, 11), ("bf16", False, 11), ("no", True, 11),
                                                 ("bf16", True, 16)])
def test_batches_pad_to_a_multiple_of_8_only_under_mixed_precision_on_a_gpu(monkeypatch, kind, precision, gpu,
                                                                              width):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    tokenizer = load_tokenizer(get_model_spec("tiny-bert"))  # generation's collator reads only its pad id
    config = RunConfig(task="glue/sst2", mixed_precision=precision)
    batch = get_objective(kind).collate(tokenizer, config)(rows(kind, [4, 11, 7]))
    assert batch["input_ids"].shape == (3, width)
    assert batch["attention_mask"].sum(1).tolist() == [4, 11, 7]  # padding adds no attended position
