"""Aggregators and segments against plain NumPy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepfakedetect.video.aggregators import (
    Aggregator,
    ConfidentAggregator,
    FrameScores,
    MajorityAggregator,
    MaxAggregator,
    MeanAggregator,
    MedianAggregator,
    QuantileAggregator,
    TopKMeanAggregator,
    TrimmedMeanAggregator,
    get_aggregator,
)
from deepfakedetect._errors import ConfigError, InputError, UnknownPluginError
from deepfakedetect.video.segments import Segment, find_segments


def fs(scores: list[float] | np.ndarray, fps: float = 25.0, step: int = 1) -> FrameScores:
    n = len(scores)
    idx = np.arange(n) * step
    return FrameScores(scores=np.asarray(scores, dtype=float), indices=idx, timestamps=idx / fps)


score_lists = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=120)
# Many ties and values right at the DFDC thresholds.
edgy_lists = st.lists(st.sampled_from([0.0, 0.1, 0.19, 0.2, 0.21, 0.5, 0.79, 0.8, 0.81, 0.95, 1.0]), min_size=1, max_size=80)


def dfdc_confident_strategy(pred: np.ndarray, t: float = 0.8) -> float:
    """The DFDC winner's code (selimsef/dfdc_deepfake_challenge, kernel_utils.py), verbatim logic."""
    pred = np.array(pred)
    sz = len(pred)
    fakes = np.count_nonzero(pred > t)
    if fakes > sz // 2.5 and fakes > 11:
        return float(np.mean(pred[pred > t]))
    elif np.count_nonzero(pred < 0.2) > 0.9 * sz:
        return float(np.mean(pred[pred < 0.2]))
    else:
        return float(np.mean(pred))


@settings(max_examples=200, deadline=None)
@given(scores=st.one_of(score_lists, edgy_lists), k=st.integers(1, 20), q=st.floats(0, 1),
       prop=st.floats(0, 0.49), thr=st.floats(0, 1))  # fmt: skip
def test_builtins_match_numpy(scores: list[float], k: int, q: float, prop: float, thr: float) -> None:
    s = np.array(scores)
    x = fs(s)
    assert MeanAggregator()(x) == pytest.approx(np.mean(s))
    assert MedianAggregator()(x) == pytest.approx(np.median(s))
    assert MaxAggregator()(x) == np.max(s)
    assert TopKMeanAggregator(k=k)(x) == pytest.approx(np.mean(np.sort(s)[::-1][:k]))
    assert QuantileAggregator(q=q)(x) == pytest.approx(np.quantile(s, q))
    # Trimmed mean by ranks, a different route from sorting and slicing.
    cut = int(prop * len(s))
    ranks = np.argsort(np.argsort(s, kind="stable"), kind="stable")
    kept = s[(ranks >= cut) & (ranks < len(s) - cut)]
    assert TrimmedMeanAggregator(proportion=prop)(x) == pytest.approx(kept.mean())
    assert MajorityAggregator(threshold=thr)(x) == pytest.approx(np.count_nonzero(s >= thr) / len(s))
    assert ConfidentAggregator()(x) == pytest.approx(dfdc_confident_strategy(s))
    for agg in (MeanAggregator(), TopKMeanAggregator(k=k), ConfidentAggregator()):
        assert isinstance(agg(x), float)


def test_known_values() -> None:
    assert TrimmedMeanAggregator(proportion=0.1)(fs(np.arange(20) / 19)) == pytest.approx(9.5 / 19)  # scipy's example
    assert TopKMeanAggregator(k=5)(fs([0.1, 0.2])) == pytest.approx(0.15)  # fewer than k: all of them
    assert QuantileAggregator()(fs([0.0, 1.0])) == pytest.approx(0.9)
    assert MajorityAggregator(threshold=0.5)(fs([0.5, 0.4])) == 0.5  # at the threshold counts


