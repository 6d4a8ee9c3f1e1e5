"""Hostile and odd videos end to end (issue 9, items 8 and 9): what ``test_video.py`` does not cover.

``test_video.py`` checks ``probe_video`` and ``read_frames`` on broken files, URLs and
stalled pipes. Here the same inputs go through ``Detector.detect_video``, plus variable
frame rate, a very large resolution, a pipe that delivers half a video and then stalls,
and the memory of a 30-minute video against a 1-minute one (``slow``).

Videos are generated with imageio-ffmpeg's binary. In the "level" videos frame ``i`` is
a flat grey of level ``16 + 7 i``, so a decoded frame tells its own index.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from deepfakedetect import Detector, InputError, VideoDecodeError
from deepfakedetect.io.video import probe_video, read_frames

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
W, H = 64, 48
needs_proc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="processes are read from /proc")


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", *args], check=True)


def make_level_video(path: Path, n: int, *, fps: int = 30, extra: tuple[str, ...] = ()) -> Path:
    frames = b"".join(np.full((H, W, 3), 16 + 7 * i, np.uint8).tobytes() for i in range(n))
    args = [FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}",
            "-r", str(fps), "-i", "pipe:0", *extra, "-c:v", "libx264", "-preset", "veryfast", "-crf", "10",
            "-g", "8", "-pix_fmt", "yuv420p", "-y", str(path)]  # fmt: skip
    subprocess.run(args, input=frames, check=True)
    return path


def level_index(frame: np.ndarray) -> int:
    return round((float(frame.mean()) - 16) / 7)


def children() -> list[int]:
    """PIDs of this process's children (zombies included), from /proc."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read().rpartition(b")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                found.append(int(entry))
    return found


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def _reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        pytest.skip("cannot reset the peak RSS counter (/proc/self/clear_refs)")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # A tiny model gains nothing from more threads, and on a busy 2-core machine loses a lot.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def detector() -> Detector:
    torch.manual_seed(0)
    return Detector.from_backbone("resnet18", input_size=32, device="cpu", precision="fp32")


KEPT = [0, 1, 2, 3, 7, 8, 9, 15, 16, 22, 23, 29]  # the frames the variable-rate video keeps, at 30 fps


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    out = {"levels": make_level_video(d / "levels.mp4", 30)}
    out["levels_fs"] = make_level_video(d / "levels_fs.mp4", 30, extra=("-movflags", "+faststart"))
    select = "+".join(f"eq(n,{i})" for i in KEPT)
    out["vfr"] = make_level_video(d / "vfr.mp4", 30, extra=("-vf", f"select='{select}'", "-fps_mode", "vfr"))
    out["rot90"] = d / "rot90.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(out["levels"]), "-c", "copy", "-y", str(out["rot90"]))
    out["audio"] = d / "audio.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac", "-y", str(out["audio"]))
    return out


@pytest.fixture(scope="module")
def video_8k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "8k.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=7680x4320:rate=25", "-frames:v", "3", "-c:v", "libx264",
           "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-y", str(path))  # fmt: skip
    return path


# -- broken files through detect_video -------------------------------------------------------


def _moov_end(data: bytes) -> int:
    pos = 0
    while pos + 8 <= len(data):
        size, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        pos += size
        if kind == b"moov":
            return pos
    raise AssertionError("no moov box")


