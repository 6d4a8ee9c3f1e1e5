"""The local web service: a Starlette app around one :class:`~deepfakedetect.Detector`.

Routes: ``POST /v1/detect`` (multipart upload of an image or a video), ``GET /v1/model``,
``GET /healthz``, ``GET /openapi.json``, and the page at ``/`` with its files under
``/static/``. How a request travels:

1. The body is read as it arrives and refused with 413 once it passes
   ``max_upload_bytes`` (a ``Content-Length`` above it is refused before reading).
2. The upload is written to a folder of its own in the temporary folder.
3. Admission: if ``max_concurrency`` requests are running and ``max_queue`` wait, the
   answer is 503 with ``Retry-After``; otherwise the work is queued for a thread.
4. The work checks the limits (pixels, duration, frames), scores, and the answer is the
   result's ``to_dict()`` (``source`` is the uploaded file's name, never a server path).
5. The upload's folder is removed when the work ends, whether it succeeded, failed, was
   refused, or outlived its request's timeout (answered 504 at the deadline).
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import math
import re
import shutil
import tempfile
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from deepfakedetect._errors import (
    ConfigError,
    DeepfakeDetectError,
    ImageDecodeError,
    InputError,
    NoFacesError,
    UnknownPluginError,
    VideoDecodeError,
)
from deepfakedetect._version import __version__
from deepfakedetect.detector import Detector
from deepfakedetect.io.probe import probe_video
from deepfakedetect.models.card import render_model_card
from deepfakedetect.serve.media import sniff_media
from deepfakedetect.serve.openapi import openapi_schema
from deepfakedetect.serve.settings import ServeSettings
from deepfakedetect.video.aggregators import list_aggregators
from deepfakedetect.video.people import PEOPLE_RULES
from deepfakedetect.video.samplers import get_sampler, list_samplers

logger = logging.getLogger(__name__)

__all__ = ["create_app"]

# Security headers on every answer: the page loads nothing from elsewhere (no CDN).
_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ApiError(Exception):
    """An answer other than 200, with a JSON body ``{"error": ..., "detail": ...}``."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.error, "detail": self.detail}, status_code=self.status, headers=self.headers)


class _TooLarge(Exception):
    """The request body passed ``max_upload_bytes`` while it was being read."""


@dataclass(frozen=True)
class _Options:
    sampler: str | None
    aggregator: str | None
    people: str | None
    explain: bool | None
    threshold: float | None


