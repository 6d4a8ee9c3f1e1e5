"""Model folders and the Hub: resolve, download, verify, load and upload.

Hub tests run the real ``huggingface_hub`` code against the loopback server in
``hub_server.py`` (``HF_ENDPOINT`` points at it, see ``conftest.py``); each test uses its
own cache folder so that cold and warm caches are what the test says they are.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import socket
import struct
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save as safetensors_bytes

from deepfakedetect import _utils
from deepfakedetect._errors import ConfigError, ModelLoadError
from deepfakedetect.models.hub import ModelFiles, resolve_model_files, upload_model_folder
from deepfakedetect.models.weights import load_safetensors

REPO = "org/detector"
_real_pickle_loads = pickle.loads  # kept before the no_unpickling fixture replaces it


def model_files(seed: int = 0) -> dict[str, bytes]:
    """A tiny model folder's content: two small tensors, a config and a card."""
    g = torch.Generator().manual_seed(seed)
    tensors = {"fc.weight": torch.randn(2, 8, generator=g), "fc.bias": torch.randn(2, generator=g)}
    return {
        "config.json": json.dumps({"format_version": 1, "seed": seed}).encode(),
        "model.safetensors": safetensors_bytes(tensors),
        "README.md": b"# tiny test model\n",
    }


def write_folder(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


class _Payload:
    """Unpickling this creates ``marker``: proof that a pickle was run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[override]
        return (Path.touch, (self.marker,))


def pickle_payload(marker: Path, tmp_path: Path) -> bytes:
    data = pickle.dumps({"fc.weight": _Payload(marker)})
    # The payload must be live, or the tests using it could not fail.
    probe = tmp_path / "payload-is-live"
    _real_pickle_loads(pickle.dumps(_Payload(probe)))
    assert probe.exists()
    return data


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("something tried to unpickle a checkpoint")

    for name in ("load", "loads"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Make every socket creation fail, and record the attempts (errors may be swallowed)."""
    attempts: list[tuple] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


@pytest.fixture
def telemetry_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """huggingface_hub as most users run it: with telemetry, it may fetch an agent registry."""
    from huggingface_hub import constants
    from huggingface_hub.utils import _detect_agent

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", False)
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(tmp_path / "agent_harnesses.json"))
    monkeypatch.setattr(_detect_agent, "_registry", None)


def blobs(cache: Path) -> list[Path]:
    return sorted((cache / "models--org--detector" / "blobs").glob("*"))


# -- local folders ----------------------------------------------------------------------


def test_folder_is_used_as_is(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "model", model_files())
    for given in (folder, str(folder)):
        files = resolve_model_files(given)
        assert files == ModelFiles(folder / "config.json", folder / "model.safetensors", str(folder), None)
    tensors = load_safetensors(files.weights)
    assert set(tensors) == {"fc.weight", "fc.bias"} and tensors["fc.weight"].shape == (2, 8)


@pytest.mark.parametrize(
    "given", ["./missing-model", "/no/such/model", "a/b/c", "~/no-such-model-here", "C:\\models\\m"]
)
def test_missing_path_is_not_taken_for_a_repo_id(given: str, hub_server) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model_files(given)
    assert hub_server.requests == []


def test_missing_path_object_raises(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model_files(tmp_path / "nope")


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors"])
def test_folder_missing_a_file(tmp_path: Path, missing: str) -> None:
    files = model_files()
    del files[missing]
    folder = write_folder(tmp_path / "model", files)
    with pytest.raises(ModelLoadError, match=missing.replace(".", r"\.")):
        resolve_model_files(folder)


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "weights.pth"])
def test_pickle_only_folder_is_refused_unopened(tmp_path: Path, name: str, no_unpickling: None) -> None:
    marker = tmp_path / "payload-ran"
    files = model_files()
    del files["model.safetensors"]
    folder = write_folder(tmp_path / "model", {**files, name: pickle_payload(marker, tmp_path)})
    with pytest.raises(ModelLoadError, match="pickle checkpoints are refused") as info:
        resolve_model_files(folder)
    assert name in str(info.value) and "safetensors" in str(info.value)
    assert not marker.exists()


# -- safetensors validation --------------------------------------------------------------


