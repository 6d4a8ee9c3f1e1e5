"""How sure are the validation numbers? Bootstrap intervals for quality_select.py's results.

``benchmarks/quality_select.py`` stores every validation item's score. This script resamples
them (2,000 times by default, seed 0) and prints, per source and for the mean of the four
per-source AUCs (the score the default model is chosen by), each model's AUC with a 90%
interval and, against ``--baseline``, the paired difference with its interval: the same
resampled items for both models, so what the two share cancels out.

Items are resampled within their class (real or fake) and in clusters: the FF++ frames by
video (the frames of one video are not independent evidence), every other image on its own.
The FF++ validation has 4 real and 8 fake videos, so its interval is wide::

    PYTHONPATH=src python benchmarks/quality_intervals.py runs/quality/select9/select.json:v10 \\
        --baseline runs/quality/select7/select.json:v4

Reads only validation scores; nothing here reads a test split or a model.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from deepfakedetect._metrics import roc_auc

sys.path.insert(0, str(Path(__file__).parent))
from quality_select import source_of  # a sibling script, not a package module

SOURCES = ("lfw", "stylegan", "sd21", "ffpp_frames")


def load(spec: str) -> dict[str, tuple[str, str, int, float]]:
    """``FILE:NAME`` -> {file name: (source, cluster, label, score)} of its validation images."""
    path, _, name = spec.rpartition(":")
    results = json.loads(Path(path).read_text())
    if name not in results:
        raise SystemExit(f"{path} has no model {name!r}; it has {', '.join(results)}")
    img = results[name]["scores"]["image"]
    items = {}
    for p, y, s in zip(img["source"], img["y"], img["fake_score"]):
        base, src = Path(p).name, source_of(p)
        if src not in SOURCES:
            continue
        # An FF++ frame's cluster is its video: the name without the frame number.
        cluster = re.sub(r"_\d+\.jpg$", "", base) if src == "ffpp_frames" else base
        items[base] = (src, cluster, int(y), float(s))
    return items


class Resampler:
    """Index sets of one source, drawn per class by cluster."""

    def __init__(self, keys: list[str], items: dict[str, tuple[str, str, int, float]]) -> None:
        self.by_class: dict[int, list[np.ndarray]] = defaultdict(list)
        clusters: dict[tuple[int, str], list[int]] = defaultdict(list)
        for i, k in enumerate(keys):
            _, cluster, y, _ = items[k]
            clusters[(y, cluster)].append(i)
        for (y, _), idx in sorted(clusters.items()):
            self.by_class[y].append(np.array(idx))
        self.n_clusters = {y: len(c) for y, c in self.by_class.items()}

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        parts: list[np.ndarray] = []
        for _, cl in sorted(self.by_class.items()):
            parts.extend(cl[j] for j in rng.integers(0, len(cl), len(cl)))
        return np.concatenate(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="SELECT_JSON:NAME of each model")
    parser.add_argument("--baseline", required=True, help="SELECT_JSON:NAME of the model to compare against")
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    base = load(args.baseline)
    models = {spec.rpartition(":")[2]: load(spec) for spec in args.models}
    if "baseline" in models:
        raise SystemExit("'baseline' names the --baseline model in the tables; give the other model another name")
    for name, items in models.items():
        if sorted(items) != sorted(base):
            raise SystemExit(f"{name} was scored on other validation images than the baseline; run both on the same data")
    keys = {s: sorted(k for k, v in base.items() if v[0] == s) for s in SOURCES}
    y = {s: np.array([base[k][2] for k in keys[s]]) for s in SOURCES}
    score = {
        name: {s: np.array([items[k][3] for k in keys[s]]) for s in SOURCES}
        for name, items in {"baseline": base, **models}.items()
    }
    samplers = {s: Resampler(keys[s], base) for s in SOURCES}
    rng = np.random.default_rng(args.seed)
    draws: dict[str, dict[str, list[float]]] = {name: defaultdict(list) for name in score}
    for _ in range(args.rounds):
        picks = {s: samplers[s].draw(rng) for s in SOURCES}
        for name, sc in score.items():
            aucs = [roc_auc(y[s][picks[s]], sc[s][picks[s]]) for s in SOURCES]
            for s, a in zip(SOURCES, aucs):
                draws[name][s].append(a)
            draws[name]["mean"].append(float(np.mean(aucs)))

    point = {name: {s: roc_auc(y[s], sc[s]) for s in SOURCES} for name, sc in score.items()}
    for p in point.values():
        p["mean"] = float(np.mean([p[s] for s in SOURCES]))

    def interval(values: list[float] | np.ndarray) -> str:
        lo, hi = np.percentile(values, [5, 95])
        return f"[{lo:.3f}, {hi:.3f}]"

    cols = (*SOURCES, "mean")
    sizes = ", ".join(f"{s} {samplers[s].n_clusters.get(0, 0)}+{samplers[s].n_clusters.get(1, 0)}" for s in SOURCES)
    print(f"validation AUC, 90% bootstrap intervals ({args.rounds} rounds, seed {args.seed}); "
          f"clusters real+fake: {sizes}; baseline {args.baseline}\n")  # fmt: skip
    print("| model | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for name in score:
        print(f"| {name} | " + " | ".join(f"{point[name][c]:.3f} {interval(draws[name][c])}" for c in cols) + " |")
    print("\npaired difference against the baseline (model minus baseline), 90% interval, share of rounds below 0")
    print("| model | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for name in models:
        cells = []
        for c in cols:
            d = np.array(draws[name][c]) - np.array(draws["baseline"][c])
            cells.append(f"{point[name][c] - point['baseline'][c]:+.3f} [{np.percentile(d, 5):+.3f}, {np.percentile(d, 95):+.3f}] ({np.mean(d < 0):.0%})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
