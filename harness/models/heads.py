"""What the task head of a model is: the modules outside the pretrained backbone.

Every method trains the head (it is new for the task); the paper leaves it out of its parameter
counts, so counting and saving need to know it.
"""

from __future__ import annotations

PEFT_PREFIX = "base_model.model."
PROMPT_PREFIX = "base_model."  # peft's prompt-learning models hold the transformers model directly


def head_module_names(model) -> list[str]:
    """Modules that form the task head: everything outside the pretrained backbone, plus the
    backbone's pooler where the head uses it (BERT)."""
    prefix = model.base_model_prefix
    backbone = getattr(model, prefix, None)
    # A language-model head tied to the input embeddings (GPT-2) is part of the backbone.
    shared = {id(p) for p in backbone.parameters()} if backbone is not None else set()
    names = [name for name, module in model.named_children()
             if name != prefix and any(id(p) not in shared for p in module.parameters())]
    if backbone is not None and getattr(backbone, "pooler", None) is not None:
        names.append(f"{prefix}.pooler")
    return names


def in_head(name: str, head_modules: list[str]) -> bool:
    """Whether a parameter name (peft-wrapped or not) belongs to the task head."""
    name = name.removeprefix(PEFT_PREFIX) if name.startswith(PEFT_PREFIX) else name.removeprefix(PROMPT_PREFIX)
    return any(name == head or name.startswith(head + ".") for head in head_modules)
