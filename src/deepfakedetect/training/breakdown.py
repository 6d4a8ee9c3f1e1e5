"""Where a detector fails: metrics per source, subfolder and manipulation method, worst first.

One overall number hides the part of the data a model cannot handle (31% of Face2Face
fakes caught can sit inside a respectable pooled accuracy). Each scored item is put in
groups by three keys, derived from its path alone:

- ``source``: the data folder it came from (when several were evaluated);
- ``folder``: the folders between the data folder and the file, without the split
  (``train``/``val``/``test``) and class (``real``/``fake``) folders, e.g. ``ffhq``;
- ``method``: the part of the file name before ``__`` (FaceForensics++ names its files
  ``Method__target_source.mp4`` and its originals ``youtube__NNN.mp4``).

A key is reported only when it splits the items into at least two groups.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepfakedetect._metrics import roc_auc

__all__ = ["breakdown", "group_keys"]

_SKIP_PARTS = {"train", "val", "valid", "validation", "test", "real", "fake"}


def group_keys(path: str | Path, root: str | Path | None) -> dict[str, str]:
    """The ``source``, ``folder`` and ``method`` of one file.

    Example:
        >>> group_keys("d/test/ffpp/fake/Face2Face__033_097.mp4", "d")
        {'source': 'd', 'folder': 'ffpp', 'method': 'Face2Face'}
        >>> group_keys("d/real/a.jpg", "d")["folder"], group_keys("d/real/a.jpg", "d")["method"]
        ('.', '')
    """
    p = Path(str(path).split("#", 1)[0])
    r = Path(root) if root is not None else None
    try:
        rel = p.parent.relative_to(r) if r is not None else p.parent
    except ValueError:
        rel = p.parent
    parts = [x for x in rel.parts if x.lower() not in _SKIP_PARTS]
    name = p.name
    return {
        "source": r.name if r is not None else "",
        "folder": "/".join(parts) if parts else ".",
        "method": name.split("__", 1)[0] if "__" in name else "",
    }


def breakdown(
    sources: Sequence[str],
    roots: Sequence[str | None],
    y: Sequence[int],
    scores: Sequence[float | None],
    threshold: float,
    *,
    level: str = "image",
) -> list[dict[str, Any]]:
    """Metrics per group, the worst accuracy first.

    Args:
        sources: Each item's path.
        roots: Each item's data folder.
        y: 1 for fake, 0 for real.
        scores: Each item's fake score; ``None`` for an item that could not be scored
            (it counts as a miss).
        threshold: The decision threshold.
        level: The level name recorded in each row.

    Returns:
        Rows ``{"level", "key", "group", "n", "n_real", "n_fake", "misses", "accuracy",
        "auc"}`` (AUC only where the group holds both classes, else NaN), sorted by
        accuracy, then by size (larger first).

    Example:
        >>> rows = breakdown(["d/fake/A__1.jpg", "d/fake/B__1.jpg", "d/real/C__1.jpg"], ["d"] * 3,
        ...                  [1, 1, 0], [0.9, 0.2, 0.1], 0.5)
        >>> [(r["group"], r["accuracy"]) for r in rows]
        [('B', 0.0), ('A', 1.0), ('C', 1.0)]
    """
    members: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, (src, root) in enumerate(zip(sources, roots)):
        for key, value in group_keys(src, root).items():
            if value:
                members[(key, value)].append(i)
    per_key: dict[str, int] = defaultdict(int)
    for key, _ in members:
        per_key[key] += 1
    y_arr = np.asarray(y, dtype=np.int64)
    rows: list[dict[str, Any]] = []
    for (key, value), idx in members.items():
        if per_key[key] < 2:
            continue
        ys = y_arr[idx]
        sc = [scores[i] for i in idx]
        right = [s is not None and (s >= threshold) == bool(t) for s, t in zip(sc, ys)]
        scored = [(t, s) for t, s in zip(ys, sc) if s is not None]
        auc = math.nan
        if scored:
            ty, ts = zip(*scored)
            auc = roc_auc(list(ty), list(ts))
        rows.append(
            {
                "level": level,
                "key": key,
                "group": value,
                "n": len(idx),
                "n_real": int((ys == 0).sum()),
                "n_fake": int((ys == 1).sum()),
                "misses": len(idx) - int(sum(right)),
                "accuracy": float(np.mean(right)),
                "auc": auc,
            }
        )
    rows.sort(key=lambda r: (r["accuracy"], -r["n"], r["key"], r["group"]))
    return rows
