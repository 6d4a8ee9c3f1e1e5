"""Choosing how to run: device, numeric precision, memory format."""

from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch

from ._errors import ConfigError

__all__ = ["PRECISIONS", "cpu_has_fast_bf16", "resolve_precision"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@functools.lru_cache(maxsize=None)
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX), where bf16 pays off.

    Elsewhere PyTorch emulates bf16 and it is slower than fp32, so ``"auto"`` keeps fp32.

    Example:
        >>> isinstance(cpu_has_fast_bf16(), bool)
        True
    """
    if platform.system() != "Linux":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision name on a device, or ``None`` for plain fp32.

    ``"auto"`` means bf16 on CPUs with native bf16 and on CUDA devices that support it,
    fp16 on older CUDA devices, and fp32 everywhere else.

    Example:
        >>> resolve_precision("fp32", torch.device("cpu")) is None
        True
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return None
