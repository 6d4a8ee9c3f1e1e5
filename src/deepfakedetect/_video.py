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

import array
import bisect
import logging
import math
import os
import queue
import re
import stat
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from ._errors import ConfigError, InputError, VideoDecodeError

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
_POLL_S = 0.2
_PKT_FLAG_KEY, _PKT_FLAG_CORRUPT, _PKT_FLAG_DISCARD = 0x1, 0x2, 0x4
_NOPTS = -(2**63)
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"styp", b"pnot")
_INDEXED_CONTAINERS = ("mov", "mp4", "matroska", "webm")
# The demuxers a local file may be read with. ffmpeg picks one from the file's content,
# and some (concat scripts, HLS/DASH playlists) open further files the caller never
# named; only containers of a single video, and still images (for a clear message),
# are allowed.
_LOCAL_FORMATS = ",".join((
    "mov", "matroska", "webm", "avi", "mpegts", "mpeg", "mpegvideo", "flv", "asf", "ogg", "nut", "mxf",
    "dv", "rm", "wtv", "ivf", "obu", "h264", "hevc", "m4v", "vc1", "yuv4mpegpipe", "gif", "apng", "image2",
    "jpeg_pipe", "png_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif_pipe", "jpegxl_pipe", "j2k_pipe",
    "qoi_pipe", "ppm_pipe", "pgm_pipe", "pam_pipe", "pbm_pipe", "psd_pipe", "dpx_pipe", "exr_pipe", "hdr_pipe",
))  # fmt: skip
_LOCAL_INPUT_OPTS = ("-protocol_whitelist", "file", "-format_whitelist", _LOCAL_FORMATS)
_URL_RE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.\-]*:|subfile,)")
_DRIVE_RE = re.compile(r"^[A-Za-z]:[\\/]")


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
            if not _is_int(value) or value < 1:
                raise ConfigError(f"VideoInfo.{name} must be a positive integer, got {value!r}")
        if not _is_int(self.num_frames) or self.num_frames < 0:
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
        if not _is_int(index) or not 0 <= index < self.num_frames:
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


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception as e:  # imageio_ffmpeg raises RuntimeError when it finds no binary
        raise VideoDecodeError(
            "no ffmpeg binary found: install it with 'pip install imageio-ffmpeg' "
            "or set IMAGEIO_FFMPEG_EXE to an ffmpeg executable"
        ) from e


def _is_url(text: str) -> bool:
    return bool(_URL_RE.match(text)) and not _DRIVE_RE.match(text)


def _check_timeout(timeout: float) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0 or math.isnan(timeout):
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _resolve(path: str | os.PathLike[str], *, allow_urls: bool) -> tuple[str, str, list[str]]:
    """The name shown in messages, the input ffmpeg gets, and its input options."""
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"a video must be given as a path or URL string, got {type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str):
        raise InputError(f"a video path must be text, got {text!r}")
    if _is_url(text):
        if not allow_urls:
            raise InputError(
                f"{text!r} looks like a URL or an ffmpeg protocol, which are refused by default; "
                "pass allow_urls=True to read it, or './' before a local file name that contains ':'"
            )
        return text, text, []
    shown = os.path.abspath(text)
    try:
        st = os.stat(shown)
    except FileNotFoundError:
        raise VideoDecodeError(f"video file not found: {shown}; check the path") from None
    except OSError as e:
        raise VideoDecodeError(f"cannot access video {shown}: {e}") from e
    if stat.S_ISDIR(st.st_mode):
        raise VideoDecodeError(f"{shown} is a directory, not a video file; pass the video file itself")
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        raise VideoDecodeError(f"{shown} is empty (0 bytes); re-download or re-export the video")
    # "file:" stops ffmpeg from reading a protocol out of the name; the whitelists stop
    # the file from making ffmpeg open anything else (see _LOCAL_FORMATS).
    return shown, "file:" + shown, list(_LOCAL_INPUT_OPTS)


