"""Train the runs of docs/quality.md: the default model's candidates and the protocol runs.

Builds the data folders from the shared data, trains the named runs, evaluates the
protocol runs and prints a Markdown table::

    python benchmarks/quality.py --shared ../shared --out runs/quality
    python benchmarks/quality.py --shared ../shared --out runs/quality --runs default,v4 --train-only

The candidates (``v2`` to ``v6``, and weight averages of them made by
``quality_soup.py``) are chosen between on validation data by ``quality_select.py``,
scored on test once by ``quality_eval.py`` and shipped by ``quality_card.py``.

Runs whose model folder already exists are reused (delete the folder, or pass
``--force``, to train again); an interrupted training resumes from its checkpoint.
``--runs`` picks a subset, e.g. ``--runs default`` or ``--runs r18_scratch,mnv2_faces``.

Data (see the shared data's README for provenance and licences):
- LFW face swap: train (4,200 images) / val / test as shipped. The test split is also
  re-encoded at JPEG quality 75, because its real and fake files differ in JPEG
  quality: a model that learned that cue instead of the face fails there.
- StyleGAN2 vs FFHQ: split 60/20/20 per class with a fixed seed.
- FaceForensics++ c23 videos: split by identity group (pairs of ids swapped with
  each other), so no person is in two splits. Frames are extracted for training; the
  test groups are also scored at video level with every built-in aggregator.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import deepfakedetect
from deepfakedetect import AugmentConfig, Detector, FaceConfig, Trainer, evaluate
from deepfakedetect.video.aggregators import FrameScores, get_aggregator, list_aggregators
from deepfakedetect._metrics import binary_metrics, roc_auc
from deepfakedetect.io.video import probe_video, read_frames

# FF++ identity groups held out entirely: scored at frame and video level, never trained on.
TEST_GROUPS = {("033", "097"), ("210", "241"), ("648", "654"), ("159", "175")}
VAL_GROUPS = {("134", "192")}
# Reals are fewer than fakes (20 vs 36 videos): more frames each; real frames are also
# the sources of the default model's self-blended fakes.
FRAMES_PER_REAL_VIDEO = 64
FRAMES_PER_FAKE_VIDEO = 24
STYLEGAN_FAKE_REPEAT = 4  # in the default model's training data (see prepare)
INPUT_SIZE = 160
EPOCHS = 10

# The "v2" recipe: its own FF++ group split, with two groups for validation so that a
# video-level threshold can be fitted on videos of its own kind.
V2_TEST_GROUPS = {("033", "097"), ("210", "241"), ("159", "175")}
V2_VAL_GROUPS = {("134", "192"), ("648", "654")}
# Frames per training video: Face2Face and FaceSwap have two training videos each against
# ten for Deepfakes, so they get more frames each (per-method balance of distinct frames).
V2_TRAIN_FRAMES = {"real": 96, "Deepfakes": 32, "Face2Face": 128, "FaceSwap": 128}
V2_EVAL_FRAMES = {"real": 64, "fake": 24}  # validation and test frames per video
V2_STYLEGAN_FAKE_REPEAT = 3
SD21_SIZE = 256  # the SD 2.1 faces' size; their FFHQ partners are resized to it
V2_AUGMENT = AugmentConfig(
    color_p=0.6, brightness=0.3, contrast=0.3, blur_p=0.3, blur_sigma=(0.1, 2.0), jpeg_p=0.7, jpeg_quality=(40, 100)
)
V2_EPOCHS = 6
V2_LR = 1e-4
# The "v3" recipe: v2 fine-tuned further on the v2 data with the StyleGAN2 training fakes
# repeated twice as often (v2 lost StyleGAN2 validation AUC, 0.943 -> 0.885, when the SD 2.1
# faces came in), at a lower learning rate.
V3_STYLEGAN_FAKE_REPEAT = 6
V3_EPOCHS = 4
V3_LR = 5e-5
# The "v4" recipe: v2's data, epochs and learning rate from the same start, with the 0.1
# model's milder augmentation (AugmentConfig() defaults): does v2's stronger blur and JPEG
# cost the fine cues of GAN faces and FF++ frames?
# The "v5" recipe: v4 for 5 epochs instead of 6. It was meant to train at 160 px, but the
# Trainer then kept a fine-tuned Detector's own input size (128 px), so this is what it ran.
V5_EPOCHS = 5
# The "v6" recipe: v4 with per-source balanced sampling (Trainer(balance="source")) instead
# of repeated StyleGAN2 fakes: LFW, StyleGAN2, SD 2.1, FF++ frames and the self-blended
# fakes each get a fifth of every epoch.
# The "v7" recipe: v4's recipe at 160 px, from the same 0.1 model (what v5 was meant to be):
# GAN and blending traces are fine detail that 128 px face crops shrink away.
V7_INPUT_SIZE = 160
# The "v8" recipe: v7 with every FF++ training frame (real and fake) shown twice an epoch:
# v7 gained StyleGAN2 and LFW at 160 px but lost FF++ frame AUC (0.827 -> 0.790).
V8_FFPP_TRAIN_REPEAT = 2
# The "v9" recipe: v7 with every second FF++ training frame only, as v8 (FF++ frames x2)
# lowered the held-out FF++ frame AUC further (0.727): fewer frames of the same identities.
V9_FFPP_TRAIN_STRIDE = 2
# The "v10" recipe: v9 with two self-blended fakes per real training image and epoch instead
# of one: they teach the blending seam, which does not depend on the training people.
V10_SELF_BLEND = 2.0
# The "v11" recipe: v10 at the 0.1 model's own 128 px: v7-v10 lost FF++ frame AUC at 160 px
# (0.827 -> 0.79); do the self-blended fakes' gains come without that loss?
# "v4s1", "v4s2" and "v10s1": v4 with seeds 1 and 2 and v10 with seed 1 (the order of the data,
# the augmentation and the self-blends), to measure how much the validation numbers move with
# training noise alone.

V2_DATASETS = ("v2", "v3", "v6", "v8", "v9")  # the data folders prepare_v2 builds

NO_JPEG = AugmentConfig(jpeg_p=0.0)
FACES = FaceConfig(enabled=True, margin=1.3, min_confidence=0.8, select="all", reduce="max")


def run_specs(shared: Path, input_size: int, epochs: int) -> dict[str, dict[str, Any]]:
    """The trainings of the table. ``data`` names a prepared dataset folder."""
    mnv2 = shared / "weights" / "mobilenet_v2_imagenet1k_v1.safetensors"
    common = {"epochs": epochs, "input_size": input_size, "batch_size": 32, "seed": 0}
    specs: dict[str, dict[str, Any]] = {
        "r18_scratch_nojpeg": dict(
            common, backbone="resnet18", weights=None, faces=False, augment=NO_JPEG, data="lfw",
            title="ResNet-18, scratch, no JPEG aug, whole image",
        ),
        "r18_scratch": dict(
            common, backbone="resnet18", weights=None, faces=False, augment=AugmentConfig(), data="lfw",
            title="ResNet-18, scratch, whole image",
        ),
        "mnv2_nojpeg": dict(
            common, backbone="mobilenet_v2", weights=mnv2, faces=False, augment=NO_JPEG, data="lfw",
            title="MobileNetV2, ImageNet, no JPEG aug, whole image",
        ),
        "mnv2": dict(
            common, backbone="mobilenet_v2", weights=mnv2, faces=False, augment=AugmentConfig(), data="lfw",
            title="MobileNetV2, ImageNet, whole image",
        ),
        "mnv2_faces": dict(
            common, backbone="mobilenet_v2", weights=mnv2, faces=FACES, augment=AugmentConfig(), data="lfw",
            title="MobileNetV2, ImageNet, face crops",
        ),
        "r50_scratch": dict(
            common, backbone="resnet50", weights=None, faces=False, augment=AugmentConfig(), data="lfw",
            title="ResNet-50, scratch, whole image",
        ),
        "default": dict(
            common, backbone="mobilenet_v2", weights=mnv2, faces=FACES, augment=AugmentConfig(), data="all",
            self_blend=1.0, title=f"default model: MobileNetV2, ImageNet, face crops, self-blended fakes, all data "
            f"(StyleGAN2 fakes x{STYLEGAN_FAKE_REPEAT})",
        ),
        "v2": dict(
            common, epochs=V2_EPOCHS, backbone="init", init="default", weights=None, faces=FACES, augment=V2_AUGMENT, data="v2",
            self_blend=1.0, lr=V2_LR, warmup_epochs=0.5, cache="disk",
            title="v2: the default run fine-tuned with SD 2.1 faces, more FF++ frames, stronger augmentation",
        ),
        "v3": dict(
            common, epochs=V3_EPOCHS, backbone="init", init="v2", weights=None, faces=FACES, augment=V2_AUGMENT, data="v3",
            self_blend=1.0, lr=V3_LR, warmup_epochs=0.3, cache="disk",
            title=f"v3: v2 fine-tuned further, StyleGAN2 fakes x{V3_STYLEGAN_FAKE_REPEAT}",
        ),
        "v4": dict(
            common, epochs=V2_EPOCHS, backbone="init", init="default", weights=None, faces=FACES, augment=AugmentConfig(),
            data="v2", self_blend=1.0, lr=V2_LR, warmup_epochs=0.5, cache="disk",
            title="v4: as v2, with the 0.1 model's milder augmentation",
        ),
        "default_sg1": dict(
            common, backbone="mobilenet_v2", weights=mnv2, faces=FACES, augment=AugmentConfig(), data="all_sg1",
            self_blend=1.0, title="the same, StyleGAN2 fakes not repeated",
        ),
    }
    # v5-v10: one thing changed each, from v4 (v5-v7) or v7 (v8-v10).
    v4 = specs["v4"]
    specs["v5"] = dict(v4, epochs=V5_EPOCHS, title=f"v5: v4 for {V5_EPOCHS} epochs")
    specs["v6"] = dict(
        v4, data="v6", per_source=True, balance="source",
        title="v6: v4 with each source an equal share of every epoch (StyleGAN2 fakes not repeated)",
    )  # fmt: skip
    specs["v7"] = v7 = dict(v4, fine_tune_size=V7_INPUT_SIZE, title=f"v7: v4 at {V7_INPUT_SIZE} px")
    specs["v8"] = dict(v7, data="v8", title=f"v8: v7 with the FF++ training frames x{V8_FFPP_TRAIN_REPEAT}")
    specs["v9"] = dict(v7, data="v9", title=f"v9: v7 with 1 in {V9_FFPP_TRAIN_STRIDE} FF++ training frames")
    specs["v10"] = dict(
        specs["v9"], self_blend=V10_SELF_BLEND, title=f"v10: v9 with {V10_SELF_BLEND:g} self-blended fakes per real image"
    )
    specs["v11"] = {k: v for k, v in specs["v10"].items() if k != "fine_tune_size"}
    specs["v11"]["title"] = "v11: v10 at 128 px"
    for name, seed in (("v4", 1), ("v4", 2), ("v10", 1)):
        specs[f"{name}s{seed}"] = dict(specs[name], seed=seed, title=f"{name} with seed {seed}")
    return specs


# ---------------------------------------------------------------------- data
def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        os.symlink(src.resolve(), dst)


def _ffpp_group(name: str) -> tuple[str, str]:
    ids = re.findall(r"\d{3}", name)
    if len(ids) == 1:  # a real video belongs to the group of its id
        return ids[0], ""
    return tuple(sorted(ids[:2]))  # type: ignore[return-value]


def _ffpp_split(path: Path, groups: list[tuple[str, str]], test: set[Any], val: set[Any]) -> str:
    ids = re.findall(r"\d{3}", path.name)
    for g in groups:
        if ids[0] in g:
            if g in test:
                return "test"
            if g in val:
                return "val"
            return "train"
    raise ValueError(f"{path}: no identity group")


def ffpp_videos(shared: Path, recipe: str = "default") -> dict[str, list[tuple[Path, int]]]:
    """FF++ videos by split, each with its label (1 fake, 0 real).

    ``recipe`` picks the group split: ``"default"`` (the 0.1 model's) or ``"v2"``.
    """
    test, val = (V2_TEST_GROUPS, V2_VAL_GROUPS) if recipe == "v2" else (TEST_GROUPS, VAL_GROUPS)
    root = shared / "data" / "videos" / "ffpp_c23"
    fakes = sorted((root / "fake").glob("*.mp4"))
    groups = sorted({_ffpp_group(p.name) for p in fakes})
    out: dict[str, list[tuple[Path, int]]] = {"train": [], "val": [], "test": []}
    for label, folder in ((1, "fake"), (0, "real")):
        for p in sorted((root / folder).glob("*.mp4")):
            out[_ffpp_split(p, groups, test, val)].append((p, label))
    return out


def ffpp_method(path: Path) -> str:
    """``real`` for an original video, else the manipulation method (``Deepfakes``, ...)."""
    return path.name.split("__")[0] if "__" in path.name and not path.name.startswith("youtube") else "real"


def _split_files(files: list[Path], seed: int = 0) -> dict[str, list[Path]]:
    """60/20/20, shuffled with ``seed`` (the split of the StyleGAN2 set and the SD 2.1 faces)."""
    files = sorted(files)
    random.Random(seed).shuffle(files)
    n = len(files)
    return {"train": files[: int(0.6 * n)], "val": files[int(0.6 * n) : int(0.8 * n)], "test": files[int(0.8 * n) :]}


def _built(folder: Path, recipe: str) -> bool:
    """Whether ``folder`` was built from ``recipe`` (its ``.recipe`` file says so)."""
    marker = folder / ".recipe"
    return marker.is_file() and marker.read_text() == recipe


def _rebuild(folder: Path, recipe: str, build: Any) -> None:
    if _built(folder, recipe):
        return
    if folder.exists():
        shutil.rmtree(folder)
    t0 = time.time()
    build(folder)
    (folder / ".recipe").write_text(recipe)
    print(f"prepared {folder} ({time.time() - t0:.0f} s)", file=sys.stderr)


def prepare(shared: Path, work: Path, *, ffpp: bool = True) -> None:
    """Build the dataset folders (symlinks to the shared files, plus generated files).

    Each folder records the recipe it was built from and is rebuilt only when that changes.
    """
    data = work / "data"
    lfw = shared / "data" / "faces" / "lfw_faceswap"

    def lfw_q75(folder: Path) -> None:
        # LFW test re-encoded at a single JPEG quality, so file-format cues are gone.
        for cls in ("real", "fake"):
            for p in sorted((lfw / "test" / cls).glob("*.jpg")):
                out = folder / "test" / cls / p.name
                out.parent.mkdir(parents=True, exist_ok=True)
                Image.open(p).convert("RGB").save(out, quality=75)

    def stylegan(folder: Path) -> None:
        # StyleGAN2 / FFHQ: 60/20/20 per class, seeded.
        sg = shared / "data" / "faces" / "stylegan2_ffhq"
        rng = random.Random(0)
        for cls in ("real", "fake"):
            files = sorted((sg / cls).glob("*.jpg"))
            rng.shuffle(files)
            n = len(files)
            cuts = {"train": files[: int(0.6 * n)], "val": files[int(0.6 * n) : int(0.8 * n)], "test": files[int(0.8 * n) :]}
            for split, fs in cuts.items():
                for p in fs:
                    _link(p, folder / split / cls / p.name)

    def ffpp_frames(folder: Path) -> None:
        # FF++ frames, by identity-group split, as JPEG quality 95 for both classes alike.
        for split, videos in ffpp_videos(shared).items():
            for path, label in videos:
                cls = "fake" if label else "real"
                info = probe_video(path)
                k = FRAMES_PER_FAKE_VIDEO if label else FRAMES_PER_REAL_VIDEO
                idx = np.linspace(0, info.num_frames - 1, k + 2)[1:-1].round().astype(int).tolist()
                for i, frame in read_frames(info, idx):
                    out = folder / split / cls / f"{path.stem}_{i:05d}.jpg"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(frame).save(out, quality=95)

    def lfw_links(folder: Path) -> None:
        for p in sorted(lfw.glob("*/*/*.jpg")):
            _link(p, folder / p.parent.parent.name / p.parent.name / p.name)

    def everything(folder: Path, stylegan_fake_repeat: int) -> None:
        # Everything together, for the default model. StyleGAN2 fakes are 120 of about 5,700
        # training images, and self-blended fakes (which have a blending seam, unlike a
        # GAN face) add 3,100 more: repeating them keeps the GAN cue from being drowned out.
        for src_name in ("stylegan", "ffpp_frames"):
            for p in sorted((data / src_name).glob("*/*/*")):
                split, cls = p.parent.parent.name, p.parent.name
                copies = stylegan_fake_repeat if (src_name, split, cls) == ("stylegan", "train", "fake") else 1
                for c in range(copies):
                    _link(p, folder / split / cls / f"{src_name}__{p.stem}{f'__copy{c}' if c else ''}{p.suffix}")
        for p in sorted(lfw.glob("*/*/*.jpg")):
            _link(p, folder / p.parent.parent.name / p.parent.name / f"lfw__{p.name}")

    frames = f"ffpp frames per real video {FRAMES_PER_REAL_VIDEO}, per fake {FRAMES_PER_FAKE_VIDEO}"
    _rebuild(data / "lfw", "lfw links", lfw_links)
    _rebuild(data / "lfw_q75", "lfw test at JPEG q75", lfw_q75)
    _rebuild(data / "stylegan", "stylegan 60/20/20 seed 0", stylegan)
    if not ffpp:  # only the v2 recipe asked for: it has FF++ frames of its own
        return
    _rebuild(data / "ffpp_frames", frames, ffpp_frames)
    for repeat in (1, STYLEGAN_FAKE_REPEAT):
        name = "all" if repeat == STYLEGAN_FAKE_REPEAT else f"all_sg{repeat}"
        _rebuild(data / name, f"all: lfw, stylegan (train fakes x{repeat}), {frames}", lambda f, r=repeat: everything(f, r))


def prepare_v2(shared: Path, work: Path) -> None:
    """The v2 recipe's folders (built after :func:`prepare`, whose ``stylegan`` split it reuses).

    - ``sd21``: the SD 2.1 faces split 60/20/20 (seed 0) and re-saved at JPEG quality 95,
      4:2:0, beside the FFHQ reals of the same StyleGAN2 split resized to the same 256 px
      (Lanczos) and saved the same way: both classes end with the same resize and codec.
    - ``ffpp2_frames``: FF++ frames by the v2 group split (``V2_TRAIN_FRAMES`` per training
      video, ``V2_EVAL_FRAMES`` per validation/test video), JPEG quality 95 for both classes.
    - ``ffpp2_videos``: links to the v2 validation and test videos, by split and class.
    - ``v2``: the training data, ``train/`` and ``val/`` only (no test split, so the
      Trainer never scores a test file): LFW, StyleGAN2 (training fakes repeated
      ``V2_STYLEGAN_FAKE_REPEAT`` times), SD 2.1 and the FF++ frames.
    - ``v3``: the same, with the StyleGAN2 training fakes repeated ``V3_STYLEGAN_FAKE_REPEAT`` times.
    - ``v6``: the same files, StyleGAN2 fakes once, one folder per source (``lfw``,
      ``stylegan``, ``sd21``, ``ffpp2_frames``), for ``Trainer(balance="source")``.
    - ``v8``: ``v2`` with every FF++ training frame linked ``V8_FFPP_TRAIN_REPEAT`` times.
    - ``v9``: ``v2`` with every ``V9_FFPP_TRAIN_STRIDE``-th FF++ training frame only.
    """
    data = work / "data"
    lfw = shared / "data" / "faces" / "lfw_faceswap"

    def sd21(folder: Path) -> None:
        fakes = _split_files(list((shared / "data" / "faces" / "sd21_faces" / "fake").glob("*.jpg")))
        for split, fs in fakes.items():
            for p in fs:
                out = folder / split / "fake" / f"sd21__{p.name}"
                out.parent.mkdir(parents=True, exist_ok=True)
                Image.open(p).convert("RGB").save(out, quality=95, subsampling=2)
            for p in sorted((data / "stylegan" / split / "real").glob("*.jpg")):
                out = folder / split / "real" / f"ffhq256__{p.name}"
                out.parent.mkdir(parents=True, exist_ok=True)
                im = Image.open(p).convert("RGB").resize((SD21_SIZE, SD21_SIZE), Image.LANCZOS)
                im.save(out, quality=95, subsampling=2)

    def ffpp2_frames(folder: Path) -> None:
        for split, videos in ffpp_videos(shared, "v2").items():
            for path, label in videos:
                cls = "fake" if label else "real"
                if split == "train":
                    k = V2_TRAIN_FRAMES[ffpp_method(path)]
                else:
                    k = V2_EVAL_FRAMES[cls]
                info = probe_video(path)
                idx = np.linspace(0, info.num_frames - 1, k + 2)[1:-1].round().astype(int).tolist()
                # At most 64 frames per read: ffmpeg fails ("Cannot allocate memory") on
                # the select expression of 128 frames.
                for chunk in range(0, len(idx), 64):
                    for i, frame in read_frames(info, idx[chunk : chunk + 64]):
                        out = folder / split / cls / f"{path.stem}_{i:05d}.jpg"
                        out.parent.mkdir(parents=True, exist_ok=True)
                        Image.fromarray(frame).save(out, quality=95)

    def ffpp2_videos(folder: Path) -> None:
        for split, videos in ffpp_videos(shared, "v2").items():
            if split == "train":
                continue
            for path, label in videos:
                _link(path, folder / split / ("fake" if label else "real") / path.name)

    def combined(folder: Path, stylegan_fake_repeat: int, ffpp_train_repeat: int = 1, ffpp_train_stride: int = 1) -> None:
        for split in ("train", "val"):
            for p in sorted((lfw / split).glob("*/*.jpg")):
                _link(p, folder / split / p.parent.name / f"lfw__{p.name}")
            for src_name in ("stylegan", "sd21", "ffpp2_frames"):
                files = sorted((data / src_name / split).glob("*/*.jpg"))
                if (src_name, split) == ("ffpp2_frames", "train"):
                    files = files[::ffpp_train_stride]  # each video's frames are even in number and adjacent
                for p in files:
                    cls = p.parent.name
                    copies = 1
                    if (src_name, split, cls) == ("stylegan", "train", "fake"):
                        copies = stylegan_fake_repeat
                    elif (src_name, split) == ("ffpp2_frames", "train"):
                        copies = ffpp_train_repeat
                    for c in range(copies):
                        _link(p, folder / split / cls / f"{src_name}__{p.stem}{f'__copy{c}' if c else ''}{p.suffix}")

    frames = f"v2 ffpp frames: train {V2_TRAIN_FRAMES}, val/test {V2_EVAL_FRAMES}, test {sorted(V2_TEST_GROUPS)}, val {sorted(V2_VAL_GROUPS)}"
    _rebuild(data / "sd21", f"sd21 60/20/20 seed 0, ffhq reals of the stylegan split at {SD21_SIZE} px, q95 4:2:0", sd21)
    _rebuild(data / "ffpp2_frames", frames, ffpp2_frames)
    _rebuild(data / "ffpp2_videos", frames, ffpp2_videos)
    for name, repeat in (("v2", V2_STYLEGAN_FAKE_REPEAT), ("v3", V3_STYLEGAN_FAKE_REPEAT)):
        _rebuild(data / name, f"{name}: lfw, stylegan (train fakes x{repeat}), sd21, {frames}", lambda f, r=repeat: combined(f, r))
    r8 = V8_FFPP_TRAIN_REPEAT
    _rebuild(
        data / "v8",
        f"v8: lfw, stylegan (train fakes x{V2_STYLEGAN_FAKE_REPEAT}), sd21, ffpp2 train frames x{r8}, {frames}",
        lambda f: combined(f, V2_STYLEGAN_FAKE_REPEAT, r8),
    )
    s9 = V9_FFPP_TRAIN_STRIDE
    _rebuild(
        data / "v9",
        f"v9: lfw, stylegan (train fakes x{V2_STYLEGAN_FAKE_REPEAT}), sd21, every {s9} ffpp2 train frames, {frames}",
        lambda f: combined(f, V2_STYLEGAN_FAKE_REPEAT, ffpp_train_stride=s9),
    )

    def per_source(folder: Path) -> None:
        for split in ("train", "val"):
            for p in sorted((lfw / split).glob("*/*.jpg")):
                _link(p, folder / "lfw" / split / p.parent.name / p.name)
            for src_name in ("stylegan", "sd21", "ffpp2_frames"):
                for p in sorted((data / src_name / split).glob("*/*.jpg")):
                    _link(p, folder / src_name / split / p.parent.name / p.name)

    _rebuild(data / "v6", f"v6: one folder per source (lfw, stylegan, sd21, ffpp2_frames), {frames}", per_source)


# ---------------------------------------------------------------------- runs
def train(name: str, spec: dict[str, Any], work: Path, *, force: bool, init: Path | None = None) -> Detector:
    out = work / name
    if force and out.exists():
        shutil.rmtree(out)
    if (out / "config.json").exists() and (out / "history.json").exists():
        return Detector.from_pretrained(out)
    spec = dict(spec)
    spec.pop("title")
    data: Path | list[Path] = work / "data" / spec.pop("data")
    if spec.pop("per_source", False):  # one data folder per source, for balance="source"
        data = sorted(p for p in data.iterdir() if p.is_dir())
    if spec["backbone"] == "init":  # fine-tune a trained model: --init, else the run named by "init"
        start = init if init is not None else work / spec["init"]
        if not (start / "config.json").is_file():
            raise SystemExit(f"{name} starts from the model in {start}: train that run first (--runs {spec['init']},{name})")
        spec["backbone"] = Detector.from_pretrained(start)
        spec.pop("weights")
        # The start model's own size (the 0.1 model: 128 px) whatever --input-size says,
        # unless the run names another.
        spec["input_size"] = spec.pop("fine_tune_size", None)
    spec.pop("init", None)
    t0 = time.time()
    ran: list[dict[str, Any]] = []
    result = Trainer(**spec, out_dir=out, progress=False, on_epoch_end=ran.append).fit(data, resume=True)
    # A resumed run: add the epochs trained before it stopped (from its checkpoint's history).
    earlier = result.history[: len(result.history) - len(ran)]
    seconds = time.time() - t0 + sum(e["time_s"] for e in earlier)
    (out / "train_seconds.txt").write_text(f"{seconds:.0f}\n")
    print(f"{name}: trained in {seconds:.0f} s ({len(earlier)} epochs before resuming), best epoch {result.best_epoch}",
          file=sys.stderr)  # fmt: skip
    return Detector.from_pretrained(out)


def image_metrics(det: Detector, folder: Path) -> dict[str, Any]:
    report = evaluate(det, folder, split="test", progress=False)
    return report.to_dict()


def video_metrics(det: Detector, shared: Path, num_frames: int) -> dict[str, Any]:
    """Video AUC on the held-out FF++ groups, for each built-in aggregator."""
    per_video = []
    for path, label in ffpp_videos(shared)["test"]:
        r = det.detect_video(path, sampler={"name": "uniform", "num_frames": num_frames}, progress=False)
        frames = [f for f in r.frames if f.fake_score is not None]
        per_video.append((label, frames, r.frames_without_faces))
    out: dict[str, Any] = {"videos": len(per_video), "frames_without_faces": sum(v[2] for v in per_video)}
    for name in list_aggregators():
        agg = get_aggregator(name)
        y, s = [], []
        for label, frames, _ in per_video:
            if not frames:
                continue
            fs = FrameScores(
                scores=np.array([f.fake_score for f in frames]),
                indices=np.array([f.index for f in frames]),
                timestamps=np.array([f.timestamp for f in frames]),
            )
            y.append(label)
            s.append(float(agg(fs)))
        out[name] = {"auc": roc_auc(y, s), **{k: v for k, v in binary_metrics(y, s, threshold=det.threshold).items()
                                               if k in ("accuracy", "log_loss")}}
    return out


def _fmt(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("DEEPFAKEDETECT_SHARED", "../shared")))
    parser.add_argument("--out", type=Path, default=Path("runs/quality"))
    parser.add_argument("--runs", default="default,r18_scratch_nojpeg,r18_scratch,mnv2_nojpeg,mnv2,mnv2_faces")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--input-size", type=int, default=INPUT_SIZE)
    parser.add_argument("--video-frames", type=int, default=32)
    parser.add_argument("--force", action="store_true", help="train again even if a run's model exists")
    parser.add_argument(
        "--init",
        type=Path,
        default=None,
        metavar="DIR",
        help="the model the v2, v4, v5, v6 and v7 runs fine-tune (default: the 'default' run's folder, the 0.1 model); "
        "the shipped v4 started from the 0.1 default model as shipped (src/deepfakedetect/_default_model "
        "as of commit 9148931)",
    )
    parser.add_argument("--train-only", action="store_true", help="train (or resume) the runs, evaluate nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not (args.shared / "data").is_dir():
        parser.error(f"shared data not found at {args.shared}")
    os.environ.setdefault("DEEPFAKEDETECT_RETINAFACE_WEIGHTS", str(args.shared / "weights" / "retinaface_mobilenet0.25.safetensors"))
    specs = run_specs(args.shared, args.input_size, args.epochs)
    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    unknown = [n for n in names if n not in specs]
    if unknown:
        parser.error(f"unknown runs {unknown}; known: {', '.join(specs)}")
    prepare(args.shared, args.out, ffpp=any(specs[n]["data"] not in V2_DATASETS for n in names))
    if any(specs[n]["data"] in V2_DATASETS for n in names):
        prepare_v2(args.shared, args.out)
    data = args.out / "data"
    results = {}
    for name in names:
        det = train(name, specs[name], args.out, force=args.force, init=args.init)
        if args.train_only:
            continue
        res_path = args.out / name / "quality.json"
        if res_path.exists() and not args.force:
            results[name] = json.loads(res_path.read_text())
            continue
        res: dict[str, Any] = {"title": specs[name]["title"]}
        res["train_seconds"] = float((args.out / name / "train_seconds.txt").read_text()) if (args.out / name / "train_seconds.txt").exists() else None
        res["lfw"] = image_metrics(det, data / "lfw")
        res["lfw_q75"] = image_metrics(det, data / "lfw_q75")
        if name.startswith("default"):
            res["stylegan"] = image_metrics(det, data / "stylegan")
            res["ffpp_frames"] = image_metrics(det, data / "ffpp_frames")
            res["ffpp_video"] = video_metrics(det, args.shared, args.video_frames)
        res_path.write_text(json.dumps(res, indent=2, default=float))
        results[name] = res
    if args.train_only:
        return 0
    print(render(results, args))
    return 0


def _image(res: dict[str, Any]) -> dict[str, Any]:
    return res["levels"]["image"]


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"deepfakedetect {deepfakedetect.__version__}; input {args.input_size} px, {args.epochs} epochs, "
        "selected on val AUC; LFW test = 600 images, q75 = the same re-encoded at JPEG quality 75.",
        "",
        "| run | LFW acc | LFW AUC | LFW log loss | q75 acc | q75 AUC | q75 log loss | train time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        a, b = _image(r["lfw"]), _image(r["lfw_q75"])
        t = r.get("train_seconds")
        lines.append(
            f"| {r['title']} | {_fmt(a['accuracy'])} | {_fmt(a['auc'])} | {_fmt(a['log_loss'])} | "
            f"{_fmt(b['accuracy'])} | {_fmt(b['auc'])} | {_fmt(b['log_loss'])} | "
            f"{'-' if t is None else f'{t / 60:.0f} min'} |"
        )
    for run, r in results.items():
        if not run.startswith("default"):
            continue
        lines += ["", f"{r['title']}, on the other test sets:", "", "| test set | n | accuracy | AUC | log loss | ECE |", "|---|---|---|---|---|---|"]
        for key, title in (("lfw", "LFW face swap"), ("lfw_q75", "LFW face swap, JPEG q75"),
                           ("stylegan", "StyleGAN2 vs FFHQ (20% split)"), ("ffpp_frames", "FF++ frames, held-out groups")):
            m = _image(r[key])
            lines.append(f"| {title} | {m['n']} | {_fmt(m['accuracy'])} | {_fmt(m['auc'])} | {_fmt(m['log_loss'])} | {_fmt(m['ece'])} |")
        v = r["ffpp_video"]
        lines += ["", f"FF++ held-out videos ({v['videos']}; {v['frames_without_faces']} sampled frames without a face), "
                  f"{args.video_frames} uniform frames:", "", "| aggregator | video AUC | accuracy | log loss |", "|---|---|---|---|"]
        for name in list_aggregators():
            if name in v:
                lines.append(f"| {name} | {_fmt(v[name]['auc'])} | {_fmt(v[name]['accuracy'])} | {_fmt(v[name]['log_loss'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
