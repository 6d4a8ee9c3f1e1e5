"""Training the temporal head on folders of videos, with a cache of per-frame embeddings.

A video is read once: its sampled frames are decoded, faces found and cropped as
inference does, and each face's embedding, fake score and box saved with the frame's
shot signature in one ``.npz`` file of the cache folder. Epochs read the cache only.

The training videos of a person-level label (``real/`` and ``fake/`` folders) give one
sequence each: the longest track of the video (its main person; FaceForensics++ fakes
change one face). Several samplings per video are cached (the inference sampler's
frames, and the same number shifted within each part of the video), and each step
reads one of them, cut to a random window: this multiplies the few sequences a small
video set has.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepfakedetect._errors import ConfigError, DatasetError
from deepfakedetect._media import VIDEO_EXTENSIONS
from deepfakedetect._metrics import roc_auc
from deepfakedetect._utils import atomic_write
from deepfakedetect.io.video import probe_video, read_frames
from deepfakedetect.models.temporal import (
    TemporalConfig,
    build_temporal_head,
    embed_arrays,
    score_logits,
)
from deepfakedetect.video.tracks import (
    TrackingConfig,
    frame_signature,
    keep_tracks,
    link_faces,
)

logger = logging.getLogger(__name__)

__all__ = ["TemporalTrainConfig", "VideoEmbeddings", "cached_embeddings", "main_track", "train_temporal"]

_CACHE_VERSION = 1


@dataclass(frozen=True)
class VideoEmbeddings:
    """What the cache holds for one video and one list of frames.

    Attributes:
        indices: The frames' indices (F,).
        timestamps: Their times in seconds (F,).
        signatures: Their shot signatures (F, ...) (see :func:`~deepfakedetect.video.tracks.frame_signature`).
        face_frame: For each face, the position of its frame in ``indices`` (N,).
        boxes: Face boxes (N, 4) in the decoded frames' pixels.
        scores: The faces' fake scores (N,).
        features: Their embeddings (N, D) float32.
    """

    indices: np.ndarray
    timestamps: np.ndarray
    signatures: np.ndarray
    face_frame: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    features: np.ndarray

    def tracks(self, config: TrackingConfig | None = None) -> list[np.ndarray]:
        """The kept tracks, each as the face rows (into ``boxes`` etc.) in time order."""
        cfg = config if config is not None else TrackingConfig()
        rows_of_frame: list[list[int]] = [[] for _ in range(len(self.indices))]
        for row, pos in enumerate(self.face_frame.tolist()):
            rows_of_frame[pos].append(row)
        boxes = [[tuple(self.boxes[r]) for r in rows] for rows in rows_of_frame]
        linked = link_faces(boxes, signatures=list(self.signatures), config=cfg)
        kept = keep_tracks(linked, cfg.min_frames)
        return [np.array([rows_of_frame[p][k] for p, k in linked[i]], dtype=np.int64) for i in kept]


def main_track(emb: VideoEmbeddings, config: TrackingConfig | None = None) -> np.ndarray:
    """The face rows of the video's longest track (empty when it has no face)."""
    tracks = emb.tracks(config)
    return max(tracks, key=len) if tracks else np.empty(0, dtype=np.int64)


def jittered_indices(num_frames: int, count: int, shift: float) -> list[int]:
    """``count`` frames, one per equal part of the video, at fraction ``shift`` of each part.

    ``shift=0.5`` gives the ``uniform`` sampler's frames.

    Example:
        >>> jittered_indices(100, 4, 0.5), jittered_indices(100, 4, 0.1)
        ([12, 37, 62, 87], [2, 27, 52, 77])
    """
    if num_frames <= count:
        return list(range(num_frames))
    return sorted({min(num_frames - 1, int(math.floor((i + shift) * num_frames / count))) for i in range(count)})


def _cache_key(path: Path, detector: Any, indices: Sequence[int]) -> str:
    st = path.stat()
    h = hashlib.sha256()
    h.update(json.dumps([_CACHE_VERSION, str(path.resolve()), st.st_size, st.st_mtime_ns]).encode())
    h.update(json.dumps(detector.config.to_dict(), sort_keys=True, default=str).encode())
    # The weights themselves: a fine-tuned model of the same config gives other embeddings.
    for name, t in sorted(detector.model.state_dict().items())[-4:]:
        h.update(name.encode())
        h.update(t.detach().cpu().float().numpy().tobytes()[:4096])
    h.update(np.asarray(list(indices), dtype=np.int64).tobytes())
    return h.hexdigest()[:32]


