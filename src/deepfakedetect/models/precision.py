"""Choosing how to run: numeric precision by device and CPU features, and an inference copy of a network."""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import logging
import threading
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import cast

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from deepfakedetect._errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "PRECISIONS",
    "InferenceCopy",
    "cast_matmul_weights",
    "cpu_has_fast_bf16",
    "fold_batchnorm",
    "fold_sequential_batchnorm",
    "one_core_for_the_decoder",
    "resolve_device",
    "resolve_precision",
]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@contextlib.contextmanager
def one_core_for_the_decoder() -> Iterator[None]:
    """Run torch on one CPU thread fewer inside the block, where ffmpeg decodes beside it.

    While ffmpeg decodes video frames in the background, torch's OpenMP threads and
    ffmpeg's compete for the same cores, and OpenMP threads that spin between layers
    take time slices the decoder needs. Measured on 2 cores (``benchmarks/video.py``): a
    warm ``detect_video`` of a 60 s 1080p video took 4.46 s with torch on 2 threads and
    3.75 s on 1, with the same scores. torch's thread count is an OpenMP setting of the
    calling thread, so it is saved and restored in the thread that runs the block;
    blocks nest, each restoring what it reduced. A count changed inside the block (by
    the caller) is left as it is. With a single thread nothing changes.
    """
    before = torch.get_num_threads()
    if before <= 1:
        yield
        return
    torch.set_num_threads(before - 1)
    try:
        yield
    finally:
        if torch.get_num_threads() == before - 1:
            torch.set_num_threads(before)


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


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device to run on: ``device`` checked, or CUDA when available, else the CPU.

    Raises:
        ConfigError: a name torch does not know, or a CUDA device this machine does not have
            (no GPU, a CPU-only PyTorch build, or an index past the last GPU).

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ConfigError(
            f"unknown device {device!r}: use 'cpu', 'cuda', 'cuda:1', ... ({str(e).splitlines()[0][:200]})"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {str(device)!r} asked for, but CUDA is not available here (no NVIDIA GPU, "
                "no driver, or a CPU-only PyTorch build); use --device cpu (device='cpu') or leave it out"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"device {str(device)!r} asked for, but this machine has {count} CUDA device(s)")
    return dev


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


def fold_sequential_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm that directly follows a convolution in an ``nn.Sequential``, in place.

    For inference only (eval-mode statistics). The module keeps its class and
    structure; each folded BatchNorm becomes ``nn.Identity``.

    Args:
        model: A network in eval mode.

    Returns:
        ``model`` itself.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
        >>> [type(c).__name__ for c in fold_sequential_batchnorm(net)]
        ['Conv2d', 'Identity']
    """
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, bn = module[i], module[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module[i] = fuse_conv_bn_eval(conv, bn)
                module[i + 1] = nn.Identity()
    return model


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every BatchNorm that follows a convolution folded into it.

    The folded network computes the same function (to float rounding) with one pass
    over memory less per convolution: on a 2-core CPU, ResNets run 7-12% faster at
    batch 32 and MobileNetV2 1.4-1.9x (see [performance](../performance.md)). The copy is traced with ``torch.fx``, which finds every
    conv/BN pair (ResNet's ``conv1``/``bn1`` attributes included); a model that cannot
    be traced gets only its ``nn.Sequential`` pairs folded. ``model`` is not modified.

    Example:
        >>> m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
        >>> [type(c).__name__ for c in fold_batchnorm(m).children()]
        ['Conv2d']
    """
    # torch.fx is a large import: only when a network is folded, not when precision is chosen
    from torch.fx.experimental.optimization import fuse

    model = copy.deepcopy(model).eval()
    try:
        return fuse(model, inplace=True)
    except Exception as e:  # noqa: BLE001 - tracing fails in many ways (control flow, custom modules)
        logger.debug("cannot trace %s (%s: %s): folding nn.Sequential pairs only", type(model).__name__, type(e).__name__, e)
        return fold_sequential_batchnorm(model)


def cast_matmul_weights(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Store the weights and biases of convolutions and linear layers in ``dtype``, in place.

    Under autocast these are the layers that run in ``dtype``, and autocast casts
    their fp32 weights again at every call (a copy of every weight per forward pass:
    about a fifth of MobileNetV2's CPU time at small batches). Cast once here, the
    outputs under autocast are the same, bit for bit (the same rounding, done once),
    and the casts are gone. Other parameters (normalisation layers not folded away)
    stay in fp32. Returns ``model``.

    Example:
        >>> m = cast_matmul_weights(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), torch.bfloat16)
        >>> m[0].weight.dtype
        torch.bfloat16
    """
    for module in model.modules():
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
            module.to(dtype)
    return model


class InferenceCopy:
    """The network as inference runs it, rebuilt whenever the original's weights change.

    Scoring uses a copy of the model with BatchNorm folded in (in channels-last layout
    on a CPU), so that the model itself stays trainable and saves with its own keys.
    The copy is keyed on the model's identity and on the identity, storage and version
    counter of every parameter and buffer: another model, an optimiser step,
    ``load_state_dict`` or ``.to()`` is seen at the next call. (Writes through
    ``tensor.data`` bypass version counters; call :meth:`clear` after such a change.)
    A model in training mode is used as it is, since folding needs eval-mode
    statistics. Safe to share between threads.

    Example:
        >>> m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
        >>> cache = InferenceCopy()
        >>> cache.get(m, torch.device("cpu")) is cache.get(m, torch.device("cpu"))
        True
    """

    def __init__(self) -> None:
        self._key: Hashable = None
        self._copy: nn.Module | None = None
        self._lock = threading.Lock()

    @staticmethod
    def _fingerprint(model: nn.Module, device: torch.device, compiled: bool, dtype: torch.dtype | None) -> Hashable:
        tensors = itertools.chain(model.parameters(), model.buffers())
        return id(model), str(device), compiled, dtype, tuple((id(t), t.data_ptr(), t._version) for t in tensors)

    def get(
        self, model: nn.Module, device: torch.device, *, compiled: bool = False, dtype: torch.dtype | None = None
    ) -> nn.Module:
        """The folded eval copy of ``model`` on ``device`` (``model`` itself while it is training).

        With ``dtype`` (the autocast dtype the copy will run under), the weights of its
        convolutions and linear layers are stored in that dtype
        (:func:`cast_matmul_weights`): the same outputs under autocast, without
        casting every weight at every call. With ``compiled``, the copy is wrapped in
        ``torch.compile`` (inductor, with its weights frozen into the compiled code,
        static shapes); compilation happens on the first call of the returned module.
        """
        if model.training:
            return model
        with self._lock:
            key = self._fingerprint(model, device, compiled, dtype)
            if self._copy is None or key != self._key:
                folded = fold_batchnorm(model).to(device).requires_grad_(False)
                if device.type == "cpu":
                    folded = folded.to(memory_format=torch.channels_last)
                if dtype is not None and not compiled:
                    folded = cast_matmul_weights(folded, dtype)
                if compiled:
                    folded = cast(nn.Module, torch.compile(folded, dynamic=False, options={"freezing": True}))
                self._copy, self._key = folded, key
            return self._copy

    def clear(self) -> None:
        """Drop the copy; the next :meth:`get` builds it again."""
        with self._lock:
            self._copy, self._key = None, None
