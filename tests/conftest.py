"""Shared test fixtures.

Real data lives outside the repository, in the folder named by ``DEEPFAKEDETECT_SHARED``
(default: ``../shared`` beside the checkout). Tests that need it use the ``shared_dir``
fixture, which skips with a clear reason when the folder is absent.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

# huggingface_hub reads its endpoint and cache folder when it is imported, so they are
# set here, before any test module imports it. The endpoint is a loopback port that the
# ``hub_server`` fixture serves; nothing reaches the internet.
_sock = socket.socket()
_sock.bind(("127.0.0.1", 0))
HUB_PORT = _sock.getsockname()[1]
_sock.close()
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{HUB_PORT}"
os.environ["HF_HUB_CACHE"] = _hf_cache = tempfile.mkdtemp(prefix="dfd-hf-cache-")
atexit.register(shutil.rmtree, _hf_cache, ignore_errors=True)  # one per test session, removed at exit
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ["DEEPFAKEDETECT_PROGRESS"] = "0"

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEEPFAKEDETECT_SHARED", REPO.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared data folder; skips the test when it is absent."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"shared data not found at {SHARED} (set DEEPFAKEDETECT_SHARED to its path)")
    return SHARED


@pytest.fixture(scope="session")
def retinaface_weights(shared_dir: Path) -> Path:
    """Path of the RetinaFace weights in the shared folder."""
    path = shared_dir / "weights" / "retinaface_mobilenet0.25.safetensors"
    if not path.is_file():
        pytest.skip(f"RetinaFace weights not found at {path}")
    return path


# -- the loopback Hub -------------------------------------------------------------------
# One server for the whole session, on the port HF_ENDPOINT names; every test that uses it
# starts from no repos, no switches and an empty request log.


from collections.abc import Iterator  # noqa: E402

from hub_server import HubServer  # noqa: E402


@pytest.fixture(scope="session")
def hub_server() -> Iterator[HubServer]:
    """The loopback Hub (``tests/hub_server.py``) serving ``HF_ENDPOINT``; reset for each test."""
    server = HubServer(HUB_PORT).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _reset_hub_server(request: pytest.FixtureRequest) -> None:
    if "hub_server" in request.fixturenames:
        request.getfixturevalue("hub_server").reset()