def cached_embeddings(
    detector: Any,
    path: str | os.PathLike[str],
    indices: Sequence[int],
    cache_dir: str | os.PathLike[str] | None,
    *,
    batch_size: int = 32,
    timeout: float = 120.0,
) -> VideoEmbeddings:
    """Decode ``indices`` of the video, find and embed its faces; read from the cache when there.

    The cache file is named by a hash of the video (path, size, modification time),
    the detector (config and weights) and the frames, so a changed video or model
    never reads stale embeddings.
    """
    path = Path(path)
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"{path.stem}-{_cache_key(path, detector, indices)}.npz"
        if cache_file.is_file():
            with np.load(cache_file) as z:
                return VideoEmbeddings(**{k: z[k] for k in z.files})
    info = probe_video(path, timeout=timeout)
    wanted = sorted({int(i) for i in indices if 0 <= int(i) < info.num_frames})
    got_idx: list[int] = []
    sigs: list[np.ndarray] = []
    face_frame: list[int] = []
    boxes: list[tuple[float, ...]] = []
    crops: list[np.ndarray] = []
    chunk: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        per_frame = detector.extract_faces([f for _, f in chunk])
        for (i, frame), found in zip(chunk, per_frame):
            pos = len(got_idx)
            got_idx.append(i)
            sigs.append(frame_signature(frame))
            for face, crop in found:
                face_frame.append(pos)
                boxes.append(tuple(face.box))
                crops.append(crop)
        chunk.clear()

    for item in read_frames(info, wanted, max_size=1920, timeout=timeout):
        chunk.append(item)
        if len(chunk) >= batch_size:
            flush()
    if chunk:
        flush()
    scores, feats = embed_arrays(detector, crops, batch_size=batch_size)
    emb = VideoEmbeddings(
        indices=np.asarray(got_idx, dtype=np.int64),
        timestamps=np.asarray([info.timestamp(i) for i in got_idx], dtype=np.float64),
        signatures=np.asarray(sigs, dtype=np.float32),
        face_frame=np.asarray(face_frame, dtype=np.int64),
        boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        scores=np.asarray(scores, dtype=np.float64),
        features=feats,
    )
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        arrays = {k: getattr(emb, k) for k in VideoEmbeddings.__dataclass_fields__}
        atomic_write(cache_file, lambda p: _save_npz(p, arrays))
    return emb


def _save_npz(path: Path, arrays: dict[str, Any]) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would add ".npz" to a bare temporary name
        np.savez(f, **arrays)


@dataclass(frozen=True)
class TemporalTrainConfig:
    """How the temporal head is trained.

    Attributes:
        kind: ``"gru"`` or ``"conv"`` (see :class:`~deepfakedetect.models.temporal.TemporalConfig`).
        hidden: Width of the head.
        dropout: Dropout on the projected embeddings.
        num_frames: Frames per sampling, as the inference sampler takes them (``uniform``).
        shifts: Where in each part of the video the cached samplings take their frame
            (0.5 is the ``uniform`` sampler's; the others are extra training views).
        min_window: Shortest random window of a training sequence, in sampled frames.
        epochs: Passes over the training videos.
        steps_per_epoch: Batches per epoch (each a random window of random videos).
        batch_size: Sequences per batch.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        seed: Seed of the initial weights and of the windows.
    """

    kind: str = "gru"
    hidden: int = 64
    dropout: float = 0.3
    num_frames: int = 32
    shifts: tuple[float, ...] = (0.5,)
    min_window: int = 8
    epochs: int = 30
    steps_per_epoch: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-2
    seed: int = 0

    def __post_init__(self) -> None:
        TemporalConfig(input_dim=1, kind=self.kind, hidden=self.hidden, dropout=self.dropout)
        for name in ("num_frames", "min_window", "epochs", "steps_per_epoch", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"temporal training {name} must be a positive integer, got {value!r}")
        if not self.shifts or not all(isinstance(s, (int, float)) and 0 <= s < 1 for s in self.shifts):
            raise ConfigError(f"temporal training shifts must be fractions in [0, 1), got {self.shifts!r}")
        if not (self.lr > 0 and self.weight_decay >= 0):
            raise ConfigError(f"temporal training needs lr > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")