class _Gate:
    """Admission and the worker threads: at most ``max_concurrency`` running, ``max_queue`` waiting.

    A slot is held from admission until the work has really ended (not when its request
    was answered), so work that outlives a timeout still counts against the bounds.
    """

    def __init__(self, settings: ServeSettings) -> None:
        self.capacity = settings.max_concurrency + settings.max_queue
        self.max_workers = settings.max_concurrency
        self._lock = threading.Lock()
        self._held = 0
        self._executor: ThreadPoolExecutor | None = None

    @property
    def held(self) -> int:
        """Requests admitted whose work has not ended yet (running or queued)."""
        with self._lock:
            return self._held

    def submit(self, work: Callable[[], dict[str, Any]], cleanup: Callable[[], None]) -> Future[dict[str, Any]] | None:
        """Queue ``work``; ``None`` when full. ``cleanup`` runs once the work ended or was cancelled."""
        with self._lock:
            if self._held >= self.capacity:
                return None
            self._held += 1
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.max_workers, thread_name_prefix="deepfakedetect-serve")
            executor = self._executor
        try:
            future = executor.submit(work)
        except RuntimeError:  # shut down meanwhile
            self._release(cleanup)
            return None
        future.add_done_callback(lambda _: self._release(cleanup))
        return future

    def _release(self, cleanup: Callable[[], None]) -> None:
        try:
            cleanup()
        finally:
            with self._lock:
                self._held -= 1

    def shutdown(self) -> None:
        """Stop taking work; queued work is cancelled (its uploads removed), running work finishes."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def create_app(detector: Detector, settings: ServeSettings | None = None) -> Starlette:
    """The ASGI application serving ``detector``; run it with uvicorn (``deepfakedetect serve`` does).

    Args:
        detector: The detector to score with (shared by every request; scoring is thread-safe).
        settings: Limits and switches (default: :class:`ServeSettings`'s safe defaults).

    Returns:
        A Starlette application.

    Raises:
        ConfigError: when ``detector`` is not a Detector or ``settings`` not ServeSettings.

    Example:
        >>> from deepfakedetect import Detector
        >>> app = create_app(Detector.from_backbone("resnet18", input_size=32))
        >>> sorted(r.path for r in app.routes)[:3]
        ['/', '/healthz', '/openapi.json']
    """
    if not isinstance(detector, Detector):
        raise ConfigError(f"create_app needs a Detector, got {type(detector).__name__}")
    settings = settings if settings is not None else ServeSettings()
    if not isinstance(settings, ServeSettings):
        raise ConfigError(f"create_app settings must be ServeSettings, got {type(settings).__name__}")
    service = _Service(detector, settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(service.gate.shutdown)

    middleware = []
    if settings.cors_origins:
        middleware.append(
            Middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"])
        )
    routes = [
        Route("/", service.page, methods=["GET"]),
        Route("/healthz", service.healthz, methods=["GET"]),
        Route("/openapi.json", service.openapi, methods=["GET"]),
        Route("/v1/model", service.model, methods=["GET"]),
        Route("/v1/detect", service.detect, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=settings.static_dir), name="static"),
    ]
    middleware.insert(0, Middleware(_SecurityHeaders))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.service = service
    return app


class _SecurityHeaders:
    """Pure ASGI middleware adding :data:`_SECURITY_HEADERS` to every HTTP answer."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in _SECURITY_HEADERS.items()]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in self._extra if k not in present
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _Service:
    def __init__(self, detector: Detector, settings: ServeSettings) -> None:
        self.detector = detector
        self.settings = settings
        self.gate = _Gate(settings)
        # Grad-CAM hooks the network and runs a backward pass: one explanation at a time.
        self._explain_lock = threading.Lock()

    # ------------------------------------------------------------------ small routes
    async def page(self, request: Request) -> Response:
        return FileResponse(self.settings.static_dir / "index.html", media_type="text/html")

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__, "busy": self.gate.held})

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_schema(__version__))

    async def model(self, request: Request) -> Response:
        det = self.detector
        cfg = det.config
        return JSONResponse(
            {
                "library_version": __version__,
                "backend": det.backend,
                "model": det.provenance,
                "threshold": det.threshold,
                "labels": list(cfg.labels),
                "calibration": cfg.to_dict().get("calibration"),
                "face_stage": cfg.faces.enabled,
                "video": {"sampler": cfg.video.sampler, "aggregator": cfg.video.aggregator},
                "samplers": list_samplers(),
                "aggregators": list_aggregators(),
                "explain": det.backend == "torch",
                "limits": self.settings.public_dict(),
                "model_card": render_model_card(cfg),
            }
        )

    # ------------------------------------------------------------------ detect
    async def detect(self, request: Request) -> Response:
        try:
            return await self._detect(request)
        except ApiError as e:
            return e.response()

    async def _detect(self, request: Request) -> Response:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.request_timeout
        workdir = Path(tempfile.mkdtemp(prefix="deepfakedetect-serve-", dir=self.settings.temp_dir))
        owned = True  # until the work is queued, this request removes the folder

        def cleanup() -> None:
            shutil.rmtree(workdir, ignore_errors=True)

        try:
            path, name, options = await self._receive(request, workdir)
            future = self.gate.submit(lambda: self._work(path, name, options, workdir), cleanup)
            if future is None:
                raise ApiError(
                    503,
                    "Busy",
                    f"the server is busy ({self.gate.capacity} requests running or queued); retry later",
                    {"Retry-After": str(self.settings.retry_after)},
                )
            owned = False
            try:
                result = await asyncio.wait_for(asyncio.wrap_future(future), max(0.0, deadline - loop.time()))
            except (TimeoutError, asyncio.TimeoutError):
                future.cancel()  # removes it from the queue if it has not started; running work cannot be stopped
                raise ApiError(
                    504,
                    "Timeout",
                    f"not done within the request timeout of {self.settings.request_timeout:g} s; "
                    "send a shorter video or fewer frames (sampler), or raise --timeout",
                ) from None
            return JSONResponse(result)
        finally:
            if owned:
                cleanup()

    async def _receive(self, request: Request, workdir: Path) -> tuple[Path, str, _Options]:
        s = self.settings
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            raise ApiError(415, "UnsupportedMediaType", "send the file as multipart/form-data with a 'file' field")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > s.max_upload_bytes:
            raise ApiError(413, "TooLarge", _too_large(s.max_upload_bytes))

        async def limited() -> AsyncGenerator[bytes, None]:
            total = 0
            async for chunk in request.stream():
                total += len(chunk)
                if total > s.max_upload_bytes:
                    raise _TooLarge
                yield chunk

        parser = MultiPartParser(request.headers, limited(), max_files=1, max_fields=16, max_part_size=64 * 1024)
        try:
            form = await parser.parse()
        except _TooLarge:
            raise ApiError(413, "TooLarge", _too_large(s.max_upload_bytes)) from None
        except MultiPartException as e:
            raise ApiError(400, "BadRequest", f"malformed multipart form: {e}") from None
        try:
            options = _parse_options(form)
            upload = form.get("file")
            server_path = form.get("path")
            if isinstance(upload, UploadFile):
                name = _safe_name(upload.filename or "upload")
                target = workdir / name
                with target.open("wb") as out:
                    while chunk := await upload.read(1024 * 1024):
                        out.write(chunk)
                return target, name, options
            if isinstance(server_path, str) and server_path:
                return self._server_path(server_path), Path(server_path).name, options
            raise ApiError(400, "BadRequest", "no file: send the image or video in a multipart field named 'file'")
        finally:
            await form.close()

    def _server_path(self, given: str) -> Path:
        roots = self.settings.allowed_path_roots
        if not roots:
            raise ApiError(
                403,
                "Forbidden",
                "server-side paths are disabled: upload the file instead, or start the server with --allow-path DIR",
            )
        path = Path(given).resolve()
        if not any(path.is_relative_to(root) for root in roots) or not path.is_file():
            raise ApiError(403, "Forbidden", "that path is not a file inside the folders this server allows")
        return path

    # ------------------------------------------------------------------ the work (in a thread)
    def _work(self, path: Path, name: str, options: _Options, workdir: Path) -> dict[str, Any]:
        try:
            with path.open("rb") as f:
                head = f.read(64)
            media = sniff_media(head)
            if media is None:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"{name}: not an image (JPEG, PNG, GIF, WebP, BMP, TIFF) or a video (MP4, MOV, MKV, WebM, AVI)",
                )
            if media == "image":
                result = self._image(path, name, options)
            else:
                result = self._video(path, name, options)
            result["media"] = media
            return result
        except ApiError:
            raise
        except (ImageDecodeError, VideoDecodeError, NoFacesError, InputError) as e:
            raise ApiError(422, type(e).__name__, _scrub(str(e), path, name, workdir)) from e
        except (UnknownPluginError, ConfigError) as e:
            raise ApiError(400, type(e).__name__, _scrub(str(e), path, name, workdir)) from e
        except DeepfakeDetectError as e:
            raise ApiError(500, type(e).__name__, _scrub(str(e), path, name, workdir)) from e

    def _image(self, path: Path, name: str, options: _Options) -> dict[str, Any]:
        s = self.settings
        try:
            with Image.open(path) as im:
                w, h = im.size
                # Boxes are in upright pixels (the loader applies EXIF orientation), as browsers show it.
                if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                    w, h = h, w
        except Exception as e:
            raise ImageDecodeError(f"{name}: not a readable image ({type(e).__name__})") from e
        if w * h > s.max_image_pixels:
            raise ApiError(
                422, "TooManyPixels", f"{name}: {w}x{h} is {w * h} pixels, above this server's limit of {s.max_image_pixels}"
            )
        det = self.detector
        r = det.detect_image(path, threshold=options.threshold)
        out = r.to_dict()
        out["source"] = name
        out["image"] = {"width": w, "height": h}
        explain = options.explain if options.explain is not None else True
        if explain:
            out["explanations"] = self._explanations(path, len(r.faces) if det.config.faces.enabled else 1)
        return out

    def _explanations(self, path: Path, count: int) -> list[dict[str, Any]]:
        det = self.detector
        if det.backend != "torch":
            return []  # Grad-CAM needs gradients, which only the torch backend has
        out = []
        for i in range(min(count, self.settings.explain_faces)):
            with self._explain_lock:
                e = det.explain(path, face_index=i)
            buf = io.BytesIO()
            e.overlay(alpha=0.5).save(buf, format="PNG")
            out.append(
                {
                    "face_index": i,
                    "box": None if e.face is None else [float(v) for v in e.face.box],
                    "fake_score": float(e.fake_score),
                    "layer": e.layer,
                    "overlay": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"),
                }
            )
        return out

    def _video(self, path: Path, name: str, options: _Options) -> dict[str, Any]:
        s = self.settings
        det = self.detector
        timeout = min(s.request_timeout, 120.0)
        info = probe_video(path, timeout=timeout)
        pixels = info.width * info.height
        if pixels > s.max_video_pixels:
            raise ApiError(
                422,
                "TooManyPixels",
                f"{name}: {info.width}x{info.height} frames are {pixels} pixels, above this server's limit of {s.max_video_pixels}",
            )
        if not math.isfinite(info.duration) or info.duration > s.max_video_seconds:
            raise ApiError(
                422, "TooLong", f"{name}: {info.duration:.1f} s long, above this server's limit of {s.max_video_seconds:g} s"
            )
        sampler = get_sampler(options.sampler if options.sampler is not None else det.config.video.sampler)
        wanted = len(set(sampler(info)))
        if wanted > s.max_video_frames:
            raise ApiError(
                422,
                "TooManyFrames",
                f"{name}: the sampler {sampler!r} asks for {wanted} frames, above this server's limit of "
                f"{s.max_video_frames}; ask for fewer (e.g. sampler=uniform:num_frames=32)",
            )
        v = det.detect_video(
            path,
            sampler=sampler,
            aggregator=options.aggregator,
            people=options.people,
            threshold=options.threshold,
            progress=False,
            timeout=timeout,
        )
        out = v.to_dict()
        out["source"] = name
        return out


