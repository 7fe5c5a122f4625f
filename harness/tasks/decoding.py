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
  exact, because log-probabilities only add negative terms. Its slot goes to the next input (its
  prompt's cache joins the batch's, left-padded), so a batch never waits for its slowest input;
- the KV cache is written in place (buffers with room for the new tokens) and the beams of an input,
  which share its prompt, are reordered over the generated positions only.

``DecodeSettings.keep_k_open`` selects transformers' rule instead of the first point's: a hypothesis
that emits a stop token among the step's k best candidates is finished and the next-best candidate
that does not stop takes its slot, so k beams stay open; ``ban_prompt_ngrams`` makes the n-gram ban
count the prompt too. With both, the outputs are ``generate``'s beam search's token for token.
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
    keep_k_open: bool = False  # a finished hypothesis's slot goes to the next candidate (generate's rule)
    ban_prompt_ngrams: bool = False  # the n-gram ban counts the prompt's n-grams too (generate's rule)


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


def prompts_of(tokenizer, sources: list[str]) -> tuple[list[list[int]], list[int], int]:
    """(each source's prompt token ids, the decoding order: longest first, to fail fast on memory, the
    padding token id)."""
    prompts = [tokenizer(prompt_of(s), add_special_tokens=False)["input_ids"] for s in sources]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return prompts, order, pad


