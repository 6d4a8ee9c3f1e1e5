"""Ship a trained, calibrated model as the package's default model, with its model card.

::

    python benchmarks/quality_card.py runs/quality/select/v4 --name v4 --recipe v4 \\
        --eval-test runs/quality/eval_test.json --eval-val runs/quality/select/select.json \\
        --out src/deepfakedetect/_default_model

Writes half-precision weights, a ``config.json`` with no path of the build machine in it
(data folders are kept by name only; the training manifest records the data by content),
and a ``README.md`` model card whose numbers are read from ``benchmarks/quality_eval.py``'s
JSON: the test table from ``--eval-test``; the uncertain shares on validation from
``--eval-val``, the JSON of ``benchmarks/quality_select.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import torch

from deepfakedetect import Detector
from deepfakedetect.models.manifest import TrainingManifest

METHODS = ("Deepfakes", "Face2Face", "FaceSwap")


def _f(x: Any, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _strip_paths(training: dict[str, Any]) -> dict[str, Any]:
    """``config.training`` without the build machine's paths: folders by their last name only."""
    t = dict(training)
    if "data" in t:
        t["data"] = [Path(p).name for p in t["data"]]
    if "layouts" in t:
        t["layouts"] = {Path(k).name: v for k, v in t["layouts"].items()}
    if t.get("init_weights"):
        t["init_weights"] = Path(str(t["init_weights"])).name
    return t


def summary_table(test: dict[str, Any]) -> str:
    """The user-facing table: what kind of fake, on which held-out data, how well."""
    s = test["sources"]

    def img(key: str) -> dict[str, Any]:
        return s[key]["levels"]["image"]

    v = s["ffpp_videos"]
    vm = v["levels"]["video"]
    pm = v["per_method"]
    methods = ", ".join(f"{m} {_pct(pm[m]['flagged'])}" for m in METHODS if m in pm)
    rows = [
        "| kind of fake | held-out test data | ROC AUC | accuracy |",
        "|---|---|---|---|",
        f"| face swap in a photo | LFW face swap, {img('lfw')['n']} photos | {_f(img('lfw')['auc'])} | {_pct(img('lfw')['accuracy'])} |",
        f"| the same, re-saved at JPEG quality 75 | the same photos | {_f(img('lfw_q75')['auc'])} | {_pct(img('lfw_q75')['accuracy'])} |",
        f"| GAN-generated face (StyleGAN2) | {img('stylegan')['n_fake']} fakes, {img('stylegan')['n_real']} FFHQ photos | {_f(img('stylegan')['auc'])} | {_pct(img('stylegan')['accuracy'])} |",
        f"| diffusion-generated face (Stable Diffusion 2.1) | {img('sd21')['n_fake']} fakes, {img('sd21')['n_real']} FFHQ photos | {_f(img('sd21')['auc'])} | {_pct(img('sd21')['accuracy'])} |",
        f"| face swap / reenactment in a video (FaceForensics++) | {vm['n']} videos of people never trained on | {_f(vm['auc'])} | {_pct(vm['accuracy'])} (reals {_pct(pm['real']['correct'])}; fakes flagged: {methods}) |",
    ]  # fmt: skip
    return "\n".join(rows)


TITLES = {
    "lfw": "LFW face swap (600 photos)",
    "stylegan": "StyleGAN2 / FFHQ (160 images)",
    "sd21": "SD 2.1 / FFHQ (320 images)",
    "ffpp_frames": "FF++ frames, 2 identity groups (448 frames)",
}


def uncertain_table(val: dict[str, Any]) -> str:
    """Uncertain share per validation set, from ``benchmarks/quality_select.py``'s JSON."""
    rows = ["| validation data | uncertain | accuracy of the other calls |", "|---|---|---|"]
    for key, title in TITLES.items():
        d = val["sources"].get(key)
        if d and d.get("uncertain_share") is not None:
            rows.append(f"| {title} | {_pct(d['uncertain_share'])} | {_pct(d.get('accuracy_outside_band'))} |")
    v = val["videos"]
    if v.get("uncertain_share") is not None:
        rows.append(f"| FF++ videos, 2 identity groups ({v['n_real'] + v['n_fake']} videos) | {_pct(v['uncertain_share'])} "
                    f"| {_pct(v.get('accuracy_outside_band'))} |")  # fmt: skip
    return "\n".join(rows)


def group_table(test: dict[str, Any]) -> str:
    """FF++ test videos per identity group."""
    rows = ["| identity group | videos (real / fake) | ROC AUC | accuracy |", "|---|---|---|---|"]
    for g, d in test["sources"]["ffpp_videos"].get("per_group", {}).items():
        rows.append(f"| {g.replace('_', '/')} | {d['n_real']} / {d['n_fake']} | {_f(d['auc'])} | {_pct(d['accuracy'])} |")
    return "\n".join(rows)


