"""Probe videos and decode only the frames asked for, streaming, with ffmpeg.

Everything goes through the ffmpeg binary that imageio-ffmpeg ships (there is no
ffprobe), run as a child process whose raw RGB output is read from a pipe one frame
at a time, so memory stays flat whatever the video's length.

How frames are decoded (``strategy``), chosen by measurement (``benchmarks/video_decode.py``
on a 2-core machine; the numbers are in the project's notes):

- ``"select"``: one ffmpeg that decodes from the start to the last wanted frame and
  lets its ``select`` filter keep the wanted ones, scaled inside ffmpeg before the RGB
  conversion. Best for short videos and dense requests: the FaceForensics++ files have
  one keyframe every 250 frames, so seeking saves nothing there.
- ``"seek"``: one ffmpeg per frame, each started with ``-ss`` just before the frame
  (ffmpeg seeks to the previous keyframe and decodes forward). Wins only when keyframes
  are close together and the frames far apart.
- ``"all"``: pipe every frame (scaled) to Python and keep the wanted ones; the
  reference the others are checked against, and the fallback for index lists too
  long for a ``select`` expression.
- ``"auto"`` (default): groups the wanted frames into runs, one ffmpeg per run, and
  starts a new run (seeking to the keyframe before its first frame) only where the
  frames that seeking skips cost more to decode than starting another ffmpeg. With
  one keyframe every 250 frames this is one ``select`` pass for short clips; on long
  videos or short keyframe intervals it seeks.

Frame indices count decoded frames in presentation order, as ffmpeg's ``select``
filter numbers them; :func:`probe_video` counts the same frames (every packet the
demuxer hands over that is neither marked discard, as edit lists do, nor corrupt).
"""

from __future__ import annotations

import bisect
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from deepfakedetect._errors import ConfigError, VideoDecodeError
from deepfakedetect.io.ffmpeg import (
    INDEXED_CONTAINERS,
    LOCAL_INPUT_OPTS,
    FFmpegPipe,
    check_timeout,
    ffmpeg_exe,
    is_int,
    is_url,
    stderr_tail,
    x264_build,
)
from deepfakedetect.io.probe import VideoInfo, probe_video

logger = logging.getLogger(__name__)

__all__ = ["DECODE_STRATEGIES", "VideoInfo", "probe_video", "read_frames"]

DECODE_STRATEGIES = ("auto", "select", "seek", "all")

# Cost model of "auto", from measurements on a 2-core machine (ffmpeg n9, H.264):
# decoding costs about 2 ns per pixel per frame (1080p 3.7 ms, 854x480 0.84 ms), and
# starting one more ffmpeg that opens the file and delivers its first frame about
# 30 ms plus 30 ns per pixel (decoder set-up: 1080p 90 ms, 480p 50 ms). Only the
# ratio matters, and both scale alike with the CPU.
_DECODE_S_PER_PIXEL = 2e-9
_SPAWN_S = 0.03
_SPAWN_S_PER_PIXEL = 3e-8
# Linux limits one command-line argument to 128 KiB; longer selections use "all".
_MAX_SELECT_EXPR = 60_000


def _output_size(width: int, height: int, max_size: int | None) -> tuple[int, int]:
    if max_size is None or max(width, height) <= max_size:
        return width, height
    scale = max_size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _select_expr(offsets: Sequence[int]) -> str:
    """An ffmpeg ``select`` expression true exactly for the sorted frame numbers given."""
    terms: list[str] = []
    i = 0
    n = len(offsets)
    while i < n:
        start = offsets[i]
        if i + 1 == n:
            terms.append(f"eq(n,{start})")
            break
        step = offsets[i + 1] - start
        j = i + 1
        while j + 1 < n and offsets[j + 1] - offsets[j] == step:
            j += 1
        stop = offsets[j]
        if j - i < 2 and step != 1:  # two frames far apart: two eq() terms are shorter
            terms.append(f"eq(n,{start})")
            i += 1
            continue
        if step == 1:
            terms.append(f"between(n,{start},{stop})")
        else:
            terms.append(f"between(n,{start},{stop})*not(mod(n-{start},{step}))")
        i = j + 1
    return "+".join(terms)


@dataclass
class _Job:
    indices: list[int]
    # The first frame ffmpeg outputs after its -ss seek (see _seek_start); None: decode
    # from the start.
    seek: int | None
    keep_all: bool = False  # pipe every frame and keep the wanted ones in Python


def _keyframe_before(keyframes: Sequence[int], index: int) -> int:
    pos = bisect.bisect_right(keyframes, index) - 1
    return keyframes[pos] if pos >= 0 else 0


# Seeking just after a keyframe is safe only if the next keyframe cannot decode before it:
# with B-frames a keyframe's decode time is a few frames ahead of its presentation time.
_MIN_GOP_FOR_SEEK_AFTER = 8