def left_padded(prompts: list[list[int]], pad_token_id: int):
    """(ids, attention mask) of the prompts padded on the left to the longest one."""
    import torch

    batch, width = len(prompts), max(len(p) for p in prompts)
    ids = torch.full((batch, width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((batch, width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.tensor(prompt)
        mask[row, width - len(prompt):] = 1
    return ids, mask


def decode_ids(model, tokenizer, sources: list[str], settings: DecodeSettings, progress: bool = False,
               desc: str = "decoding") -> list[list[int]]:
    """The generated token ids (stop token excluded) for every source, in order."""
    import torch
    from tqdm.auto import tqdm

    prompts, order, pad = prompts_of(tokenizer, sources)
    stops = torch.tensor(stop_token_ids(tokenizer))
    outputs: list[list[int]] = [[] for _ in sources]
    was_training = model.training
    model.eval()
    with torch.no_grad(), tqdm(total=len(sources), desc=desc, disable=not progress, unit="input",
                               dynamic_ncols=True) as bar:
        # One search over every input, longest first; inputs join as others finish.
        for index, tokens in zip(order, beam_search(model, [prompts[i] for i in order], settings, stops, pad,
                                                    bar.update)):
            outputs[index] = tokens
    model.train(was_training)
    return outputs


def _banned(history, n: int):
    """(row, token) pairs that would repeat an n-gram of a row's history (its generated tokens, after its
    prompt's with ban_prompt_ngrams); -1 marks no token."""
    rows, length = history.shape
    if n <= 0 or length < n:  # no complete n-gram generated yet
        return None
    if n == 1:
        row, position = (history >= 0).nonzero(as_tuple=True)  # -1: no token (left of a joined input)
        return row, history[row, position]
    windows = history.unfold(1, n, 1)  # rows x (length - n + 1) x n
    match = (windows[:, :, :-1] == history[:, length - n + 1:].unsqueeze(1)).all(-1)
    row, position = match.nonzero(as_tuple=True)
    return row, windows[row, position, -1]


def _beam_cache(room: int):
    """An empty DynamicCache whose layers keep keys and values in buffers with ``room`` spare positions:
    a step writes its position in place instead of copying the whole cache (torch.cat), and reordering
    the beams copies only what differs (see reorder_tail), or else gathers into a spare buffer kept for
    that instead of a fresh allocation every step (the copy and the reorder were 14% of a SmolLM2 beam
    search's time)."""
    import torch
    from transformers import DynamicCache, DynamicLayer

    class BeamLayer(DynamicLayer):
        buffers = None  # (keys, values, spare keys, spare values), each rows x heads x capacity x dim

        def _rebuffer(self, extra: int) -> None:
            # keys/values are not views of the buffers (first tokens, or replaced by padding, joining or
            # selecting rows): copy them once into buffers with room to grow.
            length, held = self.keys.shape[-2], []
            for t in (self.keys, self.values):
                shape = (*t.shape[:-2], length + extra, t.shape[-1])
                buffer = t.new_empty(shape)
                buffer[..., :length, :] = t
                held += [buffer, t.new_empty(shape)]
            self.buffers = (held[0], held[2], held[1], held[3])
            self.keys, self.values = held[0][..., :length, :], held[2][..., :length, :]

        def _in_buffers(self) -> bool:
            return self.buffers is not None and self.keys.data_ptr() == self.buffers[0].data_ptr() \
                and self.keys.shape[0] == self.buffers[0].shape[0]

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized or self.keys.numel() == 0:
                self.is_initialized, self.device = True, key_states.device
                self.keys, self.values = key_states, value_states
                self._rebuffer(room)
                return self.keys, self.values
            length, new = self.keys.shape[-2], key_states.shape[-2]
            if not self._in_buffers() or self.buffers[0].shape[-2] < length + new:
                self._rebuffer(max(room, new))
            keys, values = self.buffers[:2]
            keys[..., length:length + new, :] = key_states
            values[..., length:length + new, :] = value_states
            self.keys, self.values = keys[..., :length + new, :], values[..., :length + new, :]
            return self.keys, self.values

        def reorder_cache(self, beam_idx) -> None:
            self.reorder_tail(beam_idx, self.keys.shape[-2], _moved_rows(beam_idx))

        def reorder_tail(self, beam_idx, tail: int, moved) -> None:
            """Reorder the beams over the last ``tail`` positions only. The beams of one input share its
            prompt (and whatever precedes the generated tokens), so only the generated positions differ;
            ``moved``: the rows whose beam comes from another row (the others keep theirs)."""
            if tail <= 0:
                return
            if not self._in_buffers():
                return super().reorder_cache(beam_idx)
            length = self.keys.shape[-2]
            if not moved.numel():
                return
            if 2 * tail * moved.numel() <= length * beam_idx.numel():
                sources = beam_idx[moved]
                for t in (self.keys, self.values):
                    recent = t[..., length - tail:, :]  # a view into the buffer: written in place
                    recent.index_copy_(0, moved, recent.index_select(0, sources))  # gathered, then written
                return
            keys, values, spare_keys, spare_values = self.buffers
            torch.index_select(self.keys, 0, beam_idx, out=spare_keys[..., :length, :])
            torch.index_select(self.values, 0, beam_idx, out=spare_values[..., :length, :])
            self.buffers = (spare_keys, spare_values, keys, values)
            self.keys, self.values = spare_keys[..., :length, :], spare_values[..., :length, :]

    cache = DynamicCache()
    cache.layer_class_to_replicate = BeamLayer
    return cache


def _moved_rows(beam_idx):
    """The rows whose beam comes from another row (the others continue their own)."""
    import torch

    return (beam_idx != torch.arange(beam_idx.numel(), device=beam_idx.device)).nonzero().view(-1)


def _reorder(cache, beam_idx, generated: int) -> None:
    """Reorder the cache's beams; only the last ``generated`` positions (the most tokens any live input
    has in the cache) can differ between the beams of one input."""
    moved = _moved_rows(beam_idx)
    for layer in cache.layers:
        if hasattr(layer, "reorder_tail"):
            layer.reorder_tail(beam_idx, generated, moved)
        else:
            layer.reorder_cache(beam_idx)


@dataclass
class _Live:
    """The inputs being decoded together: k rows (beams) per input, their KV cache and search state."""

    items: object  # (inputs,) which prompt each group of k rows belongs to
    cache: object  # DynamicCache over every row
    mask: object  # (rows, cache length) attention mask, 0 on padding
    next_position: object  # (rows, 1) position of the next token
    history: object  # (rows, steps) generated tokens (after the prompt's, with ban_prompt_ngrams), -1 on the left
    steps: object  # (inputs,) tokens generated so far
    beam_scores: object  # (inputs, k) summed log-probabilities, -inf on closed beams
    logits: object  # (rows, vocab) next-token logits

    @property
    def inputs(self) -> int:
        return int(self.items.numel())


def _prefill(model, prompts: list[list[int]], items: list[int], k: int, pad_token_id: int, device,
             room: int, prompt_history: bool = False) -> _Live:
    """Each prompt once (left-padded, explicit positions, logits of the last position only), then its
    cache copied to k beams; the first step expands one beam only (all k start identical).
    ``prompt_history``: the history starts with the prompt's tokens (for an n-gram ban counting them)."""
    import torch

    batch = len(prompts)
    ids, mask = (t.to(device) for t in left_padded(prompts, pad_token_id))
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = _beam_cache(room)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                   use_cache=True, logits_to_keep=1).logits[:, -1, :]
    cache.batch_repeat_interleave(k)
    scores = torch.full((batch, k), -math.inf, device=device)
    scores[:, 0] = 0.0
    history = ids.masked_fill(mask == 0, -1) if prompt_history else ids[:, :0]
    return _Live(torch.tensor(items), cache, mask.repeat_interleave(k, 0),
                 positions[:, -1:].repeat_interleave(k, 0) + 1, history.repeat_interleave(k, 0),
                 torch.zeros(batch, dtype=torch.long, device=device), scores, logits.repeat_interleave(k, 0))


def _join(live: _Live, fresh: _Live) -> _Live:
    """One batch of both: caches, masks and histories left-padded to a common length (padding is masked
    out, and every row's positions are its own, so no row's computation changes)."""
    import torch
    import torch.nn.functional as F

    length = max(live.mask.shape[1], fresh.mask.shape[1])
    for part in (live, fresh):
        extra = length - part.mask.shape[1]
        if extra:
            for layer in part.cache.layers:
                layer.keys, layer.values = (F.pad(t, (0, 0, extra, 0)) for t in (layer.keys, layer.values))
            part.mask = F.pad(part.mask, (extra, 0))
    for a, b in zip(live.cache.layers, fresh.cache.layers):
        a.keys, a.values = torch.cat([a.keys, b.keys]), torch.cat([a.values, b.values])
    steps = max(live.history.shape[1], fresh.history.shape[1])
    history = [F.pad(h, (steps - h.shape[1], 0), value=-1) for h in (live.history, fresh.history)]
    return _Live(torch.cat([live.items, fresh.items]), live.cache, torch.cat([live.mask, fresh.mask]),
                 torch.cat([live.next_position, fresh.next_position]), torch.cat(history),
                 torch.cat([live.steps, fresh.steps]), torch.cat([live.beam_scores, fresh.beam_scores]),
                 torch.cat([live.logits, fresh.logits]))


def _leading(dead) -> int:
    """How many leading entries of a 1-d boolean tensor are all True."""
    return int(dead.long().cumprod(0).sum())


def _drop_dead_columns(live: _Live) -> None:
    """Drop the leading cache/mask columns that no live row attends to any more (padding of inputs that
    left) and the history's leading -1 columns. Without this, a long run of joining inputs keeps every
    position since the first batch: on 630 E2E inputs at batch 40 the cache grew to hundreds of
    positions and each step's attention and n-gram check with it. Positions are explicit, so no row's
    computation changes."""
    columns = _leading(live.mask.sum(0) == 0)
    if columns:
        for layer in live.cache.layers:
            layer.keys, layer.values = layer.keys[..., columns:, :], layer.values[..., columns:, :]
        live.mask = live.mask[:, columns:]
    steps = _leading((live.history < 0).all(0))
    if steps:
        live.history = live.history[:, steps:]


def beam_search(model, prompts: list[list[int]], settings: DecodeSettings, stops, pad_token_id: int,
                on_done=None) -> list[list[int]]:
    """Generated token ids (stop token excluded) for each prompt; see the module docstring. At most
    ``settings.batch_size`` inputs are decoded together, in the order given; when inputs finish, new
    ones join the batch (their prompt is run, and its cache joins the others'), so the batch stays
    full instead of waiting for its slowest input."""
    import torch

    with torch.no_grad():
        return _beam_search(model, prompts, settings, stops, pad_token_id, on_done)


def _beam_search(model, prompts, settings, stops, pad_token_id, on_done):
    import torch

    device = next(model.parameters()).device
    k, lp, max_new = settings.num_beams, settings.length_penalty, settings.max_new_tokens
    stops = stops.to(device)
    best_score = torch.full((len(prompts),), -math.inf, device=device)  # per prompt, its best finished hypothesis
    best_tokens: list[list[int]] = [[] for _ in prompts]
    pending, live, joinable = list(range(len(prompts))), None, True
    refill_at = max(1, settings.batch_size // 4)  # free slots that pay for a prompt pass

    while pending or live is not None:
        free = settings.batch_size - (live.inputs if live is not None else 0)
        if pending and (live is None or (joinable and free >= refill_at)):
            take, pending = pending[:free], pending[free:]
            fresh = _prefill(model, [prompts[i] for i in take], take, k, pad_token_id, device, max_new,
                             settings.ban_prompt_ngrams)
            # A method that adds its own cache positions (prefix tuning) cannot be padded on the left.
            joinable = joinable and fresh.cache.get_seq_length() == fresh.mask.shape[1]
            live = fresh if live is None else _join(live, fresh)

        step = live.steps + 1  # per input
        logprobs = torch.log_softmax(live.logits.float(), dim=-1)
        banned = _banned(live.history, settings.no_repeat_ngram_size)
        if banned is not None:
            logprobs[banned] = -math.inf
        first = (step == 1).repeat_interleave(k)
        if first.any():  # at least one token: an empty output scores nothing
            logprobs[first.nonzero(), stops] = -math.inf
        scores = (live.beam_scores.view(-1, 1) + logprobs).view(live.inputs, -1)
        last = step == max_new
        (top_scores, rows, tokens), (ends, end_rows, end_tokens, end_scores) = _candidates(
            scores, k, stops, last, settings.keep_k_open)
        if ends.any():
            candidates = torch.where(ends, end_scores / step.unsqueeze(1).float() ** lp, -math.inf)
            value, beam = candidates.max(dim=1)
            better = value > best_score[live.items]
            best_score[live.items[better.cpu()]] = value[better]
            for group in better.nonzero().view(-1).tolist():
                row, before = end_rows[group, beam[group]].item(), step[group].item() - 1  # tokens generated
                seq = live.history[row, live.history.shape[1] - before:].tolist() if before else []
                seq.append(end_tokens[group, beam[group]].item())
                best_tokens[live.items[group].item()] = seq[:-1] if seq[-1] in stops else seq
        live.history = torch.cat([live.history[rows.view(-1)], tokens.view(-1, 1)], dim=1)
        _reorder(live.cache, rows.view(-1), int(live.steps.max()))
        live.beam_scores, live.steps = top_scores, step
        # An open beam's final score is at most its score now over max(length) ** lp (lp >= 0) or
        # over (step + 1) ** lp (lp < 0); an input whose best finished hypothesis beats that is done.
        top_open = live.beam_scores.max(dim=1).values
        bound = top_open / (torch.full_like(top_open, max_new) if lp >= 0 else (step + 1).float()) ** lp
        keep = ~(last | (best_score[live.items] >= bound) | ~torch.isfinite(top_open))
        if on_done is not None and not keep.all():
            on_done(int((~keep).sum()))
        if not keep.any():
            live = None
            continue
        if not keep.all():
            rows_kept = (keep.nonzero().view(-1, 1) * k + torch.arange(k, device=device)).view(-1)
            live.items, live.beam_scores, live.steps = live.items[keep.cpu()], live.beam_scores[keep], live.steps[keep]
            live.history, live.mask = live.history[rows_kept], live.mask[rows_kept]
            live.next_position = live.next_position[rows_kept]
            tokens = tokens[keep]
            live.cache.batch_select_indices(rows_kept)
            if joinable:
                _drop_dead_columns(live)
        live.mask = torch.cat([live.mask, torch.ones_like(live.mask[:, :1])], dim=1)
        live.logits = model(input_ids=tokens.view(-1, 1), attention_mask=live.mask, position_ids=live.next_position,
                            past_key_values=live.cache, use_cache=True, logits_to_keep=1).logits[:, -1, :]
        live.next_position = live.next_position + 1
    return best_tokens


def _candidates(scores, k: int, stops, last, keep_k_open: bool):
    """One step's choice per input from its (inputs, k * vocab) summed scores: ((scores, rows, tokens)
    of the k beams that go on, -inf on a closed one; (which, rows, tokens, scores) of the k candidates
    that may end here: those that stop, and at the last step every one)."""
    import torch

    groups, vocab = scores.shape[0], scores.shape[1] // k
    if keep_k_open:
        # generate's rule: of the best (1 + stop tokens) * k candidates, a stop among the first k
        # finishes; the k best that do not stop go on (there are at least k of them).
        cand_scores, cand = scores.topk(min(max(2, 1 + stops.numel()) * k, k * vocab), dim=1)
        cand_rows = (torch.arange(groups, device=scores.device) * k).unsqueeze(1) + cand // vocab
        cand_tokens = cand % vocab
        stopping = torch.isin(cand_tokens, stops)
        ends = (stopping[:, :k] | last.unsqueeze(1)) & torch.isfinite(cand_scores[:, :k])
        going = cand_scores.masked_fill(stopping, -math.inf).topk(k, dim=1).indices
        return (tuple(t.gather(1, going) for t in (cand_scores, cand_rows, cand_tokens)),
                (ends, cand_rows[:, :k], cand_tokens[:, :k], cand_scores[:, :k]))
    top_scores, top = scores.topk(k, dim=1)
    rows = (torch.arange(groups, device=scores.device) * k).unsqueeze(1) + top // vocab
    tokens = top % vocab
    # The paper's rule: a stopped beam's slot closes for a step. At its last step every open beam of an
    # input competes as it is (LoRA's final candidate pass).
    stopping = torch.isin(tokens, stops)
    ends = (stopping | last.unsqueeze(1)) & torch.isfinite(top_scores)
    return (top_scores.masked_fill(stopping, -math.inf), rows, tokens), (ends, rows, tokens, top_scores)
