"""A patch of a model's modules that acts only while switched on (``with patch.in_use(): ...``)."""

from __future__ import annotations

from contextlib import contextmanager


class Switch:
    """``active`` while in ``in_use``: the patched forwards read it at each call."""

    active = False

    @contextmanager
    def in_use(self):
        self.active = True
        try:
            yield
        finally:
            self.active = False
