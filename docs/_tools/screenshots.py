"""Render pages of the built site in headless Chromium, save screenshots, report overflow.

    python docs/_tools/screenshots.py [--site site] [--out screens] [PAGE.html ...]

For each page (default: the home page, the quickstart notebook and the quality page) at
1280 px and 390 px wide, it saves ``NAME-WIDTH.png`` (the whole page) and checks that the
page does not scroll sideways: ``document.documentElement.scrollWidth`` must not exceed
``clientWidth``. When one does, it names the widest elements that stick out. Exit status
1 when any page overflows, 2 when Chromium is missing or a page does not load.

It needs a built site (``mkdocs build``; the site works from disk) and Chromium
(``apt-get install chromium``), and nothing else: it talks to Chromium over the DevTools
protocol on a pipe (``--remote-debugging-pipe``), with the standard library only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PAGES = ["index.html", "notebooks/quickstart.html", "quality.html"]
WIDTHS = [1280, 390]

# What sticks out to the right of the window, widest first (skipping things inside a
# scrolling box, which scroll on their own and do not widen the page).
_MEASURE = """
(() => {
  const cw = document.documentElement.clientWidth;
  const sw = document.documentElement.scrollWidth;
  const inScroller = (el) => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      const s = getComputedStyle(p);
      if (/(auto|scroll|hidden)/.test(s.overflowX) && p !== document.body && p !== document.documentElement) return true;
    }
    return false;
  };
  const out = [];
  for (const el of document.querySelectorAll("body *")) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > cw + 1 && !inScroller(el)) {
      out.push({tag: el.tagName.toLowerCase(), cls: String(el.className).slice(0, 60),
                right: Math.round(r.right), text: (el.innerText || "").slice(0, 50)});
    }
  }
  out.sort((a, b) => b.right - a.right);
  return JSON.stringify({scrollWidth: sw, clientWidth: cw, height: document.documentElement.scrollHeight,
                         sticking_out: out.slice(0, 5)});
})()
"""


class Chromium:
    """A headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4)."""

    def __init__(self, binary: str) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        self._profile = tempfile.mkdtemp(prefix="screens-profile-")

        def child_fds() -> None:  # the protocol wants the pipe on fds 3 (in) and 4 (out)
            r, w = os.dup2(to_chrome_r, 100), os.dup2(from_chrome_w, 101)  # out of the way of 3 and 4
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
             "--hide-scrollbars", "--allow-file-access-from-files", "--no-first-run",
             f"--user-data-dir={self._profile}", "about:blank"],
            # fds 3 and 4 are kept open (pass_fds) after child_fds has put the pipe there.
            # preexec_fn is safe here: this script runs no other threads.
            preexec_fn=child_fds,  # noqa: PLW1509
            pass_fds=(3, 4, to_chrome_r, from_chrome_w),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read_message()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.get("method") == event for e in self.events):
                self.events.clear()
                return
            self.events.append(self._read_message())
        raise TimeoutError(event)

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, OSError):  # already gone: nothing to close
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self._profile, ignore_errors=True)


def shoot(chrome: Chromium, url: str, width: int, png: Path) -> dict[str, Any]:
    target = chrome.call("Target.createTarget", url="about:blank")["targetId"]
    session = chrome.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    try:
        chrome.call("Emulation.setDeviceMetricsOverride", session, width=width, height=900,
                    deviceScaleFactor=1, mobile=width < 600)
        chrome.call("Page.enable", session)
        chrome.call("Page.navigate", session, url=url)
        chrome.wait_for("Page.loadEventFired", timeout=60)
        # Fonts, Mermaid diagrams and images settle after the load event.
        chrome.call("Runtime.evaluate", session, expression="new Promise(r => setTimeout(r, 2500))", awaitPromise=True)
        value = chrome.call("Runtime.evaluate", session, expression=_MEASURE, returnByValue=True)
        facts = json.loads(value["result"]["value"])
        height = min(int(facts["height"]), 12000)
        shot = chrome.call("Page.captureScreenshot", session, format="png", captureBeyondViewport=True,
                           clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1})
        png.write_bytes(base64.b64decode(shot["data"]))
        return facts
    finally:
        chrome.call("Target.closeTarget", targetId=target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", default=PAGES, help="pages of the built site (default: %(default)s)")
    parser.add_argument("--site", type=Path, default=Path("site"), help="the built site (default: site)")
    parser.add_argument("--out", type=Path, default=Path("screens"), help="where to save the PNGs (default: screens)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser")
                        or shutil.which("google-chrome"), help="the browser binary")
    args = parser.parse_args(argv)
    if not args.chromium:
        print("screenshots: no Chromium found (apt-get install chromium, or pass --chromium)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    chrome = Chromium(args.chromium)
    overflowing = 0
    try:
        for page in args.pages:
            path = (args.site / page).resolve()
            if not path.is_file():
                print(f"screenshots: {path} does not exist (build the site first: mkdocs build)", file=sys.stderr)
                return 2
            for width in WIDTHS:
                png = args.out / f"{page.removesuffix('.html').replace('/', '-')}-{width}.png"
                facts = shoot(chrome, path.as_uri(), width, png)
                over = facts["scrollWidth"] > facts["clientWidth"]
                overflowing += over
                print(f"{page:<28} {width:>5} px  scrollWidth {facts['scrollWidth']:>5}  "
                      f"clientWidth {facts['clientWidth']:>5}  {'OVERFLOW' if over else 'fits'}  -> {png}")
                for el in facts["sticking_out"] if over else []:
                    print(f"    sticks out to {el['right']} px: <{el['tag']} class={el['cls']!r}> {el['text']!r}")
    finally:
        chrome.close()
    return 1 if overflowing else 0


if __name__ == "__main__":
    sys.exit(main())