def _raw_safetensors(header: object, data: bytes = b"", *, length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def _f32(n: int, begin: int, end: int) -> dict[str, object]:
    return {"dtype": "F32", "shape": [n], "data_offsets": [begin, end]}


_F32x2 = _f32(2, 0, 8)
_F32x2_JSON = json.dumps(_F32x2).encode()
_CORRUPT = {  # case -> (file content, what the error must say)
    "empty": (b"", "0 bytes"),
    "shorter than the length field": (b"\x01\x02\x03", "3 bytes"),
    "truncated data": (safetensors_bytes({"w": torch.ones(64)})[:-10], "truncated"),
    "absurd header length": (_raw_safetensors({"w": _F32x2}, bytes(8), length=2**62), "header length"),
    "header longer than file": (_raw_safetensors({"w": _F32x2}, bytes(8), length=10_000), "header length"),
    "bad json": (_raw_safetensors(b"{not json", bytes(8)), "property name"),
    "json not an object": (_raw_safetensors([1, 2], bytes(8)), "not an object"),
    "not utf-8": (_raw_safetensors(b"\xff\xfe{}", bytes(8)), "utf-8"),
    "overlapping offsets": (_raw_safetensors({"a": _f32(2, 0, 8), "b": _f32(2, 4, 12)}, bytes(12)), "overlap"),
    "unknown dtype": (_raw_safetensors({"w": {**_F32x2, "dtype": "Q4"}}, bytes(8)), "dtype 'Q4'"),
    "wrong byte count for shape": (_raw_safetensors({"w": _f32(3, 0, 8)}, bytes(8)), "need 12"),
    "negative shape": (_raw_safetensors({"w": _f32(-2, 0, 8)}, bytes(8)), "invalid shape"),
    "missing offsets": (_raw_safetensors({"w": {"dtype": "F32", "shape": [2]}}, bytes(8)), "lacks"),
    "duplicate key": (_raw_safetensors(b'{"w": %s, "w": %s}' % (_F32x2_JSON, _F32x2_JSON), bytes(8)), "repeats"),
    # Passes our checks; safetensors itself refuses it, and its error is chained.
    "unused bytes after the tensors": (_raw_safetensors({"w": _F32x2}, bytes(16)), "not fully covered"),
}


@pytest.mark.parametrize("case", sorted(_CORRUPT))
def test_corrupt_safetensors_raise_model_load_error(tmp_path: Path, case: str) -> None:
    content, expected = _CORRUPT[case]
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError) as info:
        load_safetensors(path)
    assert str(path) in str(info.value) and expected in str(info.value)
    assert info.value.__cause__ is not None


def test_load_safetensors_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_safetensors(tmp_path / "model.safetensors")


def test_load_safetensors_keeps_values_and_dtypes(tmp_path: Path) -> None:
    tensors = {
        "f32": torch.randn(3, 4),
        "f16": torch.randn(5).half(),
        "bf16": torch.randn(2, 2).bfloat16(),
        "i64": torch.arange(7),
        "flag": torch.tensor([True, False]),
        "empty": torch.zeros(0, 3),
    }
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_bytes(tensors))
    loaded = load_safetensors(path)
    assert loaded.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor)


# -- the Hub: downloads ------------------------------------------------------------------


def test_hub_by_branch_and_by_sha(hub_server, tmp_path: Path) -> None:
    files = model_files()
    sha = hub_server.add_repo(REPO, files)
    by_branch = resolve_model_files(REPO, cache_dir=tmp_path / "a")
    assert by_branch.revision == sha and by_branch.source == REPO
    assert by_branch.config.read_bytes() == files["config.json"]
    assert by_branch.weights.read_bytes() == files["model.safetensors"]
    by_sha = resolve_model_files(REPO, revision=sha, cache_dir=tmp_path / "b")
    assert by_sha.revision == sha and by_sha.weights.read_bytes() == files["model.safetensors"]

    # A new commit on main is picked up by the branch, while the old sha still gives the old files.
    new_files = model_files(seed=1)
    new_sha = hub_server.commit(REPO, new_files)
    moved = resolve_model_files(REPO, cache_dir=tmp_path / "a")
    assert moved.revision == new_sha and moved.weights.read_bytes() == new_files["model.safetensors"]
    old = resolve_model_files(REPO, revision=sha, cache_dir=tmp_path / "a")
    assert old.weights.read_bytes() == files["model.safetensors"]


def test_weights_are_pinned_to_the_commit_the_config_resolved_to(hub_server, tmp_path: Path) -> None:
    sha = hub_server.add_repo(REPO, model_files())
    dev_sha = hub_server.commit(REPO, {"README.md": b"other"}, branch="dev")
    assert resolve_model_files(REPO, revision="dev", cache_dir=tmp_path).revision == dev_sha != sha
    weight_requests = [r.path for r in hub_server.requests if r.path.endswith("/model.safetensors")]
    assert weight_requests and all(f"/resolve/{dev_sha}/" in p for p in weight_requests)


