"""The temporal head: it learns what frame averages cannot see, saves and loads back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepfakedetect import ConfigError, DatasetError, ModelLoadError, Trainer, VideoInfo
from deepfakedetect._metrics import roc_auc
from deepfakedetect.models.temporal import (
    TemporalConfig,
    build_temporal_head,
    load_temporal,
    save_temporal,
    temporal_probability,
)
from deepfakedetect.samplers import UniformSampler
from deepfakedetect.training.temporal import (
    TemporalTrainConfig,
    TrackSequence,
    fit_temporal,
    jittered_indices,
)

DIM = 12


def flicker_sequences(n: int, seed: int) -> list[TrackSequence]:
    """Reals drift smoothly; fakes jump between two states from frame to frame.

    Both have the same distribution of embeddings and of frame scores taken one frame
    at a time, so no aggregator of frame scores (nor a mean of embeddings) tells them
    apart; only the order of the frames does.
    """
    a, b = np.random.default_rng(99).normal(size=(2, DIM))  # the two states, the same in every set
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = i % 2
        t = 16
        if label:
            state = rng.integers(0, 2, t).astype(float)  # jumps every frame
        else:
            state = np.repeat(rng.integers(0, 2, 4), t // 4).astype(float)  # a few long stretches
        feats = np.outer(state, a) + np.outer(1 - state, b) + 0.3 * rng.normal(size=(t, DIM))
        scores = np.clip(0.5 + 0.1 * rng.normal(size=t), 0.01, 0.99)
        out.append(TrackSequence([(feats.astype(np.float32), scores)], label, f"synthetic {i}"))
    return out


@pytest.mark.parametrize("kind", ["gru", "conv"])
def test_the_head_learns_a_temporal_pattern_that_frame_averages_cannot_see(kind: str) -> None:
    train, val, test = flicker_sequences(40, 0), flicker_sequences(10, 1), flicker_sequences(40, 2)
    labels = [s.label for s in test]
    mean_auc = roc_auc(labels, [float(np.mean(s.views[0][1])) for s in test])
    assert 0.3 < mean_auc < 0.7  # the frame scores carry nothing
    cfg = TemporalTrainConfig(
        kind=kind, hidden=16, dropout=0.1, epochs=8, steps_per_epoch=10, batch_size=16, min_window=16, lr=1e-2
    )
    head, report = fit_temporal(train, val, cfg)
    probs = [temporal_probability(head, s.views[0][0], s.views[0][1]) for s in test]
    assert roc_auc(labels, probs) > 0.9
    assert report["train_videos"] == 40 and len(report["history"]) == 8
    assert 1 <= report["best_epoch"] <= 8


def test_a_saved_head_loads_back_and_gives_the_same_probability(tmp_path: Path) -> None:
    head = build_temporal_head(TemporalConfig(input_dim=DIM, kind="gru", hidden=8, training={"epochs": 3}))
    feats = np.random.default_rng(0).normal(size=(20, DIM)).astype(np.float32)
    scores = np.linspace(0.1, 0.9, 20)
    save_temporal(tmp_path, head)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["temporal.json", "temporal.safetensors"]
    loaded = load_temporal(tmp_path)
    assert loaded is not None and loaded.cfg.training == {"epochs": 3}
    assert temporal_probability(loaded, feats, scores) == pytest.approx(temporal_probability(head, feats, scores))
    assert load_temporal(tmp_path / "elsewhere") is None


def test_broken_temporal_files_are_refused_naming_the_fix(tmp_path: Path) -> None:
    save_temporal(tmp_path, build_temporal_head(TemporalConfig(input_dim=DIM, hidden=8)))
    cfg = json.loads((tmp_path / "temporal.json").read_text())
    (tmp_path / "temporal.json").write_text(json.dumps({**cfg, "hidden": 16}))
    with pytest.raises(ModelLoadError, match="different trainings"):
        load_temporal(tmp_path)
    (tmp_path / "temporal.json").write_text(json.dumps({**cfg, "format_version": 99}))
    with pytest.raises(ConfigError, match="upgrade deepfakedetect"):
        load_temporal(tmp_path)
    (tmp_path / "temporal.json").unlink()
    with pytest.raises(ModelLoadError, match="temporal.json is missing"):
        load_temporal(tmp_path)


def test_settings_and_data_are_checked() -> None:
    with pytest.raises(ConfigError, match="kind"):
        TemporalConfig(input_dim=4, kind="lstm")
    with pytest.raises(ConfigError, match="epochs"):
        TemporalTrainConfig(epochs=0)
    only_real = [s for s in flicker_sequences(4, 0) if s.label == 0]
    with pytest.raises(DatasetError, match="only one class"):
        fit_temporal(only_real)
    head = build_temporal_head(TemporalConfig(input_dim=DIM, hidden=8))
    with pytest.raises(Exception, match=r"\(T, 12\)"):
        temporal_probability(head, np.zeros((0, DIM), np.float32), np.zeros(0))


def test_jittered_samplings_take_one_frame_per_part_and_the_middle_one_is_the_uniform_samplers() -> None:
    info = VideoInfo(path="a.mp4", width=8, height=8, fps=25.0, num_frames=478, duration=19.1)
    assert jittered_indices(478, 32, 0.5) == UniformSampler(num_frames=32)(info)
    shifted = jittered_indices(478, 32, 0.2)
    assert len(shifted) == 32 and all(0 <= i < 478 for i in shifted)
    assert jittered_indices(10, 32, 0.2) == list(range(10))


def test_the_trainer_refuses_temporal_training_without_a_face_detector(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="face stage on"):
        Trainer("resnet18", weights=None, progress=False).fit_temporal(tmp_path)
