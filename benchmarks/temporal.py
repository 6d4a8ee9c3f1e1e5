"""The temporal head against the frame aggregators, on FF++ identity groups held out from training.

    python benchmarks/temporal.py --shared ../shared --out runs/temporal

Data: the FaceForensics++ c23 videos of the shared data, split by identity group as
``benchmarks/quality.py`` does (``TEST_GROUPS`` never trained on, ``VAL_GROUPS`` for the
choice of epoch and of the default); the default model is the frozen backbone.

For each video the inference sampler's 32 frames (``uniform``) are decoded, faces found,
scored and embedded once (cached under ``--out/cache``; a second run reads the cache).
The heads are trained by ``train_temporal``, what ``Trainer.fit_temporal`` and
``deepfakedetect train VIDEOS --temporal`` run, on the training groups' videos. Then, per video:

- ``frames, <agg>``: today's behaviour before people: each frame's score is its most fake
  face's, and the aggregator runs over the frames;
- ``people max, <agg>``: faces linked into tracks, the aggregator over each track alone,
  the video's score the most fake person's (the new default rule);
- ``people largest, <agg>``: the same, the largest face's person;
- ``temporal (<kind>, seed s)``: the temporal head over each person's track, most fake person.

Prints a Markdown table (AUC over all held-out videos, and per manipulation method
against all held-out reals; validation AUC; log loss) with the CPU model, and the
training times; ``--table FILE`` also writes it. ``--save DIR`` writes the default model
with the validation-best head into DIR (for ``Detector.from_pretrained(DIR)``).
"""

from __future__ import annotations

import argparse
import builtins
import logging
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from quality import ffpp_videos

from deepfakedetect import Detector
from deepfakedetect._metrics import roc_auc
from deepfakedetect.io.probe import probe_video
from deepfakedetect.models.temporal import save_temporal, temporal_probability
from deepfakedetect.results import Person, PersonFrame
from deepfakedetect.training.temporal import (
    TemporalTrainConfig,
    VideoEmbeddings,
    cached_embeddings,
    jittered_indices,
    train_temporal,
)
from deepfakedetect.video.aggregators import FrameScores, get_aggregator
from deepfakedetect.video.people import people_score

METHODS = ("Deepfakes", "Face2Face", "FaceSwap")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def embeddings(det: Detector, path: Path, cache: Path) -> VideoEmbeddings:
    n = probe_video(path).num_frames
    return cached_embeddings(det, path, jittered_indices(n, 32, 0.5), cache)


def video_scores(emb: VideoEmbeddings, head: Any = None) -> dict[str, float]:
    """Every method's score of one video from its cached faces."""
    out: dict[str, float] = {}
    aggs = {"mean": get_aggregator("mean"), "confident": get_aggregator("confident")}
    # Frames: each frame's most fake face (the face stage's reduce="max").
    best = {}
    for row, pos in enumerate(emb.face_frame.tolist()):
        best[pos] = max(best.get(pos, 0.0), float(emb.scores[row]))
    pos = sorted(best)
    fs = FrameScores(scores=[best[p] for p in pos], indices=emb.indices[pos], timestamps=emb.timestamps[pos])
    for name, agg in aggs.items():
        out[f"frames, {name}"] = agg(fs)
    tracks = emb.tracks()
    for name, agg in aggs.items():
        people = []
        for k, rows in enumerate(tracks):
            t_fs = FrameScores(
                scores=emb.scores[rows], indices=emb.indices[emb.face_frame[rows]],
                timestamps=emb.timestamps[emb.face_frame[rows]],
            )  # fmt: skip
            frames = tuple(
                PersonFrame(int(emb.indices[emb.face_frame[r]]), 0.0, tuple(emb.boxes[r]), float(emb.scores[r]))
                for r in rows
            )
            people.append(Person(k + 1, float(agg(t_fs)), None, frames))
        for rule in ("max", "largest"):
            out[f"people {rule}, {name}"] = people_score(people, rule)  # type: ignore[assignment]
    if head is not None:
        out["temporal"] = max(temporal_probability(head, emb.features[rows], emb.scores[rows]) for rows in tracks)
    return out


