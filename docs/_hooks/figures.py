"""MkDocs hook: figures made by the build, from the library and the shared data.

A module in ``docs/_figures/`` declares the figures it makes::

    FIGURES = {"home-faces.png": make_faces}      # file name -> function(out: Path, shared: Path)

and a page shows one as ``![alt text](figures/home-faces.png)`` (relative to ``docs/``,
so ``../figures/...`` from a page in a subfolder). The hook runs each function once, writes
the file into ``.cache/docs-figures/`` and adds it to the site under ``figures/``. A figure
is made again when its module, the library's source or a file under ``docs/data/`` (the
benchmark and evaluation results figures are drawn from) changes; delete the cache folder
to force it.

``shared`` is the shared data folder: ``$DEEPFAKEDETECT_SHARED``, else ``../shared`` beside
the repository. Figures are made from real data, so the build stops with a clear message
when that folder is absent rather than publish a page without them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.figures")

_ROOT = Path(__file__).resolve().parents[2]  # the repository
_MAKERS = _ROOT / "docs" / "_figures"
_CACHE = _ROOT / ".cache" / "docs-figures"


def shared_dir() -> Path:
    """The shared data folder, or a PluginError that says how to point the build at it."""
    env = os.environ.get("DEEPFAKEDETECT_SHARED")
    path = Path(env) if env else _ROOT.parent / "shared"
    if not (path / "data").is_dir():
        raise PluginError(
            f"docs figures: no shared data folder at {path} (it needs a data/ folder). The figures "
            "and notebooks are made from it: set DEEPFAKEDETECT_SHARED to its path."
        )
    return path


def _library_stamp() -> str:
    """Changes whenever a file of the library or of docs/data changes (names, sizes, times)."""
    h = hashlib.sha256()
    inputs = [*(_ROOT / "src" / "deepfakedetect").rglob("*"), *(_ROOT / "docs" / "data").rglob("*")]
    for p in sorted(inputs):
        if p.is_file() and "__pycache__" not in p.parts:
            st = p.stat()
            h.update(f"{p.relative_to(_ROOT)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _makers() -> dict[str, tuple[Callable[[Path, Path], None], Path]]:
    if str(_ROOT / "src") not in sys.path:  # building from a clone without installing it
        sys.path.insert(0, str(_ROOT / "src"))
    found: dict[str, tuple[Callable[[Path, Path], None], Path]] = {}
    for module_path in sorted(_MAKERS.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"_docs_figures_{module_path.stem}", module_path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name, make in getattr(module, "FIGURES", {}).items():
            if name in found:
                raise PluginError(f"docs figures: {name!r} is made by both {found[name][1].name} and {module_path.name}")
            found[name] = (make, module_path)
    return found


def on_files(files: Files, config: Any, **kwargs: Any) -> Files:
    makers = _makers()
    if not makers:
        return files
    os.environ.setdefault("DEEPFAKEDETECT_PROGRESS", "0")
    stamp = _library_stamp()
    shared: Path | None = None
    for name, (make, module_path) in makers.items():
        key = hashlib.sha256((stamp + module_path.read_text(encoding="utf-8") + name).encode()).hexdigest()[:16]
        out = _CACHE / key / name
        if not out.is_file():
            shared = shared or shared_dir()
            out.parent.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            tmp = out.with_name("partial-" + out.name)  # same suffix: makers pick the format from it
            make(tmp, shared)
            tmp.replace(out)
            log.info("docs figures: made %s in %.1f s", name, time.perf_counter() - start)
        files.append(File.generated(config, f"figures/{name}", abs_src_path=str(out)))
    return files
