"""Draw the quality page's figures from ``benchmarks/quality_eval.py``'s JSON.

::

    python benchmarks/quality_figures.py runs/quality/eval_test.json --model runs/quality/v2 \\
        --out docs/images/quality

Writes ``roc.png`` (one ROC curve per test set) and ``reliability.png`` (how often an
item was fake against the ``fake_score`` the model gave it, per test set, with the share of
items in each bin) for the named model. Needs matplotlib (``deepfakedetect[plot]``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from deepfakedetect._metrics import roc_curve

LABELS = {
    "lfw": "LFW face swap",
    "lfw_q75": "LFW face swap, JPEG q75",
    "stylegan": "StyleGAN2 vs FFHQ",
    "sd21": "SD 2.1 faces vs FFHQ",
    "ffpp_frames": "FF++ frames",
    "ffpp_videos": "FF++ videos",
}
BINS = 10


def _items(d: dict[str, Any], key: str) -> tuple[np.ndarray, np.ndarray]:
    level = "video" if key == "ffpp_videos" else "image"
    it = d["items"][level]
    return np.asarray(it["y"], dtype=int), np.asarray(it["fake_score"], dtype=float)


def _figure(width: float = 6.4, height: float = 4.8) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def roc(sources: dict[str, Any], out: Path) -> Path:
    fig, ax = _figure()
    for key, d in sources.items():
        y, s = _items(d, key)
        if not (0 < y.sum() < len(y)):
            continue
        fpr, tpr, _ = roc_curve(y, s)
        level = "video" if key == "ffpp_videos" else "image"
        m = d["levels"][level]
        ax.plot(fpr, tpr, label=f"{LABELS.get(key, key)} (AUC {m['auc']:.3f}, n {m['n']})",
                linestyle="--" if key == "lfw_q75" else "-")  # fmt: skip
    ax.plot([0, 1], [0, 1], color="0.7", linestyle=":", linewidth=1)
    ax.set_xlabel("false-positive rate (real media flagged as fake)")
    ax.set_ylabel("true-positive rate (fakes caught)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("ROC per test set")
    fig.tight_layout()
    path = out / "roc.png"
    fig.savefig(path, format="png")
    return path


def reliability(sources: dict[str, Any], out: Path) -> Path:
    fig, ax = _figure()
    edges = np.linspace(0, 1, BINS + 1)
    for key, d in sources.items():
        if key == "lfw_q75":
            continue
        y, s = _items(d, key)
        idx = np.clip(np.digitize(s, edges[1:-1]), 0, BINS - 1)
        xs, ys = [], []
        for b in range(BINS):
            sel = idx == b
            if sel.sum() >= 5:  # a bin with fewer items says little
                xs.append(s[sel].mean())
                ys.append(y[sel].mean())
        level = "video" if key == "ffpp_videos" else "image"
        ece = d["levels"][level].get("ece")
        ax.plot(xs, ys, marker="o", markersize=3, label=f"{LABELS.get(key, key)} (ECE {ece:.3f})")
    ax.plot([0, 1], [0, 1], color="0.5", linestyle=":", linewidth=1, label="perfectly calibrated")
    ax.set_xlabel("fake_score given (mean in each tenth, bins of 5 items or more)")
    ax.set_ylabel("share that was fake")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.01, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("Reliability per test set")
    fig.tight_layout()
    path = out / "reliability.png"
    fig.savefig(path, format="png")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="quality_eval.py's JSON (test split)")
    parser.add_argument("--model", required=True, help="which model of the JSON to draw")
    parser.add_argument("--out", type=Path, default=Path("docs/images/quality"))
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    if args.model not in results:
        parser.error(f"{args.model!r} not in {args.results} (it has {', '.join(results)})")
    args.out.mkdir(parents=True, exist_ok=True)
    sources = results[args.model]["sources"]
    for path in (roc(sources, args.out), reliability(sources, args.out)):
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
