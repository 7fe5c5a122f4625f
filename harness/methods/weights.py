"""Saving and loading what a run trained (one copy of the code, used by runs and checkpoints).

By default a method's trained tensors, head included, go to ``trainable.safetensors`` with the
method's name and settings beside them in ``method.json``; a peft model saves its adapter the peft
way (``adapter_model.safetensors`` + ``adapter_config.json``). A spec's own ``save``/``load``
(full fine-tuning saves the whole model) takes precedence.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import HarnessError
from harness.models.heads import in_head

WEIGHTS_FILE = "trainable.safetensors"
PEFT_FILE = "adapter_model.safetensors"


def trainable_tensors(model) -> dict:
    return {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}


def save_tensors(model, path: Path) -> None:
    from safetensors.torch import save_file

    save_file(trainable_tensors(model), path)


def load_tensors(model, path: Path, where: str) -> None:
    """Load tensors saved by ``save_tensors`` into a model prepared the same way."""
    from safetensors.torch import load_file

    tensors = load_file(path)
    unknown = sorted(set(tensors) - {n for n, _ in model.named_parameters()})
    if unknown:
        raise HarnessError(f"{where}: weights for parameters this model does not have, e.g. {unknown[0]}; "
                           f"was it prepared with the same method and options?")
    model.load_state_dict(tensors, strict=False)


def save_weights(model, spec, options: dict, folder) -> None:
    """Save what a run trained into ``folder`` (see the module docstring)."""
    folder = Path(folder)
    if spec.save is not None:
        spec.save(model, folder)
        return
    if hasattr(model, "peft_config"):
        model.save_pretrained(folder)
        return
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors(model, folder / WEIGHTS_FILE)
    (folder / "method.json").write_text(json.dumps({"method": spec.name, "options": options}, indent=2) + "\n")


def load_trained(base_model, spec, options: dict, folder, head_modules: list[str]):
    """``base_model`` (pretrained, untouched) with a run's saved weights: the inverse of save_weights."""
    folder = Path(folder)
    if spec.load is not None:
        return spec.load(base_model, folder, options, head_modules)
    if (folder / "adapter_config.json").is_file():
        from peft import PeftModel

        return PeftModel.from_pretrained(base_model, folder)
    model = spec.prepare(base_model, spec.resolve_options(options), head_modules)
    load_tensors(model, folder / WEIGHTS_FILE, str(folder))
    return model


def init_from_run(model, folder, head_modules: list[str]) -> int:
    """Copy a finished run's method weights into ``model`` (prepared by the same method), leaving
    the task head as initialised: the head of another task may not even have the same shape.
    Returns how many tensors were loaded."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if (folder / "weights").is_dir():
        folder = folder / "weights"
    found = next((f for f in (folder / PEFT_FILE, folder / WEIGHTS_FILE) if f.is_file()), None)
    if found is None:
        raise HarnessError(f"--init-from {folder}: no {PEFT_FILE} or {WEIGHTS_FILE} there; point it at "
                           f"a finished run of a peft or adapter method.")
    tensors = {n: t for n, t in load_file(found).items() if not in_head(n, head_modules)
               and "modules_to_save" not in n}
    if found.name == PEFT_FILE:
        from peft import get_peft_model_state_dict, set_peft_model_state_dict

        # peft loads the head (its modules_to_save) with the adapter and needs its tensors: this model's own,
        # so that the head stays as initialised.
        own = {n: t for n, t in get_peft_model_state_dict(model).items() if n not in tensors}
        result = set_peft_model_state_dict(model, {**own, **tensors})
        unexpected = sorted(getattr(result, "unexpected_keys", None) or [])
        if unexpected:
            raise HarnessError(f"--init-from {folder}: the run used another method or settings ({unexpected[0]}).")
    else:
        missing = sorted(set(tensors) - {n for n, _ in model.named_parameters()})
        if missing:
            raise HarnessError(f"--init-from {folder}: the run used another method or settings ({missing[0]}).")
        model.load_state_dict(tensors, strict=False)
    return len(tensors)
