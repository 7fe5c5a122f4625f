from __future__ import annotations

from harness.errors import HarnessError
from harness.methods.adapters.config import AdapterConfig
from harness.methods.adapters.layer import Bottleneck, WithAdapter
from harness.methods.arch import arch_of, blocks


def _replace(parent, path: str, build):
    *parents, last = path.split(".")
    for name in parents:
        parent = getattr(parent, name)
    original = getattr(parent, last)
    setattr(parent, last, build(original))


def add_adapters(model, config: AdapterConfig) -> int:
    """Insert adapters into ``model`` in place; returns how many were added."""
    arch = arch_of(model)
    layers = blocks(model)
    if config.skip_lowest >= len(layers):
        raise HarnessError(f"--adapter-d-skip-lowest {config.skip_lowest} leaves no adapters: the model has "
                           f"{len(layers)} blocks.")
    d = model.config.hidden_size
    positions = [p for p, on in [(arch.attn_out, config.after_attention), (arch.ffn_out, config.after_ffn)] if on]
    added = 0
    for block in layers[config.skip_lowest:]:
        for path in positions:
            def build(projection):
                weight = next(projection.parameters())
                adapter = Bottleneck(d, config.r, config.activation, config.layer_norm,
                                     device=weight.device, dtype=weight.dtype)
                return WithAdapter(projection, adapter)

            _replace(block, path, build)
            added += 1
    return added
