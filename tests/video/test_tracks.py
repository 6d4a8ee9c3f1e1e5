"""Linking faces into per-person tracks (pure functions on boxes; no video here)."""

from __future__ import annotations

import builtins
import logging

import numpy as np
import pytest

from deepfakedetect import ConfigError, InputError
from deepfakedetect.video import tracks
from deepfakedetect.video.tracks import (
    TrackingConfig,
    frame_signature,
    keep_tracks,
    link_faces,
    shot_starts,
    signature_distance,
)


def box(cx: float, cy: float, size: float = 40.0) -> tuple[float, float, float, float]:
    return (cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2)


def as_ids(linked: list[list[tuple[int, int]]], frames: list[list[tuple[float, ...]]]) -> list[list[float]]:
    """Each track as the x centres of its boxes, to read the expected tracks at a glance."""
    return [[round((frames[p][k][0] + frames[p][k][2]) / 2) for p, k in t] for t in linked]


def test_two_people_who_move_stay_two_tracks_whatever_the_order_faces_are_listed_in() -> None:
    frames = [
        [box(100, 100), box(300, 100)],
        [box(310, 105), box(110, 100)],  # listed the other way round
        [box(120, 98), box(320, 110)],
        [box(330, 110), box(130, 95)],
    ]
    linked = link_faces(frames)
    assert as_ids(linked, frames) == [[100, 110, 120, 130], [300, 310, 320, 330]]


def test_a_missed_detection_within_max_gap_continues_the_track_and_a_longer_one_does_not() -> None:
    frames = [[box(100, 100)], [], [], [], [box(105, 100)], [], [], [], [], [box(110, 100)]]
    linked = link_faces(frames, config=TrackingConfig(max_gap=3))
    assert [[p for p, _ in t] for t in linked] == [[0, 4], [9]]


def test_a_face_that_jumps_further_than_max_shift_or_changes_size_starts_a_new_track() -> None:
    far = [[box(100, 100)], [box(100 + 40 * 2, 100)]]  # two face sizes away
    assert len(link_faces(far, config=TrackingConfig(max_shift=1.5))) == 2
    assert len(link_faces(far, config=TrackingConfig(max_shift=2.5))) == 1
    grown = [[box(100, 100, 40)], [box(100, 100, 100)]]  # 2.5 times larger
    assert len(link_faces(grown)) == 2


def test_a_shot_cut_ends_every_track_even_when_the_faces_are_in_the_same_place() -> None:
    rng = np.random.default_rng(0)
    shot_a = rng.integers(0, 80, (90, 160, 3), dtype=np.uint8)
    shot_b = (255 - shot_a[:, ::-1]).copy()
    frames = [[box(80, 45)]] * 4
    sigs = [frame_signature(f) for f in (shot_a, shot_a, shot_b, shot_b)]
    assert [[p for p, _ in t] for t in link_faces(frames, signatures=sigs)] == [[0, 1], [2, 3]]
    # Without signatures, or with cut detection turned off, the boxes alone link them.
    assert len(link_faces(frames)) == 1
    assert len(link_faces(frames, signatures=sigs, config=TrackingConfig(cut_threshold=1.0))) == 1


def test_frame_signatures_of_one_moving_shot_are_close_and_of_two_shots_far_apart() -> None:
    rng = np.random.default_rng(1)
    scene = rng.integers(0, 256, (120, 200, 3), dtype=np.uint8)
    scene[:60] //= 4  # dark top, bright bottom
    moved = np.roll(scene, 6, axis=1)  # the camera pans a little
    other = scene[::-1].copy()  # another layout
    assert signature_distance(frame_signature(scene), frame_signature(moved)) < 0.1
    assert signature_distance(frame_signature(scene), frame_signature(other)) > 0.5
    assert shot_starts([frame_signature(scene), None, frame_signature(other)], 0.5) == []


def test_keep_tracks_drops_short_tracks_but_always_keeps_the_longest() -> None:
    long_, short = [(i, 0) for i in range(5)], [(2, 1)]
    assert keep_tracks([short, long_, [(0, 1), (1, 1), (3, 1)]], min_frames=3) == [1, 2]
    assert keep_tracks([short, [(4, 0), (5, 0)]], min_frames=3) == [1]
    assert keep_tracks([], min_frames=3) == []


def test_every_face_is_in_exactly_one_track() -> None:
    rng = np.random.default_rng(2)
    frames = [[box(*rng.uniform(50, 500, 2), size=rng.uniform(20, 60)) for _ in range(rng.integers(0, 5))]
              for _ in range(30)]  # fmt: skip
    seen = sorted(d for t in link_faces(frames) for d in t)
    assert seen == sorted((p, k) for p, f in enumerate(frames) for k in range(len(f)))


def test_the_assignment_is_optimal_with_scipy_and_greedy_without_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("scipy")
    cost = np.array([[1.0, 2.0], [1.1, 10.0]])
    assert sorted(tracks._assign(cost)) == [(0, 1), (1, 0)]  # total 3.1

    real_import = builtins.__import__

    def no_scipy(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("scipy"):
            raise ImportError("no scipy here")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    monkeypatch.setattr(tracks, "_warned_greedy", False)
    with caplog.at_level(logging.WARNING, logger="deepfakedetect.video.tracks"):
        # One track (or one face): nothing competes, the cheapest pair is optimal and nobody is warned.
        assert tracks._assign(np.array([[2.0, 1.0, 3.0]])) == [(0, 1)]
        assert tracks._assign(np.array([[2.0], [1.0]])) == [(1, 0)]
        assert caplog.text == ""
        assert sorted(tracks._assign(cost)) == [(0, 0), (1, 1)]  # cheapest first: total 11
    assert "deepfakedetect[tracking]" in caplog.text
    # Impossible pairs are never made, by either method.
    assert tracks._assign(np.array([[tracks._IMPOSSIBLE]])) == []


def test_bad_input_and_settings_are_refused_with_a_clear_message() -> None:
    with pytest.raises(InputError, match="frame 1, face 0"):
        link_faces([[box(10, 10)], [(5, 5, 1, 1)]])
    with pytest.raises(InputError, match="2 frame signatures for 1 frames"):
        link_faces([[box(10, 10)]], signatures=[None, None])
    with pytest.raises(InputError, match="RGB uint8"):
        frame_signature(np.zeros((4, 4), np.uint8))
    with pytest.raises(ConfigError, match="min_frames"):
        TrackingConfig(min_frames=0)
    with pytest.raises(ConfigError, match="cut_threshold"):
        TrackingConfig(cut_threshold=1.5)
