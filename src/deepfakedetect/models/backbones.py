"""Building classification backbones with a deepfake head.

The ResNets and MobileNetV2 are built from :mod:`deepfakedetect.models.nets` (torchvision's
networks restated, same keys), so scoring with them never imports torchvision; other
backbones, and torchvision's pretrained weights, come from torchvision.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from deepfakedetect._errors import ConfigError, ModelLoadError
from deepfakedetect.models.nets import build_known
from deepfakedetect.models.weights import load_safetensors

logger = logging.getLogger(__name__)

__all__ = ["build_model", "build_model_from_state", "check_signatures", "last_linear", "list_backbones", "load_backbone_weights", "load_strict", "replace_head", "signature"]

_MAX_CLASSES = 2  # the head is 1 or 2 outputs; checked before anything is built


def list_backbones() -> list[str]:
    """Names of the torchvision classification models usable as backbones.

    Example:
        >>> "resnet50" in list_backbones()
        True
    """
    # torchvision costs about 1 s to import (it pulls in torch._dynamo): only to list its models
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def last_linear(model: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    last: tuple[nn.Module, str, nn.Linear] | None = None
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                last = (parent, child_name, child)
    if last is None:
        raise ConfigError(f"{type(model).__name__} has no final nn.Linear layer to replace with a deepfake head")
    return last


def replace_head(model: nn.Module, num_outputs: int) -> nn.Module:
    """Replace the classifier's last linear layer with a fresh one of ``num_outputs``.

    Works for torchvision ResNets (``fc``), MobileNets/EfficientNets (``classifier[-1]``),
    ViTs (``heads.head``) and other models whose last ``nn.Linear`` is the classifier.
    """
    parent, name, old = last_linear(model)
    new = nn.Linear(old.in_features, num_outputs)
    setattr(parent, name, new)
    return model


def load_backbone_weights(model: nn.Module, path: str | Path) -> None:
    """Load ImageNet-style backbone weights from a ``.safetensors`` file, strictly.

    Raises:
        ModelLoadError: if the file is not safetensors or the keys do not match.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ModelLoadError(
            f"{path}: backbone weights are loaded from .safetensors files only (pickle files "
            "can run code); convert with safetensors.torch.save_file(torch.load(f, weights_only=True), ...)"
        )
    if not path.is_file():
        raise ModelLoadError(f"{path}: backbone weights file not found")
    state = load_safetensors(path)
    load_strict(model, state, source=str(path))


# A tensor's signature for matching weights to a model: its shape and whether it is floating point.
Signature = tuple[tuple[int, ...], bool]


def signature(t: torch.Tensor) -> Signature:
    return tuple(t.shape), t.is_floating_point()


def check_signatures(own: dict[str, Signature], theirs: dict[str, Signature], *, source: str) -> None:
    """Raise :class:`ModelLoadError` listing missing, unexpected and mismatched tensors."""
    missing = sorted(set(own) - set(theirs))
    unexpected = sorted(set(theirs) - set(own))
    common = sorted(set(own) & set(theirs))
    bad_shapes = [f"{k}: file {theirs[k][0]} vs model {own[k][0]}" for k in common if own[k][0] != theirs[k][0]]
    bad_types = [
        f"{k}: file {'floating' if theirs[k][1] else 'integer'} vs model {'floating' if own[k][1] else 'integer'}"
        for k in common
        if own[k][1] != theirs[k][1]
    ]
    parts = []
    if missing:
        parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:10])}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:10])}")
    if bad_shapes:
        parts.append(f"shape mismatches ({len(bad_shapes)}): {'; '.join(bad_shapes[:5])}")
    if bad_types:
        parts.append(f"dtype mismatches ({len(bad_types)}): {'; '.join(bad_types[:5])}")
    if parts:
        raise ModelLoadError(f"{source}: weights do not match the model: " + "; ".join(parts))


