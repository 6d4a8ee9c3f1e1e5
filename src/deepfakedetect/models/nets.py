"""ResNets and MobileNetV2 defined here, with torchvision's structure and ``state_dict`` keys.

Importing torchvision costs about as much as importing torch itself (about 1 s and
170 MB on a 2-core CPU), because ``torchvision.ops`` pulls in torch's compiler stack
(``torch._dynamo``, sympy), and every ``torchvision.models`` submodule imports the
package's ``__init__`` first. Scoring with the default model needs none of it, so the
known backbones are built from these definitions instead.

They are torchvision's own classes restated: same modules, created in the same order
and initialised the same way, so that

- a ``state_dict`` saved from either loads strictly into the other;
- the same input gives the same output (the same operations in the same order);
- under the same seed, a freshly built network has the same random weights.

``tests/models/test_nets.py`` checks all three against torchvision. What these do not cover
(other backbones, ``norm_layer`` or ``block`` arguments, torchvision's pretrained
weight enums) is still built by torchvision; see :func:`build_known`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["KNOWN_BACKBONES", "BasicBlock", "Bottleneck", "InvertedResidual", "MobileNetV2", "ResNet", "build_known"]


# _META_NOTE: a network built under ``torch.device("meta")`` (a skeleton to check a weights
# file's names and shapes against, without memory) has nothing to initialise, and torch's
# ``normal_`` on a meta tensor runs a decomposition that imports ``torch._dynamo`` (about
# 1 s): the random-normal initialisations are skipped there.

# ----------------------------------------------------------------------------- ResNet
def _conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, groups=groups, bias=False, dilation=dilation)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """The two-convolution residual block of ResNet-18 and -34 (torchvision's ``BasicBlock``)."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        if dilation > 1:
            raise NotImplementedError("Dilation > 1 not supported in BasicBlock")
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """The 1x1-3x3-1x1 residual block of ResNet-50 and larger, stride on the 3x3 (ResNet v1.5)."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = _conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride, groups, dilation)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """torchvision's ``ResNet`` (same arguments except ``norm_layer``; same keys and initialisation).

    Example:
        >>> net = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=2)
        >>> net(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 2])
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        replace_stride_with_dilation: Sequence[bool] | None = None,
    ) -> None:
        super().__init__()
        self.inplanes = 64
        self.dilation = 1
        if replace_stride_with_dilation is None:
            replace_stride_with_dilation = [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError(
                f"replace_stride_with_dilation should be None or a 3-element tuple, got {replace_stride_with_dilation}"
            )
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, dilate=replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=replace_stride_with_dilation[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if not m.weight.is_meta:  # see _META_NOTE
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(
        self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int = 1, dilate: bool = False
    ) -> nn.Sequential:
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride), nn.BatchNorm2d(planes * block.expansion)
            )
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width, previous_dilation)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(
                block(self.inplanes, planes, groups=self.groups, base_width=self.base_width, dilation=self.dilation)
            )
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ----------------------------------------------------------------------------- MobileNetV2
def _make_divisible(v: float, divisor: int) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:  # never round down by more than 10%
        new_v += divisor
    return new_v


class _ConvBNReLU6(nn.Sequential):
    """torchvision's ``Conv2dNormActivation`` as MobileNetV2 uses it: conv (no bias), BN, ReLU6."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel_size, stride, (kernel_size - 1) // 2, dilation=1, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )
        self.out_channels = cout


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion, 3x3 depthwise, linear 1x1 projection, residual when shapes allow."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        self.stride = stride
        if stride not in (1, 2):
            raise ValueError(f"stride should be 1 or 2 instead of {stride}")
        hidden_dim = round(inp * expand_ratio)
        self.use_res_connect = self.stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_ConvBNReLU6(inp, hidden_dim, kernel_size=1))
        layers += [
            _ConvBNReLU6(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup
        self._is_cn = stride > 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's ``MobileNetV2`` (same arguments except ``block`` and ``norm_layer``).

    Example:
        >>> net = MobileNetV2(num_classes=2)
        >>> net(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 2])
    """

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        inverted_residual_setting: Sequence[Sequence[int]] | None = None,
        round_nearest: int = 8,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if inverted_residual_setting is None:
            inverted_residual_setting = [
                # expansion t, channels c, repeats n, stride s
                [1, 16, 1, 1],
                [6, 24, 2, 2],
                [6, 32, 3, 2],
                [6, 64, 4, 2],
                [6, 96, 3, 1],
                [6, 160, 3, 2],
                [6, 320, 1, 1],
            ]
        if len(inverted_residual_setting) == 0 or len(inverted_residual_setting[0]) != 4:
            raise ValueError(
                f"inverted_residual_setting should be non-empty or a 4-element list, got {inverted_residual_setting}"
            )
        input_channel = _make_divisible(32 * width_mult, round_nearest)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [_ConvBNReLU6(3, input_channel, stride=2)]
        for t, c, n, s in inverted_residual_setting:
            output_channel = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel, s if i == 0 else 1, expand_ratio=t))
                input_channel = output_channel
        features.append(_ConvBNReLU6(input_channel, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if not m.weight.is_meta:  # see _META_NOTE
                    nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                if not m.weight.is_meta:
                    nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))