CARD = """---
library_name: deepfakedetect
license: other
tags: [deepfake-detection, face-forgery, image-classification, video-classification]
---

<!-- card-start -->
# deepfakedetect default model ({name})

The model `Detector.from_pretrained()` loads with no argument. It tells real photos and
videos of **faces** from face swaps, face reenactment and GAN- or diffusion-generated faces.
It is for research and evaluation, not for commercial use (see the licences below).

## How good it is

On data held out from training and from every choice made while building it:

{summary}

FaceForensics++ test videos per identity group (people never seen in training):

{groups}

Accuracy is at the shipped thresholds: {image_threshold} for images and {video_threshold} for
videos. The test sets are small (600 LFW photos, 160 StyleGAN2/FFHQ images, 320 SD 2.1/FFHQ
images, {n_videos} videos), so a difference of a few points is within noise.

Each result also carries a `verdict`: `real`, `fake` or `uncertain`. {band_text} Share of
uncertain verdicts on the validation data:

{uncertain}

## What it does not detect

- Edited photos that are not a face swap (composites, retouching, inpainting): it scores
  them about as it scores real photos.
- AI-generated images without a face, or faces too small (below about 40 px), in profile
  or covered: no face is found, the result is `no_face` and nothing is scored.
- Generators and face-swap tools unlike its training data: it was trained on one GAN
  (StyleGAN2), one diffusion model (Stable Diffusion 2.1), a 3D-model face swap (LFW) and
  three FaceForensics++ methods. Expect lower accuracy on newer tools and other
  collections (Celeb-DF, DFDC and the like).

## What it is

MobileNetV2 (ImageNet initialisation) on RetinaFace face crops of {input_size} px (margin 1.3;
every face scored, an image's score is the max over its faces). A video's score is the
`{aggregator}` of {num_frames} evenly spread frames. Weights are stored in half precision
({size_mb:.1f} MB) and loaded as float32.

Calibration: images: temperature {t_img:.3f}, threshold {image_threshold}; videos (their own,
fitted on validation videos): temperature {t_vid:.3f}, threshold {video_threshold}.

## Training data and licences

- LFW face swap (`faces/lfw_faceswap/train`, 4,200 photos; LFW: research use).
- StyleGAN2 faces (thispersondoesnotexist.com, NVIDIA non-commercial licence) and FFHQ photos
  (CC BY-NC-SA 4.0): 60% of each, the StyleGAN2 fakes repeated {sg_repeat} times.
- Stable Diffusion 2.1 faces (SDFD, research use): 60% of the 1,000, against the same
  FFHQ training photos resized to 256 px; both saved as JPEG quality 95, 4:2:0, so the
  file gives nothing away.
- FaceForensics++ c23 videos (research-only terms), split by identity group so that no
  person is in two splits. Training: five groups ({train_groups}): {frames}. Validation:
  {val_groups}. Test: {test_groups}.
- Self-blended fakes: each epoch every real training face also appears once blended with
  an altered copy of itself through a random face mask.

## Recipe

{recipe} Augmentation: {augment}; AdamW, cosine schedule, batch 32; the epoch with the
best validation AUC kept. Reproduce with `benchmarks/quality.py --runs {runs}` and
`benchmarks/quality_eval.py` (see the project's quality page).
"""

# What each recipe did, for the card (the runs are in benchmarks/quality.py): its text, the
# runs that reproduce it, its data folder, and its StyleGAN2 repetition.
_START = "The 0.1 default model (the same backbone and sources without SD 2.1, fewer FF++ frames)"
_V2_AUGMENT = ("random crop, flip, rotation, colour (brightness and contrast ±30%), blur (σ up to 2 px), "
               "JPEG re-compression (quality 40-100) and noise")  # fmt: skip
_DEFAULT_AUGMENT = ("the Trainer's defaults: random crop, flip, rotation, colour (brightness and contrast ±20%), "
                    "blur (σ up to 1.5 px, one image in ten), JPEG re-compression (quality 60-100, one image in "
                    "two) and noise")  # fmt: skip
