"""What a run records about where it ran: library versions and peak memory."""

from __future__ import annotations

import platform
import resource


_PEAK_BEFORE_RESET = 0.0  # the process peak when reset_training_peak cleared the kernel's high-water mark


def peak_memory_mb() -> float:
    """The process's peak: GPU memory allocated, else the resident set (loading included)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return max(_PEAK_BEFORE_RESET, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # Linux: KiB


def reset_training_peak() -> None:
    """Start measuring training_peak_memory_mb here: on Linux, writing 5 to clear_refs resets the
    process's high-water mark, so what loading the model cost (an fp32 copy quantized afterwards) is
    not counted. The kernel's ru_maxrss is that same mark, so the process peak is kept first."""
    global _PEAK_BEFORE_RESET
    _PEAK_BEFORE_RESET = peak_memory_mb()
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass  # not Linux (or not allowed): training_peak_memory_mb falls back to the process peak


def training_peak_memory_mb() -> float:
    """Peak memory since reset_training_peak: GPU memory allocated, else the resident set's high-water mark."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return peak_memory_mb()


def weights_memory_mb(model) -> float:
    """Memory of the model's parameters and buffers as stored (4-bit weights count their packed bytes)."""
    import torch

    def stored(value) -> int:  # a tensor, or a bitsandbytes QuantState (scales, codebook, nested state)
        if isinstance(value, torch.Tensor):
            return value.numel() * value.element_size()
        return sum(stored(v) for v in vars(value).values()) if hasattr(value, "absmax") else 0

    tensors = [*model.parameters(), *model.buffers()]
    return sum(stored(t) + stored(getattr(t, "quant_state", None)) for t in tensors) / 2**20


def versions() -> dict[str, str]:
    import accelerate
    import peft
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "accelerate": accelerate.__version__}


# The CPU features that decide which precision is fast: AMX tiles make bf16 matrix products several
# times faster than fp32; without them (avx512_bf16 only) bf16 ran slower than fp32 here.
MATRIX_FEATURES = ("amx_tile", "amx_bf16", "amx_int8", "avx512_bf16", "avx512f", "avx2")


def cpu_description() -> dict[str, object]:
    """The processor's name and its matrix-relevant instruction sets (Linux: /proc/cpuinfo)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return {"cpu": name, "features": [f for f in MATRIX_FEATURES if f in flags]}
