"""The page in a real browser: headless Chromium uploads a shared fake face and a video to a live server.

Needs Debian's ``chromium`` (``apt-get install chromium``; ``DEEPFAKEDETECT_CHROMIUM`` names
another binary) and the shared data; skipped with the reason otherwise. Screenshots go to
``DEEPFAKEDETECT_ARTIFACTS`` (default: the test's temporary folder), for CI to keep.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the [serve] extra is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")

from cdp import BrowserError, Chromium, find_chromium

from deepfakedetect import Detector
from deepfakedetect.serve import ServeSettings, create_app

pytestmark = [pytest.mark.slow, pytest.mark.shared]


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector.from_pretrained()


@pytest.fixture(scope="module")
def server(detector: Detector) -> Iterator[str]:
    """The app under uvicorn on a free loopback port, in a thread."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(detector, ServeSettings(request_timeout=300))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    exe = find_chromium()
    if exe is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set DEEPFAKEDETECT_CHROMIUM)")
    try:
        b = Chromium(exe)
    except (BrowserError, OSError) as e:
        pytest.skip(f"headless Chromium could not start here: {e}")
    yield b
    b.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("DEEPFAKEDETECT_ARTIFACTS")
    return Path(given) if given else tmp_path_factory.mktemp("artifacts")


def a_fake_face(shared_dir: Path, detector: Detector) -> Path:
    """A shared fake face that the shipped model calls fake (the page must then say so)."""
    folder = shared_dir / "data" / "faces" / "stylegan2_ffhq" / "fake"
    for name in ("fake_102.jpg", "fake_104.jpg", "fake_103.jpg", "fake_1.jpg"):
        path = folder / name
        if path.is_file() and ((r := detector.detect_image(path)).verdict or r.label) == "fake":  # what the page shows
            return path
    if not folder.is_dir():
        pytest.skip(f"{folder} not found in the shared data")
    pytest.fail(f"the shipped model scores none of the candidate fakes in {folder} as fake: pick others here")


def test_page_upload_shows_fake_and_an_overlay(
    server: str, browser: Chromium, detector: Detector, shared_dir: Path, artifacts: Path
) -> None:
    face = a_fake_face(shared_dir, detector)
    browser.goto(server + "/")
    browser.wait_for("document.getElementById('sampler').options.length > 1", 20)
    browser.set_file("#file", face)
    state = browser.wait_for("['done', 'error'].includes(document.body.dataset.state) && document.body.dataset.state", 120)
    assert state == "done", browser.evaluate("document.getElementById('status').textContent")
    assert browser.evaluate("document.getElementById('verdict').textContent").lower() == "fake"
    # The Grad-CAM overlay is an image that actually decoded, and the face is boxed.
    browser.wait_for("[...document.querySelectorAll('#overlays img')].some(i => i.complete && i.naturalWidth > 0)", 20)
    assert browser.evaluate("document.querySelectorAll('#boxes rect').length") >= 1
    shot = browser.screenshot(artifacts / "serve-page-image.png")
    assert shot.stat().st_size > 10_000


def test_page_video_shows_the_per_frame_plot(server: str, browser: Chromium, shared_dir: Path, artifacts: Path) -> None:
    video = shared_dir / "data" / "videos" / "ffpp_c23" / "fake" / "Deepfakes__033_097.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not found")
    browser.goto(server + "/")
    browser.wait_for("document.getElementById('sampler').options.length > 1", 20)
    browser.set_file("#file", video)
    state = browser.wait_for("['done', 'error'].includes(document.body.dataset.state) && document.body.dataset.state", 300)
    assert state == "done", browser.evaluate("document.getElementById('status').textContent")
    assert browser.evaluate("document.getElementById('verdict').textContent").lower() in ("fake", "real", "uncertain")
    assert browser.evaluate("document.querySelectorAll('#plot circle').length") >= 8
    assert browser.evaluate("document.querySelectorAll('#plot polyline').length") == 1
    # The default model crops faces, so the video's people (face tracks) are listed: a header and a row each.
    assert browser.evaluate("document.querySelectorAll('#video-view #people tr').length") >= 2
    assert browser.evaluate("document.getElementById('people-rule').options.length") == 4  # untouched by the results
    # The player grows once it has read the video's size: wait for that, so the screenshot shows the whole page.
    browser.wait_for("document.getElementById('player').readyState >= 1", 30)
    browser.screenshot(artifacts / "serve-page-video.png")
