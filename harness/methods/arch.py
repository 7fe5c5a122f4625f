"""Per-architecture module names, the way peft keeps its per-model constants: where the transformer
blocks are and which projections close each block's attention and feed-forward sublayers."""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import HarnessError


@dataclass(frozen=True)
class Arch:
    blocks: str  # path from the backbone to the list of transformer blocks
    attn_out: str  # inside a block: the attention output projection (before the residual add)
    ffn_out: str  # inside a block: the feed-forward output projection (before the residual add)


_ENCODER = Arch("encoder.layer", "attention.output.dense", "output.dense")
ARCHITECTURES = {
    "bert": _ENCODER,
    "roberta": _ENCODER,
    "deberta-v2": _ENCODER,
    "gpt2": Arch("h", "attn.c_proj", "mlp.c_proj"),
    "llama": Arch("layers", "self_attn.o_proj", "mlp.down_proj"),
}


def arch_of(model) -> Arch:
    model_type = model.config.model_type
    if model_type not in ARCHITECTURES:
        raise HarnessError(
            f"this method needs to know the block layout of '{model_type}' models; supported: "
            f"{', '.join(sorted(ARCHITECTURES))} (add one in harness/methods/arch.py)."
        )
    return ARCHITECTURES[model_type]


def backbone(model):
    return getattr(model, model.base_model_prefix)


def blocks(model) -> list:
    """The transformer blocks of a model, bottom to top."""
    module = backbone(model)
    for name in arch_of(model).blocks.split("."):
        module = getattr(module, name)
    return list(module)

