"""The quality page's figures: ROC curves, a reliability diagram and confusion matrices.

Made by ``docs/_hooks/figures.py`` while the site builds (see its docstring), from the
scores that ``benchmarks/quality_eval.py --split test`` wrote for the shipped model,
committed as ``docs/data/quality-eval-test.json`` (per test set: each item's label and
``fake_score``, the metrics, the threshold and the uncertain band; no media). Drawing from
that file, not from a picture committed beside it, keeps the figures and the page's numbers
from the same run: a new evaluation replaces the file and the next build redraws them.

Until that file exists this module makes no figures (and a page that shows one fails the
strict build with a missing-file warning).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from deepfakedetect._metrics import roc_curve

RESULTS = Path(__file__).resolve().parents[1] / "data" / "quality-eval-test.json"

# Display names, in the order they are drawn; a set the file lacks is left out, one it has
# and this list lacks is drawn last under its own title.
NAMES = {
    "lfw": "LFW face swap",
    "lfw_q75": "LFW face swap, JPEG q75",
    "stylegan": "StyleGAN2 vs FFHQ",
    "sd21": "SD 2.1 faces vs FFHQ",
    "ffpp_frames": "FF++ frames",
    "ffpp_videos": "FF++ videos",
}
BINS = 10  # reliability: tenths of the score range
MIN_BIN = 5  # a bin with fewer items says little, so it is not drawn


def load(path: Path | None = None) -> dict[str, Any]:
    """The shipped model's entry of the evaluation file: ``{"sources": {...}, ...}``."""
    path = path or RESULTS
    results = json.loads(path.read_text(encoding="utf-8"))
    if "sources" in results:  # a file holding one model's entry directly
        return dict(results)
    if len(results) != 1:
        raise ValueError(
            f"{path} holds the models {sorted(results)}; keep only the shipped model's entry "
            "(the quality page describes one model)"
        )
    return dict(next(iter(results.values())))


def _sets(model: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], str]]:
    """``(key, display name, source entry, level)`` per test set, in display order."""
    sources = model["sources"]
    keys = [k for k in NAMES if k in sources] + [k for k in sources if k not in NAMES]
    out = []
    for key in keys:
        d = sources[key]
        level = "video" if "video" in d["items"] else "image"
        out.append((key, NAMES.get(key) or str(d.get("title", key)), d, level))
    return out


def _scores(d: dict[str, Any], level: str) -> tuple[np.ndarray, np.ndarray]:
    items = d["items"][level]
    return np.asarray(items["y"], dtype=int), np.asarray(items["fake_score"], dtype=float)


def _threshold(d: dict[str, Any], level: str) -> float:
    return float(d["levels"][level].get("threshold", d["threshold"]))


def _band(d: dict[str, Any], level: str) -> tuple[float, float] | None:
    for where in (d["levels"][level], d):
        u = where.get("uncertain")
        if isinstance(u, dict) and u.get("band"):
            low, high = u["band"]
            return float(low), float(high)
    return None


def make_roc(out: Path, shared: Path) -> None:
    model = load()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=110)
    for i, (key, name, d, level) in enumerate(_sets(model)):
        y, s = _scores(d, level)
        if not 0 < y.sum() < len(y):
            continue
        fpr, tpr, _ = roc_curve(y, s)
        m = d["levels"][level]
        colour = f"C{i}"
        ax.plot(fpr, tpr, color=colour, linestyle="--" if key.endswith("_q75") else "-",
                label=f"{name}: AUC {m['auc']:.2f}, {len(y)} {level}s")
        # Where the model's threshold puts it on the curve: the rates a user gets by default.
        thr = _threshold(d, level)
        said_fake = s >= thr
        ax.plot([said_fake[y == 0].mean()], [said_fake[y == 1].mean()], "o", color=colour, markersize=5)
    ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1)
    ax.set_xlabel("real items called fake (false-positive rate)")
    ax.set_ylabel("fakes caught (true-positive rate)")
    ax.set_xlim(-0.01, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, title="dot: the default threshold", title_fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def make_reliability(out: Path, shared: Path) -> None:
    model = load()
    edges = np.linspace(0, 1, BINS + 1)
    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=110)
    for i, (key, name, d, level) in enumerate(_sets(model)):
        if key.endswith("_q75"):  # the same images as lfw, re-encoded: one line is enough
            continue
        y, s = _scores(d, level)
        idx = np.clip(np.digitize(s, edges[1:-1]), 0, BINS - 1)
        xs, ys = [], []
        for b in range(BINS):
            sel = idx == b
            if sel.sum() >= MIN_BIN:
                xs.append(s[sel].mean())
                ys.append(y[sel].mean())
        if not xs:
            continue
        ece = d["levels"][level].get("ece")
        label = f"{name}" + (f": ECE {ece:.2f}" if ece is not None else "")
        ax.plot(xs, ys, marker="o", markersize=3, color=f"C{i}", label=label)
    ax.plot([0, 1], [0, 1], color="0.5", linestyle=":", linewidth=1, label="perfectly calibrated")
    ax.set_xlabel(f"fake_score given (mean of each tenth with {MIN_BIN} items or more)")
    ax.set_ylabel("share of those items that were fake")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.01, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def confusion(d: dict[str, Any], level: str) -> tuple[np.ndarray, list[str]]:
    """Counts: rows real, fake (the truth); columns the verdicts (real, [uncertain,] fake)."""
    y, s = _scores(d, level)
    thr = _threshold(d, level)
    band = _band(d, level)
    verdict = np.where(s >= thr, 2, 0)
    columns = ["real", "fake"]
    if band is not None:
        verdict[(s >= band[0]) & (s < band[1])] = 1
        columns = ["real", "uncertain", "fake"]
    kinds = [0, 1, 2] if band is not None else [0, 2]
    counts = np.array([[np.sum((y == truth) & (verdict == k)) for k in kinds] for truth in (0, 1)])
    return counts, columns


def make_confusion(out: Path, shared: Path) -> None:
    model = load()
    sets = [t for t in _sets(model) if not t[0].endswith("_q75")]
    cols = 3 if len(sets) > 4 else 2
    rows = -(-len(sets) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.35 * cols, 2.0 * rows), dpi=110, squeeze=False)
    for ax in axes.flat[len(sets):]:
        ax.axis("off")
    for ax, (key, name, d, level) in zip(axes.flat, sets):
        counts, columns = confusion(d, level)
        share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for r in range(2):
            for c in range(len(columns)):
                ax.text(c, r, f"{counts[r, c]}\n{share[r, c]:.0%}", ha="center", va="center", fontsize=7,
                        color="white" if share[r, c] > 0.6 else "black")
        ax.set_xticks(range(len(columns)), [f"said\n{c}" for c in columns], fontsize=7)
        ax.set_yticks([0, 1], [f"{level}s:\nreal", "fake"], fontsize=7)
        ax.set_title(name, fontsize=8)
        ax.tick_params(length=0)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


FIGURES = (
    {
        "quality-roc.png": make_roc,
        "quality-reliability.png": make_reliability,
        "quality-confusion.png": make_confusion,
    }
    if RESULTS.is_file()
    else {}
)
