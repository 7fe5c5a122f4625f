from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AdapterConfig:
    """Where adapters go and what they are.

    Each adapter adds 2*d*r + r + d parameters (down and up projections with biases), plus 2*d
    for its LayerNorm when ``layer_norm`` is set: the paper's formula
    L_Adpt * (2*d*r + r + d) + 2 * L_LN * d.
    """

    r: int = 8
    after_attention: bool = True  # an adapter after the attention output projection
    after_ffn: bool = True  # an adapter after the feed-forward output projection
    layer_norm: bool = False  # a trainable LayerNorm at the adapter's input (Lin et al.)
    activation: str = "relu"
    skip_lowest: int = 0  # AdapterDrop: no adapters in the lowest n blocks


# The paper's variants (Section 5.1). r defaults are the paper's 0.8M RoBERTa-large settings where
# it gives them (AdptH r=8, AdptP r=16).
VARIANTS = {
    "adapter_h": dict(after_attention=True, after_ffn=True, layer_norm=False, r=8,
                      description="Houlsby: adapters after attention and after the feed-forward of every block"),
    "adapter_l": dict(after_attention=False, after_ffn=True, layer_norm=True, r=8,
                      description="Lin: one adapter after the feed-forward, with a trainable LayerNorm"),
    "adapter_p": dict(after_attention=False, after_ffn=True, layer_norm=False, r=16,
                      description="Pfeiffer: one adapter after the feed-forward of every block"),
    "adapter_d": dict(after_attention=False, after_ffn=True, layer_norm=False, r=16, skip_lowest=5,
                      description="AdapterDrop: Pfeiffer adapters with the lowest n blocks left without"),
}
