"""Screenshots of the page of ``deepfakedetect serve``, made by the docs build.

Made by ``docs/_hooks/figures.py`` while the site builds: a live server (the shipped
model, on a free 127.0.0.1 port) and headless Chromium, driven as the browser test drives
it (``tests/cdp.py``), upload a shared StyleGAN2 face and a FaceForensics++ deepfake. The
screenshots show shared data, so they are made here rather than kept in the repository.
Needs Chromium (``apt-get install chromium``); the build stops and says so without it.
"""

from __future__ import annotations

import importlib.util
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image

_ROOT = Path(__file__).resolve().parents[2]
FACE = "data/faces/stylegan2_ffhq/fake/fake_102.jpg"  # the page must call it fake (checked below)
VIDEO = "data/videos/ffpp_c23/fake/Deepfakes__033_097.mp4"


def _cdp() -> Any:
    spec = importlib.util.spec_from_file_location("dfd_docs_cdp", _ROOT / "tests" / "cdp.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def _page() -> Iterator[tuple[Any, str]]:
    cdp = _cdp()
    exe = cdp.find_chromium()
    if exe is None:
        raise RuntimeError(
            "docs/_figures/serve.py: the serve guide's screenshots need Chromium "
            "(apt-get install chromium, or set DEEPFAKEDETECT_CHROMIUM)"
        )
    import uvicorn  # the [serve] extra: imported when a figure is made, not when the hook lists figures

    from deepfakedetect import Detector
    from deepfakedetect.serve import ServeSettings, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(Detector.from_pretrained(), ServeSettings(request_timeout=600))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("docs/_figures/serve.py: the server did not start")
        time.sleep(0.05)
    browser = cdp.Chromium(exe)
    try:
        yield browser, f"http://127.0.0.1:{port}/"
    finally:
        browser.close()
        server.should_exit = True
        thread.join(30)


def _upload(out: Path, file: Path, expect: str | None) -> None:
    with _page() as (browser, url):
        browser.goto(url)
        browser.wait_for("document.getElementById('sampler').options.length > 1", 30)
        browser.set_file("#file", file)
        state = browser.wait_for("['done', 'error'].includes(document.body.dataset.state) && document.body.dataset.state", 600)
        verdict = browser.evaluate("document.getElementById('verdict').textContent").lower()
        if state != "done" or (expect is not None and verdict != expect):
            raise RuntimeError(
                f"docs/_figures/serve.py: the page said {verdict!r} ({state}) for {file.name}, the guide shows "
                f"{expect!r}: update docs/guides/serve.md and this file"
            )
        browser.wait_for("[...document.images].every(i => i.complete)", 30)
        if file.suffix == ".mp4":  # the player grows once it has read the video's size
            browser.wait_for("document.getElementById('player').readyState >= 1", 30)
        browser.screenshot(out)
    # 192 colours are plenty for a page and make the file about 4x smaller.
    Image.open(out).convert("RGB").quantize(colors=192, dither=Image.Dither.NONE).save(out, optimize=True)


def make_image_page(out: Path, shared: Path) -> None:
    _upload(out, shared / FACE, "fake")


def make_video_page(out: Path, shared: Path) -> None:
    _upload(out, shared / VIDEO, "fake")


FIGURES = {"serve-page-image.png": make_image_page, "serve-page-video.png": make_video_page}
