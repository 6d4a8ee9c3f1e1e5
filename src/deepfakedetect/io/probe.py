"""Probing a video: size, frame rate, frame count, rotation and keyframes, without decoding it."""

from __future__ import annotations

import array
import logging
import math
import os
import re
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from deepfakedetect._errors import ConfigError, InputError, VideoDecodeError
from deepfakedetect._untrusted import MAX_PIXELS
from deepfakedetect.io.ffmpeg import (
    check_timeout,
    explain_failure,
    ffmpeg_exe,
    is_int,
    is_url,
    looks_like_iso_media,
    resolve,
    stderr_tail,
)

logger = logging.getLogger(__name__)

_PKT_FLAG_KEY, _PKT_FLAG_CORRUPT, _PKT_FLAG_DISCARD = 0x1, 0x2, 0x4

__all__ = ["NOPTS", "VideoInfo", "probe_video"]


NOPTS = -(2**63)


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learns about a video, without decoding it.

    Attributes:
        path: The file (absolute for local files) or the URL.
        width: Display width in pixels, i.e. after ``rotation`` is applied.
        height: Display height in pixels, after rotation.
        fps: Average frame rate (frames per second).
        num_frames: Number of decodable frames (counted from the packets, not the header).
        duration: Seconds from the first frame's timestamp to the end of the last frame.
        rotation: Clockwise degrees (0, 90, 180 or 270) the stored frames are turned
            for display, as the legacy ``rotate`` tag says (a phone's portrait video
            stored landscape has 90). Frames from :func:`read_frames` are already upright.
        codec: ffmpeg's codec name (``"h264"``).
        container: ffmpeg's name of the file format (``"mov,mp4,m4a,3gp,3g2,mj2"``).
        keyframe_interval: Median number of frames between keyframes; ``num_frames``
            when there is only one keyframe, ``None`` when unknown.
        truncated: Whether the file ended before its container said it would; only the
            frames present are counted.
        frame_times: Presentation time in seconds of every frame, in index order.
        keyframes: Indices of the keyframes.

    Example:
        >>> info = VideoInfo(path="clip.mp4", width=64, height=48, fps=25.0, num_frames=50, duration=2.0)
        >>> info.timestamp(25)
        1.0
    """

    path: str
    width: int
    height: int
    fps: float
    num_frames: int
    duration: float
    rotation: int = 0
    codec: str = ""
    container: str = ""
    keyframe_interval: float | None = None
    truncated: bool = False
    frame_times: tuple[float, ...] | None = field(default=None, repr=False, compare=False)
    keyframes: tuple[int, ...] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ConfigError(f"VideoInfo.{name} must be a positive integer, got {value!r}")
        if not is_int(self.num_frames) or self.num_frames < 0:
            raise ConfigError(f"VideoInfo.num_frames must be a non-negative integer, got {self.num_frames!r}")
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and self.fps > 0):
            raise ConfigError(f"VideoInfo.fps must be a positive number, got {self.fps!r}")
        if self.rotation not in (0, 90, 180, 270):
            raise ConfigError(f"VideoInfo.rotation must be 0, 90, 180 or 270, got {self.rotation!r}")
        if self.frame_times is not None and len(self.frame_times) != self.num_frames:
            raise ConfigError(
                f"VideoInfo.frame_times has {len(self.frame_times)} entries for {self.num_frames} frames"
            )

    def timestamp(self, index: int) -> float:
        """Presentation time of frame ``index`` in seconds.

        Args:
            index: A frame index in ``0 .. num_frames - 1``.

        Returns:
            The frame's own timestamp when the probe recorded it (exact for
            variable-frame-rate videos), else ``index / fps``.

        Raises:
            InputError: when the index is outside the video.

        Example:
            >>> VideoInfo(path="a.mp4", width=8, height=8, fps=30.0, num_frames=90, duration=3.0).timestamp(45)
            1.5
        """
        if not is_int(index) or not 0 <= index < self.num_frames:
            raise InputError(
                f"frame index {index!r} is outside {self.path} (frames 0..{self.num_frames - 1})"
            )
        if self.frame_times is not None:
            return self.frame_times[index]
        return index / self.fps

    def to_dict(self) -> dict[str, Any]:
        """The probe facts as a JSON-ready dictionary (without the per-frame tables).

        Example:
            >>> VideoInfo(path="a.mp4", width=8, height=6, fps=25.0, num_frames=5, duration=0.2).to_dict()["width"]
            8
        """
        return {
            "path": self.path,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "num_frames": self.num_frames,
            "duration": self.duration,
            "rotation": self.rotation,
            "codec": self.codec,
            "container": self.container,
            "keyframe_interval": self.keyframe_interval,
            "truncated": self.truncated,
        }


STREAM_MAP_RE = re.compile(r"Stream #(\d+:\d+)\S* -> #\d+:\d+")


DURATION_RE = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")


ROTATION_RE = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees", re.IGNORECASE)


FPS_RE = re.compile(r", (\d+(?:\.\d+)?)(k?) (fps|tbr)\b")


FORMAT_RE = re.compile(r"Input #0, (.+?), from ")


def input_stream_block(stderr: str) -> list[str]:
    """The lines ffmpeg printed about the mapped input video stream (header, side data)."""
    lines = stderr.splitlines()
    mapped = STREAM_MAP_RE.search(stderr)
    wanted = f"Stream #{mapped.group(1)}" if mapped else None
    block: list[str] = []
    in_input = False
    for line in lines:
        stripped = line.strip()
        if line.startswith("Input #"):
            in_input = True
            continue
        if line.startswith(("Output #", "Stream mapping")):
            in_input = False
            if block:
                break
            continue
        if not in_input:
            continue
        if stripped.startswith("Stream #"):
            if block:
                break
            if (wanted and (stripped.startswith(wanted + "[") or stripped.startswith(wanted + "(")
                            or stripped.startswith(wanted + ":"))) or (wanted is None and "Video:" in stripped):
                block.append(stripped)
            continue
        if block:
            block.append(stripped)
    return block


def parse_fps(block: list[str]) -> float | None:
    if not block:
        return None
    found = {m.group(3): float(m.group(1)) * (1000 if m.group(2) else 1) for m in FPS_RE.finditer(block[0])}
    for key in ("fps", "tbr"):
        if found.get(key, 0) > 0:
            return found[key]
    return None


def parse_rotation(block: list[str]) -> int:
    for line in block[1:]:
        m = ROTATION_RE.search(line)
        if m:
            # ffmpeg prints the display matrix's counter-clockwise angle; we report clockwise.
            return int(round(-float(m.group(1)) / 90.0)) % 4 * 90
    return 0


def declared_duration(stderr: str) -> float | None:
    m = DURATION_RE.search(stderr)
    if not m:
        return None
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


FRAMECRC_PACKET_RE = re.compile(
    rb"^0,\s*(-?\d+),\s*(-?\d+),\s*(-?\d+),\s*\d+,\s*0x[0-9a-fA-F]+(?:,\s*F=0x([0-9a-fA-F]+))?", re.M
)


@dataclass
class Packets:
    """What the framecrc muxer reports about the packets of one video stream."""

    pts: array.array[int] = field(default_factory=lambda: array.array("q"))
    key_pts: list[int] = field(default_factory=list)
    last_duration: int = 0  # duration of the packet with the highest pts, in time_base units
    corrupt: int = 0
    time_base: Fraction = Fraction(1, 1)
    dims: tuple[int, int] | None = None
    codec: str = ""


def parse_framecrc(data: bytes) -> Packets:
    """Parse ffmpeg's framecrc output one match at a time (long videos have ~100k lines)."""
    out = Packets()
    head = data[:4096].decode("utf-8", "replace")
    m = re.search(r"^#tb 0: (\d+)/(\d+)", head, re.M)
    if m and int(m.group(2)) > 0:
        out.time_base = Fraction(int(m.group(1)), int(m.group(2)))
    m = re.search(r"^#dimensions 0: (\d+)x(\d+)", head, re.M)
    if m:
        out.dims = (int(m.group(1)), int(m.group(2)))
    m = re.search(r"^#codec_id 0: (\S+)", head, re.M)
    if m:
        out.codec = m.group(1)
    max_pts: int | None = None
    for pm in FRAMECRC_PACKET_RE.finditer(data):
        flags = int(pm.group(4), 16) if pm.group(4) else _PKT_FLAG_KEY
        if flags & _PKT_FLAG_CORRUPT:
            out.corrupt += 1
            continue
        if flags & _PKT_FLAG_DISCARD:
            continue
        dts, pts, dur = int(pm.group(1)), int(pm.group(2)), int(pm.group(3))
        if pts == NOPTS:
            pts = dts if dts != NOPTS else len(out.pts)
        out.pts.append(pts)
        if max_pts is None or pts > max_pts:
            max_pts, out.last_duration = pts, dur
        if flags & _PKT_FLAG_KEY:
            out.key_pts.append(pts)
    return out


