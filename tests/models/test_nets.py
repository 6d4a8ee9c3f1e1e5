"""The built-in ResNets and MobileNetV2 against torchvision's: same keys, same random init, same outputs."""

from __future__ import annotations

import pytest
import torch

from deepfakedetect.models.nets import KNOWN_BACKBONES, build_known

torchvision = pytest.importorskip("torchvision")

COMMON = ["resnet18", "resnet50", "mobilenet_v2", "resnext50_32x4d", "wide_resnet50_2"]
LARGE = sorted(set(KNOWN_BACKBONES) - set(COMMON))


def _both(name: str, **kwargs: object) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    ours = build_known(name, **kwargs)
    torch.manual_seed(0)
    theirs = torchvision.models.get_model(name, **kwargs)
    assert ours is not None
    return ours, theirs


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)  # the same keys, in the same order
    different = [k for k in sa if sa[k].shape != sb[k].shape or not torch.equal(sa[k], sb[k])]
    assert not different, different[:5]


@pytest.mark.parametrize("name", COMMON)
def test_same_keys_random_init_and_outputs_as_torchvision(name):
    ours, theirs = _both(name, num_classes=3)
    _same_state(ours, theirs)  # same modules, created and initialised in the same order
    # Non-trivial BatchNorm statistics and weights, shared by both.
    g = torch.Generator().manual_seed(1)
    state = {
        k: (v.abs() + 0.5 if "running_var" in k else v + 0.05 * torch.randn(v.shape, generator=g))
        if v.is_floating_point() else v
        for k, v in theirs.state_dict().items()
    }
    ours.load_state_dict(state, strict=True)
    theirs.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 64, 64, generator=g)
    with torch.inference_mode():
        assert torch.equal(ours.eval()(x), theirs.eval()(x))


@pytest.mark.slow
@pytest.mark.parametrize("name", LARGE)
def test_large_backbones_match_torchvision_init(name):
    _same_state(*_both(name, num_classes=2))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("mobilenet_v2", {"width_mult": 0.5, "dropout": 0.1}),
        ("resnet50", {"zero_init_residual": True, "replace_stride_with_dilation": [False, True, True]}),
    ],
)
def test_constructor_options_match_torchvision(name, kwargs):
    _same_state(*_both(name, num_classes=2, **kwargs))


def test_unknown_names_and_options_are_left_to_torchvision():
    assert build_known("vit_b_16") is None
    assert build_known("resnet18", norm_layer=torch.nn.Identity) is None
    assert build_known("mobilenet_v2", block=None) is None