def list_videos(folder: str | os.PathLike[str]) -> list[tuple[Path, int]]:
    """The videos of ``folder/real`` (label 0) and ``folder/fake`` (label 1), sorted.

    Raises:
        DatasetError: when either class folder is missing or has no video.
    """
    root = Path(folder)
    out: list[tuple[Path, int]] = []
    for label, name in ((0, "real"), (1, "fake")):
        sub = root / name
        if not sub.is_dir():
            raise DatasetError(f"{root} needs a '{name}/' folder of videos for temporal training; create it")
        vids = sorted(p for p in sub.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
        if not vids:
            raise DatasetError(f"{sub} holds no video ({', '.join(sorted(VIDEO_EXTENSIONS))}); add some")
        out += [(p, label) for p in vids]
    return out


@dataclass
class TrackSequence:
    """One training example: a person's track, seen through one or more samplings.

    Attributes:
        views: Per sampling, ``(embeddings (T, D), frame scores (T,))`` in time order;
            the first is the inference sampler's (used for validation).
        label: 1 fake, 0 real.
        name: Where it came from (for messages).
    """

    views: list[tuple[np.ndarray, np.ndarray]]
    label: int
    name: str = ""


def _sequences(
    detector: Any,
    videos: Sequence[tuple[Path, int]],
    cfg: TemporalTrainConfig,
    cache_dir: str | os.PathLike[str] | None,
    tracking: TrackingConfig | None,
    shifts: Sequence[float],
    progress: Callable[[str], None] | None,
) -> list[TrackSequence]:
    out: list[TrackSequence] = []
    for k, (path, label) in enumerate(videos):
        info = probe_video(path)
        views = []
        for shift in shifts:
            emb = cached_embeddings(detector, path, jittered_indices(info.num_frames, cfg.num_frames, shift), cache_dir)
            rows = main_track(emb, tracking)
            if len(rows):
                views.append((emb.features[rows], emb.scores[rows]))
        if progress is not None:
            progress(f"embedded {k + 1}/{len(videos)}: {path.name}")
        if views:
            out.append(TrackSequence(views, int(label), path.name))
        else:
            logger.warning("%s: no face in any sampled frame; left out of temporal training", path)
    return out


def _batch(items: list[tuple[np.ndarray, np.ndarray]]) -> tuple[Any, Any, Any]:
    import torch  # heavy; only needed to train

    t = max(len(f) for f, _ in items)
    d = items[0][0].shape[1]
    feats = np.zeros((len(items), t, d), dtype=np.float32)
    logits = np.zeros((len(items), t), dtype=np.float32)
    mask = np.zeros((len(items), t), dtype=bool)
    for i, (f, s) in enumerate(items):
        feats[i, : len(f)] = f
        logits[i, : len(f)] = score_logits(s)
        mask[i, : len(f)] = True
    return torch.from_numpy(feats), torch.from_numpy(logits), torch.from_numpy(mask)


def train_temporal(
    detector: Any,
    train: Sequence[tuple[str | os.PathLike[str], int]],
    *,
    val: Sequence[tuple[str | os.PathLike[str], int]] = (),
    config: TemporalTrainConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    tracking: TrackingConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Train a temporal head on the frozen detector's embeddings of labelled videos.

    Args:
        detector: The :class:`~deepfakedetect.Detector` whose backbone gives the
            embeddings (frozen: its weights do not change).
        train: ``(video path, label)`` pairs, label 1 for fake.
        val: The same for validation; the epoch with the lowest validation loss is
            kept (the last epoch without validation videos).
        config: Training settings.
        cache_dir: Folder for the embedding cache (``None``: no cache).
        tracking: How faces are linked into tracks.
        progress: Called with a line of text as videos are embedded and epochs end.

    Returns:
        ``(head, report)``: the trained head (in eval mode) and a JSON-ready report
        (settings, per-epoch losses, validation AUC and loss, times).

    Raises:
        DatasetError: no training video with a face, or only one class.
    """
    cfg = config if config is not None else TemporalTrainConfig()
    if not train:
        raise DatasetError("temporal training needs training videos; got none")
    t0 = time.perf_counter()
    train_seqs = _sequences(detector, [(Path(p), y) for p, y in train], cfg, cache_dir, tracking, cfg.shifts, progress)
    # Validation reads the inference sampler's frames only (shift 0.5).
    val_seqs = _sequences(detector, [(Path(p), y) for p, y in val], cfg, cache_dir, tracking, (0.5,), progress)
    head, report = fit_temporal(train_seqs, val_seqs, cfg, progress=progress)
    report["embed_seconds"] = round(time.perf_counter() - t0 - report["train_seconds"], 1)
    return head, report


def fit_temporal(
    train_seqs: Sequence[TrackSequence],
    val_seqs: Sequence[TrackSequence] = (),
    config: TemporalTrainConfig | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Train a temporal head on track sequences already embedded (what :func:`train_temporal` runs).

    Each step draws a class-balanced batch of sequences, one random sampling of each,
    cut to a random window of at least ``min_window`` frames. With validation
    sequences, the epoch of lowest validation log loss is kept.

    Returns:
        ``(head, report)`` as :func:`train_temporal`.

    Raises:
        DatasetError: fewer than two classes among ``train_seqs``.
    """
    import torch  # heavy; only needed to train

    cfg = config if config is not None else TemporalTrainConfig()
    if len({s.label for s in train_seqs}) < 2:
        raise DatasetError("temporal training needs real and fake videos with faces; found only one class")
    dim = train_seqs[0].views[0][0].shape[1]
    head_cfg = TemporalConfig(input_dim=int(dim), kind=cfg.kind, hidden=cfg.hidden, dropout=cfg.dropout)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    head = build_temporal_head(head_cfg)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_pos = sum(s.label for s in train_seqs)
    n_neg = len(train_seqs) - n_pos
    # Balanced classes: each sequence is drawn with probability inverse to its class's size.
    weights = np.array([0.5 / (n_pos if s.label else n_neg) for s in train_seqs])
    loss_fn = torch.nn.BCEWithLogitsLoss()
    history: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, Any]] | None = None
    t1 = time.perf_counter()
    for epoch in range(cfg.epochs):
        head.train()
        losses = []
        for _ in range(cfg.steps_per_epoch):
            picks = rng.choice(len(train_seqs), size=cfg.batch_size, p=weights)
            items, labels = [], []
            for i in picks:
                seq = train_seqs[i]
                f, s = seq.views[rng.integers(len(seq.views))]
                lo = min(cfg.min_window, len(f))
                w = int(rng.integers(lo, len(f) + 1))
                start = int(rng.integers(0, len(f) - w + 1))
                items.append((f[start : start + w], s[start : start + w]))
                labels.append(float(seq.label))
            feats, logits, mask = _batch(items)
            loss = loss_fn(head(feats, logits, mask), torch.tensor(labels))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        row: dict[str, float] = {"epoch": epoch + 1, "train_loss": float(np.mean(losses))}
        if val_seqs:
            probs = _predict(head, val_seqs)
            labels_v = [s.label for s in val_seqs]
            p = np.clip(np.asarray(probs), 1e-7, 1 - 1e-7)
            y = np.asarray(labels_v, dtype=np.float64)
            row["val_loss"] = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
            row["val_auc"] = roc_auc(labels_v, probs)
            if best is None or row["val_loss"] < best[0]:
                best = (row["val_loss"], epoch + 1, {k: v.detach().clone() for k, v in head.state_dict().items()})
        history.append(row)
        if progress is not None:
            progress("epoch " + " ".join(f"{k}={v:.4g}" for k, v in row.items()))
    train_s = time.perf_counter() - t1
    best_epoch = cfg.epochs
    if best is not None:
        head.load_state_dict(best[2])
        best_epoch = best[1]
    report = {
        "kind": cfg.kind,
        "hidden": cfg.hidden,
        "epochs": cfg.epochs,
        "best_epoch": best_epoch,
        "num_frames": cfg.num_frames,
        "shifts": list(cfg.shifts),
        "train_videos": len(train_seqs),
        "val_videos": len(val_seqs),
        "train_seconds": round(train_s, 1),
        "history": history,
    }
    trained = {k: v for k, v in report.items() if k != "history"}
    head.cfg = TemporalConfig(**{**head_cfg.__dict__, "training": trained})  # type: ignore[assignment]
    return head.eval(), report


def _predict(head: Any, seqs: Sequence[TrackSequence]) -> list[float]:
    import torch  # heavy; only needed to train

    head.eval()
    out = []
    with torch.inference_mode():
        for s in seqs:
            f, sc = s.views[0]
            feats, logits, mask = _batch([(f, sc)])
            out.append(float(torch.sigmoid(head(feats, logits, mask))[0]))
    return out
