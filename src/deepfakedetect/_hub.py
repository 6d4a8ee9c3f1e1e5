"""Model folders on disk and on the Hugging Face Hub: find, download, verify, load, upload.

A model is a folder holding ``config.json``, ``model.safetensors`` and ``README.md``,
either local or in a Hub repo. What is trusted and what is checked:

- Weights are read only from ``model.safetensors``, through ``safetensors``; the header is
  validated before anything is allocated. Pickle checkpoints (``pytorch_model.bin``,
  ``*.pt``, ``*.pth``, ...) are refused and never opened, since unpickling runs code.
- Both files of a Hub model come from one commit: ``config.json`` is resolved first and
  ``model.safetensors`` is then downloaded pinned to the commit sha it resolved to, so a
  branch moving in between cannot mix files of two versions.
- An LFS file's ETag is the sha256 of its content; the downloaded weights are hashed
  against it, and a mismatch removes the file from the cache and raises. The result is
  remembered beside the cache, so a warm cache is not hashed again on every load.
- Offline (``local_files_only=True`` or ``HF_HUB_OFFLINE=1``) opens no connection, and a
  cold cache fails at once; a revision pinned to a cached commit sha makes no request.
- :func:`download_file` gives any other file (the face detector's weights) the same
  treatment: cache fast path, fast failure, sha256 check, typed errors.

Every ``huggingface_hub`` failure is raised as :class:`~deepfakedetect.ModelLoadError`,
chained to the original, with the repo, the revision and what to do.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ._errors import ConfigError, ModelLoadError

logger = logging.getLogger(__name__)

__all__ = [
    "CONFIG_NAME",
    "README_NAME",
    "WEIGHTS_NAME",
    "ModelFiles",
    "download_file",
    "load_safetensors",
    "resolve_model_files",
    "upload_model_folder",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
README_NAME = "README.md"

# Suffixes of checkpoints that are (or usually are) pickles; never opened, only named in errors.
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
# A HEAD answers in milliseconds; waiting longer only delays the fallback to the cache.
_ETAG_TIMEOUT = 5.0
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
_OFFLINE_VALUES = {"1", "ON", "YES", "TRUE"}
# The HTTP stacks huggingface_hub has used (requests, then httpx, now httpx2): their errors are network errors.
_NETWORK_MODULES = frozenset({"httpx", "httpx2", "httpcore", "httpcore2", "h11", "requests", "urllib3"})
_VERIFIED_DIR = ".deepfakedetect-verified"  # inside a repo's cache folder; ignored by huggingface_hub

# safetensors dtype -> bytes per element. Only types a detector's weights and buffers use.
_DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_MAX_HEADER = 100_000_000  # the limit safetensors itself applies

_CONVERT_HINT = (
    "Convert it once, on a machine you trust and from a source you trust, with: "
    "python -c \"import torch; from safetensors.torch import save_file; "
    "sd = torch.load('pytorch_model.bin', map_location='cpu', weights_only=True); "
    "save_file({k: v.contiguous() for k, v in sd.items()}, 'model.safetensors')\""
)

_verified_in_process: dict[str, str] = {}  # blob path -> stat stamp, for caches we cannot write to


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


def resolve_model_files(
    repo_id_or_dir: str | os.PathLike[str],
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    force_download: bool = False,
) -> ModelFiles:
    """Find a model's ``config.json`` and ``model.safetensors``, downloading them if needed.

    An existing folder is used as it is. Anything that looks like a path (absolute,
    relative with ``./``, several ``/``, a ``~``) must exist. Otherwise the argument is a
    Hub repo id: both files are downloaded into the Hugging Face cache (or taken from it)
    from one commit, and the weights are checked against the sha256 the Hub sent.

    Args:
        repo_id_or_dir: A local model folder or a Hub repo id such as ``"org/name"``.
        revision: Branch, tag or commit sha of a Hub repo (default ``"main"``). Pin a sha
            for reproducible results. Ignored for a folder.
        cache_dir: The Hugging Face cache folder (default: ``HF_HUB_CACHE``).
        local_files_only: Use the cache only, never the network (as does ``HF_HUB_OFFLINE=1``).
        token: Hugging Face token for private repos (default: ``HF_TOKEN`` or the saved login).
        force_download: Download again even if the files are cached.

    Returns:
        The two paths, the source as given, and the resolved commit sha (``None`` for a folder).

    Raises:
        ModelLoadError: The folder does not exist or lacks a file; only a pickle checkpoint
            was found; the repo, revision or file does not exist; the network or the cache
            failed; or the downloaded weights do not match their sha256.
        ConfigError: ``force_download=True`` while offline.

    Example:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> from safetensors.torch import save_file
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "config.json").write_text("{}")
        >>> save_file({"w": torch.zeros(2)}, str(folder / "model.safetensors"))
        >>> files = resolve_model_files(folder)
        >>> files.weights.name, files.revision
        ('model.safetensors', None)
    """
    given = os.fspath(repo_id_or_dir)
    is_pathlike = not isinstance(repo_id_or_dir, str) or _looks_like_path(given)
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
    return _hub_files(
        given,
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        token=token,
        force_download=force_download,
    )


def download_file(
    repo_id: str,
    filename: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    force_download: bool = False,
) -> Path:
    """Get one file of a Hub repo into the Hugging Face cache (or find it there), verified.

    The same rules as :func:`resolve_model_files` apply to the single file: offline or
    with a revision pinned to a cached commit sha, the cache is read without opening a
    socket; a cold cache fails at once when offline or when the Hub cannot be reached; an
    LFS file (``*.safetensors`` among others) is hashed against the sha256 the Hub
    announced, and a mismatch removes it from the cache and raises.

    Args:
        repo_id: The Hub repo, ``"org/name"``.
        filename: The file's path in the repo.
        revision: Branch, tag or commit sha (default ``"main"``). A commit sha that is
            cached makes no request.
        cache_dir: The Hugging Face cache folder (default: ``HF_HUB_CACHE``).
        local_files_only: Use the cache only, never the network (as does ``HF_HUB_OFFLINE=1``).
        token: Hugging Face token for private repos (default: ``HF_TOKEN`` or the saved login).
        force_download: Download again even if the file is cached.

    Returns:
        The path of the file in the cache.

    Raises:
        ModelLoadError: The repo id is invalid; the repo, revision or file does not exist;
            access was refused; the network or the cache failed; the file is not cached
            while offline; or the download does not match its sha256. Chained to the
            ``huggingface_hub`` error where there is one.
        ConfigError: ``force_download=True`` while offline.

    Example:
        >>> import tempfile
        >>> try:
        ...     download_file("org/absent", "w.safetensors", cache_dir=tempfile.mkdtemp(), local_files_only=True)
        ... except ModelLoadError as e:
        ...     print("not in the local cache" in str(e))
        True
    """
    ctx, cache, offline = _start(repo_id, revision, cache_dir, local_files_only, force_download)
    return _fetch(ctx, filename, revision, cache=cache, token=token, force_download=force_download, offline=offline)


def load_safetensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load a ``.safetensors`` file after validating its header; never unpickles anything.

    Checked before anything is allocated: the 8-byte header length against the file
    size, the header's JSON, each tensor's dtype (float, integer or bool types), shape
    and byte range (inside the file, the right length, not overlapping another).

    Args:
        path: The ``.safetensors`` file.

    Returns:
        The tensors by name, on the CPU.

    Raises:
        ModelLoadError: The file is missing, empty, truncated or malformed; names the file
            and is chained to the cause.

    Example:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> from safetensors.torch import save_file
        >>> path = Path(tempfile.mkdtemp()) / "model.safetensors"
        >>> save_file({"w": torch.ones(2, 3)}, str(path))
        >>> load_safetensors(path)["w"].shape
        torch.Size([2, 3])
    """
    path = Path(path)
    try:
        _validate_safetensors(path)
    except FileNotFoundError as e:
        raise ModelLoadError(f"weights file {path} does not exist") from e
    except (ValueError, OSError) as e:
        raise ModelLoadError(
            f"weights file {path} is not a valid safetensors file: {e}. "
            "Download it again (force_download=True) or re-save the model with Detector.save_pretrained"
        ) from e
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # safetensors raises its own SafetensorError, or OSError
        raise ModelLoadError(f"weights file {path} could not be read by safetensors: {e}") from e


