"""What went wrong with the Hub, said so that a user can act on it.

Exceptions from huggingface_hub and the network below it become one
:class:`~deepfakedetect.ModelLoadError` that names the repo, the file and what to do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, try_to_load_from_cache
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from deepfakedetect._config import CONFIG_NAME, README_NAME, WEIGHTS_NAME
from deepfakedetect._errors import ModelLoadError
from deepfakedetect.models.files import PICKLE_SUFFIXES, pickle_message

logger = logging.getLogger(__name__)

# Suffixes of checkpoints that are (or usually are) pickles; never opened, only named in errors.
# The HTTP stacks huggingface_hub has used (requests, then httpx, now httpx2): their errors are network errors.
NETWORK_MODULES = frozenset({"httpx", "httpx2", "httpcore", "httpcore2", "h11", "requests", "urllib3"})


@dataclass(frozen=True)
class HubContext:
    repo_id: str
    revision: str | None
    endpoint: str
    cache_dir: str

    def where(self, filename: str) -> str:
        return f"{filename} of Hub repo {self.repo_id!r} at revision {self.revision or 'main'!r}"


def offline_miss(ctx: HubContext, filename: str) -> ModelLoadError:

    if filename == CONFIG_NAME:  # a model whose config is cached but whose weights are a pickle
        config = try_to_load_from_cache(ctx.repo_id, CONFIG_NAME, cache_dir=ctx.cache_dir, revision=ctx.revision)
        if isinstance(config, str):
            pickles = sorted(p.name for p in Path(config).parent.iterdir() if p.name.endswith(PICKLE_SUFFIXES))
            if pickles:
                return ModelLoadError(pickle_message(f"the cached Hub repo {ctx.repo_id!r}", pickles))
        what = f"{ctx.repo_id!r} at revision {ctx.revision or 'main'!r}"
    else:
        what = ctx.where(filename)
    return ModelLoadError(
        f"{what} is not in the local cache ({ctx.cache_dir}) and downloads are off (local_files_only=True or "
        "HF_HUB_OFFLINE=1): run once online to fill the cache, or pass local_files_only=False and unset "
        "HF_HUB_OFFLINE"
    )


def remote_pickles(repo_id: str, revision: str | None, token: str | bool | None, *, timeout: float) -> list[str]:
    """Names of pickle checkpoints in a repo, to explain a missing ``model.safetensors``."""

    try:
        info = HfApi().model_info(repo_id, revision=revision, token=token, timeout=timeout)
    except Exception as e:  # only improves a message; the caller raises in any case
        logger.debug("could not list the files of %s: %s", repo_id, e)
        return []
    return sorted(s.rfilename for s in info.siblings or () if s.rfilename.endswith(PICKLE_SUFFIXES))


def is_hub_error(error: BaseException) -> bool:
    """Whether an exception comes from huggingface_hub or the network below it."""

    if isinstance(error, (HfHubHTTPError, EntryNotFoundError, OSError, ConnectionError, TimeoutError, ValueError)):
        return True
    return type(error).__module__.split(".")[0] in {"huggingface_hub", *NETWORK_MODULES}


def is_network_error(error: BaseException) -> bool:

    if isinstance(error, OfflineModeIsEnabled):
        return False
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    return type(error).__module__.split(".")[0] in NETWORK_MODULES


def download_error(error: BaseException, ctx: HubContext, filename: str) -> ModelLoadError:

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
    elif isinstance(error, LocalEntryNotFoundError) or is_network_error(error):
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


def upload_error(error: BaseException, repo_id: str, endpoint: str) -> ModelLoadError:

    status = getattr(getattr(error, "response", None), "status_code", None)
    if isinstance(error, RepositoryNotFoundError) or status in (401, 403):
        hint = "set HF_TOKEN or pass token= with write access to the repo (or its namespace)"
    elif is_network_error(error):
        hint = "check the network connection and HF_ENDPOINT, then try again"
    elif isinstance(error, HfHubHTTPError):
        hint = "try again later"
    else:
        hint = "check the repo id and the folder"
    return ModelLoadError(
        f"could not upload to Hub repo {repo_id!r} at {endpoint} ({type(error).__name__}: {error}): {hint}"
    )