def test_confident_strategy_branches() -> None:
    agg = ConfidentAggregator()
    # 13 of 32 frames above 0.8: more than 11 and more than 32 / 2.5 = 12.8, so only those count.
    x = [0.9] * 13 + [0.3] * 19
    assert agg(fs(x)) == pytest.approx(0.9)
    # 12 of 32 is not more than 12.8: plain mean.
    x = [0.9] * 12 + [0.3] * 20
    assert agg(fs(x)) == pytest.approx(np.mean(x))
    # 11 confident fakes of 20 is not more than 11: plain mean.
    x = [0.95] * 11 + [0.5] * 9
    assert agg(fs(x)) == pytest.approx(np.mean(x))
    # More than 90% below 0.2: mean of those.
    x = [0.1] * 29 + [0.6] * 3
    assert agg(fs(x)) == pytest.approx(0.1)
    # Exactly 90% below 0.2 is not more than 90%.
    x = [0.1] * 9 + [0.6]
    assert agg(fs(x)) == pytest.approx(np.mean(x))
    # Parameters change the decision.
    x = [0.9] * 5 + [0.3] * 5
    assert ConfidentAggregator(min_fake_frames=4, fake_divisor=2.5)(fs(x)) == pytest.approx(0.9)
    assert repr(agg) == (
        "ConfidentAggregator(fake_threshold=0.8, min_fake_frames=11, fake_divisor=2.5, "
        "real_threshold=0.2, real_fraction=0.9)"
    )


@pytest.mark.parametrize(
    "agg",
    [MeanAggregator(), MedianAggregator(), MaxAggregator(), TopKMeanAggregator(), QuantileAggregator(),
     TrimmedMeanAggregator(), MajorityAggregator(), ConfidentAggregator()],  # fmt: skip
)
def test_empty_scores_raise(agg: Aggregator) -> None:
    with pytest.raises(InputError, match="at least one"):
        agg(FrameScores(scores=[], indices=[], timestamps=[]))


@pytest.mark.parametrize(
    "make",
    [
        lambda: TopKMeanAggregator(k=0),
        lambda: TopKMeanAggregator(k=1.5),
        lambda: QuantileAggregator(q=1.5),
        lambda: QuantileAggregator(q=float("nan")),
        lambda: TrimmedMeanAggregator(proportion=0.5),
        lambda: TrimmedMeanAggregator(proportion=-0.1),
        lambda: MajorityAggregator(threshold=2),
        lambda: ConfidentAggregator(fake_divisor=0),
        lambda: ConfidentAggregator(min_fake_frames=-1),
        lambda: ConfidentAggregator(real_fraction=1.5),
    ],
)
def test_bad_parameters_raise_eagerly(make: object) -> None:
    with pytest.raises(ConfigError):
        make()  # type: ignore[operator]


def test_frame_scores_validates() -> None:
    x = fs([0.2, 0.4])
    assert len(x) == 2 and x.indices.dtype == np.int64 and x.timestamps.dtype == np.float64
    with pytest.raises(ValueError):
        x.scores[0] = 1.0  # read-only
    with pytest.raises(InputError, match="same length"):
        FrameScores(scores=[0.1, 0.2], indices=[0], timestamps=[0.0])
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        FrameScores(scores=[1.2], indices=[0], timestamps=[0.0])
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        FrameScores(scores=[math.nan], indices=[0], timestamps=[0.0])
    with pytest.raises(InputError, match="one-dimensional"):
        FrameScores(scores=[[0.1]], indices=[[0]], timestamps=[[0.0]])


def test_get_aggregator_specs() -> None:
    assert get_aggregator("mean") == MeanAggregator()
    assert get_aggregator("top_k_mean:k=3") == TopKMeanAggregator(k=3)
    assert get_aggregator({"name": "quantile", "q": 0.5}) == QuantileAggregator(q=0.5)
    assert get_aggregator("confident:fake_threshold=0.7") == ConfidentAggregator(fake_threshold=0.7)
    assert get_aggregator("trimmed_mean:proportion=0.2") == TrimmedMeanAggregator(proportion=0.2)
    assert get_aggregator("majority:threshold=0.6") == MajorityAggregator(threshold=0.6)
    assert get_aggregator("median") == MedianAggregator() and get_aggregator("max") == MaxAggregator()
    with pytest.raises(UnknownPluginError, match="confident, .*top_k_mean"):
        get_aggregator("avg")
    with pytest.raises(ConfigError, match="bad parameters"):
        get_aggregator("top_k_mean:n=3")


# ---------------------------------------------------------------- segments