def probe_video(
    path: str | os.PathLike[str], *, allow_urls: bool = False, timeout: float = 30.0
) -> VideoInfo:
    """Read a video's size, frame rate, frame count, duration and rotation without decoding it.

    The frame count and timestamps come from reading every packet of the video stream
    (ffmpeg's stream copy, no decoding: about 0.1 s for a FaceForensics++ clip), so they
    are right even where the container's header is wrong or the file is truncated.

    Args:
        path: A local video file. URLs and ffmpeg protocols (``http:``, ``concat:``,
            ``file:``, ``pipe:`` ...) are refused unless ``allow_urls`` is true.
        allow_urls: Let ffmpeg open URLs and protocols.
        timeout: Seconds after which a probe that has not finished is stopped.

    Returns:
        A :class:`VideoInfo`. A truncated file is probed as far as it goes, with a
        warning, and ``truncated`` set.

    Raises:
        InputError: for a URL or protocol when ``allow_urls`` is false.
        VideoDecodeError: the file is missing, empty, not a video, has no video stream,
            lost its MP4 index (moov atom), holds no complete frame, has frames over
            89,478,485 pixels (the image limit), is not a regular file (a FIFO or a
            device), or the probe timed out. The message names the file and what to do.
        ConfigError: for a non-positive ``timeout``.

    Example:
        >>> import os, subprocess, tempfile, imageio_ffmpeg
        >>> clip = os.path.join(tempfile.mkdtemp(), "clip.mp4")
        >>> _ = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi",
        ...                     "-i", "testsrc2=size=64x48:rate=25:duration=1", "-pix_fmt", "yuv420p", clip],
        ...                    check=True)
        >>> info = probe_video(clip)
        >>> info.width, info.height, info.num_frames, info.fps
        (64, 48, 25, 25.0)
        >>> import shutil; shutil.rmtree(os.path.dirname(clip))
    """
    timeout = check_timeout(timeout)
    shown, source, input_opts = resolve(path, allow_urls=allow_urls)
    exe = ffmpeg_exe()
    args = [
        exe, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info",
        *input_opts, "-i", source,
        "-map", "0:V:0", "-c", "copy", "-f", "framecrc", "pipe:1",
    ]  # fmt: skip
    try:
        done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:  # run() has already killed and reaped ffmpeg
        raise VideoDecodeError(
            f"probing {shown} timed out after {timeout:g} s: ffmpeg could not read it (a pipe "
            "that nobody writes to, or a stalled network or disk?); check the file, or pass a larger timeout"
        ) from e
    except OSError as e:
        raise VideoDecodeError(f"cannot run ffmpeg ({exe}) to probe {shown}: {e}") from e
    stderr = done.stderr.decode("utf-8", "replace")
    local = not is_url(os.fspath(path))
    packets = parse_framecrc(done.stdout)
    pts_list = packets.pts
    if done.returncode != 0 and len(pts_list) == 0:
        raise VideoDecodeError(explain_failure(shown, stderr, local=local))
    fmt = FORMAT_RE.search(stderr)
    fmt_name = fmt.group(1) if fmt else ""
    if fmt_name == "image2" or fmt_name.endswith("_pipe"):
        raise VideoDecodeError(
            f"{shown} is a still image ({fmt_name}), not a video; score it with Detector.detect_image"
        )
    truncated = packets.corrupt > 0 or "partial file" in stderr
    if len(pts_list) == 0:
        if truncated or (local and looks_like_iso_media(shown)):
            raise VideoDecodeError(
                f"{shown} is truncated: it ends before its first complete video frame; "
                "re-download or re-export the video"
            )
        raise VideoDecodeError(f"{shown} has no video frames ({stderr_tail(stderr) or 'empty stream'})")
    if packets.dims is None:
        raise VideoDecodeError(f"ffmpeg did not report the frame size of {shown}; check the file")
    w, h = packets.dims
    if w * h > MAX_PIXELS:
        # The limit images have, from the probe, before ffmpeg decodes any frame (a 16000x16000
        # frame costs ffmpeg gigabytes and seconds even when it is scaled down at once).
        raise VideoDecodeError(
            f"{shown}: frames of {w}x{h} = {w * h:,} pixels are over the limit of {MAX_PIXELS:,} "
            "pixels per frame (the image limit); downscale the video first (e.g. ffmpeg -vf scale=1920:-2)"
        )

    tb = packets.time_base
    pts_sorted = np.sort(np.asarray(pts_list, dtype=np.int64))
    # pts * num is exact in float64, so one division rounds like float(Fraction(pts) * tb).
    times = tuple((pts_sorted.astype(np.float64) * tb.numerator / tb.denominator).tolist())
    n = len(times)
    block = input_stream_block(stderr)
    rotation = parse_rotation(block)
    fps = parse_fps(block)
    last_dur = float(packets.last_duration * tb)
    if fps is None:
        span = times[-1] - times[0]
        fps = (n - 1) / span if n > 1 and span > 0 else 25.0
    if last_dur <= 0:
        last_dur = 1.0 / fps
    duration = times[-1] - times[0] + last_dur
    keyframes = tuple(sorted({min(int(k), n - 1) for k in np.searchsorted(pts_sorted, packets.key_pts)}))
    if len(keyframes) >= 2:
        keyframe_interval: float | None = float(np.median(np.diff(keyframes)))
    elif len(keyframes) == 1:
        keyframe_interval = float(n)
    else:
        keyframe_interval = None
    width, height = packets.dims
    if rotation in (90, 270):
        width, height = height, width
    if truncated:
        declared = declared_duration(stderr)
        said = f"its container declares {declared:.2f} s but " if declared else ""
        logger.warning(
            "%s is truncated: %sonly %d frames (%.2f s) could be read; only those will be used",
            shown, said, n, duration,
        )
    return VideoInfo(
        path=shown,
        width=width,
        height=height,
        fps=float(fps),
        num_frames=n,
        duration=float(duration),
        rotation=rotation,
        codec=packets.codec,
        container=fmt_name,
        keyframe_interval=keyframe_interval,
        truncated=truncated,
        frame_times=times,
        keyframes=keyframes,
    )
