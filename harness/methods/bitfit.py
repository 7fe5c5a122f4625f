"""BitFit (Ben Zaken et al. 2021): only the bias vectors of the backbone train."""

from harness.methods import METHODS, MethodSpec, train_only


def apply_bitfit(model, options, head_modules):
    return train_only(model, lambda name: name.endswith(".bias"), head_modules)


METHODS.add("bitfit", MethodSpec("bitfit", "BitFit: only bias vectors", apply_bitfit,
                                 defaults={"learning_rate": 1e-3}))