def _parse_options(form: Any) -> _Options:
    def text(key: str) -> str | None:
        value = form.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ApiError(400, "BadRequest", f"form field {key!r} must be text")
        return value.strip() or None

    explain = text("explain")
    if explain is not None and explain.lower() not in _TRUE | _FALSE:
        raise ApiError(400, "BadRequest", f"explain must be true or false, got {explain!r}")
    people = text("people")
    if people is not None and people not in PEOPLE_RULES:
        raise ApiError(400, "BadRequest", f"people must be one of {', '.join(PEOPLE_RULES)}, got {people!r}")
    threshold = text("threshold")
    thr: float | None = None
    if threshold is not None:
        try:
            thr = float(threshold)
        except ValueError:
            thr = math.nan
        if not 0.0 <= thr <= 1.0:
            raise ApiError(400, "BadRequest", f"threshold must be a number in [0, 1], got {threshold!r}")
    return _Options(
        sampler=text("sampler"),
        aggregator=text("aggregator"),
        people=people,
        explain=None if explain is None else explain.lower() in _TRUE,
        threshold=thr,
    )


def _safe_name(filename: str) -> str:
    """The uploaded file's base name, reduced to safe characters (it names the temporary copy)."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _SAFE_NAME.sub("_", base).lstrip(".")[:120]
    return cleaned or "upload"


def _scrub(message: str, path: Path, name: str, workdir: Path) -> str:
    """An error message without server paths: the temporary copy is called by its uploaded name."""
    return message.replace(str(path), name).replace(str(workdir), "")


def _too_large(limit: int) -> str:
    return f"the upload is larger than this server's limit of {limit} bytes ({limit / 1024 / 1024:.3g} MB)"
