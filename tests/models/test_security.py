"""Security properties of loading models (issue 9, items 1-6), through every entry point.

``test_hub.py`` checks ``resolve_model_files`` and ``load_safetensors`` themselves (pickle
refusal, corrupt headers, sha256, offline, cut-short downloads) and ``test_config.py``
checks ``ModelConfig``. This file checks the same properties where users meet them:
``Detector.from_pretrained``, ``Detector.from_backbone(weights=...)``, training
checkpoints, the RetinaFace weights, and the order in which a model folder is read
(a bad ``config.json`` must fail before anything large is allocated).

Tests marked ``xfail(strict=True)`` show defects found here; each reason names the fix.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import socket
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from safetensors.torch import save as safetensors_bytes

from deepfakedetect import ConfigError, Detector, ModelLoadError
from deepfakedetect._config import FORMAT_VERSION

_real_pickle_loads = pickle.loads


class _Payload:
    """Unpickling this creates ``marker``: proof that a pickle was run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[override]
        return (Path.touch, (self.marker,))


def _payloads(marker: Path, probe: Path) -> dict[str, bytes]:
    """A plain pickle and a ``torch.save`` zip, both of which touch ``marker`` when loaded."""
    import io

    plain = pickle.dumps({"fc.weight": _Payload(marker)})
    buf = io.BytesIO()
    torch.save({"fc.weight": _Payload(marker)}, buf)
    # The payload must be live, or the tests using it could not fail.
    _real_pickle_loads(pickle.dumps(_Payload(probe)))
    assert probe.exists()
    probe.unlink()
    return {"pickle": plain, "torch.save": buf.getvalue()}


