"""The multi-person guide's figure: the people ``detect_video`` finds on a frame.

Made by ``docs/_hooks/figures.py`` while the site builds (see its docstring). Two seconds
of a real FaceForensics++ clip and of a fake one side by side (``ffmpeg hstack``), scored
by the default model; each person's face box is drawn on the middle sampled frame with
their id, label and score. Like every build-made figure it is not committed (the footage's
terms allow research use but not redistribution in the repository).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image, ImageDraw

from deepfakedetect import Detector, read_frames

REAL = "real/youtube__159.mp4"
FAKE = "fake/Deepfakes__097_033.mp4"


def make_people(out: Path, shared: Path) -> None:
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
    image.save(out, format="PNG", optimize=True)


FIGURES = {"multi-person.png": make_people}
