"""The four bottleneck-adapter methods of the paper's tables, as method specs."""

from harness.methods.adapters import VARIANTS, AdapterConfig, add_adapters
from harness.methods.base import MethodSpec, Option


def _spec(name: str) -> MethodSpec:
    variant = VARIANTS[name]

    def apply(model, options, head_modules):
        add_adapters(model, AdapterConfig(**{k: v for k, v in variant.items() if k != "description"} | options))
        return model

    options = {
        "r": Option(int, variant["r"], "bottleneck size", positive=True),
        "activation": Option(str, "relu", "bottleneck activation: relu, gelu, tanh or silu"),
    }
    if "skip_lowest" in variant:
        options["skip_lowest"] = Option(int, variant["skip_lowest"], "blocks at the bottom left without adapters")
    return MethodSpec(name, variant["description"], apply, options=options, defaults={"learning_rate": 1e-3},
                      trainable=lambda parameter: ".adapter." in parameter, token_wise=True)


ADAPTER_H, ADAPTER_L, ADAPTER_P, ADAPTER_D = (_spec(n) for n in ("adapter_h", "adapter_l", "adapter_p", "adapter_d"))