def _looks_like_iso_media(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return len(head) >= 8 and head[4:8] in _ISO_BOXES


def _explain_failure(shown: str, stderr: str, *, local: bool) -> str:
    tail = _stderr_tail(stderr)
    if "matches no streams" in stderr:
        return (
            f"{shown} has no video stream (audio only, or subtitles/data only); "
            "pass a file with a video track"
        )
    if "moov atom not found" in stderr:
        if local and _looks_like_iso_media(shown):
            return (
                f"{shown} is an MP4/MOV file without its index (moov atom missing): the file is "
                "truncated or the recording was never finalised; re-download or re-export it "
                "(a partial recording can sometimes be recovered with a repair tool such as untrunc)"
            )
        return f"{shown} is not a video file ffmpeg can read (no known container found); check the file"
    if "not on whitelist" in stderr:
        return (
            f"{shown} is not a video container deepfakedetect reads (ffmpeg recognised it as a playlist, "
            "a concat script or another format that can open further files, which is refused); "
            "convert it to a single MP4 or MKV video file"
        )
    if "Invalid data found when processing input" in stderr:
        return f"{shown} is not a video file ffmpeg can read ({tail}); check the file"
    return f"ffmpeg could not read {shown}: {tail or 'no error message'}"


def _stderr_tail(stderr: str, lines: int = 3) -> str:
    kept = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return " | ".join(kept[-lines:])


_STREAM_MAP_RE = re.compile(r"Stream #(\d+:\d+)\S* -> #\d+:\d+")
_DURATION_RE = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_ROTATION_RE = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees", re.IGNORECASE)
_FPS_RE = re.compile(r", (\d+(?:\.\d+)?)(k?) (fps|tbr)\b")
_FORMAT_RE = re.compile(r"Input #0, (.+?), from ")


def _input_stream_block(stderr: str) -> list[str]:
    """The lines ffmpeg printed about the mapped input video stream (header, side data)."""
    lines = stderr.splitlines()
    mapped = _STREAM_MAP_RE.search(stderr)
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


def _parse_fps(block: list[str]) -> float | None:
    if not block:
        return None
    found = {m.group(3): float(m.group(1)) * (1000 if m.group(2) else 1) for m in _FPS_RE.finditer(block[0])}
    for key in ("fps", "tbr"):
        if found.get(key, 0) > 0:
            return found[key]
    return None


def _parse_rotation(block: list[str]) -> int:
    for line in block[1:]:
        m = _ROTATION_RE.search(line)
        if m:
            # ffmpeg prints the display matrix's counter-clockwise angle; we report clockwise.
            return int(round(-float(m.group(1)) / 90.0)) % 4 * 90
    return 0


def _declared_duration(stderr: str) -> float | None:
    m = _DURATION_RE.search(stderr)
    if not m:
        return None
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


_FRAMECRC_PACKET_RE = re.compile(
    rb"^0,\s*(-?\d+),\s*(-?\d+),\s*(-?\d+),\s*\d+,\s*0x[0-9a-fA-F]+(?:,\s*F=0x([0-9a-fA-F]+))?", re.M
)


@dataclass
class _Packets:
    """What the framecrc muxer reports about the packets of one video stream."""

    pts: array.array[int] = field(default_factory=lambda: array.array("q"))
    key_pts: list[int] = field(default_factory=list)
    last_duration: int = 0  # duration of the packet with the highest pts, in time_base units
    corrupt: int = 0
    time_base: Fraction = Fraction(1, 1)
    dims: tuple[int, int] | None = None
    codec: str = ""


def _parse_framecrc(data: bytes) -> _Packets:
    """Parse ffmpeg's framecrc output one match at a time (long videos have ~100k lines)."""
    out = _Packets()
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
    for m in _FRAMECRC_PACKET_RE.finditer(data):
        flags = int(m.group(4), 16) if m.group(4) else _PKT_FLAG_KEY
        if flags & _PKT_FLAG_CORRUPT:
            out.corrupt += 1
            continue
        if flags & _PKT_FLAG_DISCARD:
            continue
        dts, pts, dur = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if pts == _NOPTS:
            pts = dts if dts != _NOPTS else len(out.pts)
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
            lost its MP4 index (moov atom), holds no complete frame, or the probe
            timed out. The message names the file and what to do.
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
    timeout = _check_timeout(timeout)
    shown, source, input_opts = _resolve(path, allow_urls=allow_urls)
    exe = _ffmpeg_exe()
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
    local = not _is_url(os.fspath(path))
    packets = _parse_framecrc(done.stdout)
    pts_list = packets.pts
    if done.returncode != 0 and len(pts_list) == 0:
        raise VideoDecodeError(_explain_failure(shown, stderr, local=local))
    fmt = _FORMAT_RE.search(stderr)
    fmt_name = fmt.group(1) if fmt else ""
    if fmt_name == "image2" or fmt_name.endswith("_pipe"):
        raise VideoDecodeError(
            f"{shown} is a still image ({fmt_name}), not a video; score it with Detector.detect_image"
        )
    truncated = packets.corrupt > 0 or "partial file" in stderr
    if len(pts_list) == 0:
        if truncated or (local and _looks_like_iso_media(shown)):
            raise VideoDecodeError(
                f"{shown} is truncated: it ends before its first complete video frame; "
                "re-download or re-export the video"
            )
        raise VideoDecodeError(f"{shown} has no video frames ({_stderr_tail(stderr) or 'empty stream'})")
    if packets.dims is None:
        raise VideoDecodeError(f"ffmpeg did not report the frame size of {shown}; check the file")

    tb = packets.time_base
    pts_sorted = np.sort(np.asarray(pts_list, dtype=np.int64))
    # pts * num is exact in float64, so one division rounds like float(Fraction(pts) * tb).
    times = tuple((pts_sorted.astype(np.float64) * tb.numerator / tb.denominator).tolist())
    n = len(times)
    block = _input_stream_block(stderr)
    rotation = _parse_rotation(block)
    fps = _parse_fps(block)
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
        declared = _declared_duration(stderr)
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


def _cpu_seconds(pid: int) -> float | None:
    """CPU time a process has used, from /proc; ``None`` where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        fields = data.rpartition(b")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


try:
    _CLK_TCK = float(os.sysconf("SC_CLK_TCK"))
except (AttributeError, ValueError, OSError):
    _CLK_TCK = 100.0

_EOF = object()


class _FFmpegPipe:
    """One ffmpeg child whose stdout is a stream of fixed-size raw frames.

    Two daemon threads drain stdout (into a queue of at most two frames, so memory is
    bounded) and stderr (last lines kept for messages). ffmpeg counts as stalled when,
    while the caller waits for a frame, it neither writes anything nor uses CPU for
    ``timeout`` seconds; it is then killed and reaped. :meth:`close` always kills and
    reaps it.
    """

    def __init__(self, args: list[str], *, frame_bytes: int, timeout: float, shown: str) -> None:
        self.shown = shown
        self.timeout = timeout
        self.frame_bytes = frame_bytes
        self._stop = threading.Event()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._stderr: deque[str] = deque(maxlen=40)
        self._activity = time.monotonic()
        self._cpu = 0.0
        self.partial_bytes = 0
        try:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except OSError as e:
            raise VideoDecodeError(f"cannot run ffmpeg ({args[0]}) to decode {shown}: {e}") from e
        self._threads = [
            threading.Thread(target=self._pump_stdout, name="dfd-ffmpeg-stdout", daemon=True),
            threading.Thread(target=self._pump_stderr, name="dfd-ffmpeg-stderr", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def _pump_stdout(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None  # Popen was given stdout=PIPE
        try:
            while not self._stop.is_set():
                buf = bytearray(self.frame_bytes)
                view = memoryview(buf)
                got = 0
                while got < self.frame_bytes:
                    k = stdout.readinto(view[got:])
                    if not k:
                        break
                    got += k
                    self._activity = time.monotonic()
                view.release()
                if got < self.frame_bytes:
                    self.partial_bytes = got
                    break
                self._put(buf)
        except (OSError, ValueError):  # the pipe was closed under us by close()
            pass
        finally:
            self._put(_EOF)

    def _pump_stderr(self) -> None:
        stderr = self.proc.stderr
        assert stderr is not None  # Popen was given stderr=PIPE
        try:
            for raw in iter(stderr.readline, b""):
                self._activity = time.monotonic()
                line = raw.decode("utf-8", "replace").rstrip()
                if line:
                    self._stderr.append(line)
        except (OSError, ValueError):
            pass

    @property
    def stderr_text(self) -> str:
        return "\n".join(self._stderr)

    def _stalled(self, wait_start: float) -> bool:
        now = time.monotonic()
        cpu = _cpu_seconds(self.proc.pid)
        if cpu is not None and cpu > self._cpu:
            self._cpu = cpu
            self._activity = now
        return now - max(self._activity, wait_start) > self.timeout

    def frames(self) -> Iterator[bytearray]:
        """Complete frames until ffmpeg ends its output.

        Raises:
            VideoDecodeError: when ffmpeg stalls for longer than the timeout.
        """
        while True:
            wait_start = time.monotonic()
            while True:
                try:
                    item = self._queue.get(timeout=_POLL_S)
                    break
                except queue.Empty:
                    if self._stalled(wait_start):
                        self.close()
                        raise VideoDecodeError(
                            f"decoding {self.shown} stalled: ffmpeg made no progress for {self.timeout:g} s "
                            "and was stopped; check that the file is complete and readable (not a pipe "
                            "nobody writes to, nor a stalled network or disk), or pass a larger timeout"
                        ) from None
            if item is _EOF:
                return
            yield item

    def finish(self) -> int:
        """Wait for ffmpeg to exit after its output ended; its exit status."""
        try:
            code = self.proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.close()
            code = -9
        for t in self._threads:
            t.join(timeout=5.0)
        return code

    def close(self) -> None:
        """Kill ffmpeg if it still runs, reap it and stop the reader threads."""
        self._stop.set()
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:  # it exited in between
                pass
        self.proc.wait()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=5.0)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


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
    if not keyframes or not any(name in _INDEXED_CONTAINERS for name in info.container.split(",")):
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


def _x264_build(exe: str, source: str, input_opts: list[str], *, timeout: float) -> int | None:
    """The x264 version that wrote an H.264 stream, read from its first packet.

    ffmpeg works around bugs of old x264 builds (4:4:4 streams before build 151, such
    as the FaceForensics++ files) only when it knows the build, which x264 writes
    once, in the first frame. A decoder that starts after a seek never sees it and
    decodes garbage, so the build is passed to it explicitly.
    """
    args = [
        exe, "-hide_banner", "-nostdin", "-loglevel", "error", *input_opts, "-i", source,
        "-map", "0:V:0", "-c", "copy", "-frames:v", "1", "-f", "data", "pipe:1",
    ]  # fmt: skip
    try:
        done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    except (subprocess.TimeoutExpired, OSError) as e:
        logger.debug("could not read the first packet of %s: %s", source, e)
        return None
    m = re.search(rb"x264 - core (\d+)", done.stdout)
    return int(m.group(1)) if m else None


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
    if max_size is not None and (not _is_int(max_size) or max_size < 1):
        raise ConfigError(f"max_size must be a positive integer or None, got {max_size!r}")
    timeout = _check_timeout(timeout)
    if isinstance(indices, (str, bytes)) or not isinstance(indices, (Sequence, np.ndarray)):
        raise ConfigError(f"indices must be a sequence of frame numbers, got {type(indices).__name__}")
    wanted: set[int] = set()
    for i in indices:
        if not _is_int(i) or i < 0:
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
    local = not _is_url(info.path)
    source = "file:" + info.path if local else info.path
    input_opts = list(_LOCAL_INPUT_OPTS) if local else []
    exe = _ffmpeg_exe() if todo else ""
    jobs = _plan(info, todo, strategy) if todo else []
    if any(job.seek is not None for job in jobs) and info.codec == "h264":
        build = _x264_build(exe, source, input_opts, timeout=timeout)
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
        pipe = _FFmpegPipe(args, frame_bytes=frame_bytes, timeout=timeout, shown=info.path)
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
                errors.append(f"exit status {code}: {_stderr_tail(pipe.stderr_text) or 'no error message'}")
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

