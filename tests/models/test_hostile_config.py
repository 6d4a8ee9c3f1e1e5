"""Hostile model folders, plugin specs and training checkpoints (issue 15): typed errors at load.

Every field of ``config.json`` is checked when the model is loaded, not when a batch
first uses it; specs are parsed without recursion or unbounded work; memory stays
bounded whatever the file's size.
"""

from __future__ import annotations

import json
import shutil
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from deepfakedetect import (
    ConfigError,
    DeepfakeDetectError,
    Detector,
    ModelLoadError,
    Trainer,
    UnknownPluginError,
)
from deepfakedetect.aggregators import get_aggregator
from deepfakedetect.samplers import get_sampler

from hostile_helpers import run_python


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny")
    return Detector.from_backbone("resnet18", input_size=32, device="cpu").save_pretrained(folder)


def _variant(tiny: Path, dest: Path, *, change: dict[str, Any] | None = None, raw: bytes | None = None) -> Path:
    shutil.copytree(tiny, dest)
    if raw is not None:
        (dest / "config.json").write_bytes(raw)
    elif change is not None:
        cfg = json.loads((tiny / "config.json").read_text())
        for key, value in change.items():
            if isinstance(value, dict) and isinstance(cfg.get(key), dict):
                cfg[key] = {**cfg[key], **value}
            else:
                cfg[key] = value
        (dest / "config.json").write_text(json.dumps(cfg))
    return dest


def _deep(n: int) -> bytes:
    return b'{"a": ' + b"[" * n + b"]" * n + b"}"


# -- config.json that is not what it claims --------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        _deep(200_000),
        b'{"backbone": "resnet18", "x": "caf\xe9"}',  # Latin-1, not UTF-8
        b"\xff\xfe{\x00}\x00",  # UTF-16
        b"[1, 2, 3]",
        b"null",
        b'{"backbone": "resnet18"' + b", " * 10 + b"}",
    ],
    ids=["nested-200000", "latin-1", "utf-16", "a-list", "null", "bad-json"],
)
def test_unreadable_config_json_is_a_config_error(tiny_folder: Path, tmp_path: Path, raw: bytes) -> None:
    folder = _variant(tiny_folder, tmp_path / "m", raw=raw)
    with pytest.raises(ConfigError) as info:
        Detector.from_pretrained(folder)
    assert "config.json" in str(info.value)
    assert len(str(info.value)) < 600  # names the problem; never echoes the file back


BAD_FIELDS = [
    {"calibration": {"operating_points": [0.5]}},
    {"calibration": {"operating_points": {"fpr@1%": "0.9"}}},
    {"calibration": {"operating_points": {str(i): 0.5 for i in range(5000)}}},
    {"backbone_kwargs": {"groups": "x"}},
    {"backbone_kwargs": {"width_per_group": -1}},
    {"backbone_kwargs": {"zero_init_residual": [[1]]}},
    {"backbone_kwargs": {"zero_init_residual": {"a": {"b": 1}}}},
    {"backbone_kwargs": {"": 1}},
    {"backbone_kwargs": [1, 2]},
    {"labels": "ab"},
    {"labels": ["fake", 3]},
    {"training": [1]},
    {"library_version": 5},
    {"backbone": "resnet18" * 100},
    {"video": {"sampler": "uniform:num_frames=" + "not " * 5000 + "1"}},
    {"video": {"sampler": "no_such_sampler"}},
    {"video": {"sampler": {"name": "uniform", "num_frames": -4}}},
    {"video": {"sampler": 5}},
    {"video": {"sampler": "uniform:" + ",".join(f"k{i}=1" for i in range(3000))}},
    {"video": {"aggregator": 5}},
    {"video": {"aggregator": "top_k_mean:k=[[[[[[[[[[[[[[1]]]]]]]]]]]]]]"}},
    {"video": {"aggregator": "no_such_aggregator"}},
    {"video": {"aggregator": {"name": "quantile", "q": 7}}},
    {"video": {"aggregator": {"name": "mean", "nested": {"a": [1, {"b": 2}]}}}},
    {"video": []},
    {"video": {"people": "tallest"}},
    {"video": {"people": ["max"]}},
    {"faces": {"detector": "no_such_face_detector"}},
    {"faces": {"detector": 7}},
    {"faces": {"detector": "x" * 5000}},
    {"faces": {"enabled": 1}},
    {"faces": {"square": "yes"}},
    {"faces": {"align": None}},
]


