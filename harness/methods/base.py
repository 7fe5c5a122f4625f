"""The method contract: how a pretrained model is made trainable for a task, and how what it
trained is saved and loaded. Every method, built in or a user's plugin, is a ``MethodSpec``.

The minimal plugin is a plain function ``my_method(model, **options) -> model`` that adds its
modules and leaves ``requires_grad=True`` on exactly the parameters it trains; the harness wraps it
in a spec (``from_function``), keeps the task head trainable, saves only the trained tensors and
counts them in the paper's convention. The full form is a ``MethodSpec`` object: declared options
with defaults and help, which parameters train, save/load and an optional merge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError, closest
from harness.models.heads import in_head


@dataclass
class Option:
    type: Callable[[str], Any]
    default: Any
    help: str
    positive: bool = False  # numbers that must be > 0 (ranks, scales)


Apply = Callable[[Any, dict, list], Any]  # (model, options, head module names) -> model


@dataclass
class MethodSpec:
    name: str
    description: str
    apply: Apply  # adds the method's modules; sets requires_grad itself when ``trainable`` is None
    options: dict[str, Option] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)  # training hyperparameters, e.g. learning_rate
    # Which parameters train, by name (e.g. lambda n: n.endswith('.bias')); the head always trains.
    trainable: Callable[[str], bool] | None = None
    trains_backbone: bool = False  # pretrained weights train (full, BitFit, FT-Top2): no frozen 4-bit backbone
    head_only: bool = False  # only the task head trains, by design (linear probing): no warning that it does
    # Its modules read and write each token's hidden state on its own (no position within a sequence, no
    # attention cache): --padding-free may pack a batch's real tokens into one row (tests/test_padding_free.py).
    token_wise: bool = False
    save: Callable[[Any, Any], None] | None = None  # (model, folder); default: harness.methods.weights
    load: Callable[..., Any] | None = None  # (base_model, folder, options, head_modules) -> model
    merge: Callable[[Any], Any] | None = None  # fold the update into the weights (no inference latency)
    free_options: bool = False  # options are checked by the method itself (peft configs, plain functions)
    # Training hooks, for methods that need more than AdamW over their parameters (all take the
    # unwrapped model and the resolved options):
    optimizer: Callable[..., Any] | None = None  # (model, lr, weight_decay, options): its own groups (LoRA+)
    before_training: Callable[..., None] | None = None  # (model, batches, total_steps, options): EVA, AdaLoRA
    after_step: Callable[..., None] | None = None  # (model, step, options): after each optimizer step (AdaLoRA)

    def resolve_options(self, given: dict[str, Any]) -> dict[str, Any]:
        """The method's full option dict: defaults overlaid with ``given``, validated."""
        if self.free_options:
            return dict(given)
        for key in given:
            if key not in self.options:
                guess = closest(key, self.options)
                raise HarnessError(
                    f"method '{self.name}' has no option '{key}'.{f' Did you mean {guess!r}?' if guess else ''} "
                    f"Its options: {', '.join(self.options) or 'none'}.")
        return {key: self._checked(key, option, given.get(key, option.default)) for key, option in self.options.items()}

    def _checked(self, key: str, option: Option, value):
        flag = f"--{self.name}-{key.replace('_', '-')}"
        if isinstance(value, str) and option.type is not str:
            try:
                value = option.type(value)
            except (TypeError, ValueError):
                raise HarnessError(f"{flag}: '{value}' is not a valid value.") from None
        if option.positive and value is not None and not value > 0:
            raise HarnessError(f"{flag} must be a positive number, got {value}.")
        return value

    def prepare(self, model, options: dict, head_modules: list[str]):
        """The model to train: the method applied, its declared parameters trainable, the head too."""
        model = self.apply(model, options, head_modules)
        if model is None:
            raise HarnessError(f"method '{self.name}': apply returned None; return the model to train.")
        if self.trainable is not None:
            train_only(model, self.trainable, head_modules)
        for name, parameter in model.named_parameters():
            if ".original_module." in name:
                continue  # peft's frozen copy of a module it trains in full (modules_to_save)
            if in_head(name, head_modules) and not parameter.requires_grad and parameter.is_floating_point():
                parameter.requires_grad_(True)  # the head is new for the task: it always trains
        return model


def train_only(model, trains: Callable[[str], bool], head_modules: list[str]):
    """Freeze everything, then unfreeze the parameters whose name ``trains(name)`` accepts and the
    task head (every method trains the head; the paper leaves it out of its counts)."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(bool(trains(name)) or in_head(name, head_modules))
    return model


def comma_list(value: str | list[str] | None) -> list[str] | None:
    if value is None or isinstance(value, list):
        return value
    return [item.strip() for item in value.split(",") if item.strip()] or None


def from_function(name: str, fn: Callable) -> MethodSpec:
    """A plain function ``fn(model, **options) -> model`` as a method: it adds its modules and
    leaves requires_grad on what it trains; options come from --method-opt / method_options."""
    def apply(model, options, head_modules):
        try:
            result = fn(model, **options)
        except TypeError as err:
            raise HarnessError(f"method '{name}': {err}; pass its options with --method-opt KEY=VALUE.") from None
        return model if result is None else result

    doc = (fn.__doc__ or "").strip().splitlines()
    return MethodSpec(name, doc[0] if doc else f"plugin {name}", apply, defaults=dict(getattr(fn, "defaults", {})),
                      free_options=True, token_wise=bool(getattr(fn, "token_wise", False)))


def as_spec(name: str, obj) -> MethodSpec:
    """A registry entry or plugin object as a MethodSpec: a spec as it is, a function wrapped."""
    if isinstance(obj, MethodSpec):
        return obj
    if callable(obj):
        return from_function(name, obj)
    raise HarnessError(f"method '{name}' is a {type(obj).__name__}; a method is a MethodSpec or a function "
                       f"fn(model, **options) -> model.")
