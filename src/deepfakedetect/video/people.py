"""The people of a video: its face tracks, each scored on its own, and the video's score from them.

:func:`find_people` is the one step :meth:`Detector.detect_video` takes after faces were
found and scored: it links the faces of the sampled frames into tracks
(:mod:`deepfakedetect.video.tracks`), runs the aggregator on each kept track's frame scores
alone, finds each track's fake segments, and returns one :class:`Person` per track.
:func:`people_score` then turns the people into the video's score by a rule:

- ``"max"`` (the default): the most fake person's score, so a video in which one of
  two people is fake is fake;
- ``"largest"``: the score of the person whose face is largest (median box area), the
  main subject of an interview or a vlog;
- ``"longest"``: the score of the person seen in the most sampled frames;
- any callable ``(people) -> float`` (a plain function included).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deepfakedetect._errors import ConfigError, InputError
from deepfakedetect.results import Person, PersonFrame
from deepfakedetect.video.aggregators import FrameScores
from deepfakedetect.video.segments import find_segments
from deepfakedetect.video.tracks import TrackingConfig, keep_tracks, link_faces

logger = logging.getLogger(__name__)

__all__ = ["PEOPLE_RULES", "find_people", "people_score", "resolve_people_rule"]

PEOPLE_RULES = ("max", "largest", "longest")


def resolve_people_rule(rule: Any) -> Callable[[Sequence[Person]], float]:
    """The function behind a people rule: ``"max"``, ``"largest"``, ``"longest"`` or a callable.

    Raises:
        ConfigError: an unknown name (the message lists the known ones).

    Example:
        >>> people = [Person(1, 0.2, "real", (PersonFrame(0, 0.0, (0, 0, 50, 50), 0.2),) * 3),
        ...           Person(2, 0.9, "fake", (PersonFrame(0, 0.0, (0, 0, 10, 10), 0.9),))]
        >>> resolve_people_rule("max")(people), resolve_people_rule("largest")(people)
        (0.9, 0.2)
    """
    if callable(rule):
        return rule
    if rule == "max":
        return lambda people: max(p.fake_score for p in people)
    if rule == "largest":
        return lambda people: max(people, key=lambda p: (p.face_area, p.num_frames, -p.id)).fake_score
    if rule == "longest":
        return lambda people: max(people, key=lambda p: (p.num_frames, p.face_area, -p.id)).fake_score
    raise ConfigError(f"people must be one of {', '.join(PEOPLE_RULES)} or a function (people) -> float; got {rule!r}")


def people_score(people: Sequence[Person], rule: Any = "max") -> float | None:
    """The video's score from its people by ``rule``; ``None`` when there is nobody.

    Raises:
        ConfigError: an unknown rule; InputError: a callable that returns no number in [0, 1].
    """
    fn = resolve_people_rule(rule)
    if not people:
        return None
    value = fn(list(people))
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0.0 <= float(value) <= 1.0:
        raise InputError(f"the people rule {rule!r} must return a score in [0, 1], got {value!r}")
    return float(value)


def find_people(
    frames: Sequence[Any],
    *,
    aggregator: Callable[[FrameScores], float],
    threshold: float,
    label: Callable[[float], str | None],
    signatures: Sequence[np.ndarray | None] | None = None,
    features: Sequence[np.ndarray | None] | None = None,
    tracking: TrackingConfig | None = None,
    verdict: Callable[[float], str | None] | None = None,
) -> tuple[Person, ...]:
    """Link the faces of scored frames into people and score each one alone.

    Args:
        frames: The video's :class:`~deepfakedetect.FrameResult` objects in time order
            (each with its ``faces``).
        aggregator: Turns one person's :class:`FrameScores` into their score.
        threshold: For each person's label and segments.
        label: Maps a score to a label.
        signatures: One frame signature per frame (or ``None``), for shot cuts.
        features: Per frame, the embeddings of its faces (F_i, D) in face order, for
            aggregators that read them (``temporal``); ``None`` when not computed.
        tracking: How faces are linked and which tracks are kept.
        verdict: Maps a score to a verdict, when the model has an uncertain band.

    Returns:
        The people, numbered 1, 2, ... in order of first appearance.
    """
    cfg = tracking if tracking is not None else TrackingConfig()
    boxes = [[face.box for face in f.faces] for f in frames]
    linked = link_faces(boxes, signatures=signatures, config=cfg)
    people: list[Person] = []
    for i in keep_tracks(linked, cfg.min_frames):
        track = linked[i]
        pf = tuple(
            PersonFrame(
                index=int(frames[p].index),
                timestamp=float(frames[p].timestamp),
                box=tuple(float(v) for v in frames[p].faces[k].box),  # type: ignore[arg-type]
                fake_score=float(frames[p].faces[k].fake_score),
            )
            for p, k in track
        )
        feats = None
        if features is not None and all(features[p] is not None for p, _ in track):
            feats = np.stack([np.asarray(features[p])[k] for p, k in track])
        fs = FrameScores(
            scores=np.array([f.fake_score for f in pf]),
            indices=np.array([f.index for f in pf]),
            timestamps=np.array([f.timestamp for f in pf]),
            **({"features": feats} if feats is not None else {}),
        )
        score = float(np.clip(aggregator(fs), 0.0, 1.0))
        people.append(
            Person(
                id=len(people) + 1,
                fake_score=score,
                label=label(score),
                frames=pf,
                segments=tuple(find_segments(fs, threshold=threshold)),
                verdict=verdict(score) if verdict is not None else None,
            )
        )
    return tuple(people)
