"""Per-person tracks: link the faces found in a video's sampled frames into people.

Pure functions on face boxes; nothing here decodes or scores. :func:`link_faces`
takes, for each sampled frame in time order, the boxes of the faces found in it (and,
optionally, a :func:`frame_signature` of the frame) and returns tracks: lists of
``(frame position, face position)`` pairs, one per frame the person was seen in.

How faces are linked, frame by frame:

1. **Shot cuts end every track.** When the signature of a frame differs from the
   previous sampled frame's by more than ``cut_threshold`` (see :func:`signature_distance`),
   a new shot starts and no face after it joins a track from before it: two people
   filmed in the same place in two shots stay two people.
2. **Faces are matched to the tracks still open** (seen within the last ``max_gap``
   sampled frames) by an optimal one-to-one assignment on a cost that adds the
   boxes' ``1 - IoU`` and the distance between their centres in units of the track's
   face size. A pair is allowed only when the centres are at most ``max_shift`` face
   sizes apart and the face sizes differ by at most ``max_scale`` times; faces left
   unmatched start new tracks.
3. **Short tracks are dropped** (:func:`keep_tracks`): a track seen in fewer than
   ``min_frames`` sampled frames is taken for a spurious detection, unless it is the
   longest track (so a video where faces were found always keeps at least one person).

The assignment uses :func:`scipy.optimize.linear_sum_assignment` (install
``deepfakedetect[tracking]``) when two or more faces meet two or more open tracks. Without
SciPy, pairs are taken greedily, cheapest first, which gives the same tracks unless two
faces compete for one track (crowded scenes, people crossing); a warning says so once per
process, the first time it could matter. On the 56 FaceForensics++ videos of the shared data
(32 sampled frames each; 8 of them have a frame with two or more faces) the two give the
same tracks.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from deepfakedetect._errors import ConfigError, InputError

logger = logging.getLogger(__name__)

__all__ = [
    "TrackingConfig",
    "frame_signature",
    "keep_tracks",
    "link_faces",
    "shot_starts",
    "signature_distance",
]

Box = tuple[float, float, float, float]
Detection = tuple[int, int]  # (position of the sampled frame, position of the face in that frame)

# Side of the grid of cells whose colour histograms make a frame signature, and the
# histogram bins per channel: coarse enough that a moving head leaves it nearly
# unchanged, fine enough that another shot's layout and colours do not.
_GRID = 3
_BINS = 8
# Frames are read at about this many pixels on their longer side for the signature.
_THUMB = 96
_IMPOSSIBLE = 1e6
_warned_greedy = False


@dataclass(frozen=True)
class TrackingConfig:
    """How faces are linked into tracks (see the module documentation).

    Attributes:
        max_gap: A track stays open for this many sampled frames without its face
            (a missed detection, a turned head) before it ends.
        max_shift: Largest distance between the centres of a track's last box and a
            new box, in units of the track's face size (the mean of its box's sides).
        max_scale: Largest ratio between the two boxes' face sizes.
        cut_threshold: Frame-signature distance above which a shot cut is assumed
            (0 identical, 1 nothing in common); ``1.0`` turns cut detection off. Chosen
            on the 56 FaceForensics++ videos of the shared data, 32 sampled frames each:
            of 1,023 pairs of consecutive sampled frames, 14 are further apart than 0.25
            (the largest, 0.43 to 0.59, where the footage itself changes shot), and of
            976 pairs of frames from different videos none is closer (the closest: 0.33).
        min_frames: Tracks seen in fewer sampled frames are dropped (except the longest).

    Example:
        >>> TrackingConfig(min_frames=2).max_gap
        3
    """

    max_gap: int = 3
    max_shift: float = 1.5
    max_scale: float = 2.0
    cut_threshold: float = 0.25
    min_frames: int = 3

    def __post_init__(self) -> None:
        for name in ("max_gap", "min_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (0 if name == "max_gap" else 1):
                low = 0 if name == "max_gap" else 1
                raise ConfigError(f"TrackingConfig.{name} must be an integer >= {low}, got {value!r}")
        for name, least in (("max_shift", 0.0), ("max_scale", 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < least:
                raise ConfigError(f"TrackingConfig.{name} must be a number >= {least}, got {value!r}")
        value = self.cut_threshold
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ConfigError(f"TrackingConfig.cut_threshold must be a number in [0, 1], got {value!r}")


def frame_signature(frame: np.ndarray) -> np.ndarray:
    """A small description of a frame's layout and colours, for finding shot cuts.

    The frame is read at about 96 pixels on its longer side (every k-th pixel) and
    cut into a 3 x 3 grid; each cell gives an 8-bin histogram per colour channel,
    normalised to sum to 1.

    Args:
        frame: An RGB ``uint8`` array (H, W, 3).

    Returns:
        A ``float32`` array of shape (3, 3, 3, 8).

    Raises:
        InputError: for anything but an (H, W, 3) ``uint8`` array.

    Example:
        >>> sig = frame_signature(np.zeros((120, 160, 3), np.uint8))
        >>> sig.shape, float(sig[0, 0, 0, 0])
        ((3, 3, 3, 8), 1.0)
    """
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(
            f"frame_signature needs an RGB uint8 array (H, W, 3), got "
            f"{getattr(frame, 'dtype', type(frame).__name__)} of shape {getattr(frame, 'shape', None)}"
        )
    step = max(1, math.ceil(max(frame.shape[:2]) / _THUMB))
    thumb = frame[::step, ::step]
    h, w = thumb.shape[:2]
    out = np.zeros((_GRID, _GRID, 3, _BINS), dtype=np.float32)
    ys = np.linspace(0, h, _GRID + 1).astype(int)
    xs = np.linspace(0, w, _GRID + 1).astype(int)
    for gy in range(_GRID):
        for gx in range(_GRID):
            cell = thumb[ys[gy] : max(ys[gy + 1], ys[gy] + 1), xs[gx] : max(xs[gx + 1], xs[gx] + 1)]
            binned = (cell.reshape(-1, 3).astype(np.int64) * _BINS) >> 8
            for c in range(3):
                counts = np.bincount(binned[:, c], minlength=_BINS).astype(np.float32)
                out[gy, gx, c] = counts / max(1.0, float(counts.sum()))
    return out


def signature_distance(a: np.ndarray, b: np.ndarray) -> float:
    """How different two frame signatures are, in [0, 1].

    The total-variation distance between matching histograms (half their L1
    distance), averaged over the grid's cells and the colour channels.

    Example:
        >>> black, white = np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 255, np.uint8)
        >>> signature_distance(frame_signature(black), frame_signature(white))
        1.0
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise InputError(f"frame signatures differ in shape: {a.shape} and {b.shape}")
    return float(0.5 * np.abs(a - b).sum(axis=-1).mean())


