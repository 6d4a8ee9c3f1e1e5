"""The local web service through httpx's ASGI transport: API, limits, queue, timeouts, clean-up."""

from __future__ import annotations

import asyncio
import base64
import io
import re
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the [serve] extra (starlette, uvicorn, python-multipart) is not installed")
pytest.importorskip("multipart", reason="the [serve] extra needs python-multipart")
httpx = pytest.importorskip("httpx", reason="the API tests need httpx")

from deepfakedetect import ConfigError, Detector
from deepfakedetect.serve import ServeSettings, create_app
from deepfakedetect.serve.media import sniff_media


@pytest.fixture(scope="module")
def detector() -> Detector:
    # A tiny untrained detector: the tests are about the service, not the scores.
    return Detector.from_backbone("resnet18", input_size=32, precision="fp32")


def png_bytes(w: int = 50, h: int = 40, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def mp4_bytes(tmp_path: Path, frames: int = 24, fps: int = 12, size: tuple[int, int] = (64, 48)) -> bytes:
    import imageio.v2 as imageio

    path = tmp_path / "clip.mp4"
    w, h = size
    with imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=16, output_params=["-pix_fmt", "yuv420p"]) as out:
        for i in range(frames):
            out.append_data(np.full((h, w, 3), (i * 10) % 255, dtype=np.uint8))
    return path.read_bytes()


