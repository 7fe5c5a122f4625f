"""Parameter counts in the paper's convention: the task head is excluded and reported apart."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from harness.methods import get_method
from harness.models import build_config, get_model_spec
from harness.models.heads import head_module_names, in_head


@dataclass
class ParamCounts:
    trainable: int  # trainable parameters outside the head: the paper's '# Trainable'
    head: int  # parameters of the task head (trained by every method, excluded by the paper)
    total: int  # every distinct parameter of the model being trained (backbone + method + head)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def count_parameters(model, head_modules: list[str]) -> ParamCounts:
    trainable = head = total = 0
    for name, parameter in model.named_parameters():
        if ".original_module." in name:
            continue  # peft keeps a frozen copy of each module it trains in full; count it once
        n = parameter.numel()
        total += n
        if in_head(name, head_modules):
            head += n
        elif parameter.requires_grad:
            trainable += n
    return ParamCounts(trainable, head, total)


def count_without_weights(model_name: str, method_name: str, method_options: dict | None = None,
                          num_labels: int = 2, causal_lm: bool = False) -> ParamCounts:
    """Build the model on the meta device from its config (no download) and count. ``causal_lm``
    counts the language model (tied LM head, no task head) as in the paper's NLG tables."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    method = get_method(method_name)
    options = method.resolve_options(method_options or {})
    config = build_config(get_model_spec(model_name), **({} if causal_lm else {"num_labels": num_labels}))
    with torch.device("meta"):
        auto = AutoModelForCausalLM if causal_lm else AutoModelForSequenceClassification
        model = auto.from_config(config)
        heads = head_module_names(model)
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        model = method.prepare(model, options, heads)
    return count_parameters(model, heads)
