"""MkDocs hook: a notebook page must not show machine paths, memory addresses or stray values.

The notebooks run while the site is built; what they print is what users read. This hook
looks at each rendered notebook page and fails the build when an output shows:

- an absolute path (``/home/...``, ``/tmp/...``, ``C:\\...``): a path of the build machine;
- a memory address (``<function f at 0x7f...>``): an object printed without a useful repr;
- a lone ``'0'``, or any other bare quoted string, as a cell's value: the leftover of a
  last line that was not meant to be shown (``os.environ.setdefault(...)``);
- an error or a traceback.

``problems_in_notebook`` does the same for an executed notebook (``nbformat`` JSON);
``tests/docs/test_notebook_outputs.py`` tests it on made-up notebooks.
"""

from __future__ import annotations

import html as html_lib
import re
from typing import Any

from mkdocs.exceptions import PluginError

_ABSOLUTE_PATH = re.compile(
    r"(?<![\w.:/~-])(?:/(?:home|tmp|work|Users|root|var|private|opt|mnt|usr|srv|data)/[^\s'\"<>),]+"
    r"|\b[A-Za-z]:\\[^\s'\"<>]+)"
)
_ADDRESS = re.compile(r"\bat 0x[0-9a-fA-F]{4,}|\b0x[0-9a-fA-F]{8,}\b")
_LONE_STRING = re.compile(r"^\s*'[^'\n]{0,40}'\s*$")
_TRACEBACK = re.compile(r"Traceback \(most recent call last\)")


def problems_in_text(text: str, where: str) -> list[str]:
    found = []
    for m in _ABSOLUTE_PATH.finditer(text):
        found.append(f"{where}: an absolute path {m.group(0)!r}")
    for m in _ADDRESS.finditer(text):
        found.append(f"{where}: a memory address {m.group(0)!r}")
    if _TRACEBACK.search(text):
        found.append(f"{where}: a traceback")
    return found


def problems_in_notebook(nb: dict[str, Any]) -> list[str]:
    """What an executed notebook's outputs should not show, one line per finding."""
    found: list[str] = []
    for n, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        for out in cell.get("outputs", []):
            where = f"cell {n}"
            kind = out.get("output_type")
            if kind == "error":
                found.append(f"{where}: an error ({out.get('ename')}: {out.get('evalue')})")
                continue
            if kind == "stream":
                text = "".join(out.get("text", ""))
                if out.get("name") == "stderr":
                    found.append(f"{where}: output on stderr (a warning?): {text.strip()[:120]!r}")
                found += problems_in_text(text, where)
                continue
            data = out.get("data", {})
            for mime in ("text/plain", "text/markdown", "text/html"):
                if mime in data:
                    found += problems_in_text("".join(data[mime]), f"{where} {mime}")
            plain = "".join(data.get("text/plain", ""))
            if kind == "execute_result" and _LONE_STRING.match(plain):
                found.append(f"{where}: a stray value {plain.strip()!r} as the cell's result")
    return found


_PRE = re.compile(r"<pre[^>]*>(.*?)</pre>", re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_OUTPUT_START = re.compile(r'class="[^"]*jp-OutputArea-output[^"]*"')


def problems_in_html(page_html: str, where: str) -> list[str]:
    """The same checks on a notebook page as mkdocs-jupyter renders it."""
    found: list[str] = []
    # Only what follows an output area's start, up to the next cell: inputs are code the
    # reader should see as written.
    for m in _OUTPUT_START.finditer(page_html):
        end = page_html.find('class="jp-Cell ', m.end())
        chunk = page_html[m.end() : end if end != -1 else len(page_html)]
        text = html_lib.unescape(_TAG.sub("", chunk))
        found += problems_in_text(text, where)
        for pre in _PRE.findall(chunk):
            value = html_lib.unescape(_TAG.sub("", pre))
            if _LONE_STRING.match(value):
                found.append(f"{where}: a stray value {value.strip()!r} as a cell's result")
    return sorted(set(found))


def on_page_content(html: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri.endswith(".ipynb"):
        found = problems_in_html(html, page.file.src_uri)
        if found:
            raise PluginError("notebook outputs a reader should not see:\n  " + "\n  ".join(found))
    return html
