"""Batched beam search for data-to-text with causal LMs.

It follows microsoft/LoRA's ``gpt2_beam.py``, the decoder behind the paper's tables, rather than
``transformers.generate``:

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

SEPARATOR = " ||"  # prompt = "<input> ||", target = " <text><eos>", as LoRA's "mr || ref" lines


def prompt_of(source: str) -> str:
    return source + SEPARATOR


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
    return [tokenizer.decode(tokens, skip_special_tokens=True).strip()
            for tokens in decode_ids(model, tokenizer, sources, settings, progress, desc)]


def decode_ids(model, tokenizer, sources: list[str], settings: DecodeSettings, progress: bool = False,
               desc: str = "decoding") -> list[list[int]]:
    """The generated token ids (stop token excluded) for every source, in order."""
    import torch
    from tqdm.auto import tqdm

    prompts = [tokenizer(prompt_of(s), add_special_tokens=False)["input_ids"] for s in sources]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # longest first: fail fast on memory
    stops = torch.tensor(stop_token_ids(tokenizer))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    outputs: list[list[int]] = [[] for _ in sources]
    was_training = model.training
    model.eval()
    with torch.no_grad(), tqdm(total=len(sources), desc=desc, disable=not progress, unit="input",
                               dynamic_ncols=True) as bar:
        for start in range(0, len(order), settings.batch_size):
            chunk = order[start:start + settings.batch_size]
            for index, tokens in zip(chunk, beam_search(model, [prompts[i] for i in chunk], settings, stops, pad)):
                outputs[index] = tokens
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


