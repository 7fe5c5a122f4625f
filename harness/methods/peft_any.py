"""Any method peft ships, by name (`peft:IA3`, `peft:LORA`, `peft:DORA`, ...) or from a saved
`adapter_config.json`. Settings: `--method-option key=value` style keys via method_options/YAML.
This is how a new peft method is checked against the paper's LoRA on the same loop."""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import HarnessError, unknown_choice
from harness.methods.base import MethodSpec

# Names accepted after 'peft:' besides peft's PeftType values: DoRA is LoRA with use_dora.
ALIASES = {"DORA": ("LORA", {"use_dora": True})}


def peft_task_type(model):
    """peft's task type for a transformers model: causal LM or sequence classification."""
    from peft import TaskType

    name = type(model).__name__
    return TaskType.CAUSAL_LM if name.endswith(("ForCausalLM", "LMHeadModel")) else TaskType.SEQ_CLS


def peft_types() -> list[str]:
    """Every tuner the installed peft offers, as accepted after 'peft:' (aliases included)."""
    return [*_peft_types(), *ALIASES]


def _peft_types() -> list[str]:
    from peft import PeftType

    return [t.value for t in PeftType]


def peft_method(name: str) -> MethodSpec:
    if name.endswith(".json"):
        path = Path(name)
        if not path.is_file():
            raise HarnessError(f"peft config '{name}' does not exist.")
        try:
            base = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise HarnessError(f"{name}:{err.lineno}: invalid JSON ({err.msg}).") from None
        peft_type, fixed = base.pop("peft_type", None), base
        if peft_type is None:
            raise HarnessError(f"{name}: no 'peft_type' key; is this a peft adapter_config.json?")
    else:
        peft_type = name.removeprefix("peft:").upper()
        peft_type, fixed = ALIASES.get(peft_type, (peft_type, {}))
        if peft_type not in _peft_types():
            raise unknown_choice("peft method", name.removeprefix("peft:"), [*_peft_types(), *ALIASES])

    def apply(model, options, head_modules):
        from peft import PEFT_TYPE_TO_CONFIG_MAPPING, get_peft_model

        config_class = PEFT_TYPE_TO_CONFIG_MAPPING[peft_type]
        settings = {k: v for k, v in {**fixed, **options}.items()
                    if k not in ("task_type", "base_model_name_or_path", "revision", "modules_to_save")}
        try:
            config = config_class(task_type=peft_task_type(model), modules_to_save=head_modules or None, **settings)
        except TypeError as err:
            raise HarnessError(f"peft {peft_type}: {err}") from None
        return get_peft_model(model, config)

    # Free-form options: peft validates them when the config is built.
    return MethodSpec(name, f"peft {peft_type}", apply, defaults={"learning_rate": 1e-3}, free_options=True)
