"""Data-to-text with causal LMs: how an (input, reference) pair becomes a training sequence, the
loss on the target tokens only (with label smoothing), and batched beam search.

The beam search follows microsoft/LoRA's ``gpt2_beam.py``, the decoder behind the paper's
tables, rather than ``transformers.generate``:

- a hypothesis that emits a stop token is finished with score ``sum log p / length ** length_penalty``
  (length = generated tokens, stop token included) and its beam slot is closed; the best finished
  hypothesis per input wins, and beams still open at ``max_new_tokens`` compete as they are;
- ``no_repeat_ngram_size`` bans n-grams repeated within the *generated* tokens (transformers also
  counts the prompt, which would forbid copying 4 tokens of a WebNLG entity name twice);
- the first token is never a stop token (an untrained model often starts with a newline);
- many inputs are decoded at once (left-padded, with explicit positions and a KV cache), and an
  input leaves the batch as soon as no open beam can beat its best finished hypothesis. That is
  exact, because log-probabilities only add negative terms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SEPARATOR = " ||"  # prompt = "<input> ||", target = " <text><eos>", as LoRA's "mr || ref" lines


def prompt_of(source: str) -> str:
    return source + SEPARATOR


def encode_pair(tokenizer, source: str, reference: str, max_length: int) -> dict[str, list[int]]:
    """Token ids of prompt + target + eos, with labels only on the target (and eos)."""
    prompt = tokenizer(prompt_of(source), add_special_tokens=False)["input_ids"]
    target = tokenizer(" " + reference, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (prompt + target)[:max_length]
    labels = ([-100] * len(prompt) + target)[:max_length]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def one_pair_each(split):
    """A grouped generation split as one example per (input, reference): what training sees."""
    from harness.tasks.base import GenerationExample, Split

    return Split([GenerationExample(e.source, (ref,), e.subset) for e in split.examples for ref in e.references],
                 split.origin)


def encode_pairs(split, tokenizer, max_length: int) -> list[dict[str, list[int]]]:
    """One training row per (input, reference) of a grouped generation split."""
    return [encode_pair(tokenizer, e.source, ref, max_length) for e in split.examples for ref in e.references]


class PairCollator:
    """Right-pads a batch of encode_pair rows (labels with -100)."""

    def __init__(self, pad_token_id: int, multiple_of: int | None = None):
        self.pad, self.multiple_of = pad_token_id, multiple_of

    def __call__(self, rows):
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        if self.multiple_of:
            width = -(-width // self.multiple_of) * self.multiple_of
        def pad(key, value):
            return torch.tensor([r[key] + [value] * (width - len(r[key])) for r in rows])
        return {"input_ids": pad("input_ids", self.pad), "attention_mask": pad("attention_mask", 0),
                "labels": pad("labels", -100)}


def lm_loss(model, batch, label_smoothing: float = 0.0):
    """Mean cross-entropy over the target tokens (next-token prediction), with label smoothing."""
    import torch.nn.functional as F

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"]
    logits = logits[:, -labels.shape[1]:]  # prefix methods prepend positions: drop their outputs
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                           ignore_index=-100, label_smoothing=label_smoothing)


@dataclass
class DecodeSettings:
    num_beams: int = 10
    length_penalty: float = 0.9
    no_repeat_ngram_size: int = 4
    max_new_tokens: int = 64
    batch_size: int = 16  # inputs per forward pass; each takes num_beams rows


def stop_token_ids(tokenizer) -> list[int]:
    """End of text, plus every token that starts a new line: targets never contain one, and an
    untrained model would otherwise run on to max_new_tokens (LoRA stops GPT-2 at 50256 and at
    628, its '\\n\\n' token)."""
    vocab = tokenizer.get_vocab()
    ids = {tokenizer.eos_token_id}
    ids.update(i for i in vocab.values() if "\n" in tokenizer.decode([i]))
    return sorted(i for i in ids if i is not None)


def decode(model, tokenizer, sources: list[str], settings: DecodeSettings, progress: bool = True,
           desc: str = "decoding") -> list[str]:
    """The decoded text for every source, in order. Inputs are batched by prompt length."""
    import torch
    from tqdm.auto import tqdm

    prompts = [tokenizer(prompt_of(s), add_special_tokens=False)["input_ids"] for s in sources]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # longest first: fail fast on memory
    stops = torch.tensor(stop_token_ids(tokenizer))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    outputs: list[str] = [""] * len(sources)
    was_training = model.training
    model.eval()
    with torch.no_grad(), tqdm(total=len(sources), desc=desc, disable=not progress, unit="input",
                               dynamic_ncols=True) as bar:
        for start in range(0, len(order), settings.batch_size):
            chunk = order[start:start + settings.batch_size]
            for index, tokens in zip(chunk, beam_search(model, [prompts[i] for i in chunk], settings, stops, pad)):
                outputs[index] = tokenizer.decode(tokens, skip_special_tokens=True).strip()
            bar.update(len(chunk))
    model.train(was_training)
    return outputs


def _banned(history, n: int):
    """(row, token) pairs that would repeat an n-gram of a row's generated tokens."""
    import torch

    rows, length = history.shape
    if n <= 0 or length < n:  # no complete n-gram generated yet
        return None
    if n == 1:
        return torch.arange(rows).repeat_interleave(length), history.flatten()
    windows = history.unfold(1, n, 1)  # rows x (length - n + 1) x n
    match = (windows[:, :, :-1] == history[:, length - n + 1:].unsqueeze(1)).all(-1)
    row, position = match.nonzero(as_tuple=True)
    return row, windows[row, position, -1]