def shot_starts(signatures: Sequence[np.ndarray | None], threshold: float) -> list[int]:
    """Positions of the sampled frames that start a new shot (the first frame excluded).

    A frame starts a shot when its signature is more than ``threshold`` away from the
    previous frame's; a frame without a signature (``None``) never does. A threshold of
    1 or more finds no cut.

    Example:
        >>> black, white = np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 255, np.uint8)
        >>> shot_starts([frame_signature(f) for f in (black, black, white)], 0.5)
        [2]
    """
    starts: list[int] = []
    if threshold >= 1.0:
        return starts
    for i in range(1, len(signatures)):
        prev, cur = signatures[i - 1], signatures[i]
        if prev is not None and cur is not None and signature_distance(prev, cur) > threshold:
            starts.append(i)
    return starts


def _check_box(box: Sequence[float], where: str) -> Box:
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError) as e:
        raise InputError(f"{where}: a box must be (x1, y1, x2, y2) numbers, got {box!r}") from e
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
        raise InputError(f"{where}: a box needs finite x1 < x2 and y1 < y2, got {box!r}")
    return x1, y1, x2, y2


def _size(b: Box) -> float:
    return 0.5 * ((b[2] - b[0]) + (b[3] - b[1]))


def _iou(a: Box, b: Box) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _cost(track_box: Box, box: Box, cfg: TrackingConfig) -> float:
    size_t, size_b = _size(track_box), _size(box)
    if max(size_t, size_b) > cfg.max_scale * min(size_t, size_b):
        return _IMPOSSIBLE
    dx = 0.5 * (track_box[0] + track_box[2] - box[0] - box[2])
    dy = 0.5 * (track_box[1] + track_box[3] - box[1] - box[3])
    shift = math.hypot(dx, dy) / size_t
    if shift > cfg.max_shift:
        return _IMPOSSIBLE
    return (1.0 - _iou(track_box, box)) + shift


