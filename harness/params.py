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
                          num_labels: int = 2, causal_lm: bool = False) -> ParamCounts:
    """Build the model on the meta device from its config (no download) and count. ``causal_lm``
    counts the language model (tied LM head, no task head) as in the paper's NLG tables."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from harness.methods import get_method
    from harness.models import build_config, get_model_spec, head_module_names

    method = get_method(method_name)
    options = method.resolve_options(method_options or {})
    config = build_config(get_model_spec(model_name), **({} if causal_lm else {"num_labels": num_labels}))
    with torch.device("meta"):
        auto = AutoModelForCausalLM if causal_lm else AutoModelForSequenceClassification
        model = auto.from_config(config)
        heads = head_module_names(model)
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        model = method.apply(model, options, heads)
    return count_parameters(model, heads)


def rounded_like(exact: int, printed: str) -> str:
    """``exact`` in millions with as many decimals as the printed figure ('0.35M' -> 2)."""
    digits = printed.rstrip("M")
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    return f"{exact / 1e6:.{decimals}f}M"


def paper_param_table() -> list[dict]:
    """Every parameter-count cell of the paper's Tables 2, 3, 13 and 14: the exact count from the
    model config, rounded as the paper rounds, beside the printed figure, with why they differ."""
    from harness.report.reference import PARAM_CELLS

    cache: dict = {}
    rows = []
    for cell in PARAM_CELLS:
        key = (cell.model, cell.method, tuple(sorted(cell.options.items())), cell.causal_lm)
        if key not in cache:
            cache[key] = count_without_weights(cell.model, cell.method, cell.options, causal_lm=cell.causal_lm)
        counts = cache[key]
        ours = rounded_like(counts.trainable, cell.printed)
        setting = ", ".join(f"{k}={v}" for k, v in cell.options.items())
        rows.append({
            "table": cell.table, "model": cell.model, "method": f"{cell.label}{cell.marker}",
            "harness method": cell.method + (f" ({setting})" if setting else ""),
            "exact": f"{counts.trainable:,}", "ours": ours, "paper": cell.printed,
            "agrees": "yes" if ours == cell.printed else "NO",
            "note": cell.note.format(exact=f"{counts.trainable:,}", n=cell.options.get("tokens", "")),
            "head": f"{counts.head:,}",
        })
    return rows


PAPER_TABLE_COLUMNS = ["table", "model", "method", "harness method", "exact", "ours", "paper", "agrees", "note"]
