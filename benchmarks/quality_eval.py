"""Score models on the quality page's data, per source, and keep every score.

Runs after ``benchmarks/quality.py`` has built its data folders (``--runs v2`` builds the
ones used here)::

    python benchmarks/quality_eval.py shipped v2=runs/quality/v2 --data runs/quality/data \\
        --split val --out runs/quality/eval_val.json

``shipped`` names the model the installed package loads by default. ``--split val`` is
for choosing (recipe, epochs, thresholds); ``--split test`` is for the final table only.
Per model and source it records the metrics at the model's threshold and the per-item
scores (for ``benchmarks/quality_figures.py``); for the FF++ videos also AUC and accuracy
per manipulation method at the video threshold (the model's video calibration when its
config has one, else its image threshold, which the JSON says).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from deepfakedetect import Detector, evaluate
from deepfakedetect._metrics import binary_metrics, roc_auc
from deepfakedetect.faces import FaceStage

# (name, folder under --data, videos?, what it tests); lfw_q75 exists for the test split only.
SOURCES = (
    ("lfw", "lfw", False, "LFW face swap"),
    ("lfw_q75", "lfw_q75", False, "LFW face swap, re-encoded at JPEG quality 75"),
    ("stylegan", "stylegan", False, "StyleGAN2 fakes vs FFHQ reals"),
    ("sd21", "sd21", False, "Stable Diffusion 2.1 faces vs FFHQ reals, both 256 px JPEG q95"),
    ("ffpp_frames", "ffpp2_frames", False, "FF++ c23 frames, held-out identity groups"),
    ("ffpp_videos", "ffpp2_videos", True, "FF++ c23 videos, held-out identity groups"),
)
METHODS = ("Deepfakes", "Face2Face", "FaceSwap")


def video_threshold(det: Detector) -> tuple[float, str]:
    """The threshold for video scores and where it comes from."""
    cal = getattr(det.config, "video_calibration", None)
    thr = getattr(cal, "threshold", None) if cal is not None else None
    if isinstance(thr, (int, float)) and math.isfinite(thr):
        return float(thr), "video calibration"
    return det.threshold, "image threshold (the model has no video calibration)"


def uncertain_band(det: Detector, videos: bool) -> tuple[float, float] | None:
    """The ``(low, high)`` band of scores whose verdict is ``uncertain``, if the model has one."""
    cal = getattr(det.config, "video_calibration", None) if videos else None
    band = getattr(cal or det.config.calibration, "uncertain_band", None)
    return (float(band[0]), float(band[1])) if band is not None else None


def band_stats(y: list[int], s: list[float], band: tuple[float, float] | None, threshold: float) -> dict[str, Any]:
    """The share of items in the uncertain band, and the accuracy of the calls outside it."""
    if band is None:
        return {"band": None}
    ya, sa = np.asarray(y), np.asarray(s, dtype=float)
    inside = (sa >= band[0]) & (sa < band[1])
    out = ~inside
    acc = float(np.mean((sa[out] >= threshold) == (ya[out] == 1))) if out.any() else None
    return {"band": list(band), "uncertain_share": float(inside.mean()), "accuracy_outside_band": acc}


def _method(path: str) -> str:
    name = Path(path).name
    return name.split("__")[0] if "__" in name and not name.startswith("youtube") else "real"


def per_method(items: dict[str, list[Any]], threshold: float) -> dict[str, Any]:
    """Each FF++ method's fakes against all the reals: AUC, accuracy, share of its fakes flagged."""
    methods = [_method(s) for s in items["source"]]
    y, s = np.asarray(items["y"]), np.asarray(items["fake_score"], dtype=float)
    real = np.array([m == "real" for m in methods])
    out: dict[str, Any] = {"real": {"n": int(real.sum()), "correct": float(np.mean(s[real] < threshold)) if real.any() else None}}
    for m in METHODS:
        sel = np.array([x == m for x in methods])
        if not sel.any():
            continue
        both = sel | real
        met = binary_metrics(y[both].tolist(), s[both].tolist(), threshold=threshold)
        out[m] = {"n_fake": int(sel.sum()), "auc": met["auc"], "accuracy": met["accuracy"],
                  "flagged": float(np.mean(s[sel] >= threshold))}  # fmt: skip
    return out


def _group(path: str) -> str:
    """An FF++ video's identity group, ``"033_097"``: its two ids in order."""
    ids = [x for x in Path(path).stem.split("__")[-1].split("_") if x.isdigit()]
    return "_".join(sorted(ids))


def per_group(items: dict[str, list[Any]], threshold: float) -> dict[str, Any]:
    """Per FF++ identity group: its videos (a real video belongs to the group holding its id)."""
    fake_groups = {_group(s) for s, y in zip(items["source"], items["y"]) if y}
    out: dict[str, Any] = {}
    for g in sorted(fake_groups):
        ids = set(g.split("_"))
        sel = [i for i, src in enumerate(items["source"]) if set(_group(src).split("_")) <= ids]
        y = [items["y"][i] for i in sel]
        s = [float(items["fake_score"][i]) for i in sel]
        met = binary_metrics(y, s, threshold=threshold)
        out[g] = {"n_real": len(y) - sum(y), "n_fake": sum(y), "auc": met["auc"], "accuracy": met["accuracy"]}
    return out