def upload_model_folder(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    token: str | bool | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload a model folder to a Hub repo in one commit, creating the repo if needed.

    Every file of the folder is uploaded except hidden ones (``.git``, ``.cache``, ...).
    The folder must hold ``config.json`` and ``model.safetensors``.

    Args:
        folder: The folder, as written by ``Detector.save_pretrained``.
        repo_id: The Hub repo, ``"org/name"``.
        token: A token with write access (default: ``HF_TOKEN`` or the saved login).
        private: Create the repo as private (only when it does not exist yet).
        revision: Branch to commit to (created from ``main`` if missing; default ``"main"``).
        commit_message: The commit's message (default: "Upload deepfakedetect model").

    Returns:
        The sha of the new commit: pass it as ``revision`` to load exactly this upload.

    Raises:
        ModelLoadError: The folder lacks a model file, or the Hub refused or could not be
            reached; chained to the ``huggingface_hub`` error.

    Example:
        >>> from pathlib import Path
        >>> try:
        ...     upload_model_folder(Path("no-such-folder"), "me/model")
        ... except ModelLoadError as e:
        ...     print(type(e).__name__)
        ModelLoadError
    """
    folder = Path(folder)
    missing = [name for name in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / name).is_file()]
    if missing:
        raise ModelLoadError(
            f"cannot upload {folder}: {', '.join(missing)} missing; write the folder with "
            "Detector.save_pretrained first"
        )
    from huggingface_hub import CommitOperationAdd, HfApi

    relative = sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
    operations = [
        CommitOperationAdd(path_in_repo=rel.as_posix(), path_or_fileobj=str(folder / rel))
        for rel in relative
        if not any(part.startswith(".") for part in rel.parts)
    ]
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision is not None and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=commit_message or "Upload deepfakedetect model",
            revision=revision,
        )
    except Exception as e:
        if not _is_hub_error(e):
            raise
        raise _upload_error(e, repo_id, api.endpoint) from e
    logger.info("uploaded %d files from %s to %s at %s", len(operations), folder, repo_id, info.oid)
    return str(info.oid)


# -- local folders -------------------------------------------------------------------


def _looks_like_path(text: str) -> bool:
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
    if not weights.is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        if pickles:
            raise ModelLoadError(_pickle_message(f"model folder {folder}", pickles))
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


def _pickle_message(where: str, pickles: list[str]) -> str:
    return (
        f"{where} has no {WEIGHTS_NAME}, only {', '.join(pickles)}: pickle checkpoints are refused "
        f"because loading one can run arbitrary code, and it was not opened. {_CONVERT_HINT}"
    )


# -- the Hub ------------------------------------------------------------------------


def _offline() -> bool:
    from huggingface_hub import constants

    # huggingface_hub reads HF_HUB_OFFLINE once, at import; honour a later change too.
    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in _OFFLINE_VALUES


def _start(
    repo_id: str,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool,
    force_download: bool,
) -> tuple[_Context, str | None, bool]:
    """Check the arguments of a Hub read; returns its context, the cache folder and whether it is offline."""
    from huggingface_hub import constants
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise ModelLoadError(
            f"{repo_id!r} is neither an existing folder nor a valid Hub repo id ('org/name'): {e}"
        ) from e
    offline = local_files_only or _offline()
    if offline and force_download:
        raise ConfigError(
            "force_download=True needs the network, but downloads are off (local_files_only=True or "
            "HF_HUB_OFFLINE=1): drop one of them"
        )
    cache = str(Path(cache_dir).expanduser().resolve()) if cache_dir is not None else None
    # constants.HF_HUB_CACHE is read now, as huggingface_hub does, so a later change is honoured.
    return _Context(repo_id, revision, constants.ENDPOINT, cache or constants.HF_HUB_CACHE), cache, offline


def _hub_files(
    repo_id: str,
    *,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool,
    token: str | bool | None,
    force_download: bool,
) -> ModelFiles:
    ctx, cache, offline = _start(repo_id, revision, cache_dir, local_files_only, force_download)
    if not force_download:
        cached = _cached_files(repo_id, revision, cache)
        # Both files of one cached commit: offline, or pinned to that commit, they are read
        # from the cache with no request (see _fetch for why hf_hub_download is not asked).
        if cached is not None and (offline or _COMMIT_SHA.fullmatch(revision or "")):
            config, weights = cached
            _verify_sha256(ctx, weights, WEIGHTS_NAME)
            return ModelFiles(config=config, weights=weights, source=repo_id, revision=config.parent.name)
        if offline:
            raise _offline_miss(ctx, CONFIG_NAME)
    config = _fetch(ctx, CONFIG_NAME, revision, cache=cache, token=token, force_download=force_download, offline=offline)
    # The snapshot folder is named after the commit the first file resolved to.
    sha = config.parent.name
    if not _COMMIT_SHA.fullmatch(sha):
        raise ModelLoadError(f"unexpected Hugging Face cache layout at {config}: cannot tell its commit sha")
    # Pinned to that sha, so a branch moving in between cannot mix two versions; the Hub has
    # just answered, so no probe is needed before a cold download.
    weights = _fetch(
        ctx, WEIGHTS_NAME, sha, cache=cache, token=token, force_download=force_download, offline=offline, probe=False
    )
    return ModelFiles(config=config, weights=weights, source=repo_id, revision=sha)


def _fetch(
    ctx: _Context,
    filename: str,
    revision: str | None,
    *,
    cache: str | None,
    token: str | bool | None,
    force_download: bool,
    offline: bool,
    probe: bool = True,
) -> Path:
    """One file from the cache or the Hub, verified against its sha256 when it is an LFS file."""
    if not force_download:
        cached = _cached_file(ctx.repo_id, filename, revision, cache)
        # Offline, or pinned to a commit that is cached: read the cache directly. hf_hub_download
        # would too, but only after building its HTTP headers, which can fetch a registry from
        # the Hub (huggingface_hub 2.x, with telemetry on): a cached file must open no socket.
        if cached is not None and (offline or _COMMIT_SHA.fullmatch(revision or "")):
            _verify_sha256(ctx, cached, filename)
            return cached
        if offline:
            raise _offline_miss(ctx, filename)
        if cached is None and probe:
            _probe(ctx, token, filename, revision)
    options: dict[str, Any] = {
        "cache_dir": cache,
        "token": token,
        "force_download": force_download,
        "etag_timeout": _ETAG_TIMEOUT,
    }
    path = _download(ctx, filename, revision, options)
    _verify_sha256(ctx, path, filename)
    return path


@dataclass(frozen=True)
class _Context:
    repo_id: str
    revision: str | None
    endpoint: str
    cache_dir: str

    def where(self, filename: str) -> str:
        return f"{filename} of Hub repo {self.repo_id!r} at revision {self.revision or 'main'!r}"


def _cached_file(repo_id: str, filename: str, revision: str | None, cache_dir: str | None) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision)
    return Path(found) if isinstance(found, str) else None


def _cached_files(repo_id: str, revision: str | None, cache_dir: str | None) -> tuple[Path, Path] | None:
    """Both files of one cached commit (found through ``refs/`` for a branch or tag), or None."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo_id, CONFIG_NAME, cache_dir=cache_dir, revision=revision)
    if not isinstance(config, str):
        return None
    weights = try_to_load_from_cache(repo_id, WEIGHTS_NAME, cache_dir=cache_dir, revision=Path(config).parent.name)
    if not isinstance(weights, str):
        return None
    return Path(config), Path(weights)


def _offline_miss(ctx: _Context, filename: str) -> ModelLoadError:
    from huggingface_hub import try_to_load_from_cache

    if filename == CONFIG_NAME:  # a model whose config is cached but whose weights are a pickle
        config = try_to_load_from_cache(ctx.repo_id, CONFIG_NAME, cache_dir=ctx.cache_dir, revision=ctx.revision)
        if isinstance(config, str):
            pickles = sorted(p.name for p in Path(config).parent.iterdir() if p.name.endswith(_PICKLE_SUFFIXES))
            if pickles:
                return ModelLoadError(_pickle_message(f"the cached Hub repo {ctx.repo_id!r}", pickles))
        what = f"{ctx.repo_id!r} at revision {ctx.revision or 'main'!r}"
    else:
        what = ctx.where(filename)
    return ModelLoadError(
        f"{what} is not in the local cache ({ctx.cache_dir}) and downloads are off (local_files_only=True or "
        "HF_HUB_OFFLINE=1): run once online to fill the cache, or pass local_files_only=False and unset "
        "HF_HUB_OFFLINE"
    )


def _probe(ctx: _Context, token: str | bool | None, filename: str, revision: str | None) -> None:
    """One HEAD without retries before a cold download.

    With nothing cached, ``hf_hub_download`` answers a connection error by retrying with
    backoff for about half a minute; an unreachable Hub should fail at once instead.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    url = hf_hub_url(ctx.repo_id, filename, revision=revision)
    try:
        get_hf_file_metadata(url, token=token, timeout=_ETAG_TIMEOUT)
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else 0
        if status in (408, 429) or status >= 500:
            return  # transient: let hf_hub_download retry with its backoff
        raise _download_error(e, ctx, filename) from e
    except Exception as e:
        if not _is_hub_error(e):
            raise
        raise _download_error(e, ctx, filename) from e


def _download(ctx: _Context, filename: str, revision: str | None, options: dict[str, Any]) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError

    try:
        return Path(hf_hub_download(ctx.repo_id, filename, revision=revision, **options))
    except RemoteEntryNotFoundError as e:
        if filename == WEIGHTS_NAME:
            pickles = _remote_pickles(ctx.repo_id, revision, options.get("token"))
            if pickles:
                where = f"Hub repo {ctx.repo_id!r} at revision {revision}"
                raise ModelLoadError(_pickle_message(where, pickles)) from e
        raise _download_error(e, ctx, filename) from e
    except Exception as e:
        if not _is_hub_error(e):
            raise
        raise _download_error(e, ctx, filename) from e


def _remote_pickles(repo_id: str, revision: str | None, token: str | bool | None) -> list[str]:
    """Names of pickle checkpoints in a repo, to explain a missing ``model.safetensors``."""
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(repo_id, revision=revision, token=token, timeout=_ETAG_TIMEOUT)
    except Exception as e:  # only improves a message; the caller raises in any case
        logger.debug("could not list the files of %s: %s", repo_id, e)
        return []
    return sorted(s.rfilename for s in info.siblings or () if s.rfilename.endswith(_PICKLE_SUFFIXES))


def _is_hub_error(error: BaseException) -> bool:
    """Whether an exception comes from huggingface_hub or the network below it."""
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    if isinstance(error, (HfHubHTTPError, EntryNotFoundError, OSError, ConnectionError, TimeoutError, ValueError)):
        return True
    return type(error).__module__.split(".")[0] in {"huggingface_hub", *_NETWORK_MODULES}


def _is_network_error(error: BaseException) -> bool:
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(error, OfflineModeIsEnabled):
        return False
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    return type(error).__module__.split(".")[0] in _NETWORK_MODULES


def _download_error(error: BaseException, ctx: _Context, filename: str) -> ModelLoadError:
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo, rev, where = ctx.repo_id, ctx.revision or "main", ctx.where(filename)
    if isinstance(error, GatedRepoError):
        text = f"Hub repo {repo!r} is gated: accept its conditions on the Hub, then set HF_TOKEN or pass token="
    elif isinstance(error, RepositoryNotFoundError):
        text = (
            f"Hub repo {repo!r} was not found at {ctx.endpoint} (no such repo, or it is private or gated, and no "
            "folder of that name exists here): check the repo id, and for a private repo set HF_TOKEN or pass token="
        )
    elif isinstance(error, RevisionNotFoundError):
        text = (
            f"revision {rev!r} was not found in Hub repo {repo!r}: check the branch, tag or commit sha "
            "(or leave revision unset for 'main')"
        )
    elif isinstance(error, RemoteEntryNotFoundError) and filename in (CONFIG_NAME, WEIGHTS_NAME):
        text = (
            f"{where} does not exist: a deepfakedetect model repo holds {CONFIG_NAME}, {WEIGHTS_NAME} and "
            f"{README_NAME} (as written by Detector.save_pretrained / push_to_hub); check the repo id and revision"
        )
    elif isinstance(error, RemoteEntryNotFoundError):
        text = f"{where} does not exist: check the repo id, the revision and the file name"
    elif isinstance(error, LocalEntryNotFoundError) or _is_network_error(error):
        text = (
            f"could not download {where} from {ctx.endpoint} ({type(error).__name__}: {error}), and it is not "
            "in the local cache: check the network connection and HF_ENDPOINT, then try again (nothing partial "
            "is kept), or run once online to fill the cache"
        )
    elif isinstance(error, HfHubHTTPError) and error.response is not None and error.response.status_code in (401, 403):
        text = (
            f"access to {where} was refused (HTTP {error.response.status_code}): set HF_TOKEN or pass token= "
            "with read access to the repo"
        )
    elif isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else "error"
        text = f"the Hub at {ctx.endpoint} answered HTTP {status} for {where}: try again later"
    elif isinstance(error, OSError) and "Consistency check failed" in str(error):
        text = f"the download of {where} was incomplete: try again (force_download=True restarts it)"
    else:
        text = f"could not get {where}: {type(error).__name__}: {error}"
    return ModelLoadError(text)


def _upload_error(error: BaseException, repo_id: str, endpoint: str) -> ModelLoadError:
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    status = getattr(getattr(error, "response", None), "status_code", None)
    if isinstance(error, RepositoryNotFoundError) or status in (401, 403):
        hint = "set HF_TOKEN or pass token= with write access to the repo (or its namespace)"
    elif _is_network_error(error):
        hint = "check the network connection and HF_ENDPOINT, then try again"
    elif isinstance(error, HfHubHTTPError):
        hint = "try again later"
    else:
        hint = "check the repo id and the folder"
    return ModelLoadError(
        f"could not upload to Hub repo {repo_id!r} at {endpoint} ({type(error).__name__}: {error}): {hint}"
    )


# -- sha256 verification ----------------------------------------------------------------


def _verify_sha256(ctx: _Context, pointer: Path, filename: str) -> None:
    """Check a cached LFS file against its sha256, which the cache names its blob after.

    A verified blob is remembered by its size, mtime and inode, in a marker file in the
    repo's cache folder (and in this process when the cache is read-only).
    """
    if not pointer.is_symlink():
        # Without symlinks (some Windows setups) the cache keeps no blob name, so no etag to check against.
        logger.debug("cannot verify %s: the cache does not use symlinks", pointer)
        return
    blob = Path(os.path.realpath(pointer))
    etag = blob.name
    if not blob.is_file():
        pointer.unlink(missing_ok=True)
        raise ModelLoadError(
            f"the cached {ctx.where(filename)} points to a missing file {blob} (the cache was partly "
            "deleted); the broken link was removed: try again"
        )
    if not _SHA256.fullmatch(etag):
        logger.debug("not verifying %s: its etag %s is not a sha256", pointer, etag)
        return
    stat = blob.stat()
    stamp = f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"
    marker = blob.parent.parent / _VERIFIED_DIR / etag
    if _verified_in_process.get(str(blob)) == stamp or _read_text(marker) == stamp:
        return
    digest = hashlib.sha256()
    with blob.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    actual = digest.hexdigest()
    if actual != etag:
        for path in (pointer, blob, marker):
            path.unlink(missing_ok=True)
        raise ModelLoadError(
            f"{ctx.where(filename)} failed its integrity check: the Hub announced sha256 {etag}, the "
            f"downloaded file hashes to {actual}. The file was removed from the cache; try again, and if it "
            "keeps failing, something between you and the Hub is altering downloads"
        )
    _verified_in_process[str(blob)] = stamp
    try:
        marker.parent.mkdir(exist_ok=True)
        marker.write_text(stamp)
    except OSError as e:  # a read-only cache: the in-process record still avoids re-hashing
        logger.debug("could not record the verification of %s: %s", blob, e)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


# -- safetensors validation -----------------------------------------------------------


def _validate_safetensors(path: Path) -> None:
    """Raise ValueError (or OSError) describing the first problem found in a safetensors file."""
    size = path.stat().st_size
    with path.open("rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ValueError(f"the file has {size} bytes, fewer than the 8-byte header length (empty or truncated)")
        header_len = int.from_bytes(prefix, "little")
        if header_len == 0 or header_len > min(size - 8, _MAX_HEADER):
            raise ValueError(
                f"the header length field says {header_len} bytes, but the file has {size - 8} bytes after it "
                f"(and headers are at most {_MAX_HEADER}): the file is truncated or not safetensors"
            )
        raw = f.read(header_len)

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError(f"the header repeats a key: {sorted(k for k in set(keys) if keys.count(k) > 1)}")
        return dict(pairs)

    header = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)  # JSONDecodeError is a ValueError
    if not isinstance(header, dict):
        raise ValueError(f"the header is a JSON {type(header).__name__}, not an object")
    data_len = size - 8 - header_len
    ranges: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if name == "__metadata__":
            if not (isinstance(info, dict) and all(isinstance(v, str) for v in info.values())):
                raise ValueError("__metadata__ must map strings to strings")
            continue
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
            raise ValueError(f"tensor {name!r} lacks dtype, shape or data_offsets")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _DTYPE_SIZES:
            raise ValueError(f"tensor {name!r} has dtype {dtype!r}; expected one of {sorted(_DTYPE_SIZES)}")
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            raise ValueError(f"tensor {name!r} has an invalid shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            raise ValueError(f"tensor {name!r} has invalid data_offsets {offsets!r}")
        begin, end = offsets
        if not 0 <= begin <= end <= data_len:
            raise ValueError(
                f"tensor {name!r} spans bytes {begin}..{end} of a {data_len}-byte data section: the file is truncated"
            )
        if end - begin != math.prod(shape) * _DTYPE_SIZES[dtype]:
            raise ValueError(f"tensor {name!r} has {end - begin} bytes, but its shape {shape} and {dtype} need "
                             f"{math.prod(shape) * _DTYPE_SIZES[dtype]}")
        ranges.append((begin, end, name))
    ranges.sort()
    for (_, end_a, name_a), (begin_b, _, name_b) in zip(ranges, ranges[1:]):
        if begin_b < end_a:
            raise ValueError(f"tensors {name_a!r} and {name_b!r} overlap in the file")