def _seek_start(keyframes: Sequence[int], index: int) -> int | None:
    """Where a run that must output frame ``index`` starts, seeking from keyframe k before it.

    ffmpeg seeks the demuxer to the last keyframe whose decode time is at or before the
    ``-ss`` time, then (accurate seek) drops the frames shown before that time. The time
    is taken half a frame before the start frame (``_seek_time``). Starting at k itself
    would put that time just before k, and the demuxer would land on the keyframe
    before k: a whole extra GOP decoded (32 frames of a 60 s 1080p video: 16.4 CPU-s
    with "auto" that way, 10.7 s this way, 11.5 s for one "select" pass). Starting at
    k + 1 puts it just after k, so decoding starts at k and only k itself is dropped;
    when k itself is wanted, the run starts at k and pays the extra GOP. Seeking to
    the wanted frame's own time instead would be wrong: with B-frames the next
    keyframe can decode before a frame shown earlier.
    """
    pos = bisect.bisect_right(keyframes, index) - 1
    if pos < 0 or keyframes[pos] == 0:
        return None  # decoding from the start needs no seek
    k = keyframes[pos]
    gop = (keyframes[pos + 1] if pos + 1 < len(keyframes) else index + _MIN_GOP_FOR_SEEK_AFTER + 1) - k
    return k + 1 if index > k and gop > _MIN_GOP_FOR_SEEK_AFTER else k


def _plan(info: VideoInfo, indices: list[int], strategy: str) -> list[_Job]:
    if strategy == "all":
        return [_Job(indices, None, keep_all=True)]
    if strategy == "select":
        return [_Job(indices, None)]
    keyframes = info.keyframes
    if strategy == "seek":
        starts = [_seek_start(keyframes, i) if keyframes else (i or None) for i in indices]
        return [_Job([i], start) for i, start in zip(indices, starts)]
    # Seeking is frame-exact only where the container indexes its keyframes; elsewhere
    # (MPEG-TS, raw streams) a seek can land past a keyframe and shift every index.
    if not keyframes or not any(name in INDEXED_CONTAINERS for name in info.container.split(",")):
        return [_Job(indices, None)]
    pixels = info.width * info.height
    spawn_frames = (_SPAWN_S + _SPAWN_S_PER_PIXEL * pixels) / (_DECODE_S_PER_PIXEL * pixels)
    jobs: list[_Job] = []
    for i in indices:
        k = _keyframe_before(keyframes, i)
        if jobs:
            prev = jobs[-1].indices[-1]
            # Starting again at keyframe k skips frames prev+1..k-1 but costs a new ffmpeg.
            if k <= prev or (k - prev) <= spawn_frames:
                jobs[-1].indices.append(i)
                continue
        jobs.append(_Job([i], _seek_start(keyframes, i)))
    return jobs


def _seek_time(info: VideoInfo, index: int) -> float:
    # Half a frame before the frame, so ffmpeg's accurate seek starts exactly there.
    if info.frame_times is not None and 0 < index < len(info.frame_times):
        return (info.frame_times[index - 1] + info.frame_times[index]) / 2.0
    return (index - 0.5) / info.fps


def read_frames(
    video: VideoInfo | str | os.PathLike[str],
    indices: Sequence[int],
    *,
    max_size: int | None = None,
    timeout: float = 60.0,
    strategy: str = "auto",
    allow_urls: bool = False,
) -> Iterator[tuple[int, np.ndarray]]:
    """Decode the frames at ``indices``, one at a time, upright, RGB.

    Arguments are checked (and a path probed) when this is called; ffmpeg starts on
    the first ``next()``. At most a few frames are held at any time, whatever the
    video's length. Closing the iterator early (``close()``, ``break`` in a ``for``
    loop, or dropping it) stops ffmpeg; no child process outlives the iterator.

    Args:
        video: A :class:`VideoInfo` from :func:`probe_video` (trusted as it is), or a
            path that is probed first.
        indices: Frame indices (0-based, presentation order); they are sorted and
            duplicates dropped. Indices at or past ``num_frames`` are not decoded.
        max_size: When given, frames are downscaled inside ffmpeg (area filter) so that
            their longer side is at most this; they are never upscaled.
        timeout: Seconds ffmpeg may go without writing a frame or using any CPU
            (where ``/proc`` shows it; elsewhere without writing anything) before it is
            killed and :class:`VideoDecodeError` raised.
        strategy: How to decode: ``"auto"`` (default), ``"select"``, ``"seek"`` or
            ``"all"``; see the module documentation. All give the same frames.
        allow_urls: Passed to :func:`probe_video` when ``video`` is a path.

    Yields:
        ``(index, frame)`` in increasing index order; ``frame`` is a writable
        ``uint8`` array of shape ``(height, width, 3)``. When fewer frames can be
        decoded than asked for (a truncated or corrupt file), a warning states how
        many were decoded of how many expected, and the decoded ones are yielded.

    Raises:
        ConfigError: bad ``indices``, ``max_size``, ``timeout`` or ``strategy``.
        InputError: a URL when ``allow_urls`` is false.
        VideoDecodeError: the video cannot be probed, no requested frame could be
            decoded, or ffmpeg stalled.

    Example:
        >>> import os, subprocess, tempfile, imageio_ffmpeg
        >>> clip = os.path.join(tempfile.mkdtemp(), "clip.mp4")
        >>> _ = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi",
        ...                     "-i", "testsrc2=size=320x240:rate=25:duration=2", "-pix_fmt", "yuv420p", clip],
        ...                    check=True)
        >>> [(i, f.shape) for i, f in read_frames(clip, [0, 25, 49], max_size=160)]
        [(0, (120, 160, 3)), (25, (120, 160, 3)), (49, (120, 160, 3))]
        >>> import shutil; shutil.rmtree(os.path.dirname(clip))
    """
    if strategy not in DECODE_STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(DECODE_STRATEGIES)}; got {strategy!r}")
    if max_size is not None and (not is_int(max_size) or max_size < 1):
        raise ConfigError(f"max_size must be a positive integer or None, got {max_size!r}")
    timeout = check_timeout(timeout)
    if isinstance(indices, (str, bytes)) or not isinstance(indices, (Sequence, np.ndarray)):
        raise ConfigError(f"indices must be a sequence of frame numbers, got {type(indices).__name__}")
    wanted: set[int] = set()
    for i in indices:
        if not is_int(i) or i < 0:
            raise ConfigError(f"frame indices must be non-negative integers, got {i!r}")
        wanted.add(int(i))
    info = video if isinstance(video, VideoInfo) else probe_video(video, allow_urls=allow_urls, timeout=timeout)
    requested = sorted(wanted)
    return _decode(info, requested, max_size=max_size, timeout=timeout, strategy=strategy)


