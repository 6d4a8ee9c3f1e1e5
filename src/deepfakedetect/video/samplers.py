"""Frame samplers: which frames of a video to score.

A sampler is anything callable as ``sampler(video_info) -> frame indices``; it never
decodes. Built-ins are frozen dataclasses whose fields are their parameters, so their
``repr`` records exactly what ran, and they are registered by name so that configs
and the command line can say ``"uniform:num_frames=16"`` or
``{"name": "fps", "fps": 2}``. Every built-in returns sorted, distinct indices in
``0 .. num_frames - 1``, and fewer than asked for when the video is shorter.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

import numpy as np

from deepfakedetect._errors import ConfigError
from deepfakedetect._registry import Registry
from deepfakedetect.io.video import VideoInfo

logger = logging.getLogger(__name__)

__all__ = [
    "SAMPLERS",
    "EveryKthSampler",
    "FirstSecondsSampler",
    "FpsSampler",
    "FrameSampler",
    "KeyframeSampler",
    "RandomSampler",
    "UniformSampler",
    "get_sampler",
    "list_samplers",
    "register_sampler",
]


@runtime_checkable
class FrameSampler(Protocol):
    """Chooses frame indices from a probed video, without decoding anything.

    Any callable with this signature is a sampler, a plain function included.

    Example:
        >>> def first_frame(video):
        ...     return [0]
        >>> isinstance(first_frame, FrameSampler)
        True
    """

    def __call__(self, video: VideoInfo, /) -> Sequence[int]: ...


SAMPLERS: Registry[Callable[..., Any]] = Registry("sampler", group="deepfakedetect.samplers")

F = TypeVar("F", bound=Callable[..., Any])


def register_sampler(name: str | None = None, *, override: bool = False) -> Callable[[F], F]:
    """Decorator that registers a sampler class or function under ``name``.

    Args:
        name: The name configs and the CLI use; default: the object's ``__name__``.
        override: Replace an existing sampler of that name instead of raising.

    Returns:
        The decorator; it returns the object unchanged.

    Raises:
        ConfigError: when the name is taken and ``override`` is false.

    Example:
        >>> @register_sampler("middle_frame_example")
        ... def middle_frame(video):
        ...     return [video.num_frames // 2]
        >>> info = VideoInfo(path="a.mp4", width=8, height=8, fps=25.0, num_frames=100, duration=4.0)
        >>> get_sampler("middle_frame_example")(info)
        [50]
    """
    return SAMPLERS.register(name, override=override)


def list_samplers() -> list[str]:
    """Sorted names of the samplers known now, entry points of installed packages included.

    Returns:
        The names ``get_sampler`` accepts.

    Example:
        >>> "uniform" in list_samplers()
        True
    """
    return SAMPLERS.names()


def get_sampler(spec: Any) -> FrameSampler:
    """A ready sampler from a name, ``"name:key=value"``, a mapping, or a callable.

    Args:
        spec: ``"uniform"``, ``"uniform:num_frames=16"``, ``{"name": "fps", "fps": 2}``,
            or any callable ``(VideoInfo) -> indices`` (returned as it is).

    Returns:
        The sampler.

    Raises:
        UnknownPluginError: no sampler has that name (the message lists the known ones).
        ConfigError: the spec or its parameters are invalid.

    Example:
        >>> get_sampler("every_kth:k=10")
        EveryKthSampler(k=10, offset=0)
    """
    return cast(FrameSampler, SAMPLERS.create(spec))


def _check_int(owner: str, name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{owner}.{name} must be an integer >= {minimum}, got {value!r}")


def _check_positive(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
        math.isfinite(value) and value > 0
    ):
        raise ConfigError(f"{owner}.{name} must be a positive number, got {value!r}")


def _spread(count: int, num_frames: int) -> list[int]:
    """``num_frames`` indices spread evenly over ``range(count)``, centred in equal parts."""
    k = min(num_frames, count)
    if k <= 0:
        return []
    # Parts are at least one frame long (k <= count), so the centres never collide.
    return [int((2 * i + 1) * count // (2 * k)) for i in range(k)]


def _times(video: VideoInfo) -> Sequence[float]:
    if video.frame_times is not None:
        return video.frame_times
    return [i / video.fps for i in range(video.num_frames)]


@register_sampler("uniform")
@dataclass(frozen=True)
class UniformSampler:
    """``num_frames`` frames spread evenly: the middle frame of each of ``num_frames`` equal parts.

    Frame ``floor((2i + 1) * n / (2 * num_frames))`` for ``i`` in ``0 .. num_frames - 1``,
    where ``n`` is the video's frame count; every frame when the video has fewer.

    Example:
        >>> info = VideoInfo(path="a.mp4", width=8, height=8, fps=25.0, num_frames=100, duration=4.0)
        >>> UniformSampler(num_frames=4)(info)
        [12, 37, 62, 87]
    """

    num_frames: int = 32

    def __post_init__(self) -> None:
        _check_int("uniform", "num_frames", self.num_frames, minimum=1)

    def __call__(self, video: VideoInfo, /) -> list[int]:
        return _spread(video.num_frames, self.num_frames)


@register_sampler("every_kth")
@dataclass(frozen=True)
class EveryKthSampler:
    """Every ``k``-th frame, starting at frame ``offset``.

    Example:
        >>> info = VideoInfo(path="a.mp4", width=8, height=8, fps=25.0, num_frames=10, duration=0.4)
        >>> EveryKthSampler(k=4)(info)
        [0, 4, 8]
    """

    k: int
    offset: int = 0

    def __post_init__(self) -> None:
        _check_int("every_kth", "k", self.k, minimum=1)
        _check_int("every_kth", "offset", self.offset, minimum=0)

    def __call__(self, video: VideoInfo, /) -> list[int]:
        return list(range(self.offset, video.num_frames, self.k))


@register_sampler("fps")
@dataclass(frozen=True)
class FpsSampler:
    """The frames on screen at a fixed rate: at times ``t0 + j / fps``, ``j = 0, 1, ...``.

    ``t0`` is the first frame's timestamp; the frame on screen at a time is the last
    one whose timestamp is not after it. Asking for more than the video's own rate
    gives each frame once.

    Example:
        >>> info = VideoInfo(path="a.mp4", width=8, height=8, fps=25.0, num_frames=100, duration=4.0)
        >>> FpsSampler(fps=1)(info)
        [0, 25, 50, 75]
    """

    fps: float

    def __post_init__(self) -> None:
        _check_positive("fps", "fps", self.fps)

    def __call__(self, video: VideoInfo, /) -> list[int]:
        if video.num_frames == 0:
            return []
        times = np.asarray(_times(video), dtype=np.float64)
        t0 = times[0]
        # The frame on screen at time t is the last with timestamp <= t (+1 us against
        # rounding), so frame i is shown during [times[i] - tol, times[i+1] - tol). It is
        # sampled when the first sampling time in that span exists and is before the end.
        # Computed per frame, so a huge fps costs no more than the frame count.
        tol = 1e-6
        ends = np.append(times[1:] - tol, t0 + video.duration)
        j = np.maximum(np.ceil((times - tol - t0) * self.fps), 0.0)
        first = t0 + j / self.fps
        picked = (first < ends) & (first < t0 + video.duration)
        return [int(i) for i in np.flatnonzero(picked)]


@register_sampler("random")
@dataclass(frozen=True)
class RandomSampler:
    """``num_frames`` distinct frames drawn at random (reproducible with ``seed``), sorted.

    Draws with ``numpy.random.default_rng(seed).choice(n, size, replace=False)``.

    Example:
        >>> info = VideoInfo(path="a.mp4", width=8, height=8, fps=25.0, num_frames=100, duration=4.0)
        >>> len(RandomSampler(num_frames=5, seed=1)(info))
        5
    """

    num_frames: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        _check_int("random", "num_frames", self.num_frames, minimum=1)
        _check_int("random", "seed", self.seed, minimum=0)

    def __call__(self, video: VideoInfo, /) -> list[int]:
        k = min(self.num_frames, video.num_frames)
        rng = np.random.default_rng(self.seed)
        return sorted(int(i) for i in rng.choice(video.num_frames, size=k, replace=False))


@register_sampler("first_seconds")
@dataclass(frozen=True)
class FirstSecondsSampler:
    """``num_frames`` frames spread evenly (as ``uniform``) over the first ``seconds``.

    The frames considered are those whose timestamp is less than ``seconds`` after the
    first frame's.

    Example:
        >>> info = VideoInfo(path="a.mp4", width=8, height=8, fps=25.0, num_frames=250, duration=10.0)
        >>> FirstSecondsSampler(seconds=2, num_frames=4)(info)
        [6, 18, 31, 43]
    """

    seconds: float = 10.0
    num_frames: int = 32

    def __post_init__(self) -> None:
        _check_positive("first_seconds", "seconds", self.seconds)
        _check_int("first_seconds", "num_frames", self.num_frames, minimum=1)

    def __call__(self, video: VideoInfo, /) -> list[int]:
        if video.num_frames == 0:
            return []
        times = _times(video)
        count = bisect.bisect_left(times, times[0] + self.seconds - 1e-9)
        return _spread(count, self.num_frames)


@register_sampler("keyframes")
@dataclass(frozen=True)
class KeyframeSampler:
    """``num_frames`` frames that are cheap to decode: short runs just after keyframes.

    A video decoder can start only at a keyframe, so each wanted frame costs the frames
    between it and the keyframe before it. With one keyframe every 250 frames (x264's
    default, common in real videos), ``uniform``'s 32 frames of a one-minute video cost
    decoding nearly all 1,800. This sampler takes ``ceil(num_frames / per_keyframe)``
    keyframes spread evenly over the video (all of them when there are fewer), and from
    each a run of consecutive frames starting just after it (where the decoder lands
    after seeking), so about ``num_frames`` frames are decoded in all. The price is
    fewer distinct moments of the video: runs of neighbouring frames instead of frames
    spread over its whole length, which matters most for short clips with few
    keyframes. A video whose probe found no keyframes gets ``uniform``'s frames. The
    saving needs a container that indexes its keyframes (MP4, MOV, Matroska, WebM), where
    the decoder seeks; elsewhere (MPEG-TS, raw streams) the same frames are decoded from
    the start.

    The default model's video calibration was fitted with ``uniform``; see the
    performance page for what this sampler changes on the benchmark video.

    Example:
        >>> info = VideoInfo(path="a.mp4", width=8, height=8, fps=25.0, num_frames=1000, duration=40.0,
        ...                  keyframes=(0, 250, 500, 750))
        >>> KeyframeSampler(num_frames=8, per_keyframe=2)(info)
        [0, 1, 251, 252, 501, 502, 751, 752]
    """

    num_frames: int = 32
    per_keyframe: int = 4

    def __post_init__(self) -> None:
        _check_int("keyframes", "num_frames", self.num_frames, minimum=1)
        _check_int("keyframes", "per_keyframe", self.per_keyframe, minimum=1)

    def __call__(self, video: VideoInfo, /) -> list[int]:
        n = video.num_frames
        keyframes = [k for k in video.keyframes or () if 0 <= k < n]
        if not keyframes:
            return _spread(n, self.num_frames)
        want = min(self.num_frames, n)
        chosen = [keyframes[i] for i in _spread(len(keyframes), math.ceil(want / self.per_keyframe))]
        picked: set[int] = set()
        for i, k in enumerate(chosen):
            count = want // len(chosen) + (1 if i < want % len(chosen) else 0)
            nxt = bisect.bisect_right(keyframes, k)
            end = keyframes[nxt] if nxt < len(keyframes) else n
            start = k + 1 if k > 0 and end - k > count else k  # a seek lands just after k
            picked.update(range(start, min(start + count, end)))
        return sorted(picked)
