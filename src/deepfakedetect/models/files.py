"""Model folders on disk: which files a model is loaded from, without the Hub client.

:mod:`deepfakedetect.models.hub` imports ``huggingface_hub`` and its HTTP stack (about
0.3 s); loading the default model or any local folder needs none of it, so the local
half of :func:`deepfakedetect.models.hub.resolve_model_files` lives here.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from deepfakedetect._config import CONFIG_NAME, README_NAME, WEIGHTS_NAME
from deepfakedetect._errors import ModelLoadError
from deepfakedetect._untrusted import NotRegularFileError, check_regular

logger = logging.getLogger(__name__)

__all__ = ["CONVERT_HINT", "PICKLE_SUFFIXES", "ModelFiles", "local_model_files", "looks_like_path", "pickle_message"]

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
CONVERT_HINT = (
    "Convert it once, on a machine you trust and from a source you trust, with: "
    "python -c \"import torch; from safetensors.torch import save_file; "
    "sd = torch.load('pytorch_model.bin', map_location='cpu', weights_only=True); "
    "save_file({k: v.contiguous() for k, v in sd.items()}, 'model.safetensors')\""
)


@dataclass(frozen=True)
class ModelFiles:
    """The two files a model is loaded from, and where they came from.

    Attributes:
        config: Path of ``config.json``.
        weights: Path of ``model.safetensors``.
        source: The repo id or the folder, as the caller gave it.
        revision: The commit sha both files were taken from for a Hub repo; ``None`` for a folder.

    Example:
        >>> from pathlib import Path
        >>> files = ModelFiles(Path("m/config.json"), Path("m/model.safetensors"), "m", None)
        >>> files.weights.name
        'model.safetensors'
    """

    config: Path
    weights: Path
    source: str
    revision: str | None


def pickle_message(where: str, pickles: list[str]) -> str:
    """The error text for a model that only has pickle checkpoints."""
    return (
        f"{where} has no {WEIGHTS_NAME}, only {', '.join(pickles)}: pickle checkpoints are refused "
        f"because loading one can run arbitrary code, and it was not opened. {CONVERT_HINT}"
    )


def looks_like_path(text: str) -> bool:
    """Whether ``text`` cannot be a Hub repo id, so it must name a local folder.

    Example:
        >>> looks_like_path("./model"), looks_like_path("org/name")
        (True, False)
    """
    # Hub repo ids are "name" or "namespace/name" made of word characters, '-' and '.',
    # never starting with '.', so anything else cannot be one.
    return (
        text.startswith((".", "/", "~"))
        or text.endswith("/")
        or text.count("/") > 1
        or "\\" in text
        or ":" in text
    )


def _folder_files(folder: Path, *, source: str) -> ModelFiles:
    config, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for path in (config, weights):
        try:
            check_regular(path)
        except NotRegularFileError as e:  # a FIFO would block the read; a device would never end
            raise ModelLoadError(f"{path} is {e.kind}, not a regular file; a model folder holds regular files") from None
        except OSError:
            pass  # missing: said below, with what a model folder holds
    if not weights.is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise ModelLoadError(pickle_message(f"model folder {folder}", pickles))
        raise ModelLoadError(
            f"model folder {folder} has no {WEIGHTS_NAME}: a model folder holds {CONFIG_NAME}, "
            f"{WEIGHTS_NAME} and {README_NAME}, as written by Detector.save_pretrained"
        )
    if not config.is_file():
        raise ModelLoadError(
            f"model folder {folder} has no {CONFIG_NAME}: a model folder holds {CONFIG_NAME}, "
            f"{WEIGHTS_NAME} and {README_NAME}, as written by Detector.save_pretrained"
        )
    return ModelFiles(config=config, weights=weights, source=source, revision=None)


def local_model_files(repo_id_or_dir: str | os.PathLike[str], *, revision: str | None = None) -> ModelFiles | None:
    """The files of a local model folder, or ``None`` when the argument is a Hub repo id.

    An existing folder is used as it is (``revision`` is ignored, with a warning).
    Anything that looks like a path (absolute, relative with ``./``, several ``/``, a
    ``~``) must exist.

    Raises:
        ModelLoadError: The folder does not exist or lacks a file, or only a pickle
            checkpoint was found.

    Example:
        >>> local_model_files("org/name") is None
        True
    """
    given = os.fspath(repo_id_or_dir)
    is_pathlike = not isinstance(repo_id_or_dir, str) or looks_like_path(given)
    folder = Path(given).expanduser()
    if folder.is_dir():
        if revision is not None:
            logger.warning("revision=%r is ignored: %s is a local folder", revision, folder)
        return _folder_files(folder, source=given)
    if is_pathlike or folder.exists():
        what = "is a file, not a model folder" if folder.exists() else "does not exist"
        raise ModelLoadError(
            f"model folder {given!r} {what}: pass a folder holding {CONFIG_NAME} and {WEIGHTS_NAME} "
            "(as written by Detector.save_pretrained), or a Hub repo id such as 'org/name'"
        )
    return None