def beam_search(model, prompts: list[list[int]], settings: DecodeSettings, stops, pad_token_id: int) -> list[list[int]]:
    """Generated token ids (stop token excluded) for each prompt; see the module docstring."""
    import torch
    from transformers import DynamicCache

    device = next(model.parameters()).device
    k, lp, max_new = settings.num_beams, settings.length_penalty, settings.max_new_tokens
    batch, width = len(prompts), max(len(p) for p in prompts)
    ids = torch.full((batch, width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((batch, width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.tensor(prompt)
        mask[row, width - len(prompt):] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    stops = stops.to(device)
    cache = DynamicCache()
    # The prompt once per input (logits of its last position only), then its cache copied to k beams.
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                   use_cache=True, logits_to_keep=1).logits[:, -1, :]
    cache.batch_repeat_interleave(k)
    logits, mask = logits.repeat_interleave(k, 0), mask.repeat_interleave(k, 0)
    next_position = positions[:, -1:].repeat_interleave(k, 0) + 1

    items = torch.arange(batch)  # which prompt each group of k rows belongs to
    beam_scores = torch.full((batch, k), -math.inf, device=device)
    beam_scores[:, 0] = 0.0  # the first step expands one beam only (all k start identical)
    history = torch.empty((batch * k, 0), dtype=torch.long, device=device)
    best_score = torch.full((batch,), -math.inf, device=device)  # per prompt, its best finished hypothesis
    best_tokens: list[list[int]] = [[] for _ in range(batch)]

    for step in range(1, max_new + 1):
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        banned = _banned(history, settings.no_repeat_ngram_size)
        if banned is not None:
            logprobs[banned] = -math.inf
        if step == 1:
            logprobs[:, stops] = -math.inf  # at least one token: an empty output scores nothing
        vocab = logprobs.shape[-1]
        live = items.numel()
        scores = (beam_scores.view(-1, 1) + logprobs).view(live, k * vocab)
        top_scores, top = scores.topk(k, dim=1)
        rows = (torch.arange(live, device=device) * k).unsqueeze(1) + top // vocab
        tokens = top % vocab
        history = torch.cat([history[rows.view(-1)], tokens.view(-1, 1)], dim=1)
        cache.reorder_cache(rows.view(-1))
        beam_scores = top_scores

        finished = torch.isin(tokens, stops) & torch.isfinite(top_scores)
        if finished.any() or step == max_new:
            # At the last step every open beam competes as it is (LoRA's final candidate pass).
            candidates = torch.where(finished | (step == max_new), top_scores / step ** lp, -math.inf)
            value, beam = candidates.max(dim=1)
            better = value > best_score[items]
            best_score[items[better.cpu()]] = value[better]
            for group in better.nonzero().view(-1).tolist():
                seq = history[group * k + beam[group].item()].tolist()
                best_tokens[items[group].item()] = seq[:-1] if seq[-1] in stops else seq
            beam_scores = beam_scores.masked_fill(finished, -math.inf)
        if step == max_new:
            break
        # An open beam's final score is at most its score now over max(length) ** lp (lp >= 0) or
        # over (step + 1) ** lp (lp < 0); an input whose best finished hypothesis beats that is done.
        top_open = beam_scores.max(dim=1).values
        bound = top_open / (max_new if lp >= 0 else step + 1) ** lp
        keep = ~((best_score[items] >= bound) | ~torch.isfinite(top_open))
        if not keep.any():
            break
        if not keep.all():
            rows_kept = (keep.nonzero().view(-1, 1) * k + torch.arange(k, device=device)).view(-1)
            items, beam_scores = items[keep.cpu()], beam_scores[keep]
            history, mask, next_position = history[rows_kept], mask[rows_kept], next_position[rows_kept]
            tokens = tokens[keep]
            cache.batch_select_indices(rows_kept)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        logits = model(input_ids=tokens.view(-1, 1), attention_mask=mask, position_ids=next_position,
                       past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1, :]
        next_position = next_position + 1
    return best_tokens


def write_generations(path, examples, hypotheses) -> None:
    """One JSON line per input: its source, the generated text and its references."""
    import json

    with open(path, "w", encoding="utf-8") as handle:
        for index, (example, hypothesis) in enumerate(zip(examples, hypotheses)):
            row: dict[str, Any] = {"index": index, "source": example.source, "hypothesis": hypothesis,
                                   "references": list(example.references)}
            if example.subset:
                row["subset"] = example.subset
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_hypotheses(path) -> tuple[list[str], list[str] | None]:
    """(hypotheses, sources or None) from a plain text file (one output per line, as e2e-metrics and
    the WebNLG script read them) or a JSON-lines file of rows with 'hypothesis' (this harness's
    generations*.jsonl, whose 'source' fields are checked against the task's inputs)."""
    import json
    from pathlib import Path

    from harness.errors import HarnessError

    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"outputs file {path} does not exist.")
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".jsonl":
        return text.splitlines(), None
    hypotheses, sources = [], []
    for line, row in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(row)
            hypotheses.append(str(record["hypothesis"]))
            sources.append(record.get("source"))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise HarnessError(f"{path}:{line}: expected a JSON object with a 'hypothesis' field.") from None
    return hypotheses, sources


def score_file(task, path, data_dir=None, split: str | None = None, first_n: int | None = None,
               metrics=None) -> dict[str, float]:
    """Score an outputs file against a generation task's references, as `harness run` scores its own."""
    from harness.errors import HarnessError

    if task.kind != "generation":
        raise HarnessError(f"task '{task.name}' is not a generation task; `harness score` scores generated text.")
    split = split or next(iter(task.eval_splits.values()))
    examples = task.load(split, data_dir).examples
    if first_n is not None:
        examples = examples[:first_n]
    hypotheses, sources = read_hypotheses(path)
    if len(hypotheses) != len(examples):
        raise HarnessError(
            f"{path}: {len(hypotheses)} outputs, but the {split} split of {task.name} has {len(examples)} inputs"
            f"{' (--first ' + str(first_n) + ')' if first_n else ''}; give one output per line, in the order of "
            f"the task's inputs (use --first N when only the first N were decoded)."
        )
    if sources is not None:
        for line, (given, example) in enumerate(zip(sources, examples), 1):
            if given is not None and given != example.source:
                raise HarnessError(f"{path}:{line}: the output is for input {given[:60]!r}, but input {line} of "
                                   f"{task.name}/{split} is {example.source[:60]!r}; the order differs.")
    return task.score(hypotheses, examples, metrics)
