"""Probing and decoding videos: frame-exact decoding, rotation, bad inputs, stalls, cleanup.

The test videos are made here with the ffmpeg binary of imageio-ffmpeg, tiny (64x48)
and short. Each frame shows its own index as a pattern of 16x16 black and white
blocks that survives H.264, so a test can tell exactly which frame it got back.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from deepfakedetect._errors import ConfigError, InputError, VideoDecodeError
from deepfakedetect.io.video import (
    DECODE_STRATEGIES,
    VideoInfo,
    _plan,
    _select_expr,
    probe_video,
    read_frames,
)

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
W, H, CELL = 64, 48, 16  # a 4 x 3 grid of cells
BITS = 10  # cells 0..9 hold the index; cell 10 is always white, cell 11 always black
DARK, LIGHT = 16, 235


def index_grid(i: int) -> np.ndarray:
    """The 3 x 4 grid of booleans (True = white) that encodes frame ``i``."""
    bits = [(i >> b) & 1 == 1 for b in range(BITS)] + [True, False]
    return np.array(bits, dtype=bool).reshape(H // CELL, W // CELL)


def index_frame(i: int) -> np.ndarray:
    cells = np.where(index_grid(i), LIGHT, DARK).astype(np.uint8)
    img = np.kron(cells, np.ones((CELL, CELL), dtype=np.uint8))
    return np.repeat(img[:, :, None], 3, axis=2)


def read_grid(frame: np.ndarray, cell: int = CELL) -> np.ndarray:
    gray = frame.astype(np.float64).mean(axis=2)
    h, w = gray.shape
    means = gray.reshape(h // cell, cell, w // cell, cell).mean(axis=(1, 3))
    return means > (DARK + LIGHT) / 2


def read_index(frame: np.ndarray, cell: int = CELL) -> int:
    grid = read_grid(frame, cell).reshape(-1)
    assert grid[BITS] and not grid[BITS + 1], "orientation cells are wrong: the frame is not upright"
    return int(sum(1 << b for b in range(BITS) if grid[b]))


def make_index_video(path: Path, n: int, *, fps: int = 25, gop: int = 10, faststart: bool = False) -> Path:
    """An H.264 (with B-frames) MP4 whose frame i shows the pattern of i."""
    frames = b"".join(index_frame(i).tobytes() for i in range(n))
    args = [
        FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
        "-s", f"{W}x{H}", "-r", str(fps), "-i", "pipe:0", "-c:v", "libx264", "-preset", "veryfast",
        "-crf", "12", "-g", str(gop), "-bf", "2", "-pix_fmt", "yuv420p",
    ]  # fmt: skip
    if faststart:
        args += ["-movflags", "+faststart"]
    subprocess.run([*args, "-y", str(path)], input=frames, check=True)
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", *args], check=True)


def children() -> list[int]:
    """PIDs of this process's child processes (zombies included), from /proc."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            found.append(int(entry))
    return found


needs_proc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="child processes are read from /proc")


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    out = {
        "index": make_index_video(d / "index.mp4", 60),
        "index_fs": make_index_video(d / "index_fs.mp4", 60, faststart=True),
    }
    out["rot90"] = d / "rot90.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(out["index"]), "-c", "copy", "-y", str(out["rot90"]))
    out["rot180"] = d / "rot180.mp4"
    ffmpeg("-display_rotation", "180", "-i", str(out["index"]), "-c", "copy", "-y", str(out["rot180"]))
    # Stream copy from 0.5 s keeps the GOP before it and hides its frames with an edit list.
    out["editlist"] = d / "editlist.mp4"
    ffmpeg("-ss", "0.5", "-i", str(out["index"]), "-c", "copy", "-y", str(out["editlist"]))
    return out


# ---------------------------------------------------------------- probing