@pytest.mark.parametrize("change", BAD_FIELDS, ids=lambda c: json.dumps(c)[:60])
def test_every_config_field_is_checked_at_load(tiny_folder: Path, tmp_path: Path, change: dict[str, Any]) -> None:
    folder = _variant(tiny_folder, tmp_path / "m", change=change)
    with pytest.raises((ConfigError, UnknownPluginError)) as info:
        Detector.from_pretrained(folder)
    message = str(info.value)
    assert "config.json" in message, message
    assert len(message) < 1000, "the message must not echo a long value back"


def test_a_good_config_with_every_field_set_still_loads(tiny_folder: Path, tmp_path: Path) -> None:
    # The checks above must not refuse what save_pretrained writes or what users set.
    folder = _variant(
        tiny_folder,
        tmp_path / "m",
        change={
            "calibration": {"operating_points": {"fpr@1%": 0.93}},
            "video": {"sampler": "uniform:num_frames=8", "aggregator": {"name": "top_k_mean", "k": 3}},
            "backbone_kwargs": {"zero_init_residual": True},
            "faces": {"detector": "retinaface"},
        },
    )
    det = Detector.from_pretrained(folder)
    assert det.config.calibration.operating_points == {"fpr@1%": 0.93}


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_AS is POSIX")
def test_a_huge_sparse_config_json_is_refused_before_it_is_read(tiny_folder: Path, tmp_path: Path) -> None:
    folder = _variant(tiny_folder, tmp_path / "m")
    with open(folder / "config.json", "r+b") as f:
        f.truncate(3 * 1024**3)  # 3 GB of holes: no disk used
    # Address space capped at what the process already has plus 1 GB: reading the file
    # whole (the bug) runs out of memory; checking its size first does not.
    code = f"""
import resource
from deepfakedetect import ModelConfig, ConfigError
vm = [int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmSize:')][0]
resource.setrlimit(resource.RLIMIT_AS, (vm + 1024**3, resource.RLIM_INFINITY))
try:
    ModelConfig.load({str(folder / "config.json")!r})
except ConfigError as e:
    print("ConfigError", e)
"""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to read the process size")
    done = run_python(code, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ConfigError") and "config.json" in done.stdout


def test_a_config_json_that_is_a_fifo_is_refused_without_blocking(tiny_folder: Path, tmp_path: Path) -> None:
    from hostile_helpers import make_fifo, within

    folder = _variant(tiny_folder, tmp_path / "m")
    (folder / "config.json").unlink()
    make_fifo(folder / "config.json")
    with pytest.raises((ConfigError, ModelLoadError), match="regular file"):
        within(20, lambda: Detector.from_pretrained(folder))


def test_a_deeply_nested_safetensors_header_is_a_model_load_error(tiny_folder: Path, tmp_path: Path) -> None:
    folder = _variant(tiny_folder, tmp_path / "m")
    header = _deep(100_000)
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(ModelLoadError, match="model.safetensors"):
        Detector.from_pretrained(folder)


# -- plugin specs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        "uniform:num_frames=" + "not " * 5000 + "1",
        "uniform:num_frames=" + "-" * 100_000 + "1",
        "uniform:num_frames=" + "(" * 100_000 + "1" + ")" * 100_000,
        "uniform:num_frames=" + "[" * 50_000,
        "uniform:num_frames=9" * 1,
        "uniform:num_frames=1e999999",
        "uniform:num_frames=" + "9" * 100_000,
        "uniform:" + "," * 100_000,
        "x" * 1_000_000,
    ],
    ids=["not-x5000", "minus-x100000", "parens", "brackets", "fine", "inf", "huge-int", "commas", "long-name"],
)
def test_sampler_specs_parse_without_recursion_or_unbounded_work(spec: str) -> None:
    if spec == "uniform:num_frames=9":
        assert get_sampler(spec).num_frames == 9  # type: ignore[attr-defined]
        return
    with pytest.raises(DeepfakeDetectError) as info:
        get_sampler(spec)
    assert len(str(info.value)) < 1000, "the message must not echo a long spec back"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("top_k_mean:k=5", {"k": 5}),
        ("quantile:q=0.9", {"q": 0.9}),
        ("trimmed_mean:proportion=0.25", {"proportion": 0.25}),
    ],
)
def test_ordinary_specs_still_parse(spec: str, expected: dict[str, Any]) -> None:
    agg = get_aggregator(spec)
    for key, value in expected.items():
        assert getattr(agg, key) == value


