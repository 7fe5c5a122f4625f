"""--padding-free: encoders run on a batch's real tokens packed into one row, padded back around attention.
Packed, the model must give the padded model's outputs and gradients (up to rounding) for every model type
and method that says it can be packed; the others are refused with a one-line error."""

import pytest
import torch

from harness.config import RunConfig
from harness.errors import HarnessError
from harness.methods import get_method
from harness.methods.peft_any import TOKEN_WISE
from harness.training.padding_free import MODEL_TYPES, PaddingFree

from conftest import DATA_DIR

# Options that let a tuner fit tiny-bert's 32-wide layers (its defaults assume larger models).
PEFT_OPTIONS = {"LN_TUNING": {"target_modules": ["LayerNorm"]}, "VBLORA": {"vector_length": 8, "num_vectors": 16},
                "MISS": {"r": 8}, "ROAD": {"group_size": 8}, "SHIRA": {"r": 2}, "C3A": {"block_size": 8},
                "WAVEFT": {"n_frequency": 100}, "PROMPT_TUNING": {"num_virtual_tokens": 4},
                "P_TUNING": {"num_virtual_tokens": 4, "encoder_hidden_size": 16}}
BUILT_IN = ["lora", "full", "bitfit", "fttop2", "head", "prefix_embed", "adapter_h", "adapter_l", "adapter_p",
            "adapter_d"]
BUILT_IN_OPTIONS = {"adapter_d": {"skip_lowest": 1}}  # tiny-bert has 2 blocks
SENTENCES = ["a short one", "a much longer sentence with many more words in it than the first one", "mid size here"]


def method_model(method: str, options: dict | None = None):
    """tiny-bert for classification with ``method`` applied and its trainable weights moved off their
    (often zero) initial values, so that the method's modules change the outputs; and a padded batch."""
    from harness.training.runner import load_model, resolve

    config = RunConfig(task="glue/sst2", model="tiny-bert", method=method, data_dir=str(DATA_DIR),
                       method_options=options or {})
    torch.manual_seed(0)
    model, tokenizer, _ = load_model(resolve(config), config)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    assert not batch["attention_mask"].all()  # the batch has padding to remove
    return model, batch


def outputs_and_grads(model, batch, paths: PaddingFree | None):
    """Logits and the trainable parameters' gradients of one backward pass (eval mode: no dropout)."""
    model.eval()
    model.zero_grad(set_to_none=True)
    if paths is None:
        logits = model(**batch).logits
    else:
        with paths.in_use():
            logits = model(**batch).logits
    logits.square().sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return logits.detach(), grads