def load_strict(model: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> None:
    own = {k: signature(v) for k, v in model.state_dict().items()}
    check_signatures(own, {k: signature(v) for k, v in state.items()}, source=source)
    bad = sorted(k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if bad:
        raise ModelLoadError(f"{source}: weights contain NaN or infinite values in {', '.join(bad[:10])}")
    model.load_state_dict(state, strict=True)


def build_model(
    backbone: str,
    *,
    num_outputs: int = 2,
    weights: str | os.PathLike[str] | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
) -> nn.Module:
    """Build a torchvision backbone with a fresh ``num_outputs`` head.

    ResNets, ResNeXts, wide ResNets and MobileNetV2 come from
    :mod:`deepfakedetect.models.nets` (same keys, initialisation and outputs as
    torchvision's, without importing it) unless torchvision weights are asked for.

    Args:
        backbone: A torchvision classification model name (``"resnet50"``).
        num_outputs: 1 (one logit) or 2 (two classes).
        weights: ``None`` (random init, no download), ``"imagenet"`` (torchvision's
            default weights for the model, downloaded by torchvision), a torchvision
            weights name (``"IMAGENET1K_V2"`` or ``"ResNet50_Weights.IMAGENET1K_V2"``),
            or a path to a ``.safetensors`` file of the backbone's own weights.
        backbone_kwargs: Extra keyword arguments for the torchvision constructor.

    Raises:
        ConfigError: unknown backbone or weights name.
        ModelLoadError: weights that cannot be loaded.

    Example:
        >>> m = build_model("resnet18", num_outputs=2)
        >>> m.fc.out_features
        2
    """
    if num_outputs not in (1, _MAX_CLASSES):
        raise ConfigError(f"num_outputs must be 1 or 2, got {num_outputs!r}")
    kwargs = dict(backbone_kwargs or {})
    tv_weights = None
    weights_path: Path | None = None
    if weights is not None:
        as_path = Path(str(weights))
        if isinstance(weights, Path) or as_path.suffix in (".safetensors", ".pt", ".pth", ".bin") or as_path.exists():
            weights_path = as_path
        else:
            tv_weights = _torchvision_weights(backbone, str(weights))
    model = None
    if tv_weights is None:
        try:
            model = build_known(backbone, **kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"bad backbone_kwargs for {backbone}: {e}") from e
    if model is None:
        model = _torchvision_model(backbone, tv_weights, kwargs)
    if weights_path is not None:
        load_backbone_weights(model, weights_path)
    return replace_head(model, num_outputs)


def _torchvision_model(backbone: str, tv_weights: Any, kwargs: dict[str, Any]) -> nn.Module:
    # torchvision costs about 1 s to import (it pulls in torch._dynamo): only for backbones not in models.nets
    import torchvision

    known = list_backbones()
    if backbone not in known:
        close = [n for n in known if backbone.lower()[:4] in n][:8]
        raise ConfigError(
            f"unknown backbone {backbone!r}; torchvision classification models include "
            f"{', '.join(close or known[:12])} (see deepfakedetect.list_backbones())"
        )
    try:
        model = torchvision.models.get_model(backbone, weights=tv_weights, **kwargs)
    except TypeError as e:
        raise ConfigError(f"bad backbone_kwargs for {backbone}: {e}") from e
    except Exception as e:
        if tv_weights is None:
            # torchvision checks its arguments with ValueError, assert, or not at all.
            raise ConfigError(f"bad backbone_kwargs for {backbone}: {type(e).__name__}: {e}") from e
        if tv_weights is not None:
            raise ModelLoadError(
                f"could not load torchvision weights {tv_weights} for {backbone} ({e}); "
                "they are downloaded from download.pytorch.org on first use: check the "
                "connection, or pass weights=None or a local .safetensors file"
            ) from e
        raise
    return cast(nn.Module, model)


def _torchvision_weights(backbone: str, name: str) -> Any:
    # torchvision costs about 1 s to import (it pulls in torch._dynamo): only for its pretrained weights
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(backbone)
    except (ValueError, KeyError) as e:
        raise ConfigError(f"torchvision has no pretrained weights for {backbone}") from e
    if name.lower() == "imagenet":
        return enum.DEFAULT
    short = name.split(".")[-1]
    try:
        return enum[short]
    except KeyError:
        raise ConfigError(
            f"unknown weights {name!r} for {backbone}; choose 'imagenet', None, a .safetensors "
            f"path, or one of {', '.join(w.name for w in enum)}"
        ) from None


def build_model_from_state(
    backbone: str, state: dict[str, torch.Tensor], *, source: str, **build: Any
) -> nn.Module:
    """Build ``backbone`` and load ``state`` into it strictly, in float32.

    Names and shapes are compared on a skeleton without memory first, so weights that do
    not fit the config fail before a large backbone is allocated. Weights may be stored
    in half precision to keep files small; inference runs in float32.
    """
    with torch.device("meta"):
        skeleton = build_model(backbone, **build)
    check_signatures(
        {k: signature(v) for k, v in skeleton.state_dict().items()},
        {k: signature(v) for k, v in state.items()},
        source=source,
    )
    model = build_model(backbone, **build)
    load_strict(model, {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, source=source)
    return model
