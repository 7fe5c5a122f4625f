"""The method registry: how a pretrained model is made trainable for a task.

A method declares its options (each becomes a `--<method>-<option>` flag and a key under
`method_options` in YAML) and the training defaults it needs; ``apply`` turns a loaded model into
the model to train, with exactly the intended parameters requiring gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError, closest
from harness.registry import Registry


@dataclass
class Option:
    type: Callable[[str], Any]
    default: Any
    help: str
    positive: bool = False  # numbers that must be > 0 (ranks, scales)


@dataclass
class MethodSpec:
    name: str
    description: str
    apply: Callable[..., Any]  # (model, options: dict, head_modules: list[str]) -> model
    options: dict[str, Option] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)  # training hyperparameters, e.g. learning_rate

    def resolve_options(self, given: dict[str, Any]) -> dict[str, Any]:
        """The method's full option dict: defaults overlaid with ``given``, validated."""
        resolved = {}
        for key in given:
            if key not in self.options:
                guess = closest(key, self.options)
                valid = ", ".join(self.options) or "none"
                raise HarnessError(
                    f"method '{self.name}' has no option '{key}'.{f' Did you mean {guess!r}?' if guess else ''} "
                    f"Its options: {valid}."
                )
        for key, option in self.options.items():
            value = given.get(key, option.default)
            if isinstance(value, str) and option.type is not str:
                try:
                    value = option.type(value)
                except (TypeError, ValueError):
                    raise HarnessError(f"--{self.name}-{key.replace('_', '-')}: '{value}' is not a valid value.") from None
            if option.positive and value is not None and not value > 0:
                raise HarnessError(f"--{self.name}-{key.replace('_', '-')} must be a positive number, got {value}.")
            resolved[key] = value
        return resolved


METHODS: Registry[MethodSpec] = Registry("method")


def comma_list(value: str | list[str] | None) -> list[str] | None:
    if value is None or isinstance(value, list):
        return value
    return [item.strip() for item in value.split(",") if item.strip()] or None


def get_method(name: str) -> MethodSpec:
    if name.startswith("peft:") or name.endswith(".json"):
        from harness.methods.peft_any import peft_method

        return peft_method(name)
    return METHODS.get(name)


def peft_task_type(model):
    """peft's task type for a transformers model: causal LM or sequence classification."""
    from peft import TaskType

    name = type(model).__name__
    return TaskType.CAUSAL_LM if name.endswith(("ForCausalLM", "LMHeadModel")) else TaskType.SEQ_CLS


def train_only(model, trains, head_modules: list[str]):
    """Freeze everything, then unfreeze the parameters whose name ``trains(name)`` accepts and the
    task head (every method trains the head; the paper leaves it out of its counts)."""
    from harness.params import in_head

    for name, parameter in model.named_parameters():
        parameter.requires_grad_(bool(trains(name)) or in_head(name, head_modules))
    return model


WEIGHTS_FILE = "trainable.safetensors"


def save_weights(model, method: str, options: dict, folder) -> None:
    """Save what a run trained: the full model (full), the peft adapter (peft methods), or else only
    the trainable tensors, head included, as safetensors with the method's settings beside them."""
    import json
    from pathlib import Path

    from safetensors.torch import save_file

    folder = Path(folder)
    if method == "full" or hasattr(model, "peft_config"):
        model.save_pretrained(folder)
        return
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
    save_file(tensors, folder / WEIGHTS_FILE)
    (folder / "method.json").write_text(json.dumps({"method": method, "options": options}, indent=2) + "\n")


def load_weights(model, folder) -> None:
    """Load ``save_weights``'s trainable tensors into a model that the same method has prepared."""
    from pathlib import Path

    from safetensors.torch import load_file

    tensors = load_file(Path(folder) / WEIGHTS_FILE)
    names = {n for n, _ in model.named_parameters()}
    unknown = sorted(set(tensors) - names)
    if unknown:
        raise HarnessError(f"{folder}: weights for parameters this model does not have, e.g. {unknown[0]}; "
                           f"was it prepared with the same method and options?")
    model.load_state_dict(tensors, strict=False)


def init_from_run(model, folder, head_modules: list[str]) -> int:
    """Copy a finished run's method weights into ``model`` (prepared by the same method), leaving
    the task head as initialised: the head of another task may not even have the same shape.
    Returns how many tensors were loaded."""
    from pathlib import Path

    from safetensors.torch import load_file

    from harness.params import in_head

    folder = Path(folder)
    if (folder / "weights").is_dir():
        folder = folder / "weights"
    files = [folder / "adapter_model.safetensors", folder / WEIGHTS_FILE]
    found = next((f for f in files if f.is_file()), None)
    if found is None:
        raise HarnessError(f"--init-from {folder}: no adapter_model.safetensors or {WEIGHTS_FILE} there; point it at "
                           f"a finished run of a peft or adapter method.")
    tensors = {n: t for n, t in load_file(found).items() if not in_head(n, head_modules)
               and "modules_to_save" not in n}
    if found.name == "adapter_model.safetensors":
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, tensors)
    else:
        missing = sorted(set(tensors) - {n for n, _ in model.named_parameters()})
        if missing:
            raise HarnessError(f"--init-from {folder}: the run used another method or settings ({missing[0]}).")
        model.load_state_dict(tensors, strict=False)
    return len(tensors)


def load_trained(base_model, method: str, options: dict, folder):
    """``base_model`` (pretrained, untouched) with a run's saved weights: the inverse of save_weights."""
    from pathlib import Path

    folder = Path(folder)
    if (folder / "adapter_config.json").is_file():
        from peft import PeftModel

        return PeftModel.from_pretrained(base_model, folder)
    if method == "full":
        return type(base_model).from_pretrained(folder)
    from harness.models import head_module_names

    model = get_method(method).apply(base_model, get_method(method).resolve_options(options),
                                     head_module_names(base_model))
    load_weights(model, folder)
    return model


from harness.methods import adapters_method, bitfit, full, fttop, lora, prefix  # noqa: E402,F401  (registration)