def score(det: Detector, data: Path, split: str, only: set[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, folder, videos, title in SOURCES:
        root = data / folder
        if not (root / split).is_dir() or (only and key not in only):
            continue
        t0 = time.time()
        thr, thr_from = video_threshold(det) if videos else (det.threshold, "image calibration")
        report = evaluate(det, root, split=split, videos=videos, threshold=thr, progress=False)
        d = report.to_dict(include_scores=True)
        d["title"] = title
        d["threshold_from"] = thr_from
        level = "video" if videos else "image"
        it = d["items"][level]
        d["uncertain"] = band_stats(it["y"], it["fake_score"], uncertain_band(det, videos), thr)
        if videos:
            d["per_method"] = per_method(it, thr)
            d["per_group"] = per_group(it, thr)
        out[key] = d
        m = d["levels"][level]
        print(f"  {key:12s} {level}: n {m['n']:4d}  AUC {m['auc']:.3f}  acc {m['accuracy']:.3f} at {thr:.3f} "
              f"({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)  # fmt: skip
    return out


def pooled_auc(sources: dict[str, Any]) -> float:
    """AUC over the image sources together (``lfw_q75`` left out: it repeats ``lfw``), as the Trainer selects."""
    y: list[int] = []
    s: list[float] = []
    for key, d in sources.items():
        if key not in ("lfw_q75", "ffpp_videos"):
            y += d["items"]["image"]["y"]
            s += d["items"]["image"]["fake_score"]
    return roc_auc(y, s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", metavar="[NAME=]MODEL",
                        help="model folders, or 'shipped' for the package's default model; NAME= names it in the JSON")
    parser.add_argument("--data", type=Path, default=Path("runs/quality/data"))
    parser.add_argument("--split", choices=("val", "test"), required=True)
    parser.add_argument("--out", type=Path, required=True, help="JSON file (extended if it exists)")
    parser.add_argument("--sources", help="comma-separated source keys to score (default: all)")
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("DEEPFAKEDETECT_SHARED", "../shared")))
    parser.add_argument(
        "--public",
        type=Path,
        metavar="JSON",
        help="also write the last model's results without paths or file names (model, data, skipped and "
        "no-face lists, items' sources), as docs/data/quality-eval-test.json is kept",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("DEEPFAKEDETECT_RETINAFACE_WEIGHTS", str(args.shared / "weights" / "retinaface_mobilenet0.25.safetensors"))
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    sys.path.insert(0, str(Path(__file__).parent))
    from quality_select import CachedFaces  # a sibling script, not a package module

    # Faces are found once per image or frame and shared by the models (same face settings).
    shared_faces: CachedFaces | None = None
    for arg in args.models:
        name, _, path = arg.rpartition("=")
        name = name or path
        det = Detector.from_pretrained(None if path == "shipped" else path)
        if shared_faces is None:
            shared_faces = CachedFaces(FaceStage(det.config.faces, device=det.device).detector)
            faces_of = det.config.faces
        if det.config.faces == faces_of:
            det = Detector.from_pretrained(None if path == "shipped" else path, face_detector=shared_faces)
        print(f"{name} ({args.split}):", file=sys.stderr, flush=True)
        sources = score(det, args.data, args.split, set(args.sources.split(",")) if args.sources else None)
        results[name] = {"split": args.split, "threshold": det.threshold, "pooled_image_auc": pooled_auc(sources),
                         "sources": sources}  # fmt: skip
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1, default=float))
        if args.public is not None:
            args.public.write_text(json.dumps({"shipped": public(results[name])}, default=float))
    print(render(results))
    return 0


def public(result: dict[str, Any]) -> dict[str, Any]:
    """One model's results with nothing that names a file or a folder of the machine that ran it."""
    out = dict(result, sources={})
    for key, d in result["sources"].items():
        d = {k: v for k, v in d.items() if k not in ("model", "data", "skipped", "no_face")}
        d["items"] = {level: {k: v for k, v in it.items() if k != "source"} for level, it in d["items"].items()}
        out["sources"][key] = d
    return out


def _f(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3f}"


def render(results: dict[str, Any]) -> str:
    """One Markdown table per model: AUC and accuracy per source, then per FF++ method."""
    lines: list[str] = []
    for name, r in results.items():
        pooled = r.get("pooled_image_auc")
        lines += [f"**{name}** ({r['split']} split, image threshold {r['threshold']:.3f}, pooled image AUC {_f(pooled)})", "",
                  "| source | n (real / fake) | AUC | accuracy | ECE | uncertain | accuracy of the rest |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for key, d in r["sources"].items():
            level = "video" if key == "ffpp_videos" else "image"
            m = d["levels"][level]
            u = d.get("uncertain", {})
            lines.append(f"| {key} | {m['n_real']} / {m['n_fake']} | {_f(m['auc'])} | {_f(m['accuracy'])} | {_f(m['ece'])} "
                         f"| {_f(u.get('uncertain_share'))} | {_f(u.get('accuracy_outside_band'))} |")  # fmt: skip
        v = r["sources"].get("ffpp_videos")
        if v:
            pm = v["per_method"]
            lines += ["", f"FF++ videos at threshold {v['threshold']:.3f} ({v['threshold_from']}); reals right: "
                      f"{_f(pm['real']['correct'])} of {pm['real']['n']}", "",
                      "| method | fakes | AUC | accuracy | fakes flagged |", "|---|---|---|---|---|"]  # fmt: skip
            for m in METHODS:
                if m in pm:
                    x = pm[m]
                    lines.append(f"| {m} | {x['n_fake']} | {_f(x['auc'])} | {_f(x['accuracy'])} | {_f(x['flagged'])} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
