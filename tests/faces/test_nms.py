"""Non-maximum suppression without torchvision, checked against torchvision's."""

from __future__ import annotations

import pytest
import torch

from deepfakedetect.faces.nms import batched_nms, nms

ops = pytest.importorskip("torchvision.ops")


def _boxes(g: torch.Generator, n: int) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g) * 600
    return torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 80 + 1], dim=1)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("n", [1, 7, 300, 1200])  # 1200 boxes: torchvision's per-group path
def test_same_indices_as_torchvision(n, ties):
    g = torch.Generator().manual_seed(n)
    for threshold in (0.3, 0.4, 0.7):
        boxes = _boxes(g, n)
        scores = torch.rand(n, generator=g)
        if ties:
            scores = (scores * 5).round() / 5
        groups = torch.randint(0, 4, (n,), generator=g)
        assert torch.equal(nms(boxes, scores, threshold), ops.nms(boxes, scores, threshold))
        assert torch.equal(
            batched_nms(boxes, scores, groups, threshold), ops.batched_nms(boxes, scores, groups, threshold)
        )


def test_empty_input_and_separate_groups():
    empty = torch.zeros((0, 4))
    assert batched_nms(empty, torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5).tolist() == []
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [0.5, 0.0, 10.0, 10.0]])
    scores = torch.tensor([0.5, 0.9, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [1]  # the best box suppresses both others
    # Different groups never suppress each other; the result is by decreasing score.
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [1, 2]
