"""Methods: how a pretrained model is made trainable for a task (see harness.methods.base for the
contract a method, built in or a plugin, implements).

A method declares its options (each becomes a `--<method>-<option>` flag, a `--method-opt KEY=VALUE`
and a key under `method_options` in YAML) and the training defaults it needs.
"""

from harness.methods.base import MethodSpec, Option, comma_list, from_function, train_only
from harness.methods.registry import METHODS, get_method, method_specs
from harness.methods import weights as _weights
from harness.methods.weights import WEIGHTS_FILE, init_from_run, load_tensors, save_tensors
from harness.models.heads import head_module_names


def save_weights(model, method: str | MethodSpec, options: dict, folder) -> None:
    """Save what a run trained (harness.methods.weights.save_weights, by method name or spec)."""
    _weights.save_weights(model, _spec(method), options, folder)


def load_trained(base_model, method: str | MethodSpec, options: dict, folder, head_modules=None):
    """``base_model`` with a finished run's weights (the inverse of save_weights)."""
    heads = head_module_names(base_model) if head_modules is None else head_modules
    return _weights.load_trained(base_model, _spec(method), options, folder, heads)


def _spec(method: str | MethodSpec) -> MethodSpec:
    return method if isinstance(method, MethodSpec) else get_method(method)


__all__ = ["METHODS", "MethodSpec", "Option", "WEIGHTS_FILE", "comma_list", "from_function", "get_method",
           "init_from_run", "load_tensors", "load_trained", "method_specs", "save_tensors", "save_weights", "train_only"]
