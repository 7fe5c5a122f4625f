"""LoRA-FA (Zhang et al. 2023, "LoRA-FA: Memory-efficient Low-rank Adaptation"): LoRA whose
down-projection A is frozen at its random initialisation; only the up-projection B trains, so
the trainable count halves and the optimizer keeps no state for A.

An example of a user's own method, kept outside the harness package. Use it from anywhere:

    harness run glue/sst2 --method examples/plugins/lora_fa.py:lora_fa --method-opt r=8
    harness run glue/sst2 --method examples/plugins/lora_fa.py:LORA_FA --method-opt r=4   # the full form

The plain function is the minimal form: it adds its modules and leaves requires_grad=True on
exactly what it trains; the harness keeps the task head trainable, saves only the trained tensors
and counts them. Frozen values are not saved, so A is drawn from a generator seeded by the
``a_seed`` option: reloading the run rebuilds the same A.
"""

import math

import torch
from torch import nn

from harness.methods.base import MethodSpec, Option


class FrozenALoRA(nn.Module):
    """y = W x + (alpha / r) * B (A x), with A fixed and B starting at zero."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, generator: torch.Generator):
        super().__init__()
        self.base, self.scaling = base, alpha / r
        a = torch.empty(r, base.in_features)
        nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=generator)
        self.register_buffer("lora_A", a.to(base.weight.dtype), persistent=False)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, dtype=base.weight.dtype))

    def forward(self, x):
        return self.base(x) + (x @ self.lora_A.T) @ self.lora_B.T * self.scaling


TARGETS = "query,value,q_proj,v_proj"  # the attention's query and value: BERT's names and Llama's


def lora_fa(model, r: int = 8, alpha: float = 8.0, targets: str = TARGETS, a_seed: int = 0):
    """LoRA-FA: frozen random A, trainable B, on the named linear layers (default the attention's query
    and value: BERT's names and Llama's)."""
    names = [t.strip() for t in str(targets).split(",")]
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    generator = torch.Generator().manual_seed(int(a_seed))
    wrapped = 0
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if child_name in names and isinstance(child, nn.Linear):
                setattr(module, child_name, FrozenALoRA(child, int(r), float(alpha), generator))
                wrapped += 1
    if not wrapped:
        raise ValueError(f"lora_fa: no linear layer named {names} in this model")
    return model


# The full form: declared options (with --lora-fa-<option> flags), defaults, and a merge.
def _merge(model):
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, FrozenALoRA):
                with torch.no_grad():
                    child.base.weight += child.lora_B @ child.lora_A * child.scaling
                setattr(module, name, child.base)
    return model


LORA_FA = MethodSpec(
    "lora_fa", "LoRA-FA: LoRA with the down-projection A frozen (only B trains)",
    apply=lambda model, options, heads: lora_fa(model, **options),
    options={"r": Option(int, 8, "rank", positive=True),
             "alpha": Option(float, 8.0, "scaling numerator (alpha / r)", positive=True),
             "targets": Option(str, TARGETS, "comma-separated names of the linear layers to adapt"),
             "a_seed": Option(int, 0, "seed of the frozen A (reloading rebuilds it)")},
    defaults={"learning_rate": 3e-3},
    trainable=lambda name: ".lora_B" in name,
    merge=_merge,
)