def call(app: Any, method: str, url: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
            return await c.request(method, url, **kwargs)

    return asyncio.run(go())


def uploads_left(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.exists() else []


def wait_until(predicate: Any, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# ---------------------------------------------------------------------------- small routes
def test_health_model_and_openapi_describe_every_route(detector: Detector) -> None:
    app = create_app(detector)
    assert call(app, "GET", "/healthz").json()["status"] == "ok"
    model = call(app, "GET", "/v1/model").json()
    assert model["threshold"] == detector.threshold
    assert model["model"]["backbone"] == "resnet18"
    assert "uniform" in model["samplers"] and "mean" in model["aggregators"]
    assert model["limits"]["max_upload_bytes"] == ServeSettings().max_upload_bytes
    assert "resnet18" in model["model_card"]
    schema = call(app, "GET", "/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    api_routes = {r.path for r in app.routes if r.path.startswith(("/v1/", "/healthz"))}
    assert api_routes == set(schema["paths"])
    responses = schema["paths"]["/v1/detect"]["post"]["responses"]
    assert {"200", "413", "415", "422", "503", "504"} <= set(responses)


def test_page_is_served_offline_with_no_outside_resources(detector: Detector) -> None:
    app = create_app(detector)
    page = call(app, "GET", "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        r = call(app, "GET", asset)
        assert r.status_code == 200
        assert "http://" not in r.text.replace("http://www.w3.org/2000/svg", "") and "https://" not in r.text
    assert "https://" not in page.text and "http://" not in page.text
    ids = re.findall(r'\bid="([^"]+)"', page.text)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)  # the script finds elements by id


# ---------------------------------------------------------------------------- images and videos
def test_image_upload_returns_to_dict_with_an_overlay(detector: Detector, tmp_path: Path) -> None:
    data = png_bytes()
    (tmp_path / "a.png").write_bytes(data)
    expected = detector.detect_image(tmp_path / "a.png").to_dict()
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    app = create_app(detector, ServeSettings(temp_dir=uploads))
    r = call(app, "POST", "/v1/detect", files={"file": ("../../etc/a b.png", data, "image/png")})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["media"] == "image"
    assert got["source"] == "a_b.png"  # the uploaded name, reduced to safe characters; never a server path
    assert got["fake_score"] == pytest.approx(expected["fake_score"], abs=1e-6)
    for key in ("status", "label", "threshold", "faces", "face_stage", "model"):
        assert got[key] == expected[key]
    (exp,) = got["explanations"]
    png = base64.b64decode(exp["overlay"].split(",", 1)[1])
    assert Image.open(io.BytesIO(png)).size == (32, 32)
    assert uploads_left(uploads) == []
    no_explain = call(app, "POST", "/v1/detect", files={"file": ("a.png", data)}, data={"explain": "false"}).json()
    assert "explanations" not in no_explain


def test_video_upload_uses_the_sampler_and_returns_frames(detector: Detector, tmp_path: Path) -> None:
    data = mp4_bytes(tmp_path)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    app = create_app(detector, ServeSettings(temp_dir=uploads))
    r = call(
        app, "POST", "/v1/detect",
        files={"file": ("clip.mp4", data, "video/mp4")},
        data={"sampler": "uniform:num_frames=5", "aggregator": "max"},
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["media"] == "video" and got["source"] == "clip.mp4"
    assert len(got["frames"]) == 5 and got["num_decoded"] == 5
    assert got["fake_score"] == pytest.approx(max(f["fake_score"] for f in got["frames"]))
    assert "num_frames=5" in got["sampler"]
    assert uploads_left(uploads) == []


@pytest.mark.parametrize(
    ("payload", "status", "error"),
    [
        (b"just some text", 415, "UnsupportedMediaType"),
        (b"\xff\xd8\xff\xe0 not really a jpeg", 422, "ImageDecodeError"),
        (bytes(4) + b"ftypisom" + b"\x00" * 100, 422, "VideoDecodeError"),
    ],
)
def test_bad_files_are_refused_with_a_reason(detector: Detector, tmp_path: Path, payload: bytes, status: int, error: str) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    app = create_app(detector, ServeSettings(temp_dir=uploads))
    r = call(app, "POST", "/v1/detect", files={"file": ("x.bin", payload)})
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == error and body["detail"]
    assert str(uploads) not in body["detail"] and "deepfakedetect-serve-" not in body["detail"]
    assert uploads_left(uploads) == []


def test_bad_requests(detector: Detector) -> None:
    app = create_app(detector)
    assert call(app, "POST", "/v1/detect", content=b"raw", headers={"content-type": "image/png"}).status_code == 415
    assert call(app, "POST", "/v1/detect", files={"other": ("a.png", png_bytes())}).status_code == 400
    r = call(app, "POST", "/v1/detect", files={"file": ("a.png", png_bytes())}, data={"threshold": "2"})
    assert r.status_code == 400 and "threshold" in r.json()["detail"]
    assert call(app, "POST", "/v1/detect", files={"file": ("a.png", png_bytes())}, data={"explain": "maybe"}).status_code == 400
    r = call(app, "POST", "/v1/detect", files={"file": ("a.png", png_bytes())}, data={"people": "loudest"})
    assert r.status_code == 400 and "longest" in r.json()["detail"]


class RecordingDetector(Detector):
    """Remembers the keyword arguments of its last detect_video call."""

    last: ClassVar[dict[str, Any]] = {}

    def detect_video(self, path: Any, **kwargs: Any) -> Any:
        type(self).last = kwargs
        return super().detect_video(path, **kwargs)


def test_video_options_reach_detect_video(detector: Detector, tmp_path: Path) -> None:
    app = create_app(RecordingDetector(detector.model, detector.config, precision="fp32"))
    form = {"sampler": "uniform:num_frames=4", "aggregator": "median", "people": "longest", "threshold": "0.25"}
    r = call(app, "POST", "/v1/detect", files={"file": ("c.mp4", mp4_bytes(tmp_path))}, data=form)
    assert r.status_code == 200, r.text
    got = RecordingDetector.last
    assert got["aggregator"] == "median" and got["people"] == "longest" and got["threshold"] == 0.25
    assert "num_frames=4" in repr(got["sampler"])
    assert r.json()["threshold"] == 0.25


def test_unknown_sampler_is_a_400_naming_the_known_ones(detector: Detector, tmp_path: Path) -> None:
    app = create_app(detector)
    r = call(app, "POST", "/v1/detect", files={"file": ("c.mp4", mp4_bytes(tmp_path))}, data={"sampler": "nope"})
    assert r.status_code == 400 and r.json()["error"] == "UnknownPluginError"
    assert "uniform" in r.json()["detail"]


# ---------------------------------------------------------------------------- limits
def test_oversize_upload_is_refused_whether_or_not_its_length_is_declared(detector: Detector, tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    app = create_app(detector, ServeSettings(max_upload_bytes=10_000, temp_dir=uploads))
    big = png_bytes(200, 200, seed=1)
    assert len(big) > 10_000
    declared = call(app, "POST", "/v1/detect", files={"file": ("big.png", big)})
    assert declared.status_code == 413 and declared.json()["error"] == "TooLarge"

    boundary = "b0undary"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n"
        "Content-Type: image/png\r\n\r\n"
    ).encode() + big + f"\r\n--{boundary}--\r\n".encode()

    async def chunks() -> Any:  # no Content-Length: sent chunked, counted as it arrives
        for i in range(0, len(body), 4096):
            yield body[i : i + 4096]

    streamed = call(
        app, "POST", "/v1/detect", content=chunks(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert streamed.status_code == 413
    small = call(app, "POST", "/v1/detect", files={"file": ("small.png", png_bytes())})
    assert small.status_code == 200
    assert uploads_left(uploads) == []


def test_image_pixel_limit(detector: Detector) -> None:
    app = create_app(detector, ServeSettings(max_image_pixels=1000))
    r = call(app, "POST", "/v1/detect", files={"file": ("a.png", png_bytes(50, 40))})
    assert r.status_code == 422 and r.json()["error"] == "TooManyPixels" and "2000" in r.json()["detail"]


@pytest.mark.parametrize(
    ("settings", "form", "error"),
    [
        ({"max_video_seconds": 1.0}, {}, "TooLong"),
        ({"max_video_pixels": 64 * 48 - 1}, {}, "TooManyPixels"),
        ({"max_video_frames": 10}, {"sampler": "every_kth:k=1"}, "TooManyFrames"),
    ],
)
def test_video_limits(detector: Detector, tmp_path: Path, settings: dict, form: dict, error: str) -> None:
    data = mp4_bytes(tmp_path)  # 24 frames at 12 fps: 2 s, 64x48
    app = create_app(detector, ServeSettings(**settings))
    r = call(app, "POST", "/v1/detect", files={"file": ("clip.mp4", data)}, data=form)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == error


class BlockingDetector(Detector):
    """Scores images only once ``release`` is set, and says when it started."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started = threading.Event()
        self.release = threading.Event()

    def detect_image(self, image: Any, **kwargs: Any) -> Any:
        self.started.set()
        assert self.release.wait(30), "the test never released the detector"
        return super().detect_image(image, **kwargs)


@pytest.fixture
def blocking(detector: Detector) -> BlockingDetector:
    return BlockingDetector(detector.model, detector.config, precision="fp32")


def test_timeout_answers_504_and_the_upload_is_removed_when_the_work_ends(blocking: BlockingDetector, tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    app = create_app(blocking, ServeSettings(request_timeout=0.5, temp_dir=uploads))
    r = call(app, "POST", "/v1/detect", files={"file": ("a.png", png_bytes())})
    assert r.status_code == 504 and r.json()["error"] == "Timeout"
    gate = app.state.service.gate
    assert blocking.started.is_set() and gate.held == 1  # still running, still holding its slot
    assert len(uploads_left(uploads)) == 1  # in use by the running work
    blocking.release.set()
    assert wait_until(lambda: gate.held == 0 and not uploads_left(uploads))


def test_a_full_queue_answers_503_with_retry_after(blocking: BlockingDetector, tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    app = create_app(blocking, ServeSettings(max_concurrency=1, max_queue=1, retry_after=7, temp_dir=uploads))

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            first = asyncio.create_task(c.post("/v1/detect", files={"file": ("1.png", png_bytes(seed=1))}))
            while not blocking.started.is_set():
                await asyncio.sleep(0.02)
            second = asyncio.create_task(c.post("/v1/detect", files={"file": ("2.png", png_bytes(seed=2))}))
            while app.state.service.gate.held < 2:
                await asyncio.sleep(0.02)
            third = await c.post("/v1/detect", files={"file": ("3.png", png_bytes(seed=3))})
            blocking.release.set()
            return [await first, await second, third]

    first, second, third = asyncio.run(scenario())
    assert (first.status_code, second.status_code) == (200, 200)
    assert third.status_code == 503 and third.headers["retry-after"] == "7"
    assert third.json()["error"] == "Busy"
    assert app.state.service.gate.held == 0
    assert uploads_left(uploads) == []


# ---------------------------------------------------------------------------- paths, CORS, settings
def test_server_side_paths_are_refused_unless_their_folder_is_allowed(detector: Detector, tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "a.png").write_bytes(png_bytes())
    (tmp_path / "secret.png").write_bytes(png_bytes())
    form = lambda p: {"path": (None, str(p))}
    closed = create_app(detector)
    r = call(closed, "POST", "/v1/detect", files=form(allowed / "a.png"))
    assert r.status_code == 403 and "disabled" in r.json()["detail"]

    opened = create_app(detector, ServeSettings(allowed_path_roots=(allowed,)))
    ok = call(opened, "POST", "/v1/detect", files=form(allowed / "a.png"))
    assert ok.status_code == 200 and ok.json()["source"] == "a.png"
    assert (allowed / "a.png").exists()  # a server-side file is read, never removed
    for outside in (tmp_path / "secret.png", allowed / ".." / "secret.png", Path("/etc/passwd")):
        r = call(opened, "POST", "/v1/detect", files=form(outside))
        assert r.status_code == 403, outside


def test_no_cors_headers_unless_origins_are_allowed(detector: Detector) -> None:
    origin = {"origin": "http://elsewhere.example"}
    r = call(create_app(detector), "GET", "/v1/model", headers=origin)
    assert "access-control-allow-origin" not in r.headers
    app = create_app(detector, ServeSettings(cors_origins=("http://elsewhere.example",)))
    r = call(app, "GET", "/v1/model", headers=origin)
    assert r.headers["access-control-allow-origin"] == "http://elsewhere.example"


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="max_concurrency"):
        ServeSettings(max_concurrency=0)
    with pytest.raises(ConfigError, match="request_timeout"):
        ServeSettings(request_timeout=0)
    with pytest.raises(ConfigError, match="cors_origins"):
        ServeSettings(cors_origins="http://x")
    with pytest.raises(ConfigError, match="Detector"):
        create_app("not a detector")  # type: ignore[arg-type]


def test_serve_binds_to_loopback_by_default() -> None:
    import inspect

    from deepfakedetect.serve import serve

    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"


def test_sniffing_by_content_not_name() -> None:
    assert sniff_media(png_bytes()[:64]) == "image"
    assert sniff_media(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image"
    assert sniff_media(b"RIFF\x00\x00\x00\x00AVI LIST") == "video"
    assert sniff_media(b"\x1a\x45\xdf\xa3" + bytes(20)) == "video"
    assert sniff_media(bytes(4) + b"ftypavif") == "image"
    assert sniff_media(b"<html>") is None


def test_cli_serve_builds_its_settings_from_the_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import deepfakedetect.serve as serve_module
    from deepfakedetect.cli import main
    from deepfakedetect.cli.parser import build_parser

    defaults = build_parser().parse_args(["serve"])
    assert (defaults.host, defaults.port, defaults.allow_path, defaults.cors_origin) == ("127.0.0.1", 8000, [], [])
    model = Detector.from_backbone("resnet18", input_size=32).save_pretrained(tmp_path / "m")
    seen: dict[str, Any] = {}
    monkeypatch.setattr(serve_module, "serve", lambda det, **kw: seen.update(det=det, **kw))
    code = main([
        "serve", "--model", str(model), "--port", "9001", "--max-upload-mb", "2", "--queue", "3",
        "--timeout", "30", "--allow-path", str(tmp_path), "--cors-origin", "http://localhost:3000",
    ])
    assert code == 0
    s = seen["settings"]
    assert (seen["host"], seen["port"]) == ("127.0.0.1", 9001)
    assert (s.max_upload_bytes, s.max_queue, s.request_timeout) == (2 * 1024 * 1024, 3, 30.0)
    assert s.allowed_path_roots == (tmp_path.resolve(),) and s.cors_origins == ("http://localhost:3000",)
    assert seen["det"].config.backbone == "resnet18" and seen["det"].backend == "torch"


def test_image_size_is_reported_upright_for_exif_rotated_photos(detector: Detector) -> None:
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(buf, "JPEG", exif=exif)
    r = call(create_app(detector), "POST", "/v1/detect", files={"file": ("r.jpg", buf.getvalue())}, data={"explain": "false"})
    assert r.status_code == 200 and r.json()["image"] == {"width": 40, "height": 60}