def test_spec_values_keep_their_literal_types() -> None:
    # What the old literal_eval parser accepted, without its recursion.
    from deepfakedetect import register_sampler

    seen: dict[str, Any] = {}

    @register_sampler("hostile_echo_sampler", override=True)
    def echo(video: Any, **params: Any) -> list[int]:
        seen.update(params)
        return [0]

    sampler = get_sampler("hostile_echo_sampler:a=3,b=-2.5,c=True,d=None,e='x y',f=\"q\",g=word,h=1e3")
    sampler(None)
    assert seen == {"a": 3, "b": -2.5, "c": True, "d": None, "e": "x y", "f": "q", "g": "word", "h": 1000.0}


# -- training checkpoints --------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """A one-epoch run on a tiny folder, with its last checkpoint."""
    root = tmp_path_factory.mktemp("train")
    data = root / "data"
    rng = np.random.default_rng(0)
    for label in ("real", "fake"):
        (data / label).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)).save(data / label / f"{i}.png")
    out = root / "run"
    kwargs: dict[str, Any] = dict(
        weights=None, epochs=1, batch_size=4, input_size=32, progress=False, cache=None, augment=None,
        calibrate=False, device="cpu", precision="fp32", out_dir=out,
    )
    Trainer("resnet18", **kwargs).fit(data)
    return data, out / "checkpoints" / "last.safetensors", kwargs


def _tamper(path: Path, dest: Path, edit: Any) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    meta["deepfakedetect_checkpoint"] = edit(meta["deepfakedetect_checkpoint"])
    save_file(tensors, str(dest), metadata=meta)


def _drop(key: str) -> Any:
    def edit(text: str) -> str:
        state = json.loads(text)
        del state[key]
        return json.dumps(state)

    return edit


def _set(key: str, value: Any) -> Any:
    def edit(text: str) -> str:
        state = json.loads(text)
        state[key] = value
        return json.dumps(state)

    return edit


@pytest.mark.parametrize(
    "edit",
    [
        _drop("optimizer"),
        _drop("rng"),
        _drop("history"),
        _drop("best"),
        _drop("settings"),
        _set("optimizer", [1, 2]),
        _set("optimizer", {"param_groups": "x"}),
        _set("optimizer", {"param_groups": [{"lr": "fast"}], "state": {}}),
        _set("rng", {"python": "x"}),
        _set("epoch", "one"),
        _set("epoch", -5),
        _set("step", None),
        _set("best", [0]),
        _set("history", {"a": 1}),
        lambda text: "[" * 100_000 + "]" * 100_000,
        lambda text: "[1, 2]",
        lambda text: '{"format": 1, "fingerprint": ' + "[" * 50_000 + "]" * 50_000 + "}",
    ],
    ids=[
        "no-optimizer", "no-rng", "no-history", "no-best", "no-settings", "optimizer-list",
        "param-groups-str", "lr-str", "rng-bad", "epoch-str", "epoch-negative", "step-none", "best-list",
        "history-dict", "state-nested", "state-list", "fingerprint-nested",
    ],
)
def test_malformed_resume_checkpoints_are_model_load_errors(
    trained_run: tuple[Path, Path, dict[str, Any]], tmp_path: Path, edit: Any
) -> None:
    data, last, kwargs = trained_run
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    _tamper(last, out / "checkpoints" / "last.safetensors", edit)
    trainer = Trainer("resnet18", **{**kwargs, "out_dir": out})
    with pytest.raises(ModelLoadError, match="last.safetensors"):
        trainer.fit(data, resume=True)
    shutil.rmtree(out)  # 128 MB a case: pytest keeps its last three temporary folders


def test_an_untampered_checkpoint_still_resumes(trained_run: tuple[Path, Path, dict[str, Any]], tmp_path: Path) -> None:
    data, last, kwargs = trained_run
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    _tamper(last, out / "checkpoints" / "last.safetensors", lambda text: text)
    result = Trainer("resnet18", **{**kwargs, "out_dir": out}).fit(data, resume=True)
    assert len(result.history) == 1
