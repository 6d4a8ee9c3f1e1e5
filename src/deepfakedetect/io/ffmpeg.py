"""Running ffmpeg safely: finding the binary, local files only, readable failures, a pipe that cannot hang."""

from __future__ import annotations

import io
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
from collections.abc import Iterator
from typing import Any, cast

import imageio_ffmpeg
import numpy as np

from deepfakedetect._errors import ConfigError, InputError, VideoDecodeError
from deepfakedetect._untrusted import (
    NotRegularFileError,
    file_kind,
    open_regular,
    printable,
)

logger = logging.getLogger(__name__)

try:
    _CLK_TCK = float(os.sysconf("SC_CLK_TCK"))
except (AttributeError, ValueError, OSError):
    _CLK_TCK = 100.0

__all__ = ['DRIVE_RE', 'EOF', 'FFmpegPipe', 'INDEXED_CONTAINERS', 'ISO_BOXES', 'LOCAL_FORMATS', 'LOCAL_INPUT_OPTS', 'POLL_S', 'URL_RE', 'check_timeout', 'cpu_seconds', 'explain_failure', 'ffmpeg_exe', 'is_int', 'is_url', 'looks_like_iso_media', 'resolve', 'stderr_tail', 'x264_build']


POLL_S = 0.2


ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"styp", b"pnot")


INDEXED_CONTAINERS = ("mov", "mp4", "matroska", "webm")


# The demuxers a local file may be read with. ffmpeg picks one from the file's content,
# and some (concat scripts, HLS/DASH playlists) open further files the caller never
# named; only containers of a single video, and still images (for a clear message),
# are allowed.
LOCAL_FORMATS = ",".join((
    "mov", "matroska", "webm", "avi", "mpegts", "mpeg", "mpegvideo", "flv", "asf", "ogg", "nut", "mxf",
    "dv", "rm", "wtv", "ivf", "obu", "h264", "hevc", "m4v", "vc1", "yuv4mpegpipe", "gif", "apng", "image2",
    "jpeg_pipe", "png_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif_pipe", "jpegxl_pipe", "j2k_pipe",
    "qoi_pipe", "ppm_pipe", "pgm_pipe", "pam_pipe", "pbm_pipe", "psd_pipe", "dpx_pipe", "exr_pipe", "hdr_pipe",
))  # fmt: skip


LOCAL_INPUT_OPTS = ("-protocol_whitelist", "file", "-format_whitelist", LOCAL_FORMATS)


URL_RE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.\-]*:|subfile,)")


DRIVE_RE = re.compile(r"^[A-Za-z]:[\\/]")


def is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def ffmpeg_exe() -> str:
    try:

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception as e:  # imageio_ffmpeg raises RuntimeError when it finds no binary
        raise VideoDecodeError(
            "no ffmpeg binary found: install it with 'pip install imageio-ffmpeg' "
            "or set IMAGEIO_FFMPEG_EXE to an ffmpeg executable"
        ) from e


def is_url(text: str) -> bool:
    return bool(URL_RE.match(text)) and not DRIVE_RE.match(text)


def check_timeout(timeout: float) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0 or math.isnan(timeout):
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def resolve(path: str | os.PathLike[str], *, allow_urls: bool) -> tuple[str, str, list[str]]:
    """The name shown in messages, the input ffmpeg gets, and its input options."""
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"a video must be given as a path or URL string, got {type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str):
        raise InputError(f"a video path must be text, got {text!r}")
    if is_url(text):
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
    if not stat.S_ISREG(st.st_mode):
        # ffmpeg would block opening a FIFO with no writer, and so would reading it to explain
        # a failure; a device could be read for ever. Streams go through allow_urls ("pipe:").
        raise VideoDecodeError(
            f"{shown} is {file_kind(st.st_mode)}, not a regular file; save the stream to a video file "
            "first (or, trusting the source, pass allow_urls=True with a 'file:' or 'pipe:' URL)"
        )
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        raise VideoDecodeError(f"{shown} is empty (0 bytes); re-download or re-export the video")
    # "file:" stops ffmpeg from reading a protocol out of the name; the whitelists stop
    # the file from making ffmpeg open anything else (see LOCAL_FORMATS).
    return shown, "file:" + shown, list(LOCAL_INPUT_OPTS)


def looks_like_iso_media(path: str) -> bool:
    try:
        with open_regular(path) as f:  # never blocks, also if the path became a FIFO since it was checked
            head = f.read(12)
    except (OSError, NotRegularFileError):
        return False
    return len(head) >= 8 and head[4:8] in ISO_BOXES


def explain_failure(shown: str, stderr: str, *, local: bool) -> str:
    tail = stderr_tail(stderr)
    if "matches no streams" in stderr:
        return (
            f"{shown} has no video stream (audio only, or subtitles/data only); "
            "pass a file with a video track"
        )
    if "moov atom not found" in stderr:
        if local and looks_like_iso_media(shown):
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
        # Nothing ffmpeg read from a file that is not a video is echoed back.
        return f"{shown} is not a video file ffmpeg can read (invalid data); check the file"
    return f"ffmpeg could not read {shown}: {tail or 'no error message'}"


def stderr_tail(stderr: str, lines: int = 3, limit: int = 300) -> str:
    """ffmpeg's last messages as one escaped line of at most about ``limit`` characters."""
    kept = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    tail = printable(" | ".join(kept[-lines:]))
    return tail if len(tail) <= limit else tail[:limit] + "..."


def cpu_seconds(pid: int) -> float | None:
    """CPU time a process has used, from /proc; ``None`` where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        fields = data.rpartition(b")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


EOF = object()


class FFmpegPipe:
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
                self._queue.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue

    def _pump_stdout(self) -> None:
        stdout = cast(io.BufferedReader, self.proc.stdout)  # Popen was given stdout=PIPE
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
            self._put(EOF)

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
        cpu = cpu_seconds(self.proc.pid)
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
                    item = self._queue.get(timeout=POLL_S)
                    break
                except queue.Empty:
                    if self._stalled(wait_start):
                        self.close()
                        raise VideoDecodeError(
                            f"decoding {self.shown} stalled: ffmpeg made no progress for {self.timeout:g} s "
                            "and was stopped; check that the file is complete and readable (not a pipe "
                            "nobody writes to, nor a stalled network or disk), or pass a larger timeout"
                        ) from None
            if item is EOF:
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


def x264_build(exe: str, source: str, input_opts: list[str], *, timeout: float) -> int | None:
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
