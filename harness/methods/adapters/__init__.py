"""Bottleneck adapters: Houlsby (H), Lin (L), Pfeiffer (P) and AdapterDrop (D).

Split like peft's tuners: `config.py` (what a variant is), `layer.py` (the adapter module),
`model.py` (inserting adapters into a model, saving and loading them).
"""

from harness.methods.adapters.config import VARIANTS, AdapterConfig
from harness.methods.adapters.layer import Bottleneck, WithAdapter
from harness.methods.adapters.model import add_adapters

__all__ = ["VARIANTS", "AdapterConfig", "Bottleneck", "WithAdapter", "add_adapters"]
