import socket

import pytest

from harness.errors import HarnessError
from harness.params import count_without_weights


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("parameter counting must not touch the network")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


# Exact values from the paper's formulas (reference §1.6): LoRA = 2 x layers x matrices x d x r.
@pytest.mark.parametrize("model,options,labels,trainable,head", [
    ("roberta-base", {}, 2, 294_912, 592_130),
    ("roberta-base", {}, 3, 294_912, 592_899),
    ("roberta-base", {}, 1, 294_912, 591_361),
    ("roberta-large", {}, 2, 786_432, 1_051_650),
    ("deberta-v2-xxlarge", {"r": 16}, 2, 4_718_592, None),
    ("deberta-v2-xxlarge", {"r": 8}, 2, 2_359_296, None),
])
def test_lora_counts_equal_the_paper_formula(no_network, model, options, labels, trainable, head):
    counts = count_without_weights(model, "lora", options, num_labels=labels)
    assert counts.trainable == trainable
    if head is not None:
        assert counts.head == head


def test_full_fine_tuning_counts_the_whole_backbone(no_network):
    counts = count_without_weights("roberta-base", "full")
    assert counts.head == 592_130
    assert counts.trainable + counts.head == counts.total == 124_647_170


def test_bert_pooler_belongs_to_the_head():
    # BERT's classifier reads the pooler: counted with the head, so LoRA's count is the paper's formula.
    counts = count_without_weights("tiny-bert", "lora", {"r": 4})
    assert counts.trainable == 2 * 2 * 32 * 4 * 2  # 2 layers x (q, v) x (A, B) x d x r
    assert counts.head == (32 * 32 + 32) + (32 * 2 + 2)


def test_unknown_method_option_is_an_error():
    with pytest.raises(HarnessError, match=r"method 'lora' has no option 'rank'. Its options: r, alpha, dropout, target_modules"):
        count_without_weights("roberta-base", "lora", {"rank": 4})
