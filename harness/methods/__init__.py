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
    return METHODS.get(name)


from harness.methods import full, lora  # noqa: E402,F401  (register the built-in methods)