def _decode(
    info: VideoInfo, requested: list[int], *, max_size: int | None, timeout: float, strategy: str
) -> Iterator[tuple[int, np.ndarray]]:
    if not requested:
        return
    todo = [i for i in requested if i < info.num_frames]
    out_w, out_h = _output_size(info.width, info.height, max_size)
    frame_bytes = out_w * out_h * 3
    downscale = (out_w, out_h) != (info.width, info.height)
    # A fixed output size also keeps the raw stream aligned if the resolution changes mid-video.
    scale = f"scale={out_w}:{out_h}" + (":flags=area" if downscale else "")
    local = not is_url(info.path)
    source = "file:" + info.path if local else info.path
    input_opts = list(LOCAL_INPUT_OPTS) if local else []
    exe = ffmpeg_exe() if todo else ""
    jobs = _plan(info, todo, strategy) if todo else []
    if any(job.seek is not None for job in jobs) and info.codec == "h264":
        build = x264_build(exe, source, input_opts, timeout=timeout)
        if build is not None:
            input_opts = [*input_opts, "-x264_build", str(build)]
    decoded = 0
    errors: list[str] = []
    for job in jobs:
        base = job.seek or 0
        offsets = [i - base for i in job.indices]
        expr = "" if job.keep_all else _select_expr(offsets)
        keep_all = job.keep_all or len(expr) > _MAX_SELECT_EXPR
        vf = scale if keep_all else f"select='{expr}',{scale}"
        n_out = offsets[-1] + 1 if keep_all else len(offsets)
        args = [exe, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", *input_opts]
        if job.seek is not None:
            args += ["-ss", f"{_seek_time(info, job.seek):.6f}"]
        args += [
            "-i", source, "-map", "0:V:0", "-an", "-sn", "-dn", "-vf", vf,
            "-fps_mode", "passthrough", "-frames:v", str(n_out), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
        ]  # fmt: skip
        logger.debug("decoding %d frames of %s: %s", len(job.indices), info.path, " ".join(args[1:]))
        in_job = set(job.indices) if keep_all else set()
        pipe = FFmpegPipe(args, frame_bytes=frame_bytes, timeout=timeout, shown=info.path)
        got = 0
        try:
            for position, buf in enumerate(pipe.frames()):
                if keep_all:
                    index = base + position
                    if index not in in_job:
                        continue
                else:
                    index = job.indices[got]
                got += 1
                decoded += 1
                yield index, np.frombuffer(buf, dtype=np.uint8).reshape(out_h, out_w, 3)
            code = pipe.finish()
            if got < len(job.indices):
                errors.append(f"exit status {code}: {stderr_tail(pipe.stderr_text) or 'no error message'}")
        finally:
            pipe.close()
    if decoded == len(requested):
        return
    missing = sorted(set(requested) - set(todo))
    detail = "; ".join(dict.fromkeys(errors))
    if decoded == 0:
        raise VideoDecodeError(
            f"could not decode any of the {len(requested)} requested frames of {info.path} "
            f"({info.num_frames} frames probed){': ' + detail if detail else ''}; check that the file is "
            "complete and readable"
        )
    logger.warning(
        "decoded %d of %d requested frames from %s (the file may be truncated or corrupt)%s%s",
        decoded, len(requested), info.path,
        f"; {len(missing)} requested frames are past its {info.num_frames} frames" if missing else "",
        f"; ffmpeg: {detail}" if detail else "",
    )