def smooth_reference(s: np.ndarray, w: int) -> np.ndarray:
    padded = np.pad(s, ((w - 1) // 2, w // 2), mode="edge")
    return np.convolve(padded, np.ones(w) / w, mode="valid")


def segments_reference(x: FrameScores, threshold: float, smoothing: int, min_frames: int) -> list[tuple]:
    order = np.argsort(x.indices)
    s, idx, ts = x.scores[order], x.indices[order], x.timestamps[order]
    flagged = smooth_reference(s, smoothing) >= threshold - 1e-12
    out = []
    n = len(s)
    run: list[int] = []
    for i in range(n + 1):
        if i < n and flagged[i]:
            run.append(i)
            continue
        if run and len(run) >= min_frames:
            a, b = run[0], run[-1]
            start = ts[a] if a == 0 else (ts[a - 1] + ts[a]) / 2
            end = ts[b] if b == n - 1 else (ts[b] + ts[b + 1]) / 2
            out.append((start, end, int(idx[a]), int(idx[b]), float(s[a : b + 1].mean()), len(run)))
        run = []
    return out


@settings(max_examples=200, deadline=None)
@given(scores=st.one_of(score_lists, edgy_lists), thr=st.sampled_from([0.0, 0.2, 0.5, 0.8, 1.0]),
       smoothing=st.integers(1, 6), min_frames=st.integers(1, 4), seed=st.integers(0, 1000))  # fmt: skip
def test_segments_match_reference(scores: list[float], thr: float, smoothing: int, min_frames: int, seed: int) -> None:
    x = fs(scores, step=7)
    # Any input order gives the same segments.
    perm = np.random.default_rng(seed).permutation(len(scores))
    shuffled = FrameScores(scores=x.scores[perm], indices=x.indices[perm], timestamps=x.timestamps[perm])
    got = find_segments(shuffled, threshold=thr, smoothing=smoothing, min_frames=min_frames)
    ref = segments_reference(x, thr, smoothing, min_frames)
    assert len(got) == len(ref)
    for seg, (start, end, a, b, score, count) in zip(got, ref):
        assert (seg.start, seg.end, seg.start_index, seg.end_index, seg.num_frames) == pytest.approx(
            (start, end, a, b, count)
        )
        assert seg.score == pytest.approx(score)
        assert seg.end >= seg.start


def test_segments_known_values() -> None:
    x = fs([0.1, 0.1, 0.9, 0.9, 0.9, 0.1, 0.1, 0.95, 0.1], fps=1.0)
    assert find_segments(x, threshold=0.5, smoothing=1) == [
        Segment(start=1.5, end=4.5, start_index=2, end_index=4, score=pytest.approx(0.9), num_frames=3),
        Segment(start=6.5, end=7.5, start_index=7, end_index=7, score=0.95, num_frames=1),
    ]
    # Smoothing over 3 frames removes the lone fake frame; min_frames would too.
    assert [(s.start_index, s.end_index) for s in find_segments(x, threshold=0.5, smoothing=3)] == [(2, 4)]
    assert len(find_segments(x, threshold=0.5, smoothing=1, min_frames=2)) == 1
    # A run touching either end stops at that frame's timestamp.
    y = fs([0.9, 0.9, 0.1, 0.9], fps=1.0)
    assert [(s.start, s.end) for s in find_segments(y, threshold=0.5, smoothing=1)] == [(0.0, 1.5), (2.5, 3.0)]
    assert find_segments(fs([0.1, 0.2]), threshold=0.5) == []
    # An average exactly at the threshold counts, whatever the rounding of the sum.
    assert len(find_segments(fs([0.2, 0.8, 0.2, 0.8]), threshold=0.5, smoothing=2)) == 1
    assert find_segments(FrameScores(scores=[], indices=[], timestamps=[]), threshold=0.5) == []
    d = find_segments(x, threshold=0.5, smoothing=1)[0].to_dict()
    assert d == {"start": 1.5, "end": 4.5, "start_index": 2, "end_index": 4, "score": pytest.approx(0.9), "num_frames": 3}


def test_segments_validate_arguments() -> None:
    x = fs([0.5])
    with pytest.raises(ConfigError, match="threshold"):
        find_segments(x, threshold=1.5)
    with pytest.raises(ConfigError, match="smoothing"):
        find_segments(x, threshold=0.5, smoothing=0)
    with pytest.raises(ConfigError, match="min_frames"):
        find_segments(x, threshold=0.5, min_frames=0)
    with pytest.raises(InputError):
        find_segments([0.5], threshold=0.5)  # type: ignore[arg-type]