@pytest.fixture
def unpickle_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) every attempt to unpickle; errors may be swallowed, the record stays."""
    calls: list[str] = []
    # torch._dynamo subclasses pickle.Unpickler when it is first imported (torchvision and
    # torch.compile import it; inference no longer does): import it before pickle is patched.
    import torch._dynamo  # noqa: F401

    def refuse(name: str) -> Any:
        def inner(*args: object, **kwargs: object) -> None:
            calls.append(name)
            raise AssertionError(f"something called {name}")

        return inner

    monkeypatch.setattr(pickle, "load", refuse("pickle.load"))
    monkeypatch.setattr(pickle, "loads", refuse("pickle.loads"))
    monkeypatch.setattr(pickle, "Unpickler", refuse("pickle.Unpickler"))
    monkeypatch.setattr(torch, "load", refuse("torch.load"))
    return calls


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # Tiny models gain nothing from more threads, and on a busy 2-core machine lose a lot.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    det = Detector.from_backbone("resnet18", input_size=32, device="cpu", precision="fp32")
    return det.save_pretrained(tmp_path_factory.mktemp("tiny") / "model")


def _copy_folder(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


# -- 1. pickle payloads never run ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["pickle", "torch.save"])
def test_pickle_named_model_safetensors_is_refused_unopened(
    tiny_folder: Path, tmp_path: Path, kind: str, unpickle_calls: list[str]
) -> None:
    marker = tmp_path / "payload-ran"
    folder = _copy_folder(tiny_folder, tmp_path / "m")
    (folder / "model.safetensors").write_bytes(_payloads(marker, tmp_path / "probe")[kind])
    with pytest.raises(ModelLoadError, match="not a valid safetensors file") as info:
        Detector.from_pretrained(folder)
    assert str(folder / "model.safetensors") in str(info.value) and info.value.__cause__ is not None
    assert not marker.exists() and unpickle_calls == []


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin", ".ckpt"])
def test_pickle_backbone_weights_are_refused_unopened(tmp_path: Path, suffix: str, unpickle_calls: list[str]) -> None:
    marker = tmp_path / "payload-ran"
    path = tmp_path / f"backbone{suffix}"
    path.write_bytes(_payloads(marker, tmp_path / "probe")["torch.save"])
    with pytest.raises(ModelLoadError, match="safetensors"):
        Detector.from_backbone("resnet18", weights=path, input_size=32)
    with pytest.raises(ModelLoadError, match="safetensors"):
        Detector.from_backbone("resnet18", weights=str(path), input_size=32)
    assert not marker.exists() and unpickle_calls == []


def test_pickle_training_checkpoint_is_refused_unopened(tmp_path: Path, unpickle_calls: list[str]) -> None:
    from deepfakedetect.training.trainer import read_checkpoint

    marker = tmp_path / "payload-ran"
    for kind, data in _payloads(marker, tmp_path / "probe").items():
        path = tmp_path / f"last-{kind}.safetensors"
        path.write_bytes(data)
        with pytest.raises(ModelLoadError, match="cannot read the checkpoint") as info:
            read_checkpoint(path)
        assert info.value.__cause__ is not None
    assert not marker.exists() and unpickle_calls == []


def test_pickle_retinaface_weights_are_refused_unopened(tmp_path: Path, unpickle_calls: list[str]) -> None:
    from deepfakedetect.faces.retinaface import load_retinaface

    marker = tmp_path / "payload-ran"
    path = tmp_path / "retinaface.pth"
    path.write_bytes(_payloads(marker, tmp_path / "probe")["torch.save"])
    with pytest.raises(ModelLoadError, match="safetensors"):
        load_retinaface(path)
    assert not marker.exists() and unpickle_calls == []


def test_hub_repo_whose_safetensors_is_a_pickle(
    tiny_folder: Path, hub_server, tmp_path: Path, unpickle_calls: list[str]
) -> None:
    marker = tmp_path / "payload-ran"
    files = {p.name: p.read_bytes() for p in tiny_folder.iterdir()}
    files["model.safetensors"] = _payloads(marker, tmp_path / "probe")["torch.save"]
    hub_server.add_repo("evil/model", files)
    with pytest.raises(ModelLoadError, match="not a valid safetensors file") as info:
        Detector.from_pretrained("evil/model", cache_dir=tmp_path / "cache")
    assert info.value.__cause__ is not None
    assert not marker.exists() and unpickle_calls == []


# -- 2. corrupt weights through Detector.from_pretrained ---------------------------------


def _split(raw: bytes) -> tuple[dict[str, Any], bytes]:
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _join(header: dict[str, Any] | bytes, data: bytes) -> bytes:
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def _corrupt(raw: bytes, case: str) -> bytes:
    header, data = _split(raw)
    tensors = sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])
    if case == "empty":
        return b""
    if case == "truncated":
        return raw[: len(raw) - 1000]
    if case == "absurd header length":
        return struct.pack("<Q", 2**62) + raw[8:]
    if case == "bad json":
        return _join(json.dumps(header).encode().replace(b'"dtype"', b"dtype", 1), data)
    if case == "overlapping offsets":
        second = header[tensors[1]]
        begin, end = second["data_offsets"]
        second["data_offsets"] = [begin - 4, end - 4]
        return _join(header, data)
    if case == "unknown dtype":
        header[tensors[0]]["dtype"] = "F8_E4M3"
        return _join(header, data)
    raise ValueError(case)


@pytest.mark.parametrize(
    "case", ["empty", "truncated", "absurd header length", "bad json", "overlapping offsets", "unknown dtype"]
)
def test_corrupt_weights_raise_model_load_error_chained(tiny_folder: Path, tmp_path: Path, case: str) -> None:
    folder = _copy_folder(tiny_folder, tmp_path / "m")
    weights = folder / "model.safetensors"
    weights.write_bytes(_corrupt(weights.read_bytes(), case))
    with pytest.raises(ModelLoadError) as info:
        Detector.from_pretrained(folder)
    assert str(weights) in str(info.value)
    assert info.value.__cause__ is not None


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_weights_of_the_wrong_dtype_are_refused(tiny_folder: Path, tmp_path: Path, dtype: torch.dtype) -> None:
    folder = _copy_folder(tiny_folder, tmp_path / "m")
    state = load_file(folder / "model.safetensors")
    state["fc.weight"] = state["fc.weight"].to(dtype)
    save_file(state, folder / "model.safetensors")
    with pytest.raises(ModelLoadError, match="fc.weight"):
        Detector.from_pretrained(folder)


def test_non_finite_weights_are_refused(tiny_folder: Path, tmp_path: Path) -> None:
    folder = _copy_folder(tiny_folder, tmp_path / "m")
    state = load_file(folder / "model.safetensors")
    state["fc.weight"] = torch.full_like(state["fc.weight"], float("nan"))
    save_file(state, folder / "model.safetensors")
    with pytest.raises(ModelLoadError, match="fc.weight"):
        Detector.from_pretrained(folder)


# -- 3. sha256 of downloaded weights: the face detector's too ------------------------------


@pytest.fixture
def shipped_retinaface() -> bytes:
    """The RetinaFace weights shipped in the package, read before any test hides them."""
    import deepfakedetect.faces.detectors as faces

    return faces._PACKAGED_WEIGHTS.read_bytes()


@pytest.fixture
def own_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shipped_retinaface: bytes) -> Path:
    """A cold default cache, and no RetinaFace weights in the package or the environment,
    so that the face detector's weights come from the (loopback) Hub."""
    from huggingface_hub import constants

    import deepfakedetect.faces.detectors as faces

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.delenv(faces.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(faces, "_PACKAGED_WEIGHTS", tmp_path / "not-shipped" / faces.DEFAULT_FILENAME)
    monkeypatch.setattr(faces, "_NETWORKS", {})
    return cache


def test_tampered_face_detector_weights_are_refused(hub_server, own_hf_cache: Path) -> None:
    import deepfakedetect.faces.detectors as faces

    body = safetensors_bytes({"w": torch.arange(64, dtype=torch.float32)})
    hub_server.add_repo(faces.DEFAULT_REPO_ID, {faces.DEFAULT_FILENAME: body})
    hub_server.tamper = {faces.DEFAULT_FILENAME}
    with pytest.raises(ModelLoadError, match="sha256|integrity"):
        faces.resolve_retinaface_weights()
    assert not [p for p in own_hf_cache.rglob("*") if p.is_file() and p.stat().st_size == len(body)]


# -- 4. a bad config.json fails before anything is built or read ---------------------------


@pytest.fixture
def no_building(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) building the network or reading the weights."""
    import deepfakedetect.models.pretrained as pretrained

    calls: list[str] = []
    # torch._dynamo subclasses pickle.Unpickler when it is first imported (torchvision and
    # torch.compile import it; inference no longer does): import it before pickle is patched.
    import torch._dynamo  # noqa: F401

    def refuse(name: str) -> Any:
        def inner(*args: object, **kwargs: object) -> None:
            calls.append(name)
            raise AssertionError(f"{name} was called before the config was validated")

        return inner

    monkeypatch.setattr(pretrained, "build_model", refuse("build_model"))
    monkeypatch.setattr(pretrained, "build_model_from_state", refuse("build_model_from_state"))
    monkeypatch.setattr(pretrained, "load_safetensors", refuse("load_safetensors"))
    return calls


def _with_config(tiny_folder: Path, dst: Path, change: dict[str, Any]) -> Path:
    folder = _copy_folder(tiny_folder, dst)
    data = json.loads((folder / "config.json").read_text())
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict) and key != "backbone_kwargs":
            data[key].update(value)
        else:
            data[key] = value
    (folder / "config.json").write_text(json.dumps(data))  # NaN and Infinity are written as JSON allows them
    return folder


@pytest.mark.parametrize(
    "change",
    [
        {"preprocess": {"input_size": -3}},
        {"preprocess": {"input_size": 10**9}},
        {"preprocess": {"resize_size": 10**12}},
        {"preprocess": {"mean": [math.nan, 0, 0]}},
        {"num_outputs": 10**9},
        {"labels": ["fake", "real", "other"]},
        {"calibration": {"temperature": math.inf}},
        {"faces": {"detect_max_size": 10**9}},
        {"format_version": FORMAT_VERSION + 1},
        {"backbone": ""},
    ],
    ids=lambda c: json.dumps(c)[:40],
)
def test_absurd_config_raises_before_building_or_reading_weights(
    tiny_folder: Path, tmp_path: Path, change: dict[str, Any], no_building: list[str]
) -> None:
    folder = _with_config(tiny_folder, tmp_path / "m", change)
    with pytest.raises(ConfigError) as info:
        Detector.from_pretrained(folder)
    assert str(folder / "config.json") in str(info.value)
    assert no_building == []


@pytest.mark.parametrize(
    "change",
    [
        {"backbone_kwargs": {"num_classes": 10**12}},
        {"backbone_kwargs": {"weights": "IMAGENET1K_V1"}},
        {"num_outputs": 2.0},
        {"num_outputs": True},
    ],
    ids=lambda c: json.dumps(c),
)
def test_absurd_backbone_arguments_raise_config_error_before_building(
    tiny_folder: Path, tmp_path: Path, change: dict[str, Any], no_building: list[str]
) -> None:
    folder = _with_config(tiny_folder, tmp_path / "m", change)
    with pytest.raises(ConfigError):
        Detector.from_pretrained(folder)
    assert no_building == []


_MEASURE_LOAD = """
import resource, sys
import torch
from deepfakedetect import Detector, ModelLoadError
Detector.from_pretrained(sys.argv[1])  # the matching model: imports, allocator warm-up
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    Detector.from_pretrained(sys.argv[2])
except ModelLoadError as e:
    print("ModelLoadError", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, str(e)[:200])
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="peak memory is read with the resource module")
def test_weights_that_do_not_fit_the_backbone_fail_before_it_is_allocated(tiny_folder: Path, tmp_path: Path) -> None:
    import subprocess

    folder = _with_config(tiny_folder, tmp_path / "m", {"backbone": "resnet152"})  # 60 M parameters, 240 MB
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"), *sys.path])}
    done = subprocess.run([sys.executable, "-c", _MEASURE_LOAD, str(tiny_folder), str(folder)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    kind, growth_mb, message = done.stdout.strip().split(" ", 2)
    assert kind == "ModelLoadError" and "missing keys" in message
    assert float(growth_mb) < 60, f"the peak memory grew by {float(growth_mb):.0f} MB"


# -- 5. offline: nothing in the detector opens a socket ---------------------------------------


def _refuse_sockets(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    attempts: list[tuple] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("a socket was opened")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def _blobs(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("blobs/*") if p.is_file()]


def test_offline_face_stage_opens_no_socket(
    hub_server, own_hf_cache: Path, shipped_retinaface: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import deepfakedetect.faces.detectors as faces
    from deepfakedetect import FaceConfig
    from deepfakedetect.faces.stage import FaceStage

    hub_server.add_repo(faces.DEFAULT_REPO_ID, {faces.DEFAULT_FILENAME: shipped_retinaface})
    cache = tmp_path / "explicit-cache"  # not HF_HUB_CACHE: proves cache_dir is used
    image = np.zeros((64, 64, 3), np.uint8)
    online = FaceStage(FaceConfig(enabled=True), detector_options={"cache_dir": cache}, device="cpu")
    assert online([image]) == [[]]  # fills the cache with the face weights
    assert _blobs(cache) and not _blobs(own_hf_cache)
    monkeypatch.setattr(faces, "_NETWORKS", {})
    hub_server.clear_log()

    attempts = _refuse_sockets(monkeypatch)
    options = {"cache_dir": cache, "local_files_only": True}
    offline = FaceStage(FaceConfig(enabled=True), detector_options=options, device="cpu")
    assert offline([image]) == [[]]
    assert attempts == [] and hub_server.requests == []


def test_offline_detector_with_face_stage_opens_no_socket(
    hub_server, own_hf_cache: Path, shipped_retinaface: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import deepfakedetect.faces.detectors as faces

    hub_server.add_repo(faces.DEFAULT_REPO_ID, {faces.DEFAULT_FILENAME: shipped_retinaface})
    folder = Detector.from_backbone("resnet18", input_size=32, faces=True).save_pretrained(tmp_path / "m")
    hub_server.add_repo("org/faces", folder)
    cache = tmp_path / "explicit-cache"  # not HF_HUB_CACHE: proves cache_dir reaches the face stage
    image = np.zeros((64, 64, 3), np.uint8)
    online = Detector.from_pretrained("org/faces", cache_dir=cache)
    assert online.detect_image(image).status == "no_face"  # fills the cache with the face weights too
    assert not _blobs(own_hf_cache)
    monkeypatch.setattr(faces, "_NETWORKS", {})
    hub_server.clear_log()

    attempts = _refuse_sockets(monkeypatch)
    offline = Detector.from_pretrained("org/faces", cache_dir=cache, local_files_only=True)
    assert offline.detect_image(image).status == "no_face"
    assert attempts == [] and hub_server.requests == []
