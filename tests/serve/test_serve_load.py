"""A bounded load test of a live server on 127.0.0.1: 200 requests at concurrency 8.

The server runs in its own process (so its memory can be read) with one scoring slot and
a queue of four, so that concurrency 8 overflows: every answer must be 200 or a 503 with
``Retry-After`` (the clients wait that long before their next request), uploads must all be removed, and the server's resident memory must
be flat between the first quarter and the end.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the [serve] extra is not installed")
pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")
httpx = pytest.importorskip("httpx", reason="the load test needs httpx")

from deepfakedetect import Detector

pytestmark = pytest.mark.slow

REQUESTS = 200
CONCURRENCY = 8
# Resident memory may grow this much between the end of the first quarter and the end
# (allocator noise); a leak of one upload or one result per request would exceed it.
RSS_SLACK_MB = 40

SERVER = """
import sys
from deepfakedetect import Detector
from deepfakedetect.serve import ServeSettings, serve
det = Detector.from_pretrained(sys.argv[1], precision="fp32")
settings = ServeSettings(max_concurrency=1, max_queue=4, retry_after=1, temp_dir=sys.argv[3])
serve(det, port=int(sys.argv[2]), settings=settings, log_level="warning")
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def images(n: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        buf = io.BytesIO()
        size = (48 + 8 * (i % 5), 40 + 8 * (i % 3))
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads resident memory from /proc (Linux)")
def test_two_hundred_requests_at_concurrency_eight(tmp_path: Path) -> None:
    model = Detector.from_backbone("resnet18", input_size=32).save_pretrained(tmp_path / "model")
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(model), str(port), str(uploads)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
            time.sleep(0.2)

        payloads = images(20)
        statuses: list[int] = []
        missing_retry_after = 0

        def one(i: int, client: httpx.Client) -> tuple[int, bool]:
            r = client.post(
                "/v1/detect", files={"file": (f"{i}.jpg", payloads[i % len(payloads)], "image/jpeg")}, timeout=60
            )
            if r.status_code == 503 and "retry-after" in r.headers:
                time.sleep(float(r.headers["retry-after"]))  # a polite client waits before its next request
            return r.status_code, r.status_code != 503 or "retry-after" in r.headers

        with httpx.Client(base_url=base, limits=httpx.Limits(max_connections=CONCURRENCY)) as client, ThreadPoolExecutor(CONCURRENCY) as pool:
            first = list(pool.map(lambda i: one(i, client), range(REQUESTS // 4)))
            rss_early = rss_mb(proc.pid)
            rest = list(pool.map(lambda i: one(i, client), range(REQUESTS // 4, REQUESTS)))
            rss_end = rss_mb(proc.pid)
        for status, ok in first + rest:
            statuses.append(status)
            missing_retry_after += not ok
        counts = Counter(statuses)
        assert set(counts) <= {200, 503}, counts
        assert counts[200] >= REQUESTS // 2, counts  # the server kept working through the overload
        assert missing_retry_after == 0
        assert rss_end - rss_early < RSS_SLACK_MB, (rss_early, rss_end)
        assert httpx.get(base + "/healthz").json()["busy"] == 0
        assert list(uploads.iterdir()) == []
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