def greedy_against_optimal(embs: list[VideoEmbeddings]) -> str:
    """How often linking without SciPy (greedy) gives other tracks than the optimal assignment."""
    real_import = builtins.__import__

    def no_scipy(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("scipy"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    differ = crowded = 0
    for emb in embs:
        optimal = [t.tolist() for t in emb.tracks()]
        builtins.__import__ = no_scipy
        try:
            greedy = [t.tolist() for t in emb.tracks()]
        finally:
            builtins.__import__ = real_import
        differ += optimal != greedy
        crowded += int(np.bincount(emb.face_frame, minlength=len(emb.indices)).max(initial=0) > 1)
    return (
        f"Linking without SciPy (greedy) against the optimal assignment: {len(embs)} videos, {crowded} with a "
        f"frame of two or more faces; the tracks differ in {differ}."
    )


def log_loss(y: list[int], p: list[float]) -> float:
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    t = np.asarray(y, dtype=np.float64)
    return float(-np.mean(t * np.log(q) + (1 - t) * np.log(1 - q)))


def evaluate(rows: list[tuple[str, int, dict[str, float]]], method: str) -> dict[str, float]:
    """AUC and log loss of one method over (video name, label, scores) rows."""
    y = [label for _, label, _ in rows]
    s = [scores[method] for _, _, scores in rows]
    out = {"auc": roc_auc(y, s), "log_loss": log_loss(y, s)}
    for m in METHODS:
        sub = [(label, sc[method]) for name, label, sc in rows if label == 0 or name.startswith(m + "__")]
        out[m] = roc_auc([a for a, _ in sub], [b for _, b in sub])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--out", type=Path, default=Path("runs/temporal"))
    ap.add_argument("--kinds", default="gru,conv", help="comma-separated head kinds to train")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--table", type=Path, help="also write the Markdown table here")
    ap.add_argument("--save", type=Path, help="write the model with the validation-best head here")
    ap.add_argument("--model", default=None, help="the model whose backbone embeds the faces (default: built-in)")
    args = ap.parse_args(argv)
    cache = args.out / "cache"
    det = Detector.from_pretrained(args.model)
    split = ffpp_videos(args.shared)
    load_start = "/".join(f"{x:.1f}" for x in os.getloadavg())
    t0 = time.perf_counter()
    emb = {p: embeddings(det, p, cache) for s in ("val", "test") for p, _ in split[s]}
    embed_eval_s = time.perf_counter() - t0

    base = {s: [(p.name, y, video_scores(emb[p])) for p, y in split[s]] for s in ("val", "test")}
    methods = [m for m in base["test"][0][2]]
    results: list[tuple[str, dict[str, float], dict[str, float]]] = [
        (m, evaluate(base["val"], m), evaluate(base["test"], m)) for m in methods
    ]
    times: list[str] = []
    best_head: tuple[float, float, str, Any] | None = None
    for kind in args.kinds.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            cfg = TemporalTrainConfig(kind=kind, seed=seed, epochs=args.epochs)
            t1 = time.perf_counter()
            head, report = train_temporal(det, split["train"], val=split["val"], config=cfg, cache_dir=cache)
            wall = time.perf_counter() - t1
            times.append(
                f"{kind} seed {seed}: {wall:.0f} s in all ({report['embed_seconds']:.0f} s reading or filling the "
                f"embedding cache, {report['train_seconds']:.0f} s for {cfg.epochs} epochs), best epoch "
                f"{report['best_epoch']}"
            )
            name = f"temporal ({kind}, seed {seed})"
            rows = {
                s: [(n, y, {"t": video_scores(emb[p], head)["temporal"]}) for (p, y), (n, _, _) in zip(split[s], base[s])]
                for s in ("val", "test")
            }
            v, t = evaluate(rows["val"], "t"), evaluate(rows["test"], "t")
            results.append((name, v, t))
            key = (v["auc"], -v["log_loss"])
            if best_head is None or key > best_head[:2]:
                best_head = (key[0], key[1], name, head)

    lines = [
        f"CPU: {cpu_model()}, {len(os.sched_getaffinity(0))} cores visible, shared with other work; "
        f"load average at the start {load_start}, at the end {'/'.join(f'{x:.1f}' for x in os.getloadavg())}.",
        f"Model: {det.source}.",
        f"Held-out test: {len(split['test'])} videos ({sum(y == 0 for _, y in split['test'])} real); "
        f"validation: {len(split['val'])} ({sum(y == 0 for _, y in split['val'])} real); "
        f"training: {len(split['train'])}. Per-method AUC: that method's fakes against all held-out reals.",
        "",
        "| video score | val AUC | val log loss | test AUC | test log loss | "
        + " | ".join(f"test AUC {m}" for m in METHODS) + " |",
        "|---|---|---|---|---|" + "---|" * len(METHODS),
    ]
    for name, v, t in results:
        lines.append(
            f"| {name} | {v['auc']:.3f} | {v['log_loss']:.3f} | {t['auc']:.3f} | {t['log_loss']:.3f} | "
            + " | ".join(f"{t[m]:.3f}" for m in METHODS) + " |"
        )
    lines += ["", f"Embedding the {len(emb)} validation and test videos: {embed_eval_s:.0f} s (cache filled or read)."]
    logging.getLogger("deepfakedetect.video.tracks").setLevel(logging.ERROR)  # the greedy warning, once
    every = [*emb.values(), *(embeddings(det, p, cache) for p, _ in split["train"])]
    lines.append(greedy_against_optimal(every))
    lines += [f"- {t}" for t in times]
    table = "\n".join(lines)
    print(table)
    if args.table:
        args.table.write_text(table + "\n", encoding="utf-8")
    if args.save and best_head is not None:
        if args.save.exists():
            shutil.rmtree(args.save)
        det.save_pretrained(args.save)
        save_temporal(args.save, best_head[3])
        print(f"saved the default model with {best_head[2]} to {args.save}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
