"""A model folder's temporal head (temporal.json + temporal.safetensors) is untrusted data too (issue 15).

The same rules as for config.json and model.safetensors: the JSON's size is checked before
it is read, a FIFO is refused without blocking, every failure is a typed error naming the
file, and a config that describes a head far larger than its weights is refused before
the head is built (no memory for a 60000-wide GRU next to a 3 kB weights file).
"""

from __future__ import annotations

import json
import shutil
import struct
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from deepfakedetect import ConfigError, Detector, ModelLoadError
from deepfakedetect.models.temporal import (
    TEMPORAL_CONFIG_NAME,
    TEMPORAL_WEIGHTS_NAME,
    TemporalConfig,
    build_temporal_head,
    load_temporal,
    save_temporal,
)

from hostile_helpers import make_fifo, run_python, within


@pytest.fixture(scope="module")
def head_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("temporal")
    save_temporal(folder, build_temporal_head(TemporalConfig(input_dim=8, hidden=4)))
    return folder


def _copy(src: Path, dest: Path, **changes: Any) -> Path:
    shutil.copytree(src, dest)
    if changes:
        cfg = json.loads((dest / TEMPORAL_CONFIG_NAME).read_text())
        cfg.update(changes)
        (dest / TEMPORAL_CONFIG_NAME).write_text(json.dumps(cfg))
    return dest


def test_an_untampered_head_loads(head_folder: Path) -> None:
    head = load_temporal(head_folder)
    assert head is not None and head.cfg.input_dim == 8  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "raw",
    [b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", b'{"kind": "caf\xe9"}', b"[1]", b"{"],
    ids=["nested", "latin-1", "a-list", "bad-json"],
)
def test_an_unreadable_temporal_json_is_a_config_error(head_folder: Path, tmp_path: Path, raw: bytes) -> None:
    folder = _copy(head_folder, tmp_path / "m")
    (folder / TEMPORAL_CONFIG_NAME).write_bytes(raw)
    with pytest.raises(ConfigError, match=TEMPORAL_CONFIG_NAME) as info:
        load_temporal(folder)
    assert len(str(info.value)) < 600


@pytest.mark.parametrize(
    "change",
    [
        {"kind": ["gru"]},
        {"kind": "lstm" * 1000},
        {"hidden": 10**12},
        {"input_dim": -1},
        {"dropout": "0.1"},
        {"use_scores": 1},
        {"training": [1, 2]},
        {"format_version": "x" * 10_000},
        {"unknown_setting": 1},
    ],
    ids=lambda c: json.dumps(c)[:40],
)
def test_every_temporal_setting_is_checked(head_folder: Path, tmp_path: Path, change: dict[str, Any]) -> None:
    folder = _copy(head_folder, tmp_path / "m", **change)
    with pytest.raises(ConfigError, match=TEMPORAL_CONFIG_NAME) as info:
        load_temporal(folder)
    assert len(str(info.value)) < 600, "the message must not echo a long value back"


def test_a_missing_input_dim_is_a_config_error(head_folder: Path, tmp_path: Path) -> None:
    folder = _copy(head_folder, tmp_path / "m")
    cfg = json.loads((folder / TEMPORAL_CONFIG_NAME).read_text())
    del cfg["input_dim"]
    (folder / TEMPORAL_CONFIG_NAME).write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="input_dim"):
        load_temporal(folder)


@pytest.mark.parametrize("change", [{"hidden": 60_000}, {"input_dim": 60_000}, {"kind": "conv"}])
def test_a_config_larger_than_its_weights_is_refused_before_building(
    head_folder: Path, tmp_path: Path, change: dict[str, Any]
) -> None:
    folder = _copy(head_folder, tmp_path / "m", **change)
    # A 60000-wide GRU would take tens of GB; the shapes are compared on the meta device first.
    with pytest.raises(ModelLoadError, match="differ in name or shape"):
        within(60, lambda: load_temporal(folder))


def test_a_temporal_json_that_is_a_fifo_is_refused_without_blocking(head_folder: Path, tmp_path: Path) -> None:
    folder = _copy(head_folder, tmp_path / "m")
    (folder / TEMPORAL_CONFIG_NAME).unlink()
    make_fifo(folder / TEMPORAL_CONFIG_NAME)
    with pytest.raises(ConfigError, match="FIFO"):
        within(20, lambda: load_temporal(folder))


def test_a_deeply_nested_temporal_weights_header_is_a_model_load_error(head_folder: Path, tmp_path: Path) -> None:
    folder = _copy(head_folder, tmp_path / "m")
    header = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    (folder / TEMPORAL_WEIGHTS_NAME).write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(ModelLoadError, match=TEMPORAL_WEIGHTS_NAME):
        load_temporal(folder)


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_AS is POSIX")
def test_a_huge_sparse_temporal_json_is_refused_before_it_is_read(head_folder: Path, tmp_path: Path) -> None:
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to read the process size")
    folder = _copy(head_folder, tmp_path / "m")
    with open(folder / TEMPORAL_CONFIG_NAME, "r+b") as f:
        f.truncate(3 * 1024**3)  # 3 GB of holes: no disk used
    code = f"""
import resource
from deepfakedetect import ConfigError
from deepfakedetect.models.temporal import load_temporal
vm = [int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmSize:')][0]
resource.setrlimit(resource.RLIMIT_AS, (vm + 1024**3, resource.RLIM_INFINITY))
try:
    load_temporal({str(folder)!r})
except ConfigError as e:
    print("ConfigError", e)
"""
    done = run_python(code, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ConfigError") and TEMPORAL_CONFIG_NAME in done.stdout


def test_a_model_folder_with_a_bad_temporal_head_fails_at_load(head_folder: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Detector.from_backbone("resnet18", input_size=32, device="cpu").save_pretrained(tmp_path / "model")
    for name in (TEMPORAL_CONFIG_NAME, TEMPORAL_WEIGHTS_NAME):
        shutil.copy(head_folder / name, model / name)
    (model / TEMPORAL_CONFIG_NAME).write_bytes(b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}")
    with pytest.raises(ConfigError, match=TEMPORAL_CONFIG_NAME):
        Detector.from_pretrained(model)
