"""The face stage: find faces, pick the ones to score, crop them with a margin.

Public namespace of the built-in face detector and the face-stage helpers::

    from deepfakedetect.faces import RetinaFaceDetector, crop_face, select_faces

:func:`get_face_detector` (also at the top level) makes a detector by registry name;
third-party packages add their own through the ``deepfakedetect.face_detectors``
entry-point group.
"""

from deepfakedetect.faces.detectors import (
    Face,
    FaceDetector,
    RetinaFaceDetector,
    get_face_detector,
    list_face_detectors,
    register_face_detector,
    resolve_retinaface_weights,
)
from deepfakedetect.faces.stage import FaceStage, crop_face, select_faces

__all__ = [
    "Face",
    "FaceDetector",
    "FaceStage",
    "RetinaFaceDetector",
    "crop_face",
    "get_face_detector",
    "list_face_detectors",
    "register_face_detector",
    "resolve_retinaface_weights",
    "select_faces",
]
