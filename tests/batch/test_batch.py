"""Batch scoring of many files: order, errors, resume, inputs, bounded prefetch."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfakedetect import ConfigError, Detector, FaceConfig, InputError, UnknownPluginError
from deepfakedetect.batch import many as _batch
from deepfakedetect.batch.many import detect_many, list_inputs, read_done


@pytest.fixture(scope="module")
def det() -> Detector:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return Detector.from_backbone("resnet18", input_size=32, precision="fp32")


def _images(folder: Path, n: int, *, start: int = 0, sub: str = "") -> list[Path]:
    rng = np.random.default_rng(start)
    out = []
    for i in range(start, start + n):
        p = folder / sub / f"img{i:03d}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        # Odd, varied sizes so that the decoding threads' resize really resizes.
        h, w = 37 + i % 5, 45 + 3 * (i % 4)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(p, quality=90)
        out.append(p)
    return out


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ------------------------------------------------------------------ inputs
def test_folder_lists_media_sorted_recursive_and_not(tmp_path: Path) -> None:
    _images(tmp_path, 2)
    _images(tmp_path, 1, start=5, sub="deeper")
    (tmp_path / "notes.md").write_text("x")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "skip.jpg").write_bytes(b"x")
    names = [Path(p).relative_to(tmp_path).as_posix() for p in list_inputs(tmp_path)]
    assert names == ["deeper/img005.jpg", "img000.jpg", "img001.jpg"]
    flat = [Path(p).name for p in list_inputs(str(tmp_path), recursive=False)]
    assert flat == ["img000.jpg", "img001.jpg"]


def test_glob_list_and_text_file_inputs(tmp_path: Path) -> None:
    imgs = _images(tmp_path, 3, sub="a")
    (tmp_path / "a" / "skip.txt").write_text("not media")
    assert list_inputs(str(tmp_path / "a" / "*.jpg")) == [str(p) for p in imgs]
    assert list_inputs(str(tmp_path / "**" / "img00[02].jpg")) == [str(imgs[0]), str(imgs[2])]
    # A list keeps order and entries as given, even ones that do not exist.
    given = [imgs[2], str(imgs[0]), tmp_path / "missing.jpg"]
    assert list_inputs(given) == [str(imgs[2]), str(imgs[0]), str(tmp_path / "missing.jpg")]
    listing = tmp_path / "files.txt"
    listing.write_text(f"# comment\na/img001.jpg\n\n{imgs[0]}\n")
    assert list_inputs(listing) == [str(tmp_path / "a" / "img001.jpg"), str(imgs[0])]
    # As on the command line: folders, list files and globs in a list are expanded in place.
    mixed = [str(imgs[1]), str(tmp_path / "a"), str(listing), str(tmp_path / "a" / "*0.jpg")]
    assert list_inputs(mixed) == [str(imgs[1]), *map(str, imgs), str(tmp_path / "a" / "img001.jpg"), str(imgs[0]), str(imgs[0])]


def test_bad_inputs_raise_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        list_inputs(tmp_path / "nope")
    with pytest.raises(InputError, match="matched no image or video"):
        list_inputs(str(tmp_path / "*.png"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image or video files found"):
        list_inputs(tmp_path / "empty")
    with pytest.raises(InputError, match="must be paths"):
        list_inputs([1, 2])  # type: ignore[list-item]


# ------------------------------------------------------------------ scoring
@pytest.mark.parametrize("resize_size", [32, 40])
def test_scores_match_detect_image_in_order(tmp_path: Path, resize_size: int) -> None:
    d = Detector.from_backbone("resnet18", input_size=32, resize_size=resize_size, precision="fp32")
    imgs = _images(tmp_path, 7)
    recs = list(detect_many(d, tmp_path, batch_size=3, num_workers=2, progress=False))
    assert [r["source"] for r in recs] == [str(p) for p in imgs]
    assert all(r["status"] == "ok" for r in recs)
    expected = [r.fake_score for r in d.detect_image([str(p) for p in imgs], batch_size=3)]
    # Resizing in the decoding threads must not change a single score.
    assert [r["fake_score"] for r in recs] == expected


def test_errors_are_recorded_and_the_run_goes_on(tmp_path: Path, det: Detector) -> None:
    good = _images(tmp_path, 3)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    missing = tmp_path / "gone.jpg"
    inputs = [good[0], corrupt, good[1], missing, empty, good[2]]
    recs = list(detect_many(det, inputs, batch_size=4, progress=False))
    assert [r["source"] for r in recs] == [str(p) for p in inputs]
    assert [r["status"] for r in recs] == ["ok", "error", "ok", "error", "error", "ok"]
    for r in recs:
        if r["status"] == "error":
            assert r["type"] == "ImageDecodeError"
            assert r["source"] in r["error"]


def test_output_file_and_resume_after_stop(tmp_path: Path, det: Detector) -> None:
    imgs = _images(tmp_path / "in", 9)
    out = tmp_path / "res" / "results.jsonl"
    gen = detect_many(det, tmp_path / "in", output=out, batch_size=2, progress=False)
    first = [next(gen) for _ in range(3)]
    gen.close()  # stopped part way (Ctrl-C, a killed job)
    assert [r["source"] for r in _lines(out)] == [r["source"] for r in first]
    rest = list(detect_many(det, tmp_path / "in", output=out, resume=True, batch_size=2, progress=False))
    assert [r["source"] for r in rest] == [str(p) for p in imgs[3:]]
    lines = _lines(out)
    assert [r["source"] for r in lines] == [str(p) for p in imgs]
    # Resuming a finished run scores nothing and writes nothing.
    assert list(detect_many(det, tmp_path / "in", output=out, resume=True, progress=False)) == []
    assert _lines(out) == lines


def test_partial_last_line_is_ignored_and_rewritten(tmp_path: Path, det: Detector) -> None:
    imgs = _images(tmp_path / "in", 4)
    out = tmp_path / "results.jsonl"
    list(detect_many(det, imgs[:2], output=out, progress=False))
    whole = out.read_bytes()
    # A crash in the middle of writing the third record.
    out.write_bytes(whole + b'{"source": "' + str(imgs[2]).encode() + b'", "status": "o')
    assert read_done(out) == {str(imgs[0]), str(imgs[1])}
    redone = list(detect_many(det, imgs, output=out, resume=True, progress=False))
    assert [r["source"] for r in redone] == [str(imgs[2]), str(imgs[3])]
    assert out.read_bytes().startswith(whole)
    assert [r["source"] for r in _lines(out)] == [str(p) for p in imgs]


def test_existing_output_needs_resume_or_overwrite(tmp_path: Path, det: Detector) -> None:
    imgs = _images(tmp_path, 2)
    out = tmp_path / "r.jsonl"
    out.write_text('{"source": "old.jpg", "status": "ok"}\n')
    with pytest.raises(ConfigError, match="resume"):
        detect_many(det, imgs, output=out)
    list(detect_many(det, imgs, output=out, overwrite=True, progress=False))
    assert [r["source"] for r in _lines(out)] == [str(p) for p in imgs]
    with pytest.raises(ConfigError, match="needs output"):
        detect_many(det, imgs, resume=True)
    with pytest.raises(ConfigError, match="batch_size"):
        detect_many(det, imgs, batch_size=0)


def test_decoding_runs_a_bounded_window_ahead(tmp_path: Path, det: Detector, monkeypatch) -> None:
    imgs = _images(tmp_path, 30)
    started = 0
    lock = threading.Lock()
    real = _batch._decode_image

    def counting(detector: object, path: str, pre: object) -> object:
        nonlocal started
        with lock:
            started += 1
        return real(detector, path, pre)  # type: ignore[arg-type]

    monkeypatch.setattr(_batch, "_decode_image", counting)
    seen = 0
    most_ahead = 0
    for _ in detect_many(det, imgs, batch_size=2, prefetch_size=4, num_workers=2, progress=False):
        seen += 1
        time.sleep(0.01)  # a slow consumer: the decoders must wait, not run to the end
        with lock:
            most_ahead = max(most_ahead, started - seen)
    assert seen == 30 and started == 30
    # At most the window (4) plus the batch being scored (2) are decoded ahead.
    assert most_ahead <= 6


def test_face_stage_uses_full_frames_and_reports_no_face(tmp_path: Path) -> None:
    from deepfakedetect.faces.detectors import Face

    base = Detector.from_backbone("resnet18", input_size=32, faces=FaceConfig(enabled=True), precision="fp32")
    sizes: list[tuple[int, int]] = []

    def fake_faces(frames):  # a face in wide images only
        out = []
        for f in frames:
            sizes.append(f.shape[:2])
            h, w = f.shape[:2]
            out.append([Face((2.0, 2.0, w - 2.0, h - 2.0), ((w / 2, h / 2),) * 5, 0.99)] if w > 46 else [])
        return out

    d = Detector(base.model, base.config, face_detector=fake_faces, precision="fp32")
    imgs = _images(tmp_path, 4)  # widths 45, 48, 51, 54
    recs = list(detect_many(d, imgs, progress=False))
    assert [r["status"] for r in recs] == ["no_face", "ok", "ok", "ok"]
    assert recs[0]["fake_score"] is None
    # The face detector saw the decoded images at full size, not pre-shrunk ones.
    assert sorted(sizes) == sorted(Image.open(p).size[::-1] for p in imgs)


def test_videos_mixed_with_images(tmp_path: Path, det: Detector) -> None:
    import imageio_ffmpeg

    clip = tmp_path / "clip.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
         "testsrc2=size=64x48:rate=10:duration=1", "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )  # fmt: skip
    broken = tmp_path / "broken.mp4"
    broken.write_text("this is text, not a video")
    imgs = _images(tmp_path, 3)
    inputs = [imgs[0], clip, imgs[1], broken, imgs[2]]
    recs = list(detect_many(det, inputs, sampler="uniform:num_frames=4", aggregator="max", progress=False))
    assert [r["source"] for r in recs] == [str(p) for p in inputs]
    assert [r["status"] for r in recs] == ["ok", "ok", "ok", "error", "ok"]
    video = recs[1]
    assert len(video["frames"]) == 4
    assert video["fake_score"] == pytest.approx(max(f["fake_score"] for f in video["frames"]))
    assert recs[3]["type"] == "VideoDecodeError"


def test_unknown_sampler_fails_before_any_work(tmp_path: Path, det: Detector) -> None:
    with pytest.raises(UnknownPluginError):
        detect_many(det, _images(tmp_path, 1), sampler="no_such_sampler")
