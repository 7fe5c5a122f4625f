"""Faster training steps, patched onto the model's own modules for the training steps of an epoch.

``FrozenCasts`` (on by default: the same numbers). Under autocast each ``nn.Linear`` casts its fp32
weight and bias to bf16 (fp16 on a GPU) at every call, and autocast caches the cast only for tensors
that require grad. A LoRA-style run freezes nearly all linear layers, so the same casts of the same
frozen weights are recomputed at every training step. ``FrozenCasts`` casts each frozen ``nn.Linear``
once and hands the copy to that module's own forward while autocast runs in that dtype: autocast
would have produced the very same tensors, so losses and gradients are bit for bit those of plain
autocast (tests/test_train.py). Code that reads ``.weight`` itself (DoRA's norm, OFT's rotation,
merging, saving) still sees the fp32 weight. The copies cost no extra peak memory in training: a
step's backward keeps every layer's cast weight alive anyway.

The copies are refreshed in place at the start of each epoch (a method's ``before_training`` may have
rewritten frozen weights) and are used only for the training steps: evaluation and decoding, which
may merge adapters into the weights, are unchanged.

Both patch the modules' ``forward`` once, when the run is prepared, and ``in_use`` only switches them
on and off: under ``--compile`` a forward replaced at every epoch invalidated the compiled graph, and
each epoch compiled the model again (measured: 75 s for MiniLM-L6's second epoch, bf16).

``FastDropout`` (``--fast-dropout``, off by default: another random stream). torch's dropout draws
one random number per element (``bernoulli_``), a sixth of a MiniLM-L6 LoRA step on a CPU. Here
each 64-bit draw of torch's generator gives four 15-bit numbers, and an element is kept when its
number is below ``round((1 - p) * 32768)``: the keep probability is exact to 1/32768 (0.9 -> 0.89999)
and kept elements are scaled by the inverse of that probability, so the output's expectation is the
input's, as with torch's dropout. Seeds, resuming and data parallelism work as before (torch's
generator, saved in checkpoints), but a seed's masks are not torch's: its results differ from a run
without the flag as another seed's would. Under ``--compile`` the masks are those of eager mode (the
draws are traced into the graph). It covers the model's ``nn.Dropout`` modules and, for transformers
models on sdpa attention, the dropout on the attention probabilities (``install_fast_attention_dropout``).
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from functools import partial

from harness.training.padding_free import PaddingFree
from harness.training.switch import Switch

LOW_PRECISION = {"bf16": "bfloat16", "fp16": "float16"}


class FastPaths:
    """What a run turns on (``--cast-frozen-once``, ``--fast-dropout``, ``--padding-free``), applied by
    ``in_use`` in the training steps (``--padding-free`` also by ``evaluating``). One per model: the patches
    of a second one built on the same model replace the first's."""

    def __init__(self, model, mixed_precision: str, cast_frozen_once: bool, fast_dropout: bool,
                 padding_free: bool = False):
        self.casts = FrozenCasts(model, mixed_precision if cast_frozen_once else "no")
        self.dropout = FastDropout(model if fast_dropout else None)
        # After FastDropout: packed attention calls the attention function the model has by then.
        self.padding_free = PaddingFree(model if padding_free else None)

    PARTS = ("casts", "dropout", "padding_free")

    @contextmanager
    def in_use(self, parts=PARTS):
        """Switch on these parts (all of them: the training steps); the others stay as they are."""
        with ExitStack() as stack:
            for part in parts:
                stack.enter_context(getattr(self, part).in_use())
            yield

    def evaluating(self):
        """Evaluation's forward passes: packed tokens give the padded model's numbers (no dropout to change)."""
        return self.in_use(("padding_free",))


class FrozenCasts(Switch):
    """One low-precision copy of each frozen ``nn.Linear``'s weight and bias, for one model."""

    def __init__(self, model, mixed_precision: str):
        import torch

        self.dtype = getattr(torch, LOW_PRECISION[mixed_precision]) if mixed_precision in LOW_PRECISION else None
        self.copies: dict = {}  # module -> (weight, bias) in self.dtype
        if self.dtype is None:
            return
        for module in model.modules():
            # Exactly nn.Linear: subclasses (quantized layers, adapters' own linears) compute differently.
            if type(module) is torch.nn.Linear and module.weight.dtype == torch.float32 and not any(
                    parameter.requires_grad for parameter in module.parameters()):
                self.copies[module] = (torch.empty_like(module.weight, dtype=self.dtype),
                                       None if module.bias is None else torch.empty_like(module.bias, dtype=self.dtype))
        for module, (weight, bias) in self.copies.items():
            module.forward = partial(_linear_from_copy, self, module, weight, bias)

    @contextmanager
    def in_use(self):
        """The training steps of one epoch: each frozen linear layer's forward reads its copy."""
        import torch

        with torch.no_grad():
            for module, (weight, bias) in self.copies.items():
                weight.copy_(module.weight)
                if bias is not None:
                    bias.copy_(module.bias)
        with super().in_use():
            yield


