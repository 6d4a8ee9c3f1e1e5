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

import logging
import os
import re
from pathlib import Path
from typing import Any

from huggingface_hub import (
    CommitOperationAdd,
    HfApi,
    constants,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    try_to_load_from_cache,
)
from huggingface_hub.errors import HfHubHTTPError, RemoteEntryNotFoundError
from huggingface_hub.utils import HFValidationError, validate_repo_id  # type: ignore[attr-defined]

from deepfakedetect._config import CONFIG_NAME, README_NAME, WEIGHTS_NAME
from deepfakedetect._errors import ConfigError, ModelLoadError
from deepfakedetect._utils import file_stamp, sha256_matches
from deepfakedetect.models.files import ModelFiles, local_model_files, pickle_message
from deepfakedetect.models.hub_errors import (
    HubContext,
    download_error,
    is_hub_error,
    offline_miss,
    remote_pickles,
    upload_error,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CONFIG_NAME",
    "README_NAME",
    "WEIGHTS_NAME",
    "ModelFiles",
    "download_file",
    "resolve_model_files",
    "upload_model_folder",
]


# A HEAD answers in milliseconds; waiting longer only delays the fallback to the cache.
ETAG_TIMEOUT = 5.0
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
_OFFLINE_VALUES = {"1", "ON", "YES", "TRUE"}
_VERIFIED_DIR = ".deepfakedetect-verified"  # inside a repo's cache folder; ignored by huggingface_hub


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
    local = local_model_files(repo_id_or_dir, revision=revision)
    if local is not None:
        return local
    return _hub_files(
        os.fspath(repo_id_or_dir),
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
        if not is_hub_error(e):
            raise
        raise upload_error(e, repo_id, api.endpoint) from e
    logger.info("uploaded %d files from %s to %s at %s", len(operations), folder, repo_id, info.oid)
    return str(info.oid)


# -- local folders -------------------------------------------------------------------


# -- the Hub ------------------------------------------------------------------------


def _offline() -> bool:

    # huggingface_hub reads HF_HUB_OFFLINE once, at import; honour a later change too.
    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in _OFFLINE_VALUES


def _start(
    repo_id: str,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool,
    force_download: bool,
) -> tuple[HubContext, str | None, bool]:
    """Check the arguments of a Hub read; returns its context, the cache folder and whether it is offline."""
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
    return HubContext(repo_id, revision, constants.ENDPOINT, cache or constants.HF_HUB_CACHE), cache, offline


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
            raise offline_miss(ctx, CONFIG_NAME)
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
    ctx: HubContext,
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
            raise offline_miss(ctx, filename)
        if cached is None and probe:
            _probe(ctx, token, filename, revision)
    options: dict[str, Any] = {
        "cache_dir": cache,
        "token": token,
        "force_download": force_download,
        "etag_timeout": ETAG_TIMEOUT,
    }
    path = _download(ctx, filename, revision, options)
    _verify_sha256(ctx, path, filename)
    return path


def _cached_file(repo_id: str, filename: str, revision: str | None, cache_dir: str | None) -> Path | None:

    found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision)
    return Path(found) if isinstance(found, str) else None


def _cached_files(repo_id: str, revision: str | None, cache_dir: str | None) -> tuple[Path, Path] | None:
    """Both files of one cached commit (found through ``refs/`` for a branch or tag), or None."""

    config = try_to_load_from_cache(repo_id, CONFIG_NAME, cache_dir=cache_dir, revision=revision)
    if not isinstance(config, str):
        return None
    weights = try_to_load_from_cache(repo_id, WEIGHTS_NAME, cache_dir=cache_dir, revision=Path(config).parent.name)
    if not isinstance(weights, str):
        return None
    return Path(config), Path(weights)


def _probe(ctx: HubContext, token: str | bool | None, filename: str, revision: str | None) -> None:
    """One HEAD without retries before a cold download.

    With nothing cached, ``hf_hub_download`` answers a connection error by retrying with
    backoff for about half a minute; an unreachable Hub should fail at once instead.
    """

    url = hf_hub_url(ctx.repo_id, filename, revision=revision)
    try:
        get_hf_file_metadata(url, token=token, timeout=ETAG_TIMEOUT)
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else 0
        if status in (408, 429) or status >= 500:
            return  # transient: let hf_hub_download retry with its backoff
        raise download_error(e, ctx, filename) from e
    except Exception as e:
        if not is_hub_error(e):
            raise
        raise download_error(e, ctx, filename) from e


def _download(ctx: HubContext, filename: str, revision: str | None, options: dict[str, Any]) -> Path:

    try:
        return Path(hf_hub_download(ctx.repo_id, filename, revision=revision, **options))
    except RemoteEntryNotFoundError as e:
        if filename == WEIGHTS_NAME:
            pickles = remote_pickles(ctx.repo_id, revision, options.get("token"), timeout=ETAG_TIMEOUT)
            if pickles:
                where = f"Hub repo {ctx.repo_id!r} at revision {revision}"
                raise ModelLoadError(pickle_message(where, pickles)) from e
        raise download_error(e, ctx, filename) from e
    except Exception as e:
        if not is_hub_error(e):
            raise
        raise download_error(e, ctx, filename) from e


# -- sha256 verification ----------------------------------------------------------------


def _verify_sha256(ctx: HubContext, pointer: Path, filename: str) -> None:
    """Check a cached LFS file against its sha256, which the cache names its blob after.

    A verified blob is remembered by its :func:`~deepfakedetect._utils.file_stamp`, in a
    marker file in the repo's cache folder (and in this process when the cache is read-only).
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
    stamp = file_stamp(blob)
    marker = blob.parent.parent / _VERIFIED_DIR / etag
    try:
        if marker.read_text() == stamp:
            return
    except OSError:
        pass
    ok, actual = sha256_matches(blob, etag)
    if not ok:
        for path in (pointer, blob, marker):
            path.unlink(missing_ok=True)
        raise ModelLoadError(
            f"{ctx.where(filename)} failed its integrity check: the Hub announced sha256 {etag}, the "
            f"downloaded file hashes to {actual}. The file was removed from the cache; try again, and if it "
            "keeps failing, something between you and the Hub is altering downloads"
        )
    try:
        marker.parent.mkdir(exist_ok=True)
        marker.write_text(stamp)
    except OSError as e:  # a read-only cache: sha256_matches remembers it for this process
        logger.debug("could not record the verification of %s: %s", blob, e)