def assert_packed_equals_padded(model, batch):
    padded = outputs_and_grads(model, batch, None)
    packed = outputs_and_grads(model, batch, PaddingFree(model))
    torch.testing.assert_close(packed[0], padded[0], atol=1e-5, rtol=1e-4)
    assert packed[1].keys() == padded[1].keys() and padded[1]
    for name in padded[1]:
        torch.testing.assert_close(packed[1][name], padded[1][name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("method", BUILT_IN)
def test_token_wise_built_in_methods_give_the_padded_outputs_and_gradients_packed(method):
    assert get_method(method).token_wise
    assert_packed_equals_padded(*method_model(method, BUILT_IN_OPTIONS.get(method)))


@pytest.mark.parametrize("peft_type", sorted(TOKEN_WISE))
def test_token_wise_peft_tuners_give_the_padded_outputs_and_gradients_packed(peft_type):
    assert get_method(f"peft:{peft_type}").token_wise
    assert_packed_equals_padded(*method_model(f"peft:{peft_type}", PEFT_OPTIONS.get(peft_type)))


def test_every_method_that_says_token_wise_is_checked_here():
    """A method marked token_wise without a check above would be packed unverified."""
    from harness.methods import METHODS

    marked = {name for name in METHODS.names() if get_method(name).token_wise}
    assert marked == set(BUILT_IN)
    assert not get_method("peft:POLY").token_wise and get_method("peft:DORA").token_wise  # aliases: their type's


def test_a_method_that_reads_positions_differs_packed_and_is_refused():
    """prefix_layer overwrites positions of every block's input: packed, it writes the wrong tokens. The
    check above sees the difference; resolve refuses the combination before anything loads."""
    from harness.training.runner import resolve

    model, batch = method_model("prefix_layer")
    padded, packed = outputs_and_grads(model, batch, None), outputs_and_grads(model, batch, PaddingFree(model))
    assert not torch.allclose(padded[0], packed[0], atol=1e-4)
    with pytest.raises(HarnessError, match="--padding-free: method 'prefix_layer' is not token-wise"):
        resolve(RunConfig(task="glue/sst2", model="tiny-bert", method="prefix_layer", padding_free=True))


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_every_supported_model_type_packs(model_type):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.for_model(model_type, vocab_size=120, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=64, max_position_embeddings=40,
                                  pad_token_id=1, embedding_size=32)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config)
    ids = torch.randint(3, 120, (3, 9))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[0, 4:], mask[2, 7:] = 0, 0
    ids[mask == 0] = 1
    assert_packed_equals_padded(model, {"input_ids": ids, "attention_mask": mask})


def test_a_model_inside_a_wrapper_without_its_config_packs():
    """As under DistributedDataParallel, which does not pass attribute lookups on to the model."""
    model, batch = method_model("lora")

    class Wrapper(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

    paths = PaddingFree(Wrapper(model))
    assert len(paths.encoders) == 1 and model.config._attn_implementation == "harness_padding_free_sdpa"
    padded = outputs_and_grads(model, batch, None)
    packed = outputs_and_grads(model, batch, paths)
    torch.testing.assert_close(packed[0], padded[0], atol=1e-5, rtol=1e-4)


def test_a_decoder_is_refused_and_a_batch_without_padding_runs_as_it_is():
    from transformers import AutoModelForCausalLM

    from harness.models import build_config, get_model_spec

    gpt2 = AutoModelForCausalLM.from_config(build_config(get_model_spec("tiny-gpt2")))
    with pytest.raises(HarnessError, match=r"--padding-free: the model \(gpt2\) has no encoder it can pack"):
        PaddingFree(gpt2)

    model, batch = method_model("lora")
    full = {key: value[1:2] for key, value in batch.items()}  # the longest sentence alone: no padding
    calls = []
    paths = PaddingFree(model)
    encoder = paths.encoders[0]
    packed_forward = encoder.forward
    encoder.forward = lambda *args, **kwargs: calls.append(kwargs.get("attention_mask", args[1:2])) or \
        packed_forward(*args, **kwargs)
    model.eval()
    with torch.no_grad(), paths.in_use():
        model(**full)
    assert calls == [None]  # transformers builds no mask for a batch without padding: nothing to pack


def test_packed_training_step_with_fast_dropout_and_compiled_evaluation():
    """Fast dropout's attention function runs inside the packed one; a training step under both trains; and
    the compiled model (dynamic shapes, the packed token count traced) gives the eager padded outputs."""
    from harness.training.fast_paths import FastPaths
    from harness.training.runner import dynamo_plugin

    model, batch = method_model("lora", {"dropout": 0.1})
    model.eval()
    with torch.no_grad():
        padded = model(**batch).logits
    paths = FastPaths(model, "no", cast_frozen_once=True, fast_dropout=True, padding_free=True)
    assert model.config._attn_implementation == "harness_padding_free_harness_fast_dropout_sdpa"
    model.train()
    with paths.in_use():
        loss = model(**batch).logits.logsumexp(-1).mean()
    loss.backward()
    trained = [p.grad for p in model.parameters() if p.requires_grad]
    assert trained and all(g is not None and torch.isfinite(g).all() for g in trained)

    dynamo_plugin(RunConfig(task="glue/sst2", compile=True, padding_free=True))
    compiled = torch.compile(model, dynamic=True)
    model.eval()
    with torch.no_grad(), paths.evaluating():
        for rows in (slice(0, 3), slice(0, 2)):  # two batch shapes: one compiled graph, dynamic
            part = {key: value[rows] for key, value in batch.items()}
            torch.testing.assert_close(compiled(**part).logits, padded[rows], atol=1e-5, rtol=1e-4)


def test_padding_free_run_trains_and_is_another_setting(tmp_path):
    import random

    from conftest import FILLER, sentiment_rows, write_csv
    from test_train import assert_trains_as_another_setting

    def varied(n, seed):  # the sentiment rows with 0-4 filler words dropped: batches with padding
        rng = random.Random(seed)
        return [dict(row, text=" ".join(w for w in row["text"].split() if w not in FILLER or rng.random() < 0.4))
                for row in sentiment_rows(n, seed)]

    files = write_csv(tmp_path / "train.csv", varied(512, 0)), write_csv(tmp_path / "dev.csv", varied(64, 1))
    assert_trains_as_another_setting(tmp_path, files, "padding_free")


@pytest.mark.parametrize("lengths,width", [([3, 20, 7], 20), ([100, 37, 90, 5], 100), ([600, 610], 640),
                                           ([9, 9], 9)])
def test_bucketed_counts_take_few_values_and_add_only_padding(lengths, width):
    from harness.training.padding_free import bucketed

    real = torch.tensor([[i < n for i in range(width)] for n in lengths]).reshape(-1)
    chosen = bucketed(real)
    count, total = int(real.sum()), real.numel()
    step = max(16, 2 ** (count.bit_length() - 1 - 3))
    assert chosen[real].all()  # every real token stays
    assert int(chosen.sum()) == min(total, -(-count // step) * step)  # the count rounded up to its bucket
    added = (chosen & ~real).nonzero().squeeze(1)
    padding = (~real).nonzero().squeeze(1)
    assert torch.equal(added, padding[:len(added)])  # the first padded positions, in order


@pytest.mark.parametrize("precision", ["bf16", "no"])
def test_bucketed_packing_is_used_under_low_precision_on_a_cpu_and_keeps_the_padded_outputs(monkeypatch, precision):
    """oneDNN's bf16 products want few distinct shapes: the packed count is bucketed under bf16 autocast
    (fp32 products need no buckets and get the exact count), and the real tokens' outputs are unchanged."""
    import harness.training.padding_free as padding_free

    calls, original = [], padding_free.bucketed
    monkeypatch.setattr(padding_free, "bucketed", lambda real: calls.append(int(real.sum())) or original(real))
    model, batch = method_model("lora")
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        padded = outputs_and_grads(model, batch, None)
        packed = outputs_and_grads(model, batch, PaddingFree(model))
    assert calls == ([int(batch["attention_mask"].sum())] if precision == "bf16" else [])
    tolerance = dict(atol=2e-2, rtol=2e-2) if precision == "bf16" else dict(atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(packed[0], padded[0], **tolerance)
    for name in padded[1]:
        torch.testing.assert_close(packed[1][name], padded[1][name], **tolerance, msg=name)
