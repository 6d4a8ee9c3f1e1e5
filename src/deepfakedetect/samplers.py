"""Frame samplers: which frames of a video to score (public namespace of the built-ins).

A sampler is any callable ``(VideoInfo) -> sequence of frame indices``; it never decodes.
Name one in ``detect_video(sampler="uniform:num_frames=16")``, pass an instance of a
built-in below, or pass your own function. :func:`~deepfakedetect.register_sampler`
gives yours a name.

Example:
    >>> from deepfakedetect.samplers import UniformSampler
    >>> UniformSampler(num_frames=4)
    UniformSampler(num_frames=4)
"""

from deepfakedetect.video.samplers import (
    EveryKthSampler,
    FirstSecondsSampler,
    FpsSampler,
    FrameSampler,
    KeyframeSampler,
    RandomSampler,
    UniformSampler,
    get_sampler,
    list_samplers,
    register_sampler,
)

__all__ = [
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
