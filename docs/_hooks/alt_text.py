"""MkDocs hook: every figure has alt text, the notebooks' plots included.

Markdown images get theirs from ``![alt text](...)``. A notebook's plots are rendered by
mkdocs-jupyter without any, so a code cell that draws a figure carries its description in
its metadata, ``{"alt": "..."}`` (the key nbconvert's classic template reads); this hook
puts it on the cell's images, in order. The build fails on a page with an image that ends
up without alt text, naming the page, so a new plot cannot ship undescribed.
"""

from __future__ import annotations

import html as html_lib
import json
import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_ALT = re.compile(r"""\balt\s*=\s*(["'])(.*?)\1""", re.IGNORECASE | re.DOTALL)


def _notebook_alts(path: str) -> list[str]:
    """The alt texts of a notebook's figure cells, in order (one figure per such cell)."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    return [cell["metadata"]["alt"] for cell in nb.get("cells", [])
            if cell.get("cell_type") == "code" and cell.get("metadata", {}).get("alt")]


# What nbconvert writes on an image that has none: not a description.
_PLACEHOLDER = "No description has been provided for this image"


def _has_alt(tag: str) -> bool:
    m = _ALT.search(tag)
    return m is not None and m.group(2).strip() not in ("", _PLACEHOLDER)


def _notebooks_executed(config: Any) -> bool:
    plugin = config["plugins"].get("mkdocs-jupyter") if config is not None else None
    return bool(plugin is not None and plugin.config.get("execute"))


def on_page_content(html: str, page: Any, config: Any = None, **kwargs: Any) -> str:
    where = page.file.src_uri
    if where.endswith(".ipynb"):
        alts = _notebook_alts(page.file.abs_src_path)
        missing = [m for m in _IMG.finditer(html) if not _has_alt(m.group(0))]
        # Without execution (DOCS_EXECUTE=false) a notebook has no plots; executed, it has
        # one per figure cell: fewer means plots went missing (e.g. MPLBACKEND=Agg in the
        # kernel's environment makes plt.show() draw nothing).
        if (missing or _notebooks_executed(config)) and len(missing) != len(alts):
            raise PluginError(
                f"{where}: {len(missing)} plot(s) without alt text but {len(alts)} figure cell(s) with "
                '"alt" in their metadata: give each cell that draws a figure one, and check that each '
                "such cell shows its figure"
            )
        pieces, last = [], 0
        for m, alt in zip(missing, alts):
            tag = _ALT.sub("", m.group(0))  # nbconvert's placeholder, if any
            pieces += [html[last : m.start()], tag[:4], f' alt="{html_lib.escape(alt)}"', tag[4:]]
            last = m.end()
        html = "".join(pieces) + html[last:]
    undescribed = [m.group(0)[:80] for m in _IMG.finditer(html) if not _has_alt(m.group(0))]
    if undescribed:
        raise PluginError(f"{where}: image(s) without alt text: {undescribed}")
    return html
