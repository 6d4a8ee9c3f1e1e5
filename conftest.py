"""Doctest set-up: the API examples score real files, named as a user would name them.

Docstring examples say ``detector.detect_image("face.jpg")`` and
``detector.detect_video("clip.mp4")``. Each doctest runs in a temporary folder where those
names point into the shared data folder (``DEEPFAKEDETECT_SHARED``, default ``../shared``):
``face.jpg`` a real LFW photo, ``fake.jpg`` a face swap, ``clip.mp4`` a FaceForensics++
deepfake. Without the shared folder, the doctests that use them are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parent
_SHARED = Path(os.environ.get("DEEPFAKEDETECT_SHARED", _REPO.parent / "shared")).resolve()
_FILES = {
    "face.jpg": "data/faces/lfw_faceswap/test/real/real_0.jpg",
    "fake.jpg": "data/faces/lfw_faceswap/test/fake/fake_1009.jpg",
    "clip.mp4": "data/videos/ffpp_c23/fake/Deepfakes__033_097.mp4",
}


@pytest.fixture(autouse=True)
def _doctest_media(request: pytest.FixtureRequest) -> None:
    # tmp_path and monkeypatch are requested only for doctests that need them: an autouse
    # monkeypatch would be torn down around every test, before the test's own fixtures.
    dtest = getattr(request.node, "dtest", None)  # only doctests
    if dtest is None:
        return
    source = "\n".join(ex.source for ex in dtest.examples)
    wanted = [name for name in _FILES if f"\"{name}\"" in source]
    if not wanted:
        return
    missing = [name for name in wanted if not (_SHARED / _FILES[name]).is_file()]
    if missing:
        pytest.skip(f"shared data not found at {_SHARED} (set DEEPFAKEDETECT_SHARED to its path)")
    tmp_path: Path = request.getfixturevalue("tmp_path")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    for name in wanted:
        (tmp_path / name).symlink_to(_SHARED / _FILES[name])
    monkeypatch.chdir(tmp_path)