def test_lfs_file_served_through_a_cdn_redirect(hub_server, tmp_path: Path) -> None:
    files = model_files()
    hub_server.add_repo(REPO, write_folder(tmp_path / "model", files))  # served from a folder this time
    hub_server.lfs_redirect = True
    got = resolve_model_files(REPO, cache_dir=tmp_path / "cache")
    assert got.weights.read_bytes() == files["model.safetensors"]
    assert any(r.path.startswith("/cdn/") for r in hub_server.requests)


def test_missing_repo(hub_server, tmp_path: Path) -> None:
    from huggingface_hub.errors import RepositoryNotFoundError

    with pytest.raises(ModelLoadError, match="org/absent") as info:
        resolve_model_files("org/absent", cache_dir=tmp_path)
    assert "HF_TOKEN" in str(info.value) and "check the repo id" in str(info.value)
    assert isinstance(info.value.__cause__, RepositoryNotFoundError)


def test_missing_revision(hub_server, tmp_path: Path) -> None:
    from huggingface_hub.errors import RevisionNotFoundError

    hub_server.add_repo(REPO, model_files())
    with pytest.raises(ModelLoadError, match="'v9'") as info:
        resolve_model_files(REPO, revision="v9", cache_dir=tmp_path)
    assert isinstance(info.value.__cause__, RevisionNotFoundError)
    with pytest.raises(ModelLoadError, match="revision"):
        resolve_model_files(REPO, revision="0" * 40, cache_dir=tmp_path)


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors"])
def test_missing_file_in_repo(hub_server, tmp_path: Path, missing: str) -> None:
    from huggingface_hub.errors import EntryNotFoundError

    files = model_files()
    del files[missing]
    hub_server.add_repo(REPO, files)
    with pytest.raises(ModelLoadError, match=missing.replace(".", r"\.")) as info:
        resolve_model_files(REPO, cache_dir=tmp_path)
    assert isinstance(info.value.__cause__, EntryNotFoundError)


