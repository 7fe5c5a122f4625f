"""``--padding-free``: an encoder's layers compute the batch's real tokens only.

Length-grouped batches of SST-2 sentences are still 6% padding (the bench job's), shuffled ones 67%
(reports/bench/train_padding.json), and an encoder puts every padded position through every linear layer,
norm and activation. A BERT-style encoder layer treats each token on its own except in attention, so the
encoder can run on the real tokens packed into one row, (1, tokens, width): the hidden states are
gathered once before the first layer; each attention call scatters its queries, keys and values back to
the padded (batch, heads, length, head) layout, runs the model's own attention function on them with the
batch's mask, and gathers its output again; the last hidden states are scattered back to (batch, length,
width), padded positions zero.

The real tokens get the padded model's numbers up to rounding (tests/test_padding_free.py). Dropout
then draws masks for the real tokens only, so a seed's training run is not the same run as without the
flag, as with another seed (its results are checked against the padded runs' on the bench page).

Under bf16 or fp16 on a CPU the packed count is bucketed (``bucketed``): oneDNN builds a kernel for each
new matrix shape, and an exact count is new at nearly every step.

Which models: transformers encoders whose layers are token-wise apart from the attention interface
(``MODEL_TYPES``; a batch with no padding, or an encoder called with a cache or cross-attention, runs
as it is). Which methods: those whose ``MethodSpec.token_wise`` says their modules read and write each
token on its own (prefix_layer, which overwrites positions of every block's input, does not).
"""

from __future__ import annotations

from functools import partial

from harness.errors import HarnessError
from harness.training.switch import Switch

# Checked in tests/test_padding_free.py against the padded model: the embeddings add the positions, and
# every encoder layer calls transformers' attention interface and is token-wise otherwise.
MODEL_TYPES = ("bert", "roberta", "xlm-roberta", "electra")


class PaddingFree(Switch):
    """Packs the real tokens of each encoder of ``model`` (None: off) while ``in_use``."""

    def __init__(self, model, buckets: bool = True):
        self.buckets = buckets  # bucketed token counts for oneDNN's matrix products (``bucketed``)
        owners = [] if model is None else packable_encoders(model)
        self.encoders = [owner.encoder for owner in owners]
        if model is None:
            return
        if not owners:
            types = [m.config.model_type for m in model.modules() if hasattr(getattr(m, "config", None), "model_type")]
            found = types[0] if types else type(model).__name__
            raise HarnessError(f"--padding-free: the model ({found}) has no encoder it can pack; it supports "
                               f"{', '.join(MODEL_TYPES)} encoders. Run without --padding-free.")
        for owner in owners:
            owner.encoder.forward = partial(_packed_encoder, self, owner.encoder.forward)
            _route_attention(owner)  # the transformers model itself: a DDP wrapper has no config


def packable_encoders(model) -> list:
    """The transformers models in ``model`` whose ``encoder`` (beside their ``embeddings``) this path can pack."""
    found = []
    for module in model.modules():
        config = getattr(module, "config", None)
        if (getattr(config, "model_type", None) in MODEL_TYPES and not getattr(config, "is_decoder", False)
                and hasattr(module, "embeddings") and hasattr(getattr(module, "encoder", None), "layer")
                and hasattr(module, "set_attn_implementation") and module not in found):
            found.append(module)
    return found


def _packed_encoder(state: PaddingFree, original, hidden_states, attention_mask=None, *args, **kwargs):
    import torch

    plain = (not state.active or args or attention_mask is None or attention_mask.dim() != 4
             or any(kwargs.get(name) is not None for name in ("cache", "past_key_values", "encoder_hidden_states")))
    if plain:  # off, no padding in the batch (no mask), or attention over more than the batch's own tokens
        return original(hidden_states, attention_mask, *args, **kwargs)
    batch, length, width = hidden_states.shape
    keys = attention_mask[:, 0, 0, :]  # an encoder's query rows all mask the same (padded) keys
    real = keys if keys.dtype == torch.bool else keys == 0  # sdpa's boolean mask, or eager's additive one
    real = real.reshape(-1)
    if state.buckets and hidden_states.device.type == "cpu" and (
            torch.is_autocast_enabled("cpu") or hidden_states.dtype in (torch.bfloat16, torch.float16)):
        real = bucketed(real)
    index = real.nonzero().squeeze(1)
    packed = hidden_states.reshape(batch * length, width).index_select(0, index).unsqueeze(0)
    output = original(packed, None, padding_free=(index, batch, length, attention_mask), **kwargs)
    output.last_hidden_state = packed.new_zeros(batch * length, width).index_copy(
        0, index, output.last_hidden_state[0]).view(batch, length, width)
    return output


def bucketed(real):
    """``real`` (one flag per position) with the first padded positions added until the count is a multiple
    of 2^(floor(log2 count) - 3), at least 16 (an eighth more positions at most; all of them if there are
    fewer): about 8 counts per doubling instead of one per batch. oneDNN, which computes a CPU's bf16 and
    fp16 matrix products, builds a kernel for each new shape it sees: bucketed, bf16 MiniLM-L6 steps ran
    1.15x faster over an epoch than with a new count at every step (paired, reports/bench/fast_paths_ab.json).
    The added positions are computed as the padded model computes them and dropped with the padding."""
    import torch

    count = real.sum()
    step = (2 ** (torch.log2(count.float()).floor() - 3)).clamp(min=16).long()
    extra = (count + step - 1) // step * step - count
    return real | ((~real).cumsum(0) <= extra)


def _route_attention(model) -> None:
    """Register ``_attention_on_packed`` around the model's attention implementation (transformers'
    sdpa or eager, or --fast-dropout's) and switch the model to it."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    original = model.config._attn_implementation
    if original.startswith("harness_padding_free_"):
        return  # already routed (a second PaddingFree on the same model)
    name = f"harness_padding_free_{original}"
    AttentionInterface.register(name, partial(_attention_on_packed, original))
    AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[original])  # the same masks
    model.set_attn_implementation(name)


def _attention_on_packed(original: str, module, query, key, value, attention_mask, *args, padding_free=None,
                         **kwargs):
    """Attention over packed tokens: (1, heads, tokens, head) in, back to the batch's padded layout for
    the model's own attention function, and packed again on the way out."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    attention = ALL_ATTENTION_FUNCTIONS[original]
    if padding_free is None:
        return attention(module, query, key, value, attention_mask, *args, **kwargs)
    index, batch, length, mask = padding_free

    def padded(packed):  # (1, heads, tokens, head) -> (batch, heads, length, head)
        heads, size = packed.shape[1], packed.shape[3]
        rows = packed.new_zeros(batch * length, heads, size).index_copy(0, index, packed[0].transpose(0, 1))
        return rows.view(batch, length, heads, size).transpose(1, 2)

    output, _ = attention(module, padded(query), padded(key), padded(value), mask, *args, **kwargs)
    # output: (batch, length, heads, head), as transformers' attention functions return it
    return output.reshape(batch * length, *output.shape[2:]).index_select(0, index).unsqueeze(0), None
