"""Full fine-tuning: every weight trains."""

from harness.methods import METHODS, MethodSpec


def apply_full(model, options, head_modules):
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model


METHODS.add("full", MethodSpec("full", "full fine-tuning (all weights)", apply_full, defaults={"learning_rate": 2e-5}))
