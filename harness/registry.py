"""One registry class for tasks, models, methods and metrics.

Besides names registered in code, a registry resolves (as lm-evaluation-harness and torchtune do):

- ``pkg.module:NAME`` and ``path/to/file.py:NAME``: an object named by import path, loaded on use, so
  a user's own component works from the CLI, experiment files and grid cells without touching
  the package;
- names published by installed packages under the entry-point group ``harness.<kind>s``
  (``[project.entry-points."harness.methods"] my_method = "my_pkg.methods:my_method"``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from harness.errors import HarnessError, unknown_choice

T = TypeVar("T")


def is_import_ref(name: str) -> bool:
    """'pkg.mod:obj' or 'file.py:obj' (and not 'peft:IA3', whose prefix is no module path)."""
    module, sep, attr = name.rpartition(":")
    return bool(sep and module and attr.isidentifier() and (module.endswith(".py") or "." in module
                                                             or importlib.util.find_spec(module) is not None))


def load_object(ref: str, what: str = "object") -> Any:
    """The object named by ``pkg.module:NAME`` or ``path/to/file.py:NAME``; one-line errors."""
    module_name, _, attr = ref.rpartition(":")
    if module_name.endswith(".py"):
        path = Path(module_name).expanduser().resolve()
        if not path.is_file():
            raise HarnessError(f"{what} '{ref}': file {path} does not exist.")
        # One module per file, named after its path, so a second load reuses the first.
        key = f"harness_plugin_{abs(hash(str(path)))}"
        module = sys.modules.get(key)
        if module is None:
            spec = importlib.util.spec_from_file_location(key, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[key] = module
            try:
                spec.loader.exec_module(module)
            except Exception as err:
                del sys.modules[key]
                raise HarnessError(f"{what} '{ref}': importing {path} failed: {type(err).__name__}: {err}") from None
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise HarnessError(f"{what} '{ref}': cannot import {module_name} ({err}); is it installed or on "
                               f"PYTHONPATH?") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise HarnessError(f"{what} '{ref}': {module_name} has no '{attr}'.") from None


def entry_points(group: str) -> dict[str, Any]:
    from importlib.metadata import entry_points as found

    return {ep.name: ep for ep in found(group=group)}


class Registry(Generic[T]):
    def __init__(self, kind: str, hint: str = "", group: str | None = None):
        self.kind = kind
        self.hint = hint  # appended to 'unknown name' errors, e.g. how to add one
        self.group = group  # entry-point group of installed plugins, e.g. 'harness.methods'
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}  # name -> 'pkg.mod:obj', imported on first use

    def add(self, name: str, item: T) -> T:
        if name in self._items or name in self._lazy:
            raise HarnessError(f"{self.kind} '{name}' is registered twice; rename one of them.")
        self._items[name] = item
        return item

    def add_lazy(self, name: str, ref: str) -> None:
        if name in self._items or name in self._lazy:
            raise HarnessError(f"{self.kind} '{name}' is registered twice; rename one of them.")
        self._lazy[name] = ref

    def find(self, name: str) -> T | None:
        """The registered or lazily named item, else an installed plugin's, else None."""
        if name in self._items:
            return self._items[name]
        if name in self._lazy:  # imported once, then cached (the lazy name stays, so the entry is never lost)
            self._items[name] = load_object(self._lazy[name], self.kind)
            return self._items[name]
        if self.group:
            plugin = entry_points(self.group).get(name)
            if plugin is not None:
                self._items[name] = plugin.load()
                return self._items[name]
        return None

    def get(self, name: str) -> T:
        item = self.find(name)
        if item is None:
            raise unknown_choice(self.kind, name, self.names(), self.hint)
        return item

    def names(self) -> list[str]:
        plugins = list(entry_points(self.group)) if self.group else []
        return sorted({*self._items, *self._lazy, *plugins})

    def __contains__(self, name: str) -> bool:
        return name in self._items or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(name, self.get(name)) for name in self.names()]
