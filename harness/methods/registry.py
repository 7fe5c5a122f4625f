"""The method registry: built-in methods by name (imported on first use), any peft tuner as
``peft:<TYPE>`` or a saved ``adapter_config.json``, and plugins: ``path/to/file.py:NAME``,
``package.module:NAME`` or a name published under the entry-point group ``harness.methods``."""

from __future__ import annotations

from harness.methods.base import MethodSpec, as_spec
from harness.registry import Registry, is_import_ref, load_object

METHODS: Registry = Registry(
    "method", group="harness.methods",
    hint="Also: peft:<TYPE> (any peft tuner, see `harness methods`), a peft adapter_config.json, or your own "
         "method as path/to/file.py:NAME or package.module:NAME.")

for _name, _ref in [
    ("full", "harness.methods.full:FULL"), ("bitfit", "harness.methods.bitfit:BITFIT"),
    ("fttop2", "harness.methods.fttop:FTTOP2"), ("lora", "harness.methods.lora:LORA"),
    ("adapter_h", "harness.methods.adapters_method:ADAPTER_H"), ("adapter_l", "harness.methods.adapters_method:ADAPTER_L"),
    ("adapter_p", "harness.methods.adapters_method:ADAPTER_P"), ("adapter_d", "harness.methods.adapters_method:ADAPTER_D"),
    ("prefix_embed", "harness.methods.prefix:PREFIX_EMBED"), ("prefix_layer", "harness.methods.prefix:PREFIX_LAYER"),
    ("head", "harness.methods.head:HEAD"),
]:
    METHODS.add_lazy(_name, _ref)


def get_method(name: str) -> MethodSpec:
    """The spec of a method name as a run config gives it (see the module docstring)."""
    if name.startswith("peft:") or name.endswith(".json"):
        from harness.methods.peft_any import peft_method

        return peft_method(name)
    if name not in METHODS and is_import_ref(name):
        return as_spec(name, load_object(name, "method"))
    return as_spec(name, METHODS.get(name))


def method_specs() -> list[tuple[str, MethodSpec]]:
    """Every registered method (built in and installed plugins) as a spec, by name."""
    return [(name, get_method(name)) for name in METHODS.names()]
