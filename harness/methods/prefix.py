"""Prefix methods as the LoRA paper defines them (Section 5.1), written with forward hooks so the
model keeps its own class, heads and parameter names.

- prefix_embed (PreEmbed): n trainable token embeddings inserted into the input; |Θ| = d * n.
- prefix_layer (PreLayer): at the input of every block, the hidden states at those n positions are
  replaced by trainable activations; |Θ| = L * d * n.

peft's prefix tuning (Li & Liang) trains a key and a value per layer instead, 2 * L * d * n
parameters; it stays available as `peft:PREFIX_TUNING`. The paper's l_p (prefix) and l_i (infix)
are one count here: encoders get the tokens right after [CLS] (so the classifier still reads
[CLS]); decoders get them first.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.methods.arch import blocks
from harness.methods.base import MethodSpec, Option


class PrefixActivations(nn.Module):
    def __init__(self, model, tokens: int, per_layer: bool):
        super().__init__()
        embeddings = model.get_input_embeddings().weight
        self.tokens = tokens
        self.insert_at = 0 if getattr(model.config, "is_decoder", False) or model.config.model_type in (
            "gpt2", "llama") else 1
        # Start from the embeddings of random vocabulary tokens: a better start than noise.
        if embeddings.device.type == "meta":
            init = torch.empty(tokens, embeddings.shape[1], device="meta", dtype=embeddings.dtype)
        else:
            init = embeddings[torch.randint(0, embeddings.shape[0], (tokens,))].detach().clone()
        if per_layer:
            self.layers = nn.Parameter(init.unsqueeze(0).repeat(len(blocks(model)), 1, 1))
            self.register_buffer("embed", torch.zeros_like(init), persistent=False)
        else:
            self.embed = nn.Parameter(init)
            self.layers = None

    def insert(self, sequence: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Put ``values`` (n, ...) at the prefix positions of a (batch, seq, ...) tensor."""
        values = values.to(sequence.dtype).unsqueeze(0).expand(sequence.shape[0], *values.shape)
        s = self.insert_at
        return torch.cat([sequence[:, :s], values, sequence[:, s:]], dim=1)

    def overwrite(self, hidden: torch.Tensor, layer: int) -> torch.Tensor:
        s, n = self.insert_at, self.tokens
        values = self.layers[layer].to(hidden.dtype).unsqueeze(0).expand(hidden.shape[0], -1, -1)
        return torch.cat([hidden[:, :s], values, hidden[:, s + n:]], dim=1)


def _extend_inputs(model, args, kwargs):
    prefix: PrefixActivations = model.prefix_tuning
    n, s = prefix.tokens, prefix.insert_at
    cache = kwargs.get("past_key_values")
    # Decoding with a KV cache: after the first step the prefix is in the cache, so later steps only
    # widen the attention mask and shift the positions by the prefix length.
    prefix.inserting = cache is None or not hasattr(cache, "get_seq_length") or cache.get_seq_length() == 0
    if kwargs.get("attention_mask") is not None:
        mask = kwargs["attention_mask"]
        kwargs["attention_mask"] = prefix.insert(mask, torch.ones(n, dtype=mask.dtype, device=mask.device))
    positions = kwargs.get("position_ids")
    if positions is not None and not prefix.inserting:
        kwargs["position_ids"] = positions + n
    if not prefix.inserting:
        return args, kwargs
    if positions is not None:
        inserted = s + torch.arange(n, device=positions.device, dtype=positions.dtype)
        kwargs["position_ids"] = torch.cat([positions[:, :s], inserted.expand(positions.shape[0], n),
                                            positions[:, s:] + n], dim=1)
    input_ids = kwargs.pop("input_ids", None)
    if input_ids is None and args:
        input_ids, args = args[0], args[1:]
    if input_ids is not None:
        kwargs["inputs_embeds"] = prefix.insert(model.get_input_embeddings()(input_ids), prefix.embed)
    if kwargs.get("token_type_ids") is not None:
        types = kwargs["token_type_ids"]
        kwargs["token_type_ids"] = prefix.insert(types, torch.zeros(n, dtype=types.dtype, device=types.device))
    return args, kwargs


def _overwrite_hook(index: int):
    def hook(block, args, kwargs):
        prefix = block._harness_prefix[0]
        if not getattr(prefix, "inserting", True):
            return args, kwargs  # a cached decoding step: the prefix positions are not in this input
        if args:
            args = (prefix.overwrite(args[0], index), *args[1:])
        else:
            kwargs["hidden_states"] = prefix.overwrite(kwargs["hidden_states"], index)
        return args, kwargs

    return hook


def _apply(per_layer: bool):
    def apply(model, options, head_modules):
        model.prefix_tuning = PrefixActivations(model, options["tokens"], per_layer)
        model.register_forward_pre_hook(_extend_inputs, with_kwargs=True)
        if per_layer:
            for index, block in enumerate(blocks(model)):
                block._harness_prefix = [model.prefix_tuning]  # a list: not registered as a submodule
                block.register_forward_pre_hook(_overwrite_hook(index), with_kwargs=True)
        return model

    return apply


_TOKENS = Option(int, 10, "number of trainable prefix tokens (the paper's l_p + l_i)", positive=True)


def _trains(name: str) -> bool:
    return name.startswith("prefix_tuning.")


PREFIX_EMBED = MethodSpec("prefix_embed", "PreEmbed: trainable input token embeddings", _apply(False),
                          options={"tokens": _TOKENS}, defaults={"learning_rate": 3e-2}, trainable=_trains,
                          token_wise=True)  # its tokens join the inputs (and the mask) before the encoder
PREFIX_LAYER = MethodSpec("prefix_layer", "PreLayer: trainable activations at every block", _apply(True),
                          options={"tokens": _TOKENS}, defaults={"learning_rate": 1e-2}, trainable=_trains)
