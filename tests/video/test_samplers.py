"""Frame samplers against plain NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepfakedetect._errors import ConfigError, UnknownPluginError
from deepfakedetect.video.samplers import (
    EveryKthSampler,
    FirstSecondsSampler,
    FpsSampler,
    FrameSampler,
    KeyframeSampler,
    RandomSampler,
    UniformSampler,
    get_sampler,
)
from deepfakedetect.io.video import VideoInfo


def cfr(n: int, fps: float = 25.0) -> VideoInfo:
    return VideoInfo(path="v.mp4", width=64, height=48, fps=fps, num_frames=n, duration=n / fps)


def vfr(gaps: list[float], start: float = 0.0) -> VideoInfo:
    """A variable-frame-rate video: frame i+1 comes gaps[i] seconds after frame i."""
    times = tuple(float(t) for t in start + np.concatenate(([0.0], np.cumsum(gaps[:-1]))))
    n = len(times)
    return VideoInfo(
        path="v.mp4", width=64, height=48, fps=n / sum(gaps), num_frames=n,
        duration=float(sum(gaps)), frame_times=times,
    )  # fmt: skip


def times_of(video: VideoInfo) -> np.ndarray:
    if video.frame_times is not None:
        return np.array(video.frame_times)
    return np.arange(video.num_frames) / video.fps


def check_valid(indices: list[int], video: VideoInfo) -> None:
    assert indices == sorted(set(indices))
    assert all(isinstance(i, int) and 0 <= i < video.num_frames for i in indices)


videos = st.one_of(
    st.builds(cfr, st.integers(1, 3000), st.sampled_from([10.0, 24.0, 25.0, 29.97, 30.0, 60.0])),
    st.builds(vfr, st.lists(st.floats(0.005, 0.5), min_size=1, max_size=400), st.floats(0.0, 3.0)),
)


@settings(max_examples=150, deadline=None)
@given(video=videos, k=st.integers(1, 300))
def test_uniform_matches_reference(video: VideoInfo, k: int) -> None:
    n = video.num_frames
    m = min(k, n)
    reference = np.floor((np.arange(m) + 0.5) * n / m).astype(int).tolist()
    got = UniformSampler(num_frames=k)(video)
    assert got == reference
    check_valid(got, video)
    assert len(got) == m  # never duplicates, fewer only when the video is shorter


def test_uniform_known_values_and_default() -> None:
    assert UniformSampler(num_frames=4)(cfr(100)) == [12, 37, 62, 87]
    assert UniformSampler(num_frames=5)(cfr(3)) == [0, 1, 2]
    assert len(UniformSampler()(cfr(1000))) == 32
    assert repr(UniformSampler()) == "UniformSampler(num_frames=32)"


@settings(max_examples=100, deadline=None)
@given(video=videos, k=st.integers(1, 500), offset=st.integers(0, 50))
def test_every_kth_matches_reference(video: VideoInfo, k: int, offset: int) -> None:
    got = EveryKthSampler(k=k, offset=offset)(video)
    assert got == np.arange(offset, video.num_frames, k).tolist()
    check_valid(got, video)


def fps_reference(video: VideoInfo, fps: float) -> list[int]:
    times = times_of(video)
    t0 = times[0]
    samples = t0 + np.arange(int(np.ceil(video.duration * fps)) + 1) / fps
    samples = samples[samples < t0 + video.duration]
    shown = np.searchsorted(times, samples + 1e-6, side="right") - 1
    return np.unique(shown).tolist()


@settings(max_examples=150, deadline=None)
@given(video=videos, fps=st.sampled_from([0.1, 0.5, 1.0, 2.0, 3.0, 7.5, 25.0, 30.0, 100.0]))
def test_fps_matches_reference(video: VideoInfo, fps: float) -> None:
    got = FpsSampler(fps=fps)(video)
    assert got == fps_reference(video, fps)
    check_valid(got, video)


def test_fps_known_values() -> None:
    assert FpsSampler(fps=1)(cfr(100)) == [0, 25, 50, 75]
    assert FpsSampler(fps=2)(cfr(100)) == [0, 12, 25, 37, 50, 62, 75, 87]  # 12.5 rounds down to the frame on screen
    assert FpsSampler(fps=1000)(cfr(10)) == list(range(10))  # each frame once
    # Frames at 0, .25, .5, .75, 1, 2.5, 2.75, 3, 3.25 s; at 2 s frame 4 is still on screen.
    assert FpsSampler(fps=1)(vfr([0.25] * 4 + [1.5] + [0.25] * 4)) == [0, 4, 7]


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 3000), k=st.integers(1, 300), seed=st.integers(0, 2**32))
def test_random_matches_reference(n: int, k: int, seed: int) -> None:
    video = cfr(n)
    got = RandomSampler(num_frames=k, seed=seed)(video)
    reference = np.sort(np.random.default_rng(seed).choice(n, size=min(k, n), replace=False)).tolist()
    assert got == reference
    check_valid(got, video)
    assert got == RandomSampler(num_frames=k, seed=seed)(video)  # reproducible


def test_random_seeds_differ() -> None:
    assert RandomSampler(num_frames=10, seed=0)(cfr(1000)) != RandomSampler(num_frames=10, seed=1)(cfr(1000))


@settings(max_examples=150, deadline=None)
@given(video=videos, seconds=st.floats(0.01, 200.0), k=st.integers(1, 100))
def test_first_seconds_matches_reference(video: VideoInfo, seconds: float, k: int) -> None:
    times = times_of(video)
    count = int(np.sum(times < times[0] + seconds - 1e-9))
    m = min(k, count)
    reference = np.floor((np.arange(m) + 0.5) * count / m).astype(int).tolist() if m else []
    got = FirstSecondsSampler(seconds=seconds, num_frames=k)(video)
    assert got == reference
    check_valid(got, video)
    assert all(times[i] < times[0] + seconds for i in got)


def test_first_seconds_known_values() -> None:
    assert FirstSecondsSampler(seconds=2, num_frames=4)(cfr(250)) == [6, 18, 31, 43]
    assert FirstSecondsSampler(seconds=100, num_frames=3)(cfr(30)) == [5, 15, 25]


def with_keyframes(n: int, keyframes: tuple[int, ...]) -> VideoInfo:
    return VideoInfo(path="v.mp4", width=64, height=48, fps=25.0, num_frames=n, duration=n / 25.0, keyframes=keyframes)


def runs_of(indices: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def test_keyframes_takes_runs_just_after_spread_keyframes() -> None:
    video = with_keyframes(1800, tuple(range(0, 1800, 250)))  # 8 keyframes, x264's default interval
    picked = KeyframeSampler()(video)
    check_valid(picked, video)
    assert len(picked) == 32
    # Each run starts where a seek lands (just after its keyframe; the first at frame 0) and
    # ends before the next keyframe, so nothing outside the runs needs decoding.
    assert [run[0] for run in runs_of(picked)] == [0, 251, 501, 751, 1001, 1251, 1501, 1751]
    assert {len(run) for run in runs_of(picked)} == {4}


def test_keyframes_with_more_keyframes_than_runs_spreads_them() -> None:
    video = with_keyframes(3000, tuple(range(0, 3000, 30)))  # 100 keyframes
    picked = KeyframeSampler(num_frames=10, per_keyframe=2)(video)
    starts = [run[0] for run in runs_of(picked)]
    assert len(picked) == 10 and len(starts) == 5
    assert all(s == 0 or (s - 1) % 30 == 0 for s in starts)  # each just after a keyframe
    assert starts[0] < 600 and starts[-1] > 2400  # spread over the whole video


def test_keyframes_with_few_keyframes_makes_longer_runs_that_stop_at_the_next() -> None:
    video = with_keyframes(300, (0, 250))  # a 12 s clip: two keyframes
    picked = KeyframeSampler(num_frames=32, per_keyframe=4)(video)
    check_valid(picked, video)
    assert picked == list(range(0, 16)) + list(range(251, 267))
    # A run never passes the next keyframe (that would decode a second group of pictures),
    # and where the group is too short to skip its keyframe the run starts on it.
    tight = with_keyframes(8, (0, 2, 4, 6))
    assert KeyframeSampler(num_frames=16, per_keyframe=4)(tight) == [2, 3, 6, 7]


def test_keyframes_without_keyframes_is_uniform() -> None:
    video = cfr(1000)
    assert video.keyframes is None
    assert KeyframeSampler(num_frames=8)(video) == UniformSampler(num_frames=8)(video)


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 3000),
    gop=st.integers(1, 400),
    k=st.integers(1, 100),
    per=st.integers(1, 10),
)
def test_keyframes_are_valid_and_never_more_than_asked(n: int, gop: int, k: int, per: int) -> None:
    video = with_keyframes(n, tuple(range(0, n, gop)))
    picked = KeyframeSampler(num_frames=k, per_keyframe=per)(video)
    check_valid(picked, video)
    assert 1 <= len(picked) <= min(k, n)


@pytest.mark.parametrize(
    "make",
    [
        lambda: UniformSampler(num_frames=0),
        lambda: UniformSampler(num_frames=-3),
        lambda: UniformSampler(num_frames=2.5),
        lambda: UniformSampler(num_frames=True),
        lambda: EveryKthSampler(k=0),
        lambda: EveryKthSampler(k=2, offset=-1),
        lambda: FpsSampler(fps=0),
        lambda: FpsSampler(fps=float("nan")),
        lambda: FpsSampler(fps=float("inf")),
        lambda: RandomSampler(num_frames=4, seed=-1),
        lambda: RandomSampler(num_frames=0),
        lambda: FirstSecondsSampler(seconds=0),
        lambda: FirstSecondsSampler(seconds=2, num_frames=0),
        lambda: KeyframeSampler(num_frames=0),
        lambda: KeyframeSampler(per_keyframe=0),
        lambda: KeyframeSampler(per_keyframe=1.5),
    ],
)
def test_bad_parameters_raise_eagerly(make: object) -> None:
    with pytest.raises(ConfigError):
        make()  # type: ignore[operator]


def test_get_sampler_specs() -> None:
    assert get_sampler("uniform") == UniformSampler()
    assert get_sampler("uniform:num_frames=8") == UniformSampler(num_frames=8)
    assert get_sampler({"name": "fps", "fps": 2}) == FpsSampler(fps=2)
    assert get_sampler("random:num_frames=4,seed=7") == RandomSampler(num_frames=4, seed=7)
    assert get_sampler("first_seconds:seconds=5,num_frames=10") == FirstSecondsSampler(seconds=5, num_frames=10)
    assert get_sampler("every_kth:k=3") == EveryKthSampler(k=3)
    assert get_sampler("keyframes:num_frames=8,per_keyframe=2") == KeyframeSampler(num_frames=8, per_keyframe=2)

    def mine(video: VideoInfo) -> list[int]:
        return [0]

    assert get_sampler(mine) is mine
    assert isinstance(mine, FrameSampler)
    with pytest.raises(ConfigError, match="bad parameters"):
        get_sampler("uniform:frames=3")
    with pytest.raises(ConfigError, match="num_frames"):
        get_sampler("uniform:num_frames=0")
    with pytest.raises(UnknownPluginError, match="every_kth, .*first_seconds, .*uniform"):
        get_sampler("unifrom")


def test_samplers_are_frozen_and_readable() -> None:
    s = get_sampler({"name": "random", "num_frames": 3, "seed": 5})
    assert repr(s) == "RandomSampler(num_frames=3, seed=5)"
    with pytest.raises(AttributeError):
        s.seed = 6  # type: ignore[misc]