def _linear_from_copy(casts: FrozenCasts, module, weight, bias, input):
    import torch
    import torch.nn.functional as F

    device = input.device.type
    if casts.active and torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == casts.dtype:
        return F.linear(input, weight, bias)
    return F.linear(input, module.weight, module.bias)  # nn.Linear's own forward


class FastDropout(Switch):
    """The model's ``nn.Dropout`` modules, computing their masks with ``fast_dropout`` in ``in_use``."""

    def __init__(self, model):
        import torch

        # Exactly nn.Dropout (not in place): other dropouts (alpha, 2-D, a subclass) keep their own.
        self.modules = [] if model is None else [
            module for module in model.modules()
            if type(module) is torch.nn.Dropout and module.p > 0 and not module.inplace]
        for module in self.modules:
            module.forward = partial(_dropout_module, self, module)
        self.attention = None if model is None else install_fast_attention_dropout(self, model)


def _dropout_module(dropout: FastDropout, module, input):
    import torch.nn.functional as F

    if dropout.active:
        return fast_dropout(input, module.p) if module.training else input
    return F.dropout(input, module.p, module.training, module.inplace)  # nn.Dropout's own forward


def install_fast_attention_dropout(dropout: "FastDropout", model):
    """Route a transformers model's attention through ``_attention_with_fast_dropout``: dropout on the
    attention probabilities with ``fast_dropout``'s masks. Returns the name of the model's own attention
    implementation, or None for models that are not transformers' or do not use sdpa (left unchanged).

    The probabilities' dropout happens inside the attention function (``scaled_dot_product_attention``
    with ``dropout_p``: on a CPU, torch's math kernel with one ``bernoulli_`` draw per element and a
    "safe" softmax). A function registered in transformers' ``AttentionInterface`` takes the model's
    attention calls: in the training steps (``in_use``) of a plain multi-head attention (no GQA, no
    causal flag without a mask, no position bias, softcap or sliding window) it computes the attention
    itself, as transformers' eager attention does, with ``fast_dropout`` on the probabilities; every
    other call goes to the model's own implementation unchanged."""
    config = getattr(model, "config", None)
    original = getattr(config, "_attn_implementation", None)
    if original != "sdpa" or not hasattr(model, "set_attn_implementation"):
        return None
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    # sdpa's masks (boolean) are what the function reads.
    name = f"harness_fast_dropout_{original}"
    AttentionInterface.register(name, _attention_with_fast_dropout)
    AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[original])
    for module in model.modules():
        if getattr(getattr(module, "config", None), "_attn_implementation", None) == original:
            module._harness_attention = (dropout, original)
    model.set_attn_implementation(name)
    return original


_SIMPLE_ATTENTION_KWARGS = {"position_ids", "output_attentions", "is_causal"}


def _attention_with_fast_dropout(module, query, key, value, attention_mask, dropout: float = 0.0,
                                 scaling: float | None = None, **kwargs):
    import torch
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    state, original = module._harness_attention
    causal_without_mask = attention_mask is None and kwargs.get("is_causal", getattr(module, "is_causal", False))
    if not (state.active and dropout > 0 and query.shape[1] == key.shape[1] and not causal_without_mask
            and all(given is None or name in _SIMPLE_ATTENTION_KWARGS for name, given in kwargs.items())):
        return ALL_ATTENTION_FUNCTIONS[original](module, query, key, value, attention_mask, dropout=dropout,
                                                scaling=scaling, **kwargs)
    scores = torch.matmul(query, key.transpose(2, 3)) * (query.shape[-1] ** -0.5 if scaling is None else scaling)
    if attention_mask is not None:  # sdpa's: boolean (True: attend) or additive
        scores = (scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min) if attention_mask.dtype == torch.bool
                  else scores + attention_mask)
    probabilities = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    output = torch.matmul(fast_dropout(probabilities, dropout), value)
    return output.transpose(1, 2).contiguous(), None


def fast_dropout(x, p: float):
    """Dropout whose mask takes one draw of torch's generator per four elements (see the module doc)."""
    import torch

    keep = round((1 - p) * 32768)  # of the 32768 values a 15-bit number takes
    if keep == 0:
        return x * 0
    count = x.numel()
    # 63 random bits each. aten's out-of-place ``random`` rather than ``Tensor.random_``: the same numbers,
    # and dynamo traces it (``random_`` broke the graph inside peft's forward hooks and sent the whole
    # forward back to eager); under --compile (inductor's fallback_random) it draws from torch's generator.
    draws = torch.ops.aten.random.default(torch.empty((count + 3) // 4, dtype=torch.int64, device=x.device))
    numbers = draws.view(torch.int16)[:count].view(x.shape).bitwise_and(0x7FFF)
    return (x * (numbers < keep)).mul_(32768 / keep)  # a boolean mask: 1 byte per element kept for backward
