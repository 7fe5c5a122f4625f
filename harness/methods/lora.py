"""LoRA (Hu et al. 2021). Defaults are the paper's RoBERTa setting: r=8, alpha=8 on the query and
value projections. Through peft, with target modules defaulting to peft's per-architecture choice
(q,v for BERT/RoBERTa/DeBERTa/Llama; the whole fused c_attn for GPT-2).

`--lora-fused-qv` gives GPT-2 the paper's own placement instead: the authors' loralib
MergedLinear(enable_lora=[True, False, True]) adapts only the q and v thirds of c_attn, which peft
cannot express. At equal r both placements have the same count (4 x d x r per block), but peft's
is one low-rank update of the whole fused matrix, so it moves k as well and couples q, k and v.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from harness.errors import HarnessError
from harness.methods.arch import blocks
from harness.methods.base import MethodSpec, Option, comma_list, train_only
from harness.methods.peft_any import peft_task_type


def boolean(value) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("1", "true", "yes", "on"):
        return True
    if str(value).lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


class FusedQVLoRA(nn.Module):
    """GPT-2's fused q,k,v projection (a Conv1D: x @ W + b, W of shape d x 3d) with low-rank
    updates on the q and v outputs only; B starts at zero so training starts from the base model."""

    def __init__(self, base: nn.Module, r: int, alpha: float, dropout: float):
        super().__init__()
        d = base.weight.shape[0]
        self.base = base
        self.d = d
        self.scaling = alpha / r
        kwargs = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(2, r, d, **kwargs))  # [q, v]
        self.lora_B = nn.Parameter(torch.zeros(2, d, r, **kwargs))
        if self.lora_A.device.type != "meta":
            for a in self.lora_A.data:  # loralib's initialisation of A
                nn.init.kaiming_uniform_(a, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False

    def delta(self) -> torch.Tensor:
        """The update of W (d x 3d) as a dense matrix: zeros in the k third."""
        q, v = (self.lora_B[i] @ self.lora_A[i] * self.scaling for i in range(2))  # each d_out x d_in
        return torch.cat([q.T, torch.zeros_like(q), v.T], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.merged:
            return out
        h = self.dropout(x)
        q, v = ((h @ self.lora_A[i].T) @ self.lora_B[i].T * self.scaling for i in range(2))
        return out + torch.cat([q, torch.zeros_like(q), v], dim=-1)

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into W: no extra work at inference (the paper's zero-latency claim)."""
        if not self.merged:
            self.base.weight += self.delta().to(self.base.weight.dtype)
            self.merged = True


def merge_fused_qv(model) -> None:
    for module in model.modules():
        if isinstance(module, FusedQVLoRA):
            module.merge()


def apply_lora(model, options, head_modules):
    if options["fused_qv"]:
        if model.config.model_type != "gpt2":
            raise HarnessError("--lora-fused-qv is for GPT-2's fused c_attn; other models have separate q and v "
                               "(use --lora-target-modules).")
        for block in blocks(model):
            block.attn.c_attn = FusedQVLoRA(block.attn.c_attn, options["r"], options["alpha"], options["dropout"])
        return train_only(model, lambda name: ".lora_" in name, head_modules)

    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        task_type=peft_task_type(model),
        r=options["r"],
        lora_alpha=options["alpha"],
        lora_dropout=options["dropout"],
        target_modules=options["target_modules"],
        bias="none",
        # The head (and BERT's pooler) is new for the task: it trains and is saved with the adapter.
        modules_to_save=head_modules or None,
    )
    return get_peft_model(model, config)


def merge_lora(model):
    """Fold every update into its weight: peft's merge for peft LoRA, FusedQVLoRA.merge for GPT-2's."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    merge_fused_qv(model)
    return model


LORA = MethodSpec(
    "lora", "LoRA (paper default r=8, alpha=8, query+value)", apply_lora,
    options={
        "r": Option(int, 8, "rank of the update", positive=True),
        "alpha": Option(float, 8.0, "scaling numerator: the update is scaled by alpha/r", positive=True),
        "dropout": Option(float, 0.0, "dropout on the LoRA input"),
        "target_modules": Option(comma_list, None, "comma-separated module names (default: peft's per-architecture q,v)"),
        "fused_qv": Option(boolean, False, "GPT-2: the paper's placement, q and v inside the fused c_attn (not peft's whole c_attn)"),
    },
    defaults={"learning_rate": 5e-4},
    merge=merge_lora,
    token_wise=True,
)
