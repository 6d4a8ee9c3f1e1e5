"""The home page's figures: what the default model says about real faces and a real video.

Made by ``docs/_hooks/figures.py`` while the site builds (see its docstring).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from PIL import Image

from deepfakedetect import Detector

# Two real photos and two face swaps from the LFW face-swap test split. The last one is a
# swap the default model misses (scored real): the home page's text says so, and the
# build stops if the verdicts stop matching that text.
FACES = ["real/real_0.jpg", "real/real_1049.jpg", "fake/fake_1009.jpg", "fake/fake_109.jpg"]
FACE_VERDICTS = ["real", "real", "fake", "real"]
# A real FaceForensics++ video and the deepfake made from it (video 033 with 097's face);
# the text: the real one is called real, though a few of its frames make short fake
# segments; the deepfake is called fake.
VIDEOS = [("real/youtube__033.mp4", "real video"), ("fake/Deepfakes__033_097.mp4", "its deepfake")]
VIDEO_VERDICTS = ["real with segments", "fake"]


def _check(what: str, said: list[str | None], expected: list[str]) -> None:
    if said != expected:
        raise RuntimeError(
            f"docs/_figures/home.py: the default model now calls the {what} {said}, but the home page "
            f"(docs/index.md) describes {expected}: update the text and the lists in this file."
        )

RED, BLUE = "#d62728", "#1f77b4"


def make_faces(out: Path, shared: Path) -> None:
    detector = Detector.from_pretrained()
    paths = [shared / "data" / "faces" / "lfw_faceswap" / "test" / f for f in FACES]
    results = detector.detect_image(paths)
    _check("faces", [r.label for r in results], FACE_VERDICTS)
    fig, axes = plt.subplots(1, len(paths), figsize=(8, 2.75), dpi=110)
    for ax, path, r in zip(axes, paths, results):
        ax.imshow(Image.open(path).convert("RGB"))
        for face in r.faces:
            x1, y1, x2, y2 = face.box
            colour = RED if face.fake_score >= detector.threshold else BLUE
            ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=colour, lw=2))
            ax.text(x1, y1 - 3, f"{face.fake_score:.2f}", color="white", fontsize=8,
                    bbox={"facecolor": colour, "edgecolor": "none", "pad": 1.5})
        truth = path.parent.name
        right = r.label == truth
        ax.set_title(f"{'face swap' if truth == 'fake' else 'real photo'}\nsaid {r.label}"
                     f"{'' if right else ' (missed)'}", fontsize=9, color="black" if right else RED)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)


def make_video(out: Path, shared: Path) -> None:
    detector = Detector.from_pretrained()
    fig, ax = plt.subplots(figsize=(8, 2.8), dpi=110)
    said = []
    for (rel, name), colour in zip(VIDEOS, (BLUE, RED)):
        v = detector.detect_video(shared / "data" / "videos" / "ffpp_c23" / rel, sampler="uniform:num_frames=32")
        said.append(v.label if v.label != "real" or not v.segments else "real with segments")
        scored = [f for f in v.frames if f.fake_score is not None]
        for seg in v.segments:
            ax.axvspan(seg.start, seg.end, color=colour, alpha=0.12, lw=0)
        ax.plot([f.timestamp for f in scored], [f.fake_score for f in scored], "o-", ms=3, lw=1.2, color=colour,
                label=f"{name}: {v.label} ({v.fake_score:.2f}), {len(v.segments)} fake segment{'s' * (len(v.segments) != 1)}")
    _check("videos", said, VIDEO_VERDICTS)
    ax.axhline(detector.threshold, color="gray", ls="--", lw=1)
    ax.text(0.2, detector.threshold + 0.02, f"threshold {detector.threshold:.2f}", color="gray", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frame fake_score")
    ax.legend(loc="lower right", fontsize=8, frameon=True)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(out, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)


FIGURES = {"home-faces.png": make_faces, "home-video.png": make_video}
