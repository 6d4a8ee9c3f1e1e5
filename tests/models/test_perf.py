"""Inference copies: BatchNorm folded into convolutions, same scores, never stale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepfakedetect import Detector
from deepfakedetect.models.backbones import build_model
from deepfakedetect.models.precision import InferenceCopy, cast_matmul_weights, fold_batchnorm

CPU = torch.device("cpu")
rng = np.random.default_rng(0)
IMAGES = [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(6)]


def _with_running_stats(model: nn.Module) -> nn.Module:
    # Fresh batch norms have mean 0 / var 1, so folding them would be nearly a no-op;
    # a few training-mode passes give them statistics worth folding.
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 3, 32, 32) * 3 + 1)  # 3 channels in: every model here takes images
    return model.eval()


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v2"])
def test_folded_copy_has_no_batchnorm_and_the_same_outputs(backbone):
    torch.manual_seed(0)
    model = _with_running_stats(build_model(backbone, num_outputs=2))
    folded = fold_batchnorm(model)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        ref, out = model(x), folded(x)
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4), (out - ref).abs().max()


def test_an_untraceable_model_gets_its_sequential_pairs_folded():
    class DataDependent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2)  # attributes: left as they are
            self.block = nn.Sequential(nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2))  # folded

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # control flow on data: torch.fx cannot trace it
                x = -x
            return self.block(self.bn(self.conv(x))).mean((2, 3))

    model = _with_running_stats(DataDependent())
    copy_ = fold_batchnorm(model)
    assert copy_ is not model and isinstance(copy_.bn, nn.BatchNorm2d) and isinstance(model.block[1], nn.BatchNorm2d)
    assert isinstance(copy_.block[1], nn.Identity)
    x = torch.randn(2, 3, 4, 4)
    assert torch.allclose(copy_(x), model(x), atol=1e-5)


def test_detector_scores_match_the_unfolded_model_in_fp32():
    torch.manual_seed(0)
    det = Detector.from_backbone("resnet18", input_size=32, device="cpu", precision="fp32")
    _with_running_stats(det.model)
    scores = det.score_arrays(IMAGES)
    with torch.inference_mode():
        ref = det.fake_probability(det.model(det.preprocess(IMAGES))).double().numpy()
    np.testing.assert_allclose(scores, ref, atol=1e-5)


def test_the_copy_follows_weight_changes():
    torch.manual_seed(0)
    det = Detector.from_backbone("resnet18", input_size=32, device="cpu", precision="fp32")
    before = det.score_arrays(IMAGES)
    first = det._inference.get(det.model, CPU)
    assert det._inference.get(det.model, CPU) is first  # unchanged weights: reused

    # An optimiser step on the original (in place, as training does) ...
    opt = torch.optim.SGD(det.model.parameters(), lr=1.0)
    det.model.train()
    loss = det.model(torch.randn(4, 3, 32, 32)).logsumexp(1).mean()
    loss.backward()
    opt.step()
    det.model.eval()
    after_step = det.score_arrays(IMAGES)
    assert det._inference.get(det.model, CPU) is not first
    with torch.inference_mode():
        ref = det.fake_probability(det.model(det.preprocess(IMAGES))).double().numpy()
    np.testing.assert_allclose(after_step, ref, atol=1e-5)
    assert np.abs(after_step - before).max() > 1e-3

    # ... loading other weights, and replacing the model, are seen too.
    other = build_model("resnet18", num_outputs=2)
    det.model.load_state_dict(other.state_dict())
    with torch.inference_mode():
        ref = det.fake_probability(other.eval()(det.preprocess(IMAGES))).double().numpy()
    np.testing.assert_allclose(det.score_arrays(IMAGES), ref, atol=1e-5)
    det.model = _with_running_stats(build_model("resnet18", num_outputs=2))
    with torch.inference_mode():
        ref = det.fake_probability(det.model(det.preprocess(IMAGES))).double().numpy()
    np.testing.assert_allclose(det.score_arrays(IMAGES), ref, atol=1e-5)


def test_weights_stored_in_the_autocast_dtype_give_the_same_outputs_under_autocast():
    torch.manual_seed(0)
    model = build_model("mobilenet_v2", num_outputs=2).eval()
    per_call = InferenceCopy().get(model, torch.device("cpu"))
    stored = InferenceCopy().get(model, torch.device("cpu"), dtype=torch.bfloat16)
    convs = [m for m in stored.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert convs and all(m.weight.dtype == torch.bfloat16 for m in convs)
    assert all(p.dtype == torch.float32 for m in per_call.modules() for p in m.parameters(recurse=False))
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = per_call(x), stored(x)
    # The same rounding of the same weights, once instead of at every call.
    torch.testing.assert_close(a.float(), b.float(), rtol=0, atol=1e-6)
    assert model.features[0][0].weight.dtype == torch.float32  # the model itself is untouched
    m = cast_matmul_weights(nn.Sequential(nn.Linear(3, 2), nn.LayerNorm(2)), torch.bfloat16)
    assert m[0].weight.dtype == torch.bfloat16 and m[1].weight.dtype == torch.float32


def test_a_training_model_is_used_as_it_is():
    model = build_model("resnet18", num_outputs=2).train()
    assert InferenceCopy().get(model, CPU) is model


@pytest.mark.slow
def test_compiled_scoring_matches_eager_with_padded_batches():
    torch.manual_seed(0)
    det = Detector.from_backbone("resnet18", input_size=32, device="cpu", precision="fp32")
    eager = det.score_arrays(IMAGES, batch_size=4)  # 6 images: a full batch and a padded one
    assert det.compile() is det
    compiled = det.score_arrays(IMAGES, batch_size=4)
    assert det._compiled  # it did not fall back
    np.testing.assert_allclose(compiled, eager, atol=1e-5)
    np.testing.assert_allclose(det.compile(False).score_arrays(IMAGES, batch_size=4), eager, atol=1e-6)


def test_a_failed_compilation_falls_back_to_eager(monkeypatch, caplog):
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", lambda model, **kw: Broken())
    det = Detector.from_backbone("resnet18", input_size=32, device="cpu", precision="fp32")
    eager = det.score_arrays(IMAGES)
    with caplog.at_level("WARNING", logger="deepfakedetect.detector"):
        scores = det.compile().score_arrays(IMAGES)
    np.testing.assert_allclose(scores, eager, atol=1e-6)
    assert not det._compiled and "no C++ compiler found" in caplog.text
