"""The people of a video: its face tracks, each scored on its own, and the video's score from them.

:func:`find_people` is the one step :meth:`Detector.detect_video` takes after faces were
found and scored: it links the faces of the sampled frames into tracks
(:mod:`deepfakedetect._tracks`), runs the aggregator on each kept track's frame scores
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
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._aggregators import FrameScores
from ._errors import ConfigError, InputError
from ._segments import Segment, find_segments
from ._tracks import TrackingConfig, keep_tracks, link_faces

logger = logging.getLogger(__name__)

__all__ = ["PEOPLE_RULES", "Person", "PersonFrame", "find_people", "people_score", "resolve_people_rule"]

PEOPLE_RULES = ("max", "largest", "longest")


@dataclass(frozen=True)
class PersonFrame:
    """One sampled frame in which a person was seen.

    Attributes:
        index: The frame's index in the video.
        timestamp: Its time in seconds.
        box: The person's face box ``(x1, y1, x2, y2)`` in the video's pixels.
        fake_score: That face's score.
    """

    index: int
    timestamp: float
    box: tuple[float, float, float, float]
    fake_score: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "index": int(self.index),
            "timestamp": float(self.timestamp),
            "box": [float(v) for v in self.box],
            "fake_score": float(self.fake_score),
        }


@dataclass(frozen=True)
class Person:
    """One person of a video: a track of their face over the sampled frames.

    Attributes:
        id: 1, 2, ... in the order people first appear.
        fake_score: The aggregator's score of this person's frames alone.
        label: ``"fake"`` or ``"real"`` by the threshold.
        frames: The sampled frames the person was seen in, in time order, with
            the face box and score in each.
        segments: Time ranges in which this person looks fake.
        verdict: ``"fake"``, ``"real"`` or ``"uncertain"`` when the model has an
            uncertain band; ``None`` otherwise.

    Example:
        >>> p = Person(id=1, fake_score=0.9, label="fake",
        ...            frames=(PersonFrame(0, 0.0, (0, 0, 10, 10), 0.9), PersonFrame(25, 1.0, (1, 0, 11, 10), 0.9)))
        >>> p.start, p.end, p.num_frames
        (0.0, 1.0, 2)
    """

    id: int
    fake_score: float
    label: str | None
    frames: tuple[PersonFrame, ...]
    segments: tuple[Segment, ...] = ()
    verdict: str | None = None

    @property
    def start(self) -> float:
        """Time of the first frame the person was seen in, in seconds."""
        return self.frames[0].timestamp

    @property
    def end(self) -> float:
        """Time of the last frame the person was seen in, in seconds."""
        return self.frames[-1].timestamp

    @property
    def num_frames(self) -> int:
        """How many sampled frames the person was seen in."""
        return len(self.frames)

    @property
    def face_area(self) -> float:
        """Median area of the person's face boxes, in square pixels."""
        return float(np.median([(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in self.frames]))

    @property
    def is_fake(self) -> bool | None:
        """``True`` when the label is fake."""
        return None if self.label is None else self.label == "fake"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        out: dict[str, Any] = {
            "id": int(self.id),
            "fake_score": float(self.fake_score),
            "label": self.label,
            "is_fake": self.is_fake,
            "start": float(self.start),
            "end": float(self.end),
            "num_frames": self.num_frames,
            "segments": [s.to_dict() for s in self.segments],
            "frames": [f.to_dict() for f in self.frames],
        }
        if self.verdict is not None:
            out["verdict"] = self.verdict
        return out


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
        return rule  # type: ignore[no-any-return]
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
            feats = np.stack([np.asarray(features[p])[k] for p, k in track])  # type: ignore[index]
        fs = FrameScores(
            scores=[f.fake_score for f in pf],
            indices=[f.index for f in pf],
            timestamps=[f.timestamp for f in pf],
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
