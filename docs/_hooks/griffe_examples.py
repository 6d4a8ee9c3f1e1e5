"""Griffe extension: adapt the library's docstrings to the API pages.

Two things, done while the pages are built so that the source stays as it is:

- The docstrings head their doctests ``Example:`` (one example each). Griffe treats only
  ``Examples:`` as a section of code examples and renders anything else as Markdown,
  where ``>>>`` lines would become nested block quotes; the header is renamed.
- Docstrings refer to other objects with Sphinx roles (``:class:`Detector```), which
  Markdown does not know. A role naming a public name of ``deepfakedetect`` that has an
  entry in the API pages (``::: deepfakedetect.NAME`` in ``docs/api/*.md``), or a public
  member of one, becomes a cross-reference to that entry; any other becomes inline code.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import griffe

_HEADER = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
_ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj|const|py:\w+):`(~?)([^`<]+?)`")


def _public() -> Any:
    try:
        import deepfakedetect
    except ImportError:  # building from a clone without installing it
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
        import deepfakedetect
    return deepfakedetect


def _documented() -> set[str]:
    """The names that have an entry in the API pages."""
    api = Path(__file__).resolve().parents[1] / "api"
    names: set[str] = set()
    for page in api.glob("*.md"):
        names.update(re.findall(r"^::: deepfakedetect\.(\w+)\s*$", page.read_text(encoding="utf-8"), re.MULTILINE))
    return names


def _target(ref: str, package: Any, documented: set[str]) -> str | None:
    """The public identifier a role points to, or None when it has no API entry."""
    parts = [p for p in ref.strip().split(".") if p]
    if parts[:1] == ["deepfakedetect"]:
        parts = parts[1:]
    parts = [p for p in parts if not p.startswith("_")]  # deepfakedetect.batch.many.detect_many -> detect_many
    if not parts or parts[0] not in documented or not hasattr(package, parts[0]):
        return None
    obj = getattr(package, parts[0])
    for name in parts[1:]:
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return "deepfakedetect." + ".".join(parts)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` headers and turn Sphinx roles into Markdown."""

    def __init__(self) -> None:
        super().__init__()
        self.package = _public()
        self.documented = _documented()

    def _role(self, m: re.Match[str]) -> str:
        ref = m.group(2).strip()
        shown = ref.split(".")[-1] if m.group(1) else ref
        target = _target(ref, self.package, self.documented)
        return f"[`{shown}`][{target}]" if target else f"`{shown}`"

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = _HEADER.sub(r"\1Examples:", obj.docstring.value)
            obj.docstring.value = _ROLE.sub(self._role, text)
