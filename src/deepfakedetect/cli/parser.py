"""The command line's arguments: every subcommand's parser, with no library import.

Building the parser imports nothing heavy, so ``deepfakedetect --help`` answers at once;
each subcommand names the function that runs it (``run="module:function"``), imported
only when that subcommand runs.
"""

from __future__ import annotations

import argparse
import math
from typing import Any, NoReturn

from deepfakedetect._untrusted import printable
from deepfakedetect._version import __version__

__all__ = ["build_parser"]


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model folder or Hub repo id (default: the built-in model)")
    p.add_argument("--revision", default=None, help="Hub branch, tag or commit sha")
    p.add_argument("--offline", action="store_true", help="use only the local Hugging Face cache")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    p.add_argument(
        "--backend",
        choices=("torch", "onnxruntime"),
        default="torch",
        help="onnxruntime: run a folder written by `deepfakedetect export` with ONNX Runtime (the [onnx] extra)",
    )


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, exit code 2, like every other error.

    Subcommand parsers are made from the same class (argparse's ``add_subparsers``
    default), so ``deepfakedetect detect --batch-size x`` says so in one line too.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"deepfakedetect: error: {self.prog}: {printable(message)} (see '{self.prog} --help')\n")
def _add_scoring_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="test-time flip: also score each image or face mirrored and average (default: the model's setting)",
    )
    p.add_argument(
        "--uncertain-band",
        default=None,
        metavar="LOW,HIGH|off",
        help="scores in [LOW, HIGH) get the verdict 'uncertain' (default: the model's bands, fitted on "
        "validation data; 'off': none)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="deepfakedetect", description="Tell real faces, images and videos from deepfakes."
    )
    parser.add_argument("--version", action="version", version=f"deepfakedetect {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True)

    d = sub.add_parser("detect", help="score images and videos", description="Score images and videos.")
    d.add_argument(
        "files",
        nargs="+",
        help="image or video files (videos are recognised by extension), folders, glob patterns, "
        "or .txt files listing paths",
    )
    _add_model_args(d)
    d.add_argument("--json", action="store_true", help="print one JSON object per input (JSON lines)")
    d.add_argument(
        "--sampler",
        default=None,
        help="frame sampler for videos: NAME or NAME:key=value,... (e.g. uniform:num_frames=32)",
    )
    d.add_argument(
        "--aggregator",
        default=None,
        help="frame-score aggregator for videos: NAME or NAME:key=value,... (e.g. top_k_mean:k=5)",
    )
    d.add_argument("--threshold", type=float, default=None, help="decision threshold (default: the model's)")
    _add_scoring_args(d)
    d.add_argument("--batch-size", type=_positive_int, default=32, help="images, face crops or frames per forward pass")
    d.add_argument(
        "--compile",
        action="store_true",
        help="score through torch.compile: 8-20 s to start, then about 1.1x faster for ResNets (none for MobileNetV2)",
    )
    d.add_argument("--frames", action="store_true", help="with --json, include per-frame and per-face detail")
    d.add_argument("--allow-urls", action="store_true", help="allow URLs and ffmpeg protocols as video inputs")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    d.add_argument("--output", default=None, help="append one JSON line per input to this file (see --resume)")
    d.add_argument("--resume", action="store_true", help="with --output, skip inputs already in the file")
    d.add_argument(
        "--overwrite", action="store_true", help="with --output, start the file afresh even if it holds results"
    )
    d.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=120.0,
        metavar="SECONDS",
        help="give up on an input whose decoding makes no progress for this long (default: 120)",
    )
    d.set_defaults(run="deepfakedetect.cli.detect:run")

    _add_train_parsers(sub)
    _add_deploy_parsers(sub)
    return parser


