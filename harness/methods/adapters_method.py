"""The four bottleneck-adapter methods of the paper's tables, as registry entries."""

from harness.methods import METHODS, MethodSpec, Option, train_only
from harness.methods.adapters import VARIANTS, AdapterConfig, add_adapters


def _apply(variant: dict):
    def apply(model, options, head_modules):
        config = AdapterConfig(**{k: v for k, v in variant.items() if k != "description"} | options)
        add_adapters(model, config)
        return train_only(model, lambda name: ".adapter." in name, head_modules)

    return apply


for _name, _variant in VARIANTS.items():
    _options = {
        "r": Option(int, _variant["r"], "bottleneck size", positive=True),
        "activation": Option(str, "relu", "bottleneck activation: relu, gelu, tanh or silu"),
    }
    if "skip_lowest" in _variant:
        _options["skip_lowest"] = Option(int, _variant["skip_lowest"], "blocks at the bottom left without adapters")
    METHODS.add(_name, MethodSpec(_name, _variant["description"], _apply(_variant), options=_options,
                                  defaults={"learning_rate": 1e-3}))
