"""MkDocs hook: the library version these pages describe, for the note atop every page.

Read from the source (``src/deepfakedetect/_version.py``), not from whatever is installed,
so the note names the version of the code the site was built from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

_VERSION_FILE = Path(__file__).resolve().parents[2] / "src" / "deepfakedetect" / "_version.py"


def on_config(config: Any, **kwargs: Any) -> Any:
    m = re.search(r'^__version__\s*=\s*"([^"]+)"', _VERSION_FILE.read_text(encoding="utf-8"), re.MULTILINE)
    if m is None:
        raise PluginError(f"version note: no __version__ = \"...\" line in {_VERSION_FILE}")
    config.extra["library_version"] = m.group(1)
    return config
