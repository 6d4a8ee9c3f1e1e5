"""Choosing how to run: numeric precision by device and CPU features."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch

from ._errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["PRECISIONS", "cpu_has_fast_bf16", "resolve_precision"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@functools.lru_cache(maxsize=None)
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX), where autocast pays off.

    Elsewhere PyTorch emulates bf16 and it is slower than fp32, so ``"auto"`` keeps fp32.

    Example:
        >>> isinstance(cpu_has_fast_bf16(), bool)
        True
    """
    caps = getattr(torch.cpu, "get_capabilities", None)
    if caps is not None:
        try:
            c = caps()
            return bool(c.get("avx512_bf16") or c.get("amx_bf16"))
        except (RuntimeError, AttributeError, TypeError) as e:  # an unexpected platform: read /proc/cpuinfo
            logger.debug("torch.cpu.get_capabilities() failed: %s", e)
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision setting on a device (``None``: plain fp32).

    ``"auto"`` is bf16 on CPUs with native bf16 (AVX512-BF16 or AMX), fp32 on other
    CPUs, and bf16 (or fp16 where bf16 is unsupported) on CUDA GPUs.

    Args:
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        device: The device that runs the model.

    Raises:
        ConfigError: for an unknown precision, or fp16 on a CPU.

    Example:
        >>> resolve_precision("fp32", torch.device("cpu")) is None
        True
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        if device.type != "cuda":
            raise ConfigError("precision 'fp16' needs a CUDA device; on a CPU use 'bf16' or 'fp32'")
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return None
