"""Memory and pixel limits under hostile media (issue 15).

- Batch scoring with the face stage on keeps a bounded number of *bytes* of decoded
  images waiting for the model, not a number of images: a folder of small files that
  decode to huge images (an 85 KB PNG of 9400x9400 is 265 MB of pixels) must not add
  up. Measured on a scaled-down folder (24 PNGs of 4000x4000, 48 MB of pixels each) in
  a child process, as the growth of its peak resident memory over a warm-up run.
- Videos get the same pixel limit as images, from the probe, before any frame is decoded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from deepfakedetect import Detector, VideoDecodeError, probe_video

from hostile_helpers import run_python

# Scaled-down folder: without the byte budget the window (64 inputs) holds every decoded
# image, 24 x 48 MB = 1.15 GB plus Pillow's 64 MB copy while decoding. With it the growth
# is the budget (256 MiB) + one decode in flight + the face stage's working copies: 469 MB
# measured (Xeon with AMX) for 12 images and for 24 alike, i.e. bounded, not per file.
N_BIG, BIG_SIDE = 24, 4000
MAX_GROWTH_MB = 700

_MEASURE = r"""
import json, resource, sys
import numpy as np
import torch
from deepfakedetect import Detector, FaceConfig, detect_many
from deepfakedetect.faces import Face

torch.manual_seed(0)
torch.set_num_threads(1)

def one_face(images):
    # A stand-in face detector: one face in the middle of every image (no detector cost).
    out = []
    for im in images:
        h, w = im.shape[:2]
        out.append([Face((w * 0.25, h * 0.25, w * 0.75, h * 0.75), (), 0.99)])
    return out

base = Detector.from_backbone("resnet18", input_size=32, device="cpu", precision="fp32",
                              faces=FaceConfig(enabled=True, min_confidence=0.5))
det = Detector(base.model, base.config, device="cpu", precision="fp32", face_detector=one_face)
small = list(detect_many(det, sys.argv[1], output=sys.argv[3], progress=False))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
big = list(detect_many(det, sys.argv[2], output=sys.argv[4], progress=False))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"growth_mb": after - before, "before_mb": before,
                  "status": sorted({r["status"] for r in small + big}), "n": [len(small), len(big)]}))
"""


def _png_folder(folder: Path, n: int, side: int) -> Path:
    folder.mkdir()
    Image.new("RGB", (side, side), (120, 130, 140)).save(folder / "src.png")
    data = (folder / "src.png").read_bytes()  # a few kB: the pixels, not the file, are large
    (folder / "src.png").unlink()
    for i in range(n):
        (folder / f"{i:03d}.png").write_bytes(data)
    return folder


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="peak memory is read with the resource module")
def test_batch_memory_is_bounded_by_bytes_not_by_files(tmp_path: Path) -> None:
    small = _png_folder(tmp_path / "small", N_BIG, 64)
    big = _png_folder(tmp_path / "big", N_BIG, BIG_SIDE)
    code = _MEASURE
    done = run_python(
        f"import sys; sys.argv = ['x', {str(small)!r}, {str(big)!r}, {str(tmp_path / 's.jsonl')!r}, "
        f"{str(tmp_path / 'b.jsonl')!r}]\n" + code,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == ["ok"] and report["n"] == [N_BIG, N_BIG]
    assert report["growth_mb"] < MAX_GROWTH_MB, report


def _huge_frame_video(tmp_path: Path, side: int) -> Path:
    """A one-frame Matroska video whose frame is a bilevel PNG of side x side (about 10 kB)."""
    import imageio_ffmpeg

    png = tmp_path / "frame.png"
    Image.new("1", (side, side), 1).save(png)
    video = tmp_path / "huge.mkv"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(png), "-c", "copy",
         "-frames:v", "1", str(video)],
        check=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return video


def test_video_frames_over_the_pixel_limit_are_refused_at_the_probe(tmp_path: Path) -> None:
    video = _huge_frame_video(tmp_path, 9500)  # 90.25 Mpx: just over Pillow's 89.48 Mpx
    with pytest.raises(VideoDecodeError, match="pixel") as info:
        probe_video(video)
    assert "9500x9500" in str(info.value) and str(video) in str(info.value)
    det = Detector.from_backbone("resnet18", input_size=32, device="cpu")
    with pytest.raises(VideoDecodeError, match="pixel"):
        det.detect_video(video)


def test_video_frames_under_the_limit_are_still_probed(tmp_path: Path) -> None:
    video = _huge_frame_video(tmp_path, 2000)
    info = probe_video(video)
    assert (info.width, info.height) == (2000, 2000)


def test_large_jpegs_are_decoded_reduced_and_budgeted_at_that_size(tmp_path: Path) -> None:
    import numpy as np

    from deepfakedetect import detect_many
    from deepfakedetect.batch import many as _batch

    rng = np.random.default_rng(0)
    photo = tmp_path / "big.jpg"
    Image.fromarray(rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8)).save(photo, quality=90)
    det = Detector.from_backbone("resnet18", input_size=32, device="cpu", precision="fp32")
    resize = det.config.preprocess.resize_size
    decoded = _batch._decode_image(det, str(photo), None)
    assert decoded.full_size == (3000, 4000) and decoded.array.shape[0] < 3000  # reduced (Pillow draft)
    # The budget is charged for what is decoded, not for the 12-Mpx original.
    per_pixel = _batch._PEAK_BYTES_PER_PIXEL
    assert _batch._decode_cost(str(photo), (1, resize)) == per_pixel * decoded.array.shape[0] * decoded.array.shape[1]
    (record,) = detect_many(det, [str(photo)], progress=False)
    assert record["status"] == "ok"
    assert abs(record["fake_score"] - det.detect_image(photo).fake_score) < 1e-5
