from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


class Bottleneck(nn.Module):
    """h + up(act(down(norm(h)))): a residual bottleneck that starts as the identity (up is zero)."""

    def __init__(self, d: int, r: int, activation: str = "relu", layer_norm: bool = False,
                 device=None, dtype=None):
        super().__init__()
        kwargs = dict(device=device, dtype=dtype)
        self.norm = nn.LayerNorm(d, **kwargs) if layer_norm else None
        self.down = nn.Linear(d, r, **kwargs)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(r, d, **kwargs)
        if self.down.weight.device.type != "meta":
            nn.init.normal_(self.down.weight, std=1e-2)
            nn.init.zeros_(self.down.bias)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.norm(h) if self.norm is not None else h
        return h + self.up(self.act(self.down(x)))


class WithAdapter(nn.Module):
    """A sublayer's output projection followed by an adapter, so the adapter sees the sublayer's
    output before the block adds its residual (Houlsby et al.'s placement)."""

    def __init__(self, projection: nn.Module, adapter: Bottleneck):
        super().__init__()
        self.projection = projection
        self.adapter = adapter

    def forward(self, *args, **kwargs):
        return self.adapter(self.projection(*args, **kwargs))
