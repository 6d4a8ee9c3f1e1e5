"""Helpers for the hostile-input tests (issue 15): bounded runs of the CLI and of API calls.

Every case here must fail by a timeout rather than hang the suite, so the command line
runs in a child process with a wall-clock limit, and API calls that could block run in
a daemon thread that the test stops waiting for.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Exit codes the README promises.
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child Python: this checkout's sources first, no progress bars."""
    env = dict(os.environ)
    src = str(REPO / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["DEEPFAKEDETECT_PROGRESS"] = "0"
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env


def run_cli(
    args: list[str], *, timeout: float = 90.0, cwd: str | os.PathLike[str] | None = None, **popen: Any
) -> subprocess.CompletedProcess[str]:
    """``python -m deepfakedetect ARGS`` in a child process; the test fails if it outlives ``timeout``."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "deepfakedetect", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            **popen,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"deepfakedetect {' '.join(args)} hung: no exit after {timeout:g} s (stderr: {e.stderr!r})")


def run_python(code: str, *, timeout: float = 90.0, cwd: str | os.PathLike[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a child Python with this checkout on its path; fail the test on a hang."""
    try:
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=cwd,
            env=child_env(), stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the child process hung: no exit after {timeout:g} s")


def within(seconds: float, fn: Callable[[], Any]) -> Any:
    """``fn()``'s result or exception, or a test failure if it does not return in ``seconds``.

    The call runs in a daemon thread: a call that blocks forever leaves the thread behind
    (it cannot be killed) but never the test suite.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed back to the test
            box["error"] = e

    t = threading.Thread(target=run, daemon=True, name="hostile-within")
    t.start()
    t.join(seconds)
    if t.is_alive():
        pytest.fail(f"the call blocked for more than {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def one_line_error(stderr: str) -> None:
    """No traceback, and every line that is not a log line is one ``deepfakedetect:`` message."""
    assert "Traceback" not in stderr, stderr
    for line in stderr.splitlines():
        assert line.startswith(("deepfakedetect:", "WARNING", "INFO", "DEBUG")), line


def make_fifo(path: Path) -> Path:
    """A named pipe at ``path`` (skips where the platform has none)."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("this platform has no named pipes")
    os.mkfifo(path)
    return path


def open_and_close_writer_later(path: Path, delay: float = 0.5) -> threading.Thread:
    """A writer that opens the FIFO, writes nothing and closes it (the issue's case), in the background.

    Opening a FIFO for writing blocks until a reader opens it, so this waits at most a
    few seconds for one (non-blocking retries) and then gives up.
    """

    def run() -> None:
        import time

        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: no reader yet
                time.sleep(0.05)
                continue
            time.sleep(delay)
            os.close(fd)
            return

    t = threading.Thread(target=run, daemon=True, name="hostile-fifo-writer")
    t.start()
    return t