def test_probe_reads_size_rate_count_and_timestamps(videos: dict[str, Path]) -> None:
    info = probe_video(videos["index"])
    assert (info.width, info.height, info.fps, info.num_frames) == (W, H, 25.0, 60)
    assert info.duration == pytest.approx(60 / 25)
    assert info.rotation == 0 and info.codec == "h264" and not info.truncated
    assert "mp4" in info.container.split(",")
    assert info.keyframes is not None and info.keyframes[:3] == (0, 10, 20)
    assert info.keyframe_interval == 10
    assert info.timestamp(50) == pytest.approx(2.0)
    assert info.path == str(videos["index"].resolve())
    assert "frame_times" not in repr(info)
    d = info.to_dict()
    assert d["num_frames"] == 60 and "frame_times" not in d


def test_probed_count_matches_what_is_decoded(videos: dict[str, Path]) -> None:
    for name in ("index", "editlist"):
        info = probe_video(videos[name])
        # Decode every frame with plain ffmpeg, independently of read_frames.
        out = subprocess.run(
            [FFMPEG, "-loglevel", "error", "-i", str(videos[name]), "-map", "0:V:0",
             "-fps_mode", "passthrough", "-f", "framecrc", "-"],
            capture_output=True, check=True, text=True,
        ).stdout  # fmt: skip
        decoded = sum(1 for line in out.splitlines() if line.startswith("0,"))
        assert info.num_frames == decoded, name
    assert probe_video(videos["editlist"]).num_frames < 60


def test_probe_rotated_video_reports_display_size(videos: dict[str, Path]) -> None:
    info = probe_video(videos["rot90"])
    # -display_rotation 90 turns counter-clockwise: 270 in the clockwise convention.
    assert (info.width, info.height, info.rotation) == (H, W, 270)
    info180 = probe_video(videos["rot180"])
    assert (info180.width, info180.height, info180.rotation) == (W, H, 180)


def test_video_info_validates_and_timestamp_checks_range() -> None:
    with pytest.raises(ConfigError, match="width"):
        VideoInfo(path="a.mp4", width=0, height=8, fps=25.0, num_frames=1, duration=0.04)
    with pytest.raises(ConfigError, match="rotation"):
        VideoInfo(path="a.mp4", width=8, height=8, fps=25.0, num_frames=1, duration=0.04, rotation=45)
    with pytest.raises(ConfigError, match="frame_times"):
        VideoInfo(path="a.mp4", width=8, height=8, fps=25.0, num_frames=2, duration=0.08, frame_times=(0.0,))
    info = VideoInfo(path="a.mp4", width=8, height=8, fps=25.0, num_frames=10, duration=0.4)
    with pytest.raises(InputError, match="outside"):
        info.timestamp(10)


# ---------------------------------------------------------------- decoding exactly the frames asked for


@pytest.mark.parametrize("strategy", DECODE_STRATEGIES)
def test_frames_returned_are_the_frames_asked_for(videos: dict[str, Path], strategy: str) -> None:
    info = probe_video(videos["index"])
    wanted = [59, 0, 7, 7, 13, 14, 15, 33, 41, 58]  # unsorted, a duplicate, runs, both ends
    got = list(read_frames(info, wanted, strategy=strategy))
    assert [i for i, _ in got] == sorted(set(wanted))
    for i, frame in got:
        assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
        assert frame.flags.writeable
        assert read_index(frame) == i