RECIPES: dict[str, dict[str, Any]] = {
    "v2": {
        "text": f"{_START}, fine-tuned for {{epochs}} epochs (learning rate {{lr}}, half an epoch of warm-up; "
        "epoch {best_epoch} kept).",
        "augment": _V2_AUGMENT, "runs": "default,v2", "data": "v2", "sg_repeat": "V2_STYLEGAN_FAKE_REPEAT",
    },
    "v3": {
        "text": f"{_START}, fine-tuned for 6 epochs on this data with the StyleGAN2 fakes repeated 3 times "
        "(the v2 run), then for {epochs} more with them repeated {sg_repeat} times (learning rate {lr}, "
        "0.3 epochs of warm-up; epoch {best_epoch} of these kept).",
        "augment": _V2_AUGMENT, "runs": "default,v2,v3", "data": "v3", "sg_repeat": "V3_STYLEGAN_FAKE_REPEAT",
    },
    "v4": {
        "text": f"{_START}, fine-tuned for {{epochs}} epochs (learning rate {{lr}}, half an epoch of warm-up; "
        "epoch {best_epoch} kept).",
        "augment": _DEFAULT_AUGMENT, "runs": "default,v4", "data": "v2", "sg_repeat": "V2_STYLEGAN_FAKE_REPEAT",
    },
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="the calibrated model folder")
    parser.add_argument("--name", required=True, help="the model's name in the JSON files")
    parser.add_argument("--eval-test", type=Path, required=True)
    parser.add_argument("--eval-val", type=Path, required=True, help="benchmarks/quality_select.py's select.json")
    parser.add_argument("--val-name", help="the model's name in --eval-val (default: --name)")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="v2", help="the run of benchmarks/quality.py it came from")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("runs/quality/data"), help="benchmarks/quality.py's data folders")
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("DEEPFAKEDETECT_SHARED", "../shared")))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    import quality  # the recipe's constants (a sibling script, not a package module)

    test = json.loads(args.eval_test.read_text())[args.name]
    val = json.loads(args.eval_val.read_text())[args.val_name or args.name]
    det = Detector.from_pretrained(args.model)
    cfg = det.config
    vcal = getattr(cfg, "video_calibration", None) or cfg.calibration
    det.config = cfg.replace(training=_strip_paths(cfg.training))

    def band_text(image: Any, video: Any) -> str:
        ib, vb = image.uncertain_band, getattr(video, "uncertain_band", None)
        target = image.fitted_on.get("target_precision")
        text = (f"An image scored in [{ib[0]:.3f}, {ib[1]:.3f}) is `uncertain`: on validation data, calls "
                f"there were right less often than the band's target precision ({100 * target:.0f}%).") if ib else ""
        if vb:
            text += f" For videos the band is [{vb[0]:.3f}, {vb[1]:.3f})."
        else:
            fit = video.fitted_on
            text += (f" Videos have no band: the {fit['n_real'] + fit['n_fake']} validation videos ({fit['n_real']} real) "
                     "are too few to place one, so a video's verdict is its label.")
        return text.strip()

    groups = lambda gs: ", ".join("/".join(g) for g in sorted(gs))  # noqa: E731
    frames = (f"{quality.V2_TRAIN_FRAMES['real']} frames per real video, "
              + ", ".join(f"{quality.V2_TRAIN_FRAMES[m]} per {m} video" for m in METHODS))  # fmt: skip
    vid = cfg.video
    recipe = RECIPES[args.recipe]
    sg_repeat = getattr(quality, recipe["sg_repeat"])
    card = CARD.format(
        recipe=recipe["text"].format(
            epochs=cfg.training.get("epochs"), lr=cfg.training.get("lr"), best_epoch=cfg.training.get("best_epoch"),
            sg_repeat=sg_repeat,
        ),
        augment=recipe["augment"],
        runs=recipe["runs"],
        name=args.name,
        summary=summary_table(test),
        groups=group_table(test),
        image_threshold=f"{cfg.calibration.threshold:.3f}",
        video_threshold=f"{vcal.threshold:.3f}",
        band_text=band_text(cfg.calibration, vcal),
        uncertain=uncertain_table(val),
        n_videos=test["sources"]["ffpp_videos"]["levels"]["video"]["n"],
        input_size=cfg.preprocess.input_size,
        aggregator=vid.aggregator.get("name") if isinstance(vid.aggregator, dict) else vid.aggregator,
        num_frames=vid.sampler.get("num_frames", "?") if isinstance(vid.sampler, dict) else "?",
        size_mb=0.0,
        t_img=cfg.calibration.temperature,
        t_vid=vcal.temperature,
        sg_repeat=sg_repeat,
        train_groups=groups({quality._ffpp_group(p.name) for p, y in quality.ffpp_videos(args.shared, "v2")["train"] if y}),
        val_groups=groups(quality.V2_VAL_GROUPS),
        test_groups=groups(quality.V2_TEST_GROUPS),
        frames=frames,
    )
    # The training manifest: the recipe's training and validation files by content, plus what
    # the calibration recorded. (The 0.1 model it started from also trained on the same LFW and
    # StyleGAN2 files and on other frames of the same FF++ training videos; v3's data holds v2's.)
    files = {split: sorted((args.data / recipe["data"] / split).glob("*/*.jpg")) for split in ("train", "val")}
    manifest = TrainingManifest.from_files(files)
    for split, digests in (det.training_manifest.splits.items() if det.training_manifest else []):
        manifest = manifest.with_split(split, digests)
    det.training_manifest = manifest
    out = det.save_pretrained(args.out, dtype=torch.float16, model_card=card)
    size = (out / "model.safetensors").stat().st_size / 2**20
    (out / "README.md").write_text(card.replace("(0.0 MB)", f"({size:.1f} MB)"))
    print(f"wrote {out} ({size:.1f} MB of weights)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
