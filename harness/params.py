"""Parameter counts in the paper's convention: the task head is excluded and reported apart."""

from __future__ import annotations

from dataclasses import asdict, dataclass

PEFT_PREFIX = "base_model.model."


@dataclass
class ParamCounts:
    trainable: int  # trainable parameters outside the head: the paper's '# Trainable'
    head: int  # parameters of the task head (trained by every method, excluded by the paper)
    total: int  # every distinct parameter of the model being trained (backbone + method + head)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def in_head(name: str, head_modules: list[str]) -> bool:
    name = name.removeprefix(PEFT_PREFIX)
    return any(name == head or name.startswith(head + ".") for head in head_modules)


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
                          num_labels: int = 2) -> ParamCounts:
    """Build the model on the meta device from its config (no download) and count."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from harness.methods import get_method
    from harness.models import build_config, get_model_spec, head_module_names

    method = get_method(method_name)
    options = method.resolve_options(method_options or {})
    config = build_config(get_model_spec(model_name), num_labels=num_labels)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
        heads = head_module_names(model)
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        model = method.apply(model, options, heads)
    return count_parameters(model, heads)