@pytest.mark.parametrize("strategy", ["select", "seek"])
def test_edit_list_frames_keep_their_order(videos: dict[str, Path], strategy: str) -> None:
    info = probe_video(videos["editlist"])
    frames = dict(read_frames(info, list(range(info.num_frames)), strategy="all"))
    first = read_index(frames[0])
    assert [read_index(frames[i]) for i in range(info.num_frames)] == list(range(first, first + info.num_frames))
    some = [0, 3, info.num_frames // 2, info.num_frames - 1]
    for i, frame in read_frames(info, some, strategy=strategy):
        assert read_index(frame) == first + i


@pytest.mark.parametrize("strategy", ["seek", "auto"])
def test_seeks_land_on_the_keyframe_before_the_frame(tmp_path: Path, strategy: str) -> None:
    # A run seeks to just after its keyframe (not just before it, which lands a GOP
    # earlier). The frames around each keyframe are where that could go wrong.
    info = probe_video(make_index_video(tmp_path / "gop30.mp4", 150, gop=30))
    assert len(info.keyframes) >= 4
    wanted = sorted({j for k in info.keyframes[1:] for j in (k - 1, k, k + 1, k + 2)} | {info.num_frames - 1})
    got = [(i, read_index(f)) for i, f in read_frames(info, wanted, strategy=strategy)]
    assert got == [(i, i) for i in wanted]


VFR_KEPT = [0, 1, 2, 3, 7, 8, 9, 15, 16, 22, 23, 29, 30, 31, 40, 50, 51, 52, 59]


@pytest.mark.parametrize("strategy", DECODE_STRATEGIES)
def test_variable_frame_rate_frames_are_exact(tmp_path: Path, strategy: str) -> None:
    # Dropping frames with -fps_mode vfr leaves gaps in the timestamps; with B-frames a
    # keyframe can then decode before frames shown earlier, which a seek must not skip.
    src = make_index_video(tmp_path / "src.mp4", 60, fps=30)
    path = tmp_path / "vfr.mp4"
    keep = "+".join(f"eq(n,{i})" for i in VFR_KEPT)
    ffmpeg("-i", str(src), "-vf", f"select='{keep}'", "-fps_mode", "vfr", "-c:v", "libx264", "-g", "4",
           "-bf", "2", "-crf", "12", "-pix_fmt", "yuv420p", "-y", str(path))  # fmt: skip
    info = probe_video(path)
    assert info.num_frames == len(VFR_KEPT)
    assert [round(info.timestamp(i) * 30) for i in range(info.num_frames)] == VFR_KEPT
    got = [(i, read_index(f)) for i, f in read_frames(info, list(range(info.num_frames)), strategy=strategy)]
    assert got == list(enumerate(VFR_KEPT))


@pytest.mark.parametrize("name,k", [("rot90", 1), ("rot180", 2)])
def test_rotated_video_comes_out_upright(videos: dict[str, Path], name: str, k: int) -> None:
    info = probe_video(videos[name])
    for i, frame in read_frames(info, [0, 31], strategy="select"):
        assert frame.shape == (info.height, info.width, 3)
        # The display matrix says: turn the stored frame k * 90 degrees counter-clockwise.
        assert np.array_equal(read_grid(frame), np.rot90(index_grid(i), k))


def test_max_size_downscales_inside_ffmpeg(videos: dict[str, Path]) -> None:
    got = list(read_frames(videos["index"], [5, 20], max_size=32))
    assert [f.shape for _, f in got] == [(24, 32, 3), (24, 32, 3)]
    assert [read_index(f, cell=8) for _, f in got] == [5, 20]
    # Never upscaled.
    assert next(iter(read_frames(videos["index"], [1], max_size=1000)))[1].shape == (H, W, 3)


def test_read_frames_accepts_a_path_and_checks_arguments(videos: dict[str, Path]) -> None:
    assert [i for i, _ in read_frames(str(videos["index"]), [2, 1])] == [1, 2]
    assert list(read_frames(videos["index"], [])) == []
    with pytest.raises(ConfigError, match="strategy"):
        read_frames(videos["index"], [0], strategy="fastest")
    with pytest.raises(ConfigError, match="non-negative"):
        read_frames(videos["index"], [-1])
    with pytest.raises(ConfigError, match="max_size"):
        read_frames(videos["index"], [0], max_size=0)
    with pytest.raises(ConfigError, match="timeout"):
        read_frames(videos["index"], [0], timeout=0)


def test_frames_past_the_end_give_a_warning(videos: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="deepfakedetect.io.video"):
        got = [i for i, _ in read_frames(videos["index"], [10, 60, 70])]
    assert got == [10]
    assert "decoded 1 of 3 requested frames" in caplog.text


def test_select_expression_matches_exactly_the_given_frames() -> None:
    rng = np.random.default_rng(0)
    cases = [[0], [0, 1, 2, 3], [5, 10, 15, 20, 21, 22, 40], sorted(rng.choice(500, 60, replace=False).tolist())]
    for offsets in cases:
        expr = _select_expr(offsets)
        ns = np.arange(600)
        env = {
            "eq": lambda a, b: (a == b).astype(int),
            "between": lambda x, lo, hi: ((x >= lo) & (x <= hi)).astype(int),
            "mod": np.mod,
            "not": lambda a: (a == 0).astype(int),
        }
        value = eval(expr.replace("not(", "not_("), {"n": ns, **env, "not_": env["not"]})
        assert np.flatnonzero(value).tolist() == offsets


def test_auto_plan_seeks_only_where_it_pays() -> None:
    def info(n: int, gop: int, w: int, h: int, container: str = "mov,mp4,m4a,3gp,3g2,mj2") -> VideoInfo:
        return VideoInfo(path="a.mp4", width=w, height=h, fps=30.0, num_frames=n, duration=n / 30,
                         container=container, keyframes=tuple(range(0, n, gop)))  # fmt: skip

    uniform32 = lambda n: [int((2 * i + 1) * n // 64) for i in range(32)]  # noqa: E731
    # FaceForensics++-like: 480p, a keyframe every 250 frames, 800 frames: one pass, no seek.
    jobs = _plan(info(800, 250, 854, 480), uniform32(800), "auto")
    assert len(jobs) == 1 and jobs[0].seek is None
    # 1080p, 60 s, a keyframe every 30 frames: one ffmpeg per frame, each seeking.
    jobs = _plan(info(1800, 30, 1920, 1080), uniform32(1800), "auto")
    assert len(jobs) == 32 and all(j.seek == j.indices[0] // 30 * 30 + 1 for j in jobs[1:])
    # Frames in the same GOP are never split.
    jobs = _plan(info(1800, 250, 1920, 1080), [300, 301, 310, 1000], "auto")
    assert [j.indices for j in jobs] == [[300, 301, 310], [1000]]
    # Each run decodes from its keyframe: output starts just after it (the -ss time then
    # falls after the keyframe, not before it, which would land a GOP earlier), or at the
    # keyframe itself when that is the first frame wanted.
    assert [j.seek for j in jobs] == [251, 1000]
    # GOPs too short to be sure the next keyframe does not decode first: start at the keyframe.
    assert [j.seek for j in _plan(info(300, 4, 1920, 1080), [9, 150], "seek")] == [8, 148]
    assert len(_plan(info(1800, 30, 1920, 1080), uniform32(1800), "select")) == 1
    # Containers without a keyframe index (MPEG-TS) are never seeked by "auto".
    assert len(_plan(info(1800, 30, 1920, 1080, container="mpegts"), uniform32(1800), "auto")) == 1


# ---------------------------------------------------------------- bad inputs


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VideoDecodeError, match="not found.*nope.mp4"):
        probe_video(tmp_path / "nope.mp4")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(VideoDecodeError, match="directory"):
        probe_video(tmp_path)


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match=r"empty \(0 bytes\)"):
        probe_video(path)


def test_text_renamed_mp4(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("these are my notes, not a video\n" * 20)
    with pytest.raises(VideoDecodeError, match="not a video file") as e:
        probe_video(path)
    assert str(path) in str(e.value)


def test_audio_only(tmp_path: Path) -> None:
    path = tmp_path / "song.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac", "-y", str(path))
    with pytest.raises(VideoDecodeError, match="no video stream"):
        probe_video(path)


def test_still_image_is_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "face.png"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:size=32x32", "-frames:v", "1", "-y", str(path))
    with pytest.raises(VideoDecodeError, match="still image"):
        probe_video(path)


def test_moov_atom_missing(videos: dict[str, Path], tmp_path: Path) -> None:
    data = videos["index"].read_bytes()  # written without +faststart: moov is at the end
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError, match="moov atom missing"):
        probe_video(path)
    with pytest.raises(VideoDecodeError, match="moov atom missing"):
        read_frames(path, [0])


def _moov_end(data: bytes) -> int:
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        pos += size
        if kind == b"moov":
            return pos
    raise AssertionError("no moov box")


def test_truncated_right_after_the_header(videos: dict[str, Path], tmp_path: Path) -> None:
    data = videos["index_fs"].read_bytes()
    path = tmp_path / "header_only.mp4"
    path.write_bytes(data[: _moov_end(data) + 16])
    with pytest.raises(VideoDecodeError, match="truncated"):
        probe_video(path)


def test_truncated_in_the_middle(
    videos: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = videos["index_fs"].read_bytes()
    path = tmp_path / "half.mp4"
    start = _moov_end(data)
    path.write_bytes(data[: start + (len(data) - start) // 2])
    with caplog.at_level(logging.WARNING, logger="deepfakedetect.io.video"):
        info = probe_video(path)
    assert info.truncated and 0 < info.num_frames < 60
    assert "truncated" in caplog.text and "2.40 s" in caplog.text
    caplog.clear()
    # Frames the probe of the complete file promised but this file lacks: a warning, not an error.
    full = dataclasses.replace(probe_video(videos["index_fs"]), path=str(path))
    with caplog.at_level(logging.WARNING, logger="deepfakedetect.io.video"):
        got = list(read_frames(full, [0, 5, 59], strategy="select"))
    assert [i for i, _ in got] == [0, 5] and read_index(got[1][1]) == 5
    assert "decoded 2 of 3 requested frames" in caplog.text
    # Nothing decodable at all is an error.
    with pytest.raises(VideoDecodeError, match="could not decode any"):
        list(read_frames(full, [59], strategy="select"))


def test_playlists_and_concat_scripts_are_refused(videos: dict[str, Path], tmp_path: Path) -> None:
    # Either would make ffmpeg open a file the caller never passed.
    (tmp_path / "secret.mp4").write_bytes(videos["index"].read_bytes())
    script = tmp_path / "clip.mp4"
    script.write_text("ffconcat version 1.0\nfile secret.mp4\n")
    playlist = tmp_path / "clip.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\n{tmp_path / 'secret.mp4'}\n#EXT-X-ENDLIST\n")
    for path in (script, playlist):
        with pytest.raises(VideoDecodeError, match="playlist, a concat script"):
            probe_video(path)


@pytest.mark.parametrize("ext", ["mkv", "ts", "avi"])
def test_other_containers_are_read(videos: dict[str, Path], tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"index.{ext}"
    ffmpeg("-i", str(videos["index"]), "-c", "copy", "-y", str(path))
    info = probe_video(path)
    assert info.num_frames == 60
    assert [read_index(f) for _, f in read_frames(info, [1, 30, 59])] == [1, 30, 59]


@pytest.mark.parametrize(
    "url", ["http://example.com/clip.mp4", "concat:a.mp4|b.mp4", "file:/tmp/a.mp4", "pipe:0", "subfile,,start,0,end,9,,:a.mp4"]
)
def test_urls_and_protocols_are_refused(url: str) -> None:
    with pytest.raises(InputError, match="allow_urls") as e:
        probe_video(url)
    assert not isinstance(e.value, VideoDecodeError)
    with pytest.raises(InputError, match="allow_urls"):
        read_frames(url, [0])


def test_allow_urls_hands_the_url_to_ffmpeg(videos: dict[str, Path]) -> None:
    info = probe_video(f"file:{videos['index']}", allow_urls=True)
    assert info.num_frames == 60
    assert [read_index(f) for _, f in read_frames(info, [3])] == [3]


# ---------------------------------------------------------------- stalls and child processes


@needs_proc
def test_stalled_probe_times_out_and_leaves_no_child(tmp_path: Path) -> None:
    fifo = tmp_path / "stall.mp4"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(VideoDecodeError, match="FIFO"):  # a plain path: refused before ffprobe runs
        probe_video(fifo, timeout=30)
    with pytest.raises(VideoDecodeError, match="timed out"):  # a trusted stream: the timeout
        probe_video(f"file:{fifo}", timeout=0.5, allow_urls=True)
    assert time.monotonic() - t0 < 10
    assert children() == []


@needs_proc
def test_stalled_decode_times_out_and_kills_ffmpeg(tmp_path: Path) -> None:
    fifo = tmp_path / "stall.mp4"
    os.mkfifo(fifo)
    info = VideoInfo(path=str(fifo), width=W, height=H, fps=25.0, num_frames=10, duration=0.4)
    frames = read_frames(info, [0, 5], timeout=0.5)
    assert children() == []  # nothing starts before the first frame is asked for
    t0 = time.monotonic()
    with pytest.raises(VideoDecodeError, match="stalled"):
        next(frames)
    assert time.monotonic() - t0 < 10
    assert children() == []


@pytest.fixture(scope="module")
def big_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Frames larger than a pipe's buffer, so ffmpeg is still running after the first frame.
    path = tmp_path_factory.mktemp("big") / "big.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=4", "-c:v", "libx264",
           "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-y", str(path))  # fmt: skip
    return path


@needs_proc
def test_closing_early_kills_ffmpeg(big_video: Path) -> None:
    frames = read_frames(big_video, list(range(100)), strategy="all")
    next(frames)
    assert len(children()) == 1
    frames.close()
    assert children() == []


@needs_proc
def test_dropping_the_iterator_kills_ffmpeg(big_video: Path) -> None:
    frames = read_frames(big_video, list(range(100)), strategy="select")
    next(frames)
    assert len(children()) == 1
    del frames
    gc.collect()
    assert children() == []


@needs_proc
def test_a_slow_consumer_holds_ffmpeg_back(big_video: Path) -> None:
    # Memory stays bounded because ffmpeg blocks on the pipe while the caller is busy:
    # it must not have written much more than the few frames in flight.
    frame_bytes = 320 * 240 * 3
    frames = read_frames(big_video, list(range(100)), strategy="all")
    next(frames)
    time.sleep(0.5)
    (pid,) = children()
    with open(f"/proc/{pid}/io") as f:
        written = int(next(line for line in f if line.startswith("wchar")).split()[1])
    assert written < 6 * frame_bytes
    assert sum(1 for _ in frames) == 99
    assert children() == []


# ---------------------------------------------------------------- real files


@pytest.mark.shared
def test_probe_and_decode_every_ffpp_video(shared_dir: Path) -> None:
    paths = sorted((shared_dir / "data" / "videos" / "ffpp_c23").glob("*/*.mp4"))
    assert len(paths) >= 50
    for path in paths:
        info = probe_video(path)
        assert info.codec == "h264" and info.num_frames > 200 and info.height >= 480
        assert info.duration == pytest.approx(info.num_frames / info.fps, rel=0.01)
        # Eight frames of the first two seconds keep this fast; other tests reach the ends.
        wanted = list(range(0, 56, 7))
        got = list(read_frames(info, wanted, max_size=64))
        assert [i for i, _ in got] == wanted
        assert all(max(f.shape[:2]) == 64 for _, f in got)


@pytest.mark.shared
def test_ffpp_count_and_strategies_agree(shared_dir: Path) -> None:
    path = shared_dir / "data" / "videos" / "ffpp_c23" / "real" / "youtube__192.mp4"
    info = probe_video(path)
    out = subprocess.run(
        [FFMPEG, "-loglevel", "error", "-i", str(path), "-map", "0:V:0", "-fps_mode", "passthrough",
         "-f", "framecrc", "-"], capture_output=True, check=True, text=True,
    ).stdout  # fmt: skip
    assert info.num_frames == sum(1 for line in out.splitlines() if line.startswith("0,"))
    # These files were written by x264 core 148, whose 4:4:4 streams only decode right
    # after a seek when ffmpeg is told the x264 build; all strategies must agree.
    wanted = [3, 251, 260]
    results = {s: list(read_frames(info, wanted, max_size=96, strategy=s)) for s in ("select", "seek", "all")}
    for s in ("seek", "all"):
        for (i, a), (j, b) in zip(results["select"], results[s], strict=True):
            assert i == j and np.array_equal(a, b), (s, i)