def _add_deploy_parsers(subparsers: Any) -> None:
    """Add ``export`` and ``serve`` to the main parser's subparsers."""
    x = subparsers.add_parser(
        "export",
        help="export a detector's networks to ONNX",
        description=(
            "Write the classifier (and, with the face stage on, the RetinaFace face detector) as ONNX files "
            "beside the model's config.json, for --backend onnxruntime. Needs the [onnx] extra."
        ),
    )
    x.add_argument("model", nargs="?", default=None, metavar="MODEL", help="model folder or Hub repo id (default: the built-in model)")
    x.add_argument("--format", choices=("onnx",), default="onnx", help="the only format: onnx")
    x.add_argument("--out", required=True, metavar="DIR", help="output folder")
    x.add_argument("--revision", default=None, help="Hub branch, tag or commit sha")
    x.add_argument("--offline", action="store_true", help="use only the local Hugging Face cache")
    x.set_defaults(run="deepfakedetect.cli.export:run")

    s = subparsers.add_parser(
        "serve",
        help="a local web service and page",
        description=(
            "Serve the detector over HTTP: POST /v1/detect, GET /v1/model, GET /healthz, /openapi.json, and a page "
            "at / for dropping files. Binds to 127.0.0.1 (this machine only) unless --host says otherwise; no "
            "authentication, no CORS unless --cors-origin. Needs the [serve] extra. See docs/guides/serve.md."
        ),
    )
    _add_model_args(s)
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    s.add_argument("--port", type=_positive_int, default=8000)
    s.add_argument("--max-upload-mb", type=float, default=100.0, help="largest upload in MB (default: 100)")
    s.add_argument("--max-image-pixels", type=_positive_int, default=50_000_000, help="largest image, width x height")
    s.add_argument("--max-video-seconds", type=float, default=600.0, help="longest video (default: 600)")
    s.add_argument("--max-video-pixels", type=_positive_int, default=3840 * 2160, help="largest frame, width x height")
    s.add_argument("--max-video-frames", type=_positive_int, default=256, help="most frames a sampler may ask for")
    s.add_argument("--timeout", type=float, default=120.0, help="seconds per request, queueing included (default: 120)")
    s.add_argument("--concurrency", type=_positive_int, default=1, help="requests scored at once (default: 1)")
    s.add_argument("--queue", type=int, default=8, help="requests that may wait; more get 503 (default: 8)")
    s.add_argument("--retry-after", type=int, default=5, help="seconds in Retry-After with a 503 (default: 5)")
    s.add_argument(
        "--allow-path", action="append", default=[], metavar="DIR",
        help="allow requests to name files under DIR instead of uploading (repeatable; default: refused)",
    )
    s.add_argument(
        "--cors-origin", action="append", default=[], metavar="ORIGIN",
        help="allow browser pages from ORIGIN to call the API (repeatable; default: no CORS)",
    )
    s.add_argument("--temp-dir", default=None, metavar="DIR", help="where uploads are kept while scored")
    s.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    s.set_defaults(run="deepfakedetect.cli.serve:run")


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _add_train_parsers(subparsers: Any) -> None:
    """Add ``train`` and ``evaluate`` to the main parser's subparsers."""
    t = subparsers.add_parser(
        "train",
        help="fine-tune a detector on folders of real and fake images",
        description=(
            "Fine-tune a detector. DATA holds real/ and fake/ folders (split here with --seed), or "
            "train/, val/, test/ each holding them. The model folder (config.json, model.safetensors, "
            "README.md), history.json/.csv/.png and checkpoints/ are written to --out. "
            "With --temporal, DATA holds real/ and fake/ videos instead, and a temporal head is trained over "
            "the face tracks' embeddings of --model's frozen backbone and saved with a copy of that model in --out."
        ),
    )
    t.add_argument("data", nargs="+", metavar="DATA", help="data folder(s)")
    t.add_argument("--out", required=True, metavar="DIR", help="output folder (model, history, checkpoints)")
    t.add_argument("--val", nargs="+", default=None, metavar="DIR", help="separate validation folder(s)")
    t.add_argument("--backbone", default="resnet50", help="torchvision model name (default: resnet50)")
    t.add_argument(
        "--weights",
        default="imagenet",
        help="starting weights: imagenet (default), none, a torchvision weights name, or a .safetensors file",
    )
    t.add_argument("--epochs", type=_positive_int, default=None, help="default: 10 (30 with --temporal)")
    t.add_argument("--batch-size", type=_positive_int, default=32, help="per process (default: 32)")
    t.add_argument("--input-size", type=_positive_int, default=224, help="input side in pixels (default: 224)")
    t.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 3e-4 for AdamW)")
    t.add_argument("--optimizer", choices=("adamw", "adam", "sgd"), default="adamw")
    t.add_argument("--scheduler", choices=("cosine", "linear", "constant"), default="cosine")
    t.add_argument("--warmup-epochs", type=float, default=1.0)
    t.add_argument("--weight-decay", type=float, default=None)
    t.add_argument("--freeze-backbone", action="store_true", help="train only the head (linear probe)")
    t.add_argument("--unfreeze-at-epoch", type=_positive_int, default=None, help="with --freeze-backbone")
    t.add_argument("--no-class-weights", action="store_true", help="do not weight classes by inverse frequency")
    t.add_argument(
        "--balance",
        choices=("source",),
        default=None,
        help="'source': each data folder (and the self-blended fakes) gets an equal share of every epoch",
    )
    t.add_argument(
        "--faces",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="crop faces (RetinaFace) for training and inference (default: whole images)",
    )
    t.add_argument("--no-augment", action="store_true", help="train without augmentation")
    t.add_argument(
        "--self-blend",
        type=float,
        default=0.0,
        metavar="RATIO",
        help="synthetic self-blended fakes per real image and epoch (SBI; 0 = off, 1 = one per real)",
    )
    t.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto")
    t.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm; 0 turns clipping off")
    t.add_argument("--select-metric", default="val_auc", help="val_auc, val_accuracy, val_balanced_accuracy, val_loss, val_eer")
    t.add_argument("--early-stopping", type=_positive_int, default=None, metavar="PATIENCE")
    t.add_argument("--cache", choices=("memory", "disk", "none"), default="memory", help="preprocessed-input cache")
    t.add_argument("--num-workers", type=int, default=0, help="data-loading processes")
    t.add_argument("--val-fraction", type=float, default=0.15)
    t.add_argument("--test-fraction", type=float, default=0.15)
    t.add_argument("--strict", action="store_true", help="fail on unreadable images instead of skipping them")
    t.add_argument("--no-calibrate", action="store_true", help="keep temperature 1 and threshold 0.5")
    t.add_argument("--resume", action="store_true", help="continue from DIR/checkpoints/last.safetensors")
    t.add_argument(
        "--overwrite", action="store_true", help="replace the model (and the run) already in --out, if any"
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.add_argument("--json", action="store_true", help="print the result as JSON")
    g = t.add_argument_group("temporal model (--temporal)")
    g.add_argument(
        "--temporal",
        action="store_true",
        help="train a temporal head on videos (DATA: real/ and fake/ videos; --val: the same for validation)",
    )
    g.add_argument("--model", default=None, help="with --temporal: the model whose backbone embeds faces (default: built-in)")
    g.add_argument("--temporal-kind", choices=("gru", "conv"), default="gru", help="GRU or 1-D convolution (default: gru)")
    g.add_argument("--frames", type=_positive_int, default=32, help="frames sampled per video, as inference's uniform sampler")
    t.set_defaults(run="deepfakedetect.cli.train:run_train")

    e = subparsers.add_parser(
        "evaluate",
        help="measure a detector on labelled data",
        description=(
            "Score labelled data (real/ and fake/ folders, or train/ val/ test/ holding them) and print "
            "accuracy, precision, recall, ROC AUC, EER, log loss, calibration error and the confusion matrix."
        ),
    )
    e.add_argument("model", metavar="MODEL", help="model folder or Hub repo id")
    e.add_argument("data", nargs="+", metavar="DATA", help="data folder(s)")
    e.add_argument("--split", default="test", choices=("test", "val", "train", "all"))
    kind = e.add_mutually_exclusive_group()
    kind.add_argument(
        "--videos", action="store_const", const=True, default=None,
        help="evaluate videos only (video- and frame-level metrics; default: images and videos, whichever the data holds)",
    )  # fmt: skip
    kind.add_argument("--images", dest="videos", action="store_const", const=False, help="evaluate images only")
    e.add_argument("--json", action="store_true", help="print the report as JSON")
    e.add_argument("--scores", action="store_true", help="with --json, include every item's score")
    e.add_argument("--roc", metavar="PATH", default=None, help="write an ROC plot (PNG; needs matplotlib)")
    e.add_argument(
        "--threshold", type=float, default=None,
        help="decision threshold for every level (default: the model's, for videos its video calibration's)",
    )  # fmt: skip
    _add_scoring_args(e)
    e.add_argument("--batch-size", type=_positive_int, default=32)
    e.add_argument("--sampler", default=None, help="frame sampler for --videos, e.g. uniform:num_frames=16")
    e.add_argument("--aggregator", default=None, help="frame aggregator for --videos, e.g. top_k_mean:k=5")
    e.add_argument("--strict", action="store_true", help="fail on unreadable files instead of skipping them")
    e.add_argument("--revision", default=None, help="Hub branch, tag or commit sha")
    e.add_argument("--offline", action="store_true", help="use only the local Hugging Face cache")
    e.add_argument("--device", default=None)
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    e.set_defaults(run="deepfakedetect.cli.train:run_evaluate")

    c = subparsers.add_parser(
        "calibrate",
        help="calibrate a model on validation images and videos, each kind on its own",
        description=(
            "Fit the image calibration on validation images and the video calibration on validation videos "
            "(scored at video level with the model's sampler and aggregator, or --sampler/--aggregator, which "
            "then become the model's defaults): temperature, threshold, operating points and the uncertain "
            "band. DIR holds real/ and fake/ (used whole) or train/ val/ test/ (val/ used). Writes the "
            "calibrated model folder to --out."
        ),
    )
    c.add_argument("model", metavar="MODEL", help="model folder or Hub repo id")
    c.add_argument("--out", required=True, metavar="DIR", help="where to write the calibrated model")
    c.add_argument("--images", nargs="+", default=None, metavar="DIR", help="validation image folder(s)")
    c.add_argument("--videos", nargs="+", default=None, metavar="DIR", help="validation video folder(s)")
    c.add_argument(
        "--target-precision", type=float, default=0.9,
        help="class-balanced precision each call must reach outside the uncertain band (default: 0.9)",
    )  # fmt: skip
    c.add_argument("--no-band", action="store_true", help="fit no uncertain band")
    c.add_argument("--method", choices=("balanced_accuracy", "eer"), default="balanced_accuracy", help="threshold method")
    c.add_argument("--sampler", default=None, help="frame sampler for the videos, e.g. uniform:num_frames=32")
    c.add_argument("--aggregator", default=None, help="frame aggregator for the videos, e.g. median")
    c.add_argument(
        "--flip", action=argparse.BooleanOptionalAction, default=None,
        help="calibrate (and store) the model with test-time flip on or off (default: the model's setting)",
    )  # fmt: skip
    c.add_argument("--batch-size", type=_positive_int, default=32)
    c.add_argument("--strict", action="store_true", help="fail on unreadable files instead of leaving them out")
    c.add_argument("--revision", default=None, help="Hub branch, tag or commit sha")
    c.add_argument("--offline", action="store_true", help="use only the local Hugging Face cache")
    c.add_argument("--device", default=None)
    c.add_argument("--no-progress", action="store_true", help="no progress bars")
    c.add_argument("--json", action="store_true", help="print the new calibrations as JSON")
    c.set_defaults(run="deepfakedetect.cli.train:run_calibrate")
