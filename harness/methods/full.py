"""Full fine-tuning: every weight trains, and the whole model is saved."""

from harness.methods.base import MethodSpec


def apply_full(model, options, head_modules):
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model


def save_full(model, folder) -> None:
    try:
        model.save_pretrained(folder)
    except ValueError:
        # A model read from a GGUF file (SmolLM2) is dequantized on load, but transformers still refuses
        # save_pretrained; its tensors are plain fp32: save them and the config as from_pretrained reads them.
        from pathlib import Path

        from safetensors.torch import save_model

        Path(folder).mkdir(parents=True, exist_ok=True)
        model.config.save_pretrained(folder)
        save_model(model, str(Path(folder) / "model.safetensors"))


def load_full(base_model, folder, options, head_modules):
    return type(base_model).from_pretrained(folder)


FULL = MethodSpec("full", "full fine-tuning (all weights)", apply_full, defaults={"learning_rate": 2e-5},
                  trains_backbone=True, save=save_full, load=load_full, token_wise=True)
