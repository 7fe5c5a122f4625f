"""BitFit (Ben Zaken et al. 2021): only the bias vectors of the backbone train."""

from harness.methods.base import MethodSpec


def apply_bitfit(model, options, head_modules):
    return model  # nothing to add: the declared trainable parameters are the biases


BITFIT = MethodSpec("bitfit", "BitFit: only bias vectors", apply_bitfit, defaults={"learning_rate": 1e-3},
                    trainable=lambda name: name.endswith(".bias"), trains_backbone=True, token_wise=True)