# ----------------------------------------------------------------------------- the table
# name -> (class, fixed arguments, the keyword arguments a caller may add).
_RESNET_OPTIONS = frozenset({"num_classes", "zero_init_residual", "replace_stride_with_dilation"})
_MOBILENET_OPTIONS = frozenset({"num_classes", "width_mult", "inverted_residual_setting", "round_nearest", "dropout"})
_TABLE: dict[str, tuple[type[nn.Module], dict[str, Any], frozenset[str]]] = {
    "resnet18": (ResNet, {"block": BasicBlock, "layers": [2, 2, 2, 2]}, _RESNET_OPTIONS),
    "resnet34": (ResNet, {"block": BasicBlock, "layers": [3, 4, 6, 3]}, _RESNET_OPTIONS),
    "resnet50": (ResNet, {"block": Bottleneck, "layers": [3, 4, 6, 3]}, _RESNET_OPTIONS),
    "resnet101": (ResNet, {"block": Bottleneck, "layers": [3, 4, 23, 3]}, _RESNET_OPTIONS),
    "resnet152": (ResNet, {"block": Bottleneck, "layers": [3, 8, 36, 3]}, _RESNET_OPTIONS),
    "resnext50_32x4d": (
        ResNet, {"block": Bottleneck, "layers": [3, 4, 6, 3], "groups": 32, "width_per_group": 4}, _RESNET_OPTIONS
    ),
    "resnext101_32x8d": (
        ResNet, {"block": Bottleneck, "layers": [3, 4, 23, 3], "groups": 32, "width_per_group": 8}, _RESNET_OPTIONS
    ),
    "resnext101_64x4d": (
        ResNet, {"block": Bottleneck, "layers": [3, 4, 23, 3], "groups": 64, "width_per_group": 4}, _RESNET_OPTIONS
    ),
    "wide_resnet50_2": (ResNet, {"block": Bottleneck, "layers": [3, 4, 6, 3], "width_per_group": 128}, _RESNET_OPTIONS),
    "wide_resnet101_2": (
        ResNet, {"block": Bottleneck, "layers": [3, 4, 23, 3], "width_per_group": 128}, _RESNET_OPTIONS
    ),
    "mobilenet_v2": (MobileNetV2, {}, _MOBILENET_OPTIONS),
}  # fmt: skip

#: Backbone names built here without torchvision.
KNOWN_BACKBONES = tuple(sorted(_TABLE))


def build_known(name: str, **kwargs: Any) -> nn.Module | None:
    """Build backbone ``name`` from these definitions, or ``None`` when they cannot.

    ``None`` means "ask torchvision": an unknown name, or an argument these classes do
    not take (torchvision's ``norm_layer``, ``block``, ``weights``, ...).

    Args:
        name: A torchvision classification model name (``"resnet50"``).
        **kwargs: The constructor's keyword arguments (``num_classes``, ...).

    Returns:
        The network with random weights (initialised as torchvision does), or ``None``.

    Raises:
        TypeError, ValueError: arguments of a known name that the constructor refuses.

    Example:
        >>> build_known("resnet18", num_classes=2).fc.out_features
        2
        >>> build_known("vit_b_16") is None
        True
    """
    entry = _TABLE.get(name)
    if entry is None:
        return None
    cls, fixed, options = entry
    if not set(kwargs) <= options:
        return None
    return cls(**fixed, **kwargs)