@needs_proc
def test_broken_videos_raise_video_decode_error_naming_the_file(
    detector: Detector, videos: dict[str, Path], tmp_path: Path
) -> None:
    whole = videos["levels"].read_bytes()  # moov at the end
    faststart = videos["levels_fs"].read_bytes()  # moov first
    cases = {
        "zero.mp4": (b"", "empty"),
        "notes.mp4": (b"these are my notes, not a video\n" * 20, "not a video file"),
        "no-moov.mp4": (whole[: len(whole) // 2], "moov atom missing"),
        "header-only.mp4": (faststart[: _moov_end(faststart) + 16], "truncated"),
        "random.mp4": (np.random.default_rng(0).bytes(5000), "not a video file|could not read"),
    }
    for name, (data, match) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(VideoDecodeError, match=match) as info:
            detector.detect_video(path, progress=False)
        assert name in str(info.value)
    with pytest.raises(VideoDecodeError, match="no video stream"):
        detector.detect_video(videos["audio"], progress=False)
    assert children() == []


@needs_proc
@pytest.mark.parametrize(
    "url", ["concat:a.mp4|b.mp4", "http://127.0.0.1:9/clip.mp4", "https://example.com/x.mp4", "file:/etc/passwd",
            "pipe:0", "tcp://127.0.0.1:9", "data:video/mp4;base64,AAAA"],
)
def test_urls_and_protocols_are_refused_by_detect_video(detector: Detector, url: str) -> None:
    with pytest.raises(InputError, match="allow_urls") as info:
        detector.detect_video(url, progress=False)
    assert not isinstance(info.value, VideoDecodeError)
    assert children() == []


def test_allow_urls_is_explicit(detector: Detector, videos: dict[str, Path]) -> None:
    v = detector.detect_video(f"file:{videos['levels']}", allow_urls=True, sampler="uniform:num_frames=4",
                              progress=False)  # fmt: skip
    assert len(v.frames) == 4 and v.fake_score is not None


def test_playlists_and_concat_scripts_cannot_pull_in_other_local_files(
    videos: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "secret.mp4").write_bytes(videos["levels"].read_bytes())
    ffmpeg("-i", str(videos["levels"]), "-c", "copy", "-f", "mpegts", "-y", str(tmp_path / "secret.ts"))
    concat = tmp_path / "clip.mp4"
    concat.write_text("ffconcat version 1.0\nfile secret.mp4\n")
    playlist = tmp_path / "clip.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\n{tmp_path / 'secret.ts'}\n#EXT-X-ENDLIST\n")
    for path in (concat, playlist):
        with pytest.raises(VideoDecodeError):
            probe_video(path)


# -- stalls --------------------------------------------------------------------------------


@needs_proc
def test_detect_video_on_a_fifo_is_refused_at_once(detector: Detector, tmp_path: Path) -> None:
    fifo = tmp_path / "stall.mp4"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(VideoDecodeError, match="FIFO"):
        detector.detect_video(fifo, timeout=30, progress=False)
    assert time.monotonic() - t0 < 10
    assert children() == []


@needs_proc
def test_detect_video_on_a_fifo_url_nobody_writes_to_times_out(detector: Detector, tmp_path: Path) -> None:
    # A stream the caller chose to trust (allow_urls) still gets the timeout.
    fifo = tmp_path / "stall.mp4"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(VideoDecodeError, match="timed out|stalled"):
        detector.detect_video(f"file:{fifo}", timeout=0.5, progress=False, allow_urls=True)
    assert time.monotonic() - t0 < 10
    assert children() == []


class _HalfWriter(threading.Thread):
    """Writes the first half of a video into a FIFO, then holds it open without writing."""

    def __init__(self, fifo: Path, data: bytes) -> None:
        super().__init__(daemon=True)
        self.fifo, self.data, self.done = fifo, data, threading.Event()

    def run(self) -> None:
        fd = -1
        while fd < 0 and not self.done.is_set():
            try:  # non-blocking open fails (ENXIO) until a reader has the FIFO open
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.01)
        if fd < 0:
            return
        os.set_blocking(fd, True)
        try:
            os.write(fd, self.data[: len(self.data) // 2])
            self.done.wait(30)
        except OSError:  # the reader was killed: the pipe broke
            pass
        finally:
            os.close(fd)


@needs_proc
def test_a_pipe_that_stalls_half_way_times_out_and_leaves_no_ffmpeg(
    detector: Detector, videos: dict[str, Path], tmp_path: Path
) -> None:
    fifo = tmp_path / "half.mp4"
    os.mkfifo(fifo)
    writer = _HalfWriter(fifo, videos["levels_fs"].read_bytes())
    writer.start()
    try:
        t0 = time.monotonic()
        with pytest.raises(VideoDecodeError, match="timed out|stalled"):
            detector.detect_video(f"file:{fifo}", timeout=1.0, progress=False, allow_urls=True)
        assert time.monotonic() - t0 < 10
        assert children() == []
    finally:
        writer.done.set()
        writer.join(5)


# -- variable frame rate, rotation, very large frames -------------------------------------------


def test_variable_frame_rate_keeps_each_frames_own_time(detector: Detector, videos: dict[str, Path]) -> None:
    info = probe_video(videos["vfr"])
    assert info.num_frames == len(KEPT)
    assert info.frame_times == pytest.approx([k / 30 for k in KEPT], abs=1e-3)
    for strategy in ("select", "all", "auto"):
        got = [(i, level_index(f)) for i, f in read_frames(info, range(len(KEPT)), strategy=strategy)]
        assert got == list(enumerate(KEPT)), strategy
    v = detector.detect_video(videos["vfr"], sampler=lambda info: list(range(info.num_frames)), progress=False)
    assert [f.index for f in v.frames] == list(range(len(KEPT)))
    assert [f.timestamp for f in v.frames] == pytest.approx([k / 30 for k in KEPT], abs=1e-3)
    # Each frame's score is the score of the frame it shows.
    expected = detector.score_arrays([np.full((H, W, 3), 16 + 7 * k, np.uint8) for k in KEPT])
    assert [f.fake_score for f in v.frames] == pytest.approx(list(expected), abs=0.02)


def test_variable_frame_rate_seeking_returns_the_frames_asked_for(videos: dict[str, Path]) -> None:
    info = probe_video(videos["vfr"])
    got = [(i, level_index(f)) for i, f in read_frames(info, range(len(KEPT)), strategy="seek")]
    assert got == list(enumerate(KEPT))


def test_rotated_video_is_scored_upright(detector: Detector, videos: dict[str, Path]) -> None:
    # A texture, not flat grey, so that turning a frame changes its score.
    d = videos["levels"].parent
    src = d / "texture.mp4"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate=25:duration=0.4", "-c:v", "libx264", "-qp", "0",
           "-pix_fmt", "yuv444p", "-y", str(src))  # fmt: skip
    rotated = d / "texture-rot.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(src), "-c", "copy", "-y", str(rotated))

    def every(info: Any) -> list[int]:
        return list(range(info.num_frames))

    plain = detector.detect_video(src, sampler=every, progress=False)
    turned = detector.detect_video(rotated, sampler=every, progress=False)
    assert (turned.video["width"], turned.video["height"]) == (H, W) and turned.video["rotation"] == 270
    upright = [np.rot90(f, 1) for _, f in read_frames(src, every(probe_video(src)))]
    assert [f.fake_score for f in turned.frames] == pytest.approx(list(detector.score_arrays(upright)), abs=1e-6)
    assert [f.fake_score for f in turned.frames] != pytest.approx([f.fake_score for f in plain.frames], abs=1e-4)


@needs_proc
def test_very_large_resolution_is_scaled_inside_ffmpeg(detector: Detector, video_8k: Path) -> None:
    info = probe_video(video_8k)
    assert (info.width, info.height, info.num_frames) == (7680, 4320, 3)
    full_frame_mb = 7680 * 4320 * 3 / 2**20  # 95 MB: holding even one would show
    _reset_peak_rss()
    base = _peak_rss_mb()
    v = detector.detect_video(video_8k, progress=False)
    peak = _peak_rss_mb() - base
    assert len(v.frames) == 3 and all(np.isfinite(f.fake_score) for f in v.frames)
    assert v.video["width"] == 7680
    assert peak < full_frame_mb / 2, f"peak grew by {peak:.0f} MB"
    assert children() == []


# -- long videos: memory does not grow with length ---------------------------------------------

_MEASURE = textwrap.dedent(
    """
    import json, resource, sys, torch
    torch.set_num_threads(1)
    from deepfakedetect import Detector
    det = Detector.from_backbone("resnet18", input_size=32, device="cpu", precision="fp32")
    det.detect_video(sys.argv[2], progress=False)  # warm-up: imports, first forward pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    with open("/proc/self/status") as f:
        before = next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))
    v = det.detect_video(sys.argv[1], progress=False)
    with open("/proc/self/status") as f:
        hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
    print(json.dumps({"frames": len(v.frames), "num_frames": v.video["num_frames"], "duration": v.video["duration"],
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "call_peak_mb": hwm / 1024, "call_growth_mb": (hwm - before) / 1024}))
    """
)


def _measure(video: Path, warmup: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"), *sys.path])}
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(video), str(warmup)], env=env, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_proc
@pytest.mark.slow
def test_memory_of_a_30_minute_video_is_within_10_percent_of_a_1_minute_one(
    videos: dict[str, Path], tmp_path: Path
) -> None:
    one = tmp_path / "one.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=60", "-c:v", "libx264", "-preset", "ultrafast",
           "-pix_fmt", "yuv420p", "-y", str(one))  # fmt: skip
    thirty = tmp_path / "thirty.mp4"
    ffmpeg("-stream_loop", "29", "-i", str(one), "-c", "copy", "-y", str(thirty))
    short, long = _measure(one, videos["levels"]), _measure(thirty, videos["levels"])
    print(f"\n1 min: {short}\n30 min: {long}")
    assert short["num_frames"] == 1500 and long["num_frames"] == 45_000
    assert long["duration"] == pytest.approx(1800, abs=1)
    assert short["frames"] == long["frames"] == 32
    assert long["peak_mb"] <= 1.10 * short["peak_mb"]
    # The call itself: what detect_video added on top of the warmed-up process.
    assert long["call_growth_mb"] <= short["call_growth_mb"] + 0.10 * short["peak_mb"]
