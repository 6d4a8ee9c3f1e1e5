"""Result objects returned by ``Detector.detect_image`` and ``Detector.detect_video``.

``fake_score`` is always the calibrated probability that the input is fake, in [0, 1].
When the face stage is on and no face was found, ``fake_score`` and ``label`` are
``None`` and ``status`` is ``"no_face"``: a missing face is never scored as 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from deepfakedetect.faces.detectors import Face
    from deepfakedetect.video.segments import Segment

__all__ = ["VERDICTS", "FaceResult", "FrameResult", "ImageResult", "Person", "PersonFrame", "VideoResult", "verdict"]


#: The three verdicts a result can carry.
VERDICTS = ("real", "fake", "uncertain")


def verdict(score: float | None, threshold: float, band: tuple[float, float] | None) -> str | None:
    """The verdict on one score: ``"real"``, ``"fake"`` or ``"uncertain"``; ``None`` without a score.

    Args:
        score: The calibrated fake score, or ``None`` (no face: no verdict).
        threshold: The decision threshold (``"fake"`` when ``score >= threshold``).
        band: ``(low, high)``: scores in ``[low, high)`` are uncertain; ``None``: no band.

    Example:
        >>> [verdict(s, 0.5, (0.3, 0.8)) for s in (0.1, 0.3, 0.6, 0.8)]
        ['real', 'uncertain', 'uncertain', 'fake']
        >>> verdict(0.6, 0.5, None)
        'fake'
    """
    if score is None:
        return None
    label = "fake" if score >= threshold else "real"
    if band is None:
        return label
    low, high = min(band[0], threshold), max(band[1], threshold)
    return "uncertain" if low <= score < high else label


def _band(band: tuple[float, float] | None) -> list[float] | None:
    return None if band is None else [float(band[0]), float(band[1])]


def _round(x: float | None) -> float | None:
    return None if x is None else float(x)


@dataclass(frozen=True)
class FaceResult:
    """One face found in an image or frame, with its own score.

    Example:
        >>> FaceResult(box=(0, 0, 10, 10), landmarks=(), confidence=0.99, fake_score=0.1).to_dict()["fake_score"]
        0.1
    """

    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the input's pixels
    landmarks: tuple[tuple[float, float], ...]  # left eye, right eye, nose, left/right mouth corner
    confidence: float  # the face detector's confidence
    fake_score: float

    @classmethod
    def from_face(cls, face: Face, fake_score: float) -> FaceResult:
        return cls(box=face.box, landmarks=face.landmarks, confidence=face.confidence, fake_score=fake_score)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "box": [float(v) for v in self.box],
            "landmarks": [[float(x), float(y)] for x, y in self.landmarks],
            "confidence": float(self.confidence),
            "fake_score": float(self.fake_score),
        }


@dataclass(frozen=True)
class ImageResult:
    """The verdict on one image.

    Attributes:
        fake_score: Calibrated probability of fake in [0, 1]; ``None`` when no face was found.
        label: ``"fake"`` or ``"real"`` by the model's threshold; ``None`` when no face was found.
        threshold: The threshold that decided the label.
        faces: The faces scored (empty when the face stage is off).
        face_stage: Whether faces were detected and cropped.
        source: What was scored (a path, or a description of an array).
        model: Provenance of the model (source, revision, backbone).
        uncertain_band: ``(low, high)``: scores in ``[low, high)`` are ``"uncertain"``
            (the image calibration's band, or the detector's override); ``None``: no band.

    Example:
        >>> r = ImageResult(fake_score=0.9, label="fake", threshold=0.5)
        >>> r.is_fake, r.status, r.verdict
        (True, 'ok', 'fake')
        >>> ImageResult(fake_score=0.6, label="fake", threshold=0.5, uncertain_band=(0.3, 0.8)).verdict
        'uncertain'
    """

    fake_score: float | None
    label: str | None
    threshold: float
    faces: tuple[FaceResult, ...] = ()
    face_stage: bool = False
    source: str = ""
    model: dict[str, Any] = field(default_factory=dict)
    uncertain_band: tuple[float, float] | None = None

    @property
    def is_fake(self) -> bool | None:
        """``True`` when the label is fake; ``None`` when no face was found."""
        return None if self.label is None else self.label == "fake"

    @property
    def verdict(self) -> str | None:
        """``"real"``, ``"fake"``, or ``"uncertain"`` in the band; ``None`` when no face was found."""
        return verdict(self.fake_score, self.threshold, self.uncertain_band)

    @property
    def status(self) -> str:
        """``"ok"``, or ``"no_face"`` when the face stage found no face."""
        return "no_face" if self.fake_score is None else "ok"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "source": self.source,
            "status": self.status,
            "fake_score": _round(self.fake_score),
            "label": self.label,
            "is_fake": self.is_fake,
            "verdict": self.verdict,
            "threshold": float(self.threshold),
            "uncertain_band": _band(self.uncertain_band),
            "face_stage": self.face_stage,
            "faces": [f.to_dict() for f in self.faces],
            "model": dict(self.model),
        }


@dataclass(frozen=True)
class FrameResult:
    """The score of one sampled video frame.

    Example:
        >>> FrameResult(index=12, timestamp=0.5, fake_score=0.2).has_face
        True
    """

    index: int
    timestamp: float  # seconds from the start of the video
    fake_score: float | None  # None when the face stage found no face in this frame
    faces: tuple[FaceResult, ...] = ()

    @property
    def has_face(self) -> bool:
        """Whether the frame was scored (always true with the face stage off)."""
        return self.fake_score is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "index": int(self.index),
            "timestamp": float(self.timestamp),
            "fake_score": _round(self.fake_score),
            "faces": [f.to_dict() for f in self.faces],
        }


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


@dataclass(frozen=True)
class VideoResult:
    """The verdict on one video, with the per-frame detail behind it.

    Attributes:
        fake_score: The aggregated score in [0, 1]; ``None`` when no sampled frame had a face.
        label: ``"fake"`` or ``"real"``; ``None`` when no frame could be scored.
        threshold: The threshold that decided the label.
        frames: One result per decoded sampled frame, in time order.
        segments: Time ranges whose frames look fake.
        num_requested: How many frames the sampler asked for.
        sampler: ``repr`` of the sampler that ran.
        aggregator: ``repr`` of the aggregator that ran.
        video: Probe facts (size, fps, frame count, duration, rotation).
        source: The video's path.
        model: Provenance of the model.
        uncertain_band: ``(low, high)``: scores in ``[low, high)`` are ``"uncertain"``
            (the video calibration's band, or the detector's override); ``None``: no band.
        people: The people of the video (face tracks), each scored alone; the video's
            score comes from them by the ``people`` rule (default: the most fake
            person's). Empty with the face stage off or when no face was found.
        people_rule: ``repr`` of the rule that made the video's score from the people
            (``""`` when there are none).

    Example:
        >>> v = VideoResult(fake_score=0.2, label="real", threshold=0.5, frames=(), segments=(),
        ...                 num_requested=0, sampler="uniform", aggregator="mean")
        >>> v.is_fake
        False
    """

    fake_score: float | None
    label: str | None
    threshold: float
    frames: tuple[FrameResult, ...]
    segments: tuple[Segment, ...]
    num_requested: int
    sampler: str
    aggregator: str
    video: dict[str, Any] = field(default_factory=dict)
    face_stage: bool = False
    source: str = ""
    model: dict[str, Any] = field(default_factory=dict)
    uncertain_band: tuple[float, float] | None = None
    people: tuple[Person, ...] = ()
    people_rule: str = ""

    @property
    def is_fake(self) -> bool | None:
        """``True`` when the label is fake; ``None`` when no frame could be scored."""
        return None if self.label is None else self.label == "fake"

    @property
    def verdict(self) -> str | None:
        """``"real"``, ``"fake"``, or ``"uncertain"`` in the band; ``None`` when no frame could be scored."""
        return verdict(self.fake_score, self.threshold, self.uncertain_band)

    @property
    def status(self) -> str:
        """``"ok"``, or ``"no_face"`` when no sampled frame had a face."""
        return "no_face" if self.fake_score is None else "ok"

    @property
    def num_decoded(self) -> int:
        """How many of the requested frames were decoded."""
        return len(self.frames)

    @property
    def frames_without_faces(self) -> int:
        """How many decoded frames had no face (0 with the face stage off)."""
        return sum(1 for f in self.frames if not f.has_face)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary, with provenance (model, sampler, aggregator)."""
        return {
            "source": self.source,
            "status": self.status,
            "fake_score": _round(self.fake_score),
            "label": self.label,
            "is_fake": self.is_fake,
            "verdict": self.verdict,
            "threshold": float(self.threshold),
            "uncertain_band": _band(self.uncertain_band),
            "face_stage": self.face_stage,
            "num_requested": self.num_requested,
            "num_decoded": self.num_decoded,
            "frames_without_faces": self.frames_without_faces,
            "sampler": self.sampler,
            "aggregator": self.aggregator,
            "video": dict(self.video),
            "segments": [s.to_dict() for s in self.segments],
            "people_rule": self.people_rule,
            "people": [p.to_dict() for p in self.people],
            "frames": [f.to_dict() for f in self.frames],
            "model": dict(self.model),
        }