def _assign(cost: np.ndarray) -> list[tuple[int, int]]:
    """Row-column pairs of least total cost, impossible pairs left out."""
    global _warned_greedy
    if cost.size == 0:
        return []
    solver: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
    # With one track or one face nothing competes: the cheapest pair is the optimal one.
    if min(cost.shape) > 1:
        try:  # SciPy is optional (deepfakedetect[tracking]): imported only where it is used
            from scipy.optimize import linear_sum_assignment
        except ImportError:
            pass
        else:
            solver = linear_sum_assignment
    if solver is not None:
        rows, cols = solver(cost)
        pairs = list(zip(rows.tolist(), cols.tolist()))
    else:
        if not _warned_greedy and min(cost.shape) > 1:
            logger.warning(
                "SciPy is not installed: faces are linked into tracks greedily (cheapest pair first), "
                "which can swap people who cross; pip install scipy (the deepfakedetect[tracking] extra) for the optimal assignment"
            )
            _warned_greedy = True
        order = np.argsort(cost, axis=None, kind="stable")
        used_r: set[int] = set()
        used_c: set[int] = set()
        pairs = []
        for flat in order.tolist():
            r, c = divmod(flat, cost.shape[1])
            if r in used_r or c in used_c:
                continue
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
    return [(r, c) for r, c in pairs if cost[r, c] < _IMPOSSIBLE]


def link_faces(
    boxes: Sequence[Sequence[Sequence[float]]],
    *,
    signatures: Sequence[np.ndarray | None] | None = None,
    config: TrackingConfig | None = None,
) -> list[list[Detection]]:
    """Link the faces of consecutive sampled frames into tracks (before dropping short ones).

    Args:
        boxes: For each sampled frame in time order, the ``(x1, y1, x2, y2)`` boxes of
            its faces (an empty list for a frame without faces), all in the same pixels.
        signatures: For each sampled frame, its :func:`frame_signature` (or ``None``);
            when given, shot cuts end every track. ``None``: no cut detection.
        config: The linking parameters (default :class:`TrackingConfig`).

    Returns:
        The tracks in order of their first detection, each a list of
        ``(frame position, face position)`` in time order; every face is in exactly one.

    Raises:
        InputError: a malformed box, or ``signatures`` of another length than ``boxes``.

    Example:
        >>> frames = [[(0, 0, 10, 10), (50, 0, 60, 10)], [(51, 1, 61, 11), (1, 0, 11, 10)]]
        >>> link_faces(frames)
        [[(0, 0), (1, 1)], [(0, 1), (1, 0)]]
    """
    cfg = config if config is not None else TrackingConfig()
    if signatures is not None and len(signatures) != len(boxes):
        raise InputError(f"link_faces got {len(signatures)} frame signatures for {len(boxes)} frames")
    cuts = set(shot_starts(signatures, cfg.cut_threshold)) if signatures is not None else set()
    tracks: list[list[Detection]] = []
    last_box: list[Box] = []
    open_ids: list[int] = []
    for pos, frame_boxes in enumerate(boxes):
        checked = [_check_box(b, f"frame {pos}, face {k}") for k, b in enumerate(frame_boxes)]
        if pos in cuts:
            open_ids = []
        open_ids = [t for t in open_ids if pos - tracks[t][-1][0] <= cfg.max_gap + 1]
        cost = np.full((len(open_ids), len(checked)), _IMPOSSIBLE)
        for r, t in enumerate(open_ids):
            for c, b in enumerate(checked):
                cost[r, c] = _cost(last_box[t], b, cfg)
        matched: set[int] = set()
        for r, c in _assign(cost):
            t = open_ids[r]
            tracks[t].append((pos, c))
            last_box[t] = checked[c]
            matched.add(c)
        for c, b in enumerate(checked):
            if c not in matched:
                tracks.append([(pos, c)])
                last_box.append(b)
                open_ids.append(len(tracks) - 1)
    return tracks


def keep_tracks(tracks: Sequence[Sequence[Detection]], min_frames: int = 3) -> list[int]:
    """Positions (in ``tracks``) of the tracks kept: seen in at least ``min_frames`` frames.

    The longest track (the first of equals) is always kept, so that a video in which
    faces were found has at least one person.

    Example:
        >>> keep_tracks([[(0, 0), (1, 0), (2, 0)], [(1, 1)], [(0, 1), (1, 2), (2, 1), (3, 0)]])
        [0, 2]
        >>> keep_tracks([[(0, 0)], [(1, 0), (2, 0)]])
        [1]
    """
    if not tracks:
        return []
    longest = max(range(len(tracks)), key=lambda i: (len(tracks[i]), -i))
    return [i for i, t in enumerate(tracks) if len(t) >= min_frames or i == longest]
