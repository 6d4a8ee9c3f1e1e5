"""MkDocs hook (and script): draw the people ``detect_video`` finds on a frame, for the multi-person guide.

Builds the guide's example from the shared data: two seconds of a real FaceForensics++
clip and of a fake one side by side (``ffmpeg hstack``), scored by the default model;
each person's face box is drawn on the middle sampled frame with their id, label and
score. The image is written to ``docs/images/multi-person.png`` when the docs are built
and it is missing (it is derived from FaceForensics++ footage, whose terms allow
research use but not redistribution, so it is not committed). Without the shared data
(``DEEPFAKEDETECT_SHARED``, default ``../shared``) the build goes on without it.

    python docs/_hooks/people_figure.py --shared ../shared --out docs/images/multi-person.png
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "images" / "multi-person.png"
REAL = "real/youtube__159.mp4"
FAKE = "fake/Deepfakes__097_033.mp4"
log = logging.getLogger("mkdocs.hooks.people_figure")


def make_figure(shared: Path, out: Path) -> Path:
    """Write the figure to ``out``; returns it."""
    try:
        import deepfakedetect  # noqa: F401
    except ImportError:  # building from a clone without installing it
        sys.path.insert(0, str(ROOT / "src"))
    import imageio_ffmpeg
    import numpy as np
    from PIL import Image, ImageDraw

    from deepfakedetect import Detector, read_frames

    src = shared / "data" / "videos" / "ffpp_c23"
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "two.mp4"
        scale = "scale=-2:360,setsar=1,fps=25"
        subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
             "-t", "2", "-i", str(src / REAL), "-t", "2", "-i", str(src / FAKE),
             "-filter_complex", f"[0:v]{scale}[a];[1:v]{scale}[b];[a][b]hstack=inputs=2[v]", "-map", "[v]",
             "-an", "-c:v", "libx264", "-crf", "16", "-pix_fmt", "yuv420p", str(video)],
            check=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        result = Detector.from_pretrained().detect_video(video, sampler="uniform:num_frames=6", progress=False)
        index = result.frames[len(result.frames) // 2].index
        _, frame = next(iter(read_frames(video, [index])))
    image = Image.fromarray(np.ascontiguousarray(frame))
    draw = ImageDraw.Draw(image)
    colours = {"fake": (230, 40, 40), "real": (40, 200, 80)}
    for person in result.people:
        seen = {f.index: f for f in person.frames}
        if index not in seen:
            continue
        x1, y1, x2, y2 = seen[index].box
        colour = colours.get(person.label or "", (240, 200, 0))
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=3)
        text = f"person {person.id}: {person.label} {person.fake_score:.2f}"
        tw = draw.textlength(text)
        draw.rectangle((x1, y2 + 2, x1 + tw + 6, y2 + 16), fill=colour)
        draw.text((x1 + 3, y2 + 3), text, fill=(255, 255, 255))
    draw.text((6, 6), f"video: {result.label} {result.fake_score:.2f} (most fake person)", fill=(255, 255, 0))
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, optimize=True)
    return out


def on_pre_build(config: Any, **_: Any) -> None:
    if OUT.exists():
        return
    shared = Path(os.environ.get("DEEPFAKEDETECT_SHARED", ROOT.parent / "shared"))
    if not (shared / "data" / "videos" / "ffpp_c23" / REAL).is_file():
        log.warning("no shared data at %s: the multi-person guide's figure is not made", shared)
        return
    try:
        make_figure(shared, OUT)
    except Exception as e:  # noqa: BLE001 - a figure must not break the docs build
        log.warning("could not make the multi-person figure: %s", e)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("DEEPFAKEDETECT_SHARED", "../shared")))
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    print(make_figure(args.shared, args.out))