def test_private_repo_needs_a_token(hub_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    files = model_files()
    hub_server.add_repo(REPO, files, private=True)
    with pytest.raises(ModelLoadError, match="HF_TOKEN"):
        resolve_model_files(REPO, cache_dir=tmp_path, token=False)
    got = resolve_model_files(REPO, cache_dir=tmp_path, token=hub_server.token)
    assert got.weights.read_bytes() == files["model.safetensors"]


def test_invalid_repo_id(hub_server) -> None:
    with pytest.raises(ModelLoadError, match="neither an existing folder nor a valid Hub repo id"):
        resolve_model_files("bad repo id!")
    assert hub_server.requests == []


def test_pickle_only_repo_is_refused_and_never_downloaded(hub_server, tmp_path: Path, no_unpickling: None) -> None:
    marker = tmp_path / "payload-ran"
    files = model_files()
    del files["model.safetensors"]
    hub_server.add_repo(REPO, {**files, "pytorch_model.bin": pickle_payload(marker, tmp_path)})
    with pytest.raises(ModelLoadError, match="pickle checkpoints are refused") as info:
        resolve_model_files(REPO, cache_dir=tmp_path / "cache")
    assert "pytorch_model.bin" in str(info.value) and "save_file" in str(info.value)
    assert not marker.exists()
    assert not [r for r in hub_server.requests if r.path.endswith("pytorch_model.bin")]


# -- offline and caching -----------------------------------------------------------------


def test_offline_warm_cache_opens_no_socket(
    hub_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, telemetry_on: None
) -> None:
    files = model_files()
    sha = hub_server.add_repo(REPO, files)
    online = resolve_model_files(REPO, cache_dir=tmp_path)
    hub_server.clear_log()
    from huggingface_hub.utils import _detect_agent

    monkeypatch.setattr(_detect_agent, "_registry", None)  # as in a new process

    attempts: list[tuple] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    offline = resolve_model_files(REPO, cache_dir=tmp_path, local_files_only=True)
    assert offline == online and offline.revision == sha
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model_files(REPO, cache_dir=tmp_path) == online
    assert attempts == [] and hub_server.requests == []


def test_offline_cold_cache_fails_fast(
    hub_server, tmp_path: Path, no_sockets: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub_server.add_repo(REPO, model_files())
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="run once online") as info:
        resolve_model_files(REPO, cache_dir=tmp_path, local_files_only=True)
    assert time.perf_counter() - start < 1.0
    assert "local_files_only" in str(info.value) and REPO in str(info.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "yes")
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE"):
        resolve_model_files(REPO, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="force_download"):
        resolve_model_files(REPO, cache_dir=tmp_path, force_download=True)
    assert no_sockets == []


def test_cached_commit_sha_makes_no_request(hub_server, tmp_path: Path, no_sockets: list, telemetry_on: None) -> None:
    # Filled by hand (sockets are off): the layout huggingface_hub writes, for one commit.
    files = model_files()
    sha = "1" * 40
    storage = tmp_path / "models--org--detector"

    for name, data in files.items():
        etag = hashlib.sha256(data).hexdigest()
        (storage / "blobs").mkdir(parents=True, exist_ok=True)
        (storage / "blobs" / etag).write_bytes(data)
        (storage / "snapshots" / sha).mkdir(parents=True, exist_ok=True)
        (storage / "snapshots" / sha / name).symlink_to(Path("../../blobs") / etag)
    got = resolve_model_files(REPO, revision=sha, cache_dir=tmp_path)
    assert got.revision == sha and got.weights.read_bytes() == files["model.safetensors"]
    assert no_sockets == [] and hub_server.requests == []


def test_cached_commit_sha_after_download_makes_no_request(hub_server, tmp_path: Path) -> None:
    sha = hub_server.add_repo(REPO, model_files())
    resolve_model_files(REPO, cache_dir=tmp_path)
    hub_server.clear_log()
    assert resolve_model_files(REPO, revision=sha, cache_dir=tmp_path).revision == sha
    assert hub_server.requests == []


def test_unresponsive_hub_cold_cache_fails_fast_warm_cache_falls_back(
    hub_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import deepfakedetect.models.hub as hub

    monkeypatch.setattr(hub, "ETAG_TIMEOUT", 0.2)
    files = model_files()
    hub_server.add_repo(REPO, files)
    resolve_model_files(REPO, cache_dir=tmp_path / "warm")
    hub_server.delay = 1.0
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="check the network connection"):
        resolve_model_files(REPO, cache_dir=tmp_path / "cold")
    assert time.perf_counter() - start < 1.0
    assert resolve_model_files(REPO, cache_dir=tmp_path / "warm").weights.read_bytes() == files["model.safetensors"]


def test_transient_server_error_is_retried(hub_server, tmp_path: Path) -> None:
    files = model_files()
    hub_server.add_repo(REPO, files)
    hub_server.fail_next(1, status=503)
    assert resolve_model_files(REPO, cache_dir=tmp_path).weights.read_bytes() == files["model.safetensors"]


def test_force_download_fetches_again(hub_server, tmp_path: Path) -> None:
    hub_server.add_repo(REPO, model_files())
    resolve_model_files(REPO, cache_dir=tmp_path)
    hub_server.clear_log()
    resolve_model_files(REPO, cache_dir=tmp_path, force_download=True)
    downloaded = [r.path.rsplit("/", 1)[1] for r in hub_server.requests if r.method == "GET"]
    assert downloaded == ["config.json", "model.safetensors"]


# -- integrity ---------------------------------------------------------------------------


def test_tampered_download_is_detected_and_removed(hub_server, tmp_path: Path) -> None:
    files = model_files()
    hub_server.add_repo(REPO, files)
    hub_server.tamper = {"model.safetensors"}
    with pytest.raises(ModelLoadError, match="sha256") as info:
        resolve_model_files(REPO, cache_dir=tmp_path)
    assert "removed from the cache" in str(info.value)
    snapshot = next((tmp_path / "models--org--detector" / "snapshots").iterdir())
    assert not (snapshot / "model.safetensors").exists() and not (snapshot / "model.safetensors").is_symlink()
    weight_blob = hashlib.sha256(files["model.safetensors"]).hexdigest()
    assert weight_blob not in [p.name for p in blobs(tmp_path)]

    hub_server.tamper = set()
    got = resolve_model_files(REPO, cache_dir=tmp_path)
    assert got.weights.read_bytes() == files["model.safetensors"]


def test_verification_is_remembered_but_tampering_on_disk_is_caught(
    hub_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    sha = hub_server.add_repo(REPO, model_files())
    got = resolve_model_files(REPO, cache_dir=tmp_path)

    def no_hashing(*args: object) -> None:
        raise AssertionError("a verified file was hashed again")

    monkeypatch.setattr(_utils, "hashlib", SimpleNamespace(sha256=no_hashing))
    monkeypatch.setattr(_utils, "_verified", {})  # a new process: only the marker remains
    assert resolve_model_files(REPO, revision=sha, cache_dir=tmp_path) == got
    monkeypatch.undo()

    blob = Path(os.path.realpath(got.weights))
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="integrity"):
        resolve_model_files(REPO, revision=sha, cache_dir=tmp_path, local_files_only=True)
    assert not blob.exists()


def test_download_cut_short_leaves_nothing_and_retry_succeeds(
    hub_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.file_download as file_download

    # huggingface_hub resumes a broken download 5 times, sleeping 1 s before each try.
    monkeypatch.setattr(file_download, "time", SimpleNamespace(sleep=lambda seconds: None))
    files = model_files()
    hub_server.add_repo(REPO, files)
    hub_server.cut_short = {"model.safetensors": 100}
    with pytest.raises(ModelLoadError, match="model.safetensors") as info:
        resolve_model_files(REPO, cache_dir=tmp_path)
    assert "try again" in str(info.value) and info.value.__cause__ is not None
    leftovers = [p.name for p in blobs(tmp_path)]
    assert not [n for n in leftovers if n.endswith(".incomplete")]
    assert hashlib.sha256(files["model.safetensors"]).hexdigest() not in leftovers

    hub_server.cut_short = {}
    assert resolve_model_files(REPO, cache_dir=tmp_path).weights.read_bytes() == files["model.safetensors"]


def test_download_cut_once_is_resumed(hub_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.file_download as file_download

    monkeypatch.setattr(file_download, "time", SimpleNamespace(sleep=lambda seconds: None))
    files = model_files()
    hub_server.add_repo(REPO, files)
    hub_server.cut_short = {"model.safetensors": 1}
    assert resolve_model_files(REPO, cache_dir=tmp_path).weights.read_bytes() == files["model.safetensors"]
    # Small files arrive in one chunk, so huggingface_hub restarts rather than resumes (no Range).
    assert len([r for r in hub_server.requests if r.method == "GET" and r.path.endswith("model.safetensors")]) == 2


# -- uploads -----------------------------------------------------------------------------


def test_upload_round_trip(hub_server, tmp_path: Path) -> None:
    files = model_files()
    folder = write_folder(tmp_path / "model", {**files, ".hidden": b"not uploaded"})
    sha = upload_model_folder(folder, "me/uploaded", token=hub_server.token)
    assert hub_server.repos["me/uploaded"].branches["main"] == sha
    remote = hub_server.files("me/uploaded", sha)
    assert {k: remote[k] for k in files} == files and ".hidden" not in remote

    got = resolve_model_files("me/uploaded", revision=sha, cache_dir=tmp_path / "cache")
    assert got.config.read_bytes() == files["config.json"]
    assert got.weights.read_bytes() == files["model.safetensors"]

    # A second upload to the same repo, on a new branch.
    new_files = model_files(seed=2)
    write_folder(folder, new_files)
    dev_sha = upload_model_folder(folder, "me/uploaded", token=hub_server.token, revision="dev", commit_message="v2")
    assert hub_server.repos["me/uploaded"].branches == {"main": sha, "dev": dev_sha}
    assert hub_server.files("me/uploaded", "dev")["model.safetensors"] == new_files["model.safetensors"]


def test_upload_private_repo(hub_server, tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "model", model_files())
    upload_model_folder(folder, "me/secret", token=hub_server.token, private=True)
    assert hub_server.repos["me/secret"].private


def test_upload_without_token_is_refused(hub_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    folder = write_folder(tmp_path / "model", model_files())
    with pytest.raises(ModelLoadError, match="HF_TOKEN") as info:
        upload_model_folder(folder, "me/uploaded", token="hf_wrong")
    assert info.value.__cause__ is not None
    assert "me/uploaded" not in hub_server.repos


def test_upload_incomplete_folder(hub_server, tmp_path: Path) -> None:
    files = model_files()
    del files["model.safetensors"]
    folder = write_folder(tmp_path / "model", files)
    with pytest.raises(ModelLoadError, match="model.safetensors missing"):
        upload_model_folder(folder, "me/uploaded", token=hub_server.token)
    assert hub_server.requests == []
