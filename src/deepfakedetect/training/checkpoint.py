"""Training checkpoints: safetensors for tensors, JSON for the rest, written atomically; never pickle."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from deepfakedetect._errors import ModelLoadError
from deepfakedetect._utils import jsonable

__all__ = ['CHECKPOINT_FORMAT', 'optimizer_from_parts', 'optimizer_to_parts', 'read_checkpoint', 'restore_rng', 'rng_parts', 'seed_all', 'write_checkpoint']


CHECKPOINT_FORMAT = 1


def write_checkpoint(path: Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """Write tensors (safetensors) and a JSON state (in its header) atomically.

    The file is written under a temporary name, flushed to disk and renamed over
    ``path``: a crash at any point leaves either the old or the new file.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "ck.safetensors"
        >>> write_checkpoint(p, {"w": torch.ones(2)}, {"epoch": 3})
        >>> read_checkpoint(p)[1]["epoch"]
        3
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    meta = {"format": "pt", "deepfakedetect_checkpoint": json.dumps(jsonable(state))}
    try:
        save_file(tensors, str(tmp), meta)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by :func:`write_checkpoint`.

    Raises:
        ModelLoadError: when the file is unreadable or not a deepfakedetect checkpoint.
    """

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not a dict
    except Exception as e:
        raise ModelLoadError(f"{path}: cannot read the checkpoint ({e}); delete it to start over") from e
    if "deepfakedetect_checkpoint" not in meta:
        raise ModelLoadError(f"{path}: not a deepfakedetect training checkpoint")
    try:
        state = json.loads(meta["deepfakedetect_checkpoint"])
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{path}: the checkpoint's state is not valid JSON ({e})") from e
    return tensors, state


def optimizer_to_parts(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{pid}.{name}"] = value
            else:
                plain.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "state": plain}


def optimizer_from_parts(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for pid, values in meta.get("state", {}).items():
        state.setdefault(int(pid), {}).update(values)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def rng_parts() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    name, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    py = random.getstate()
    meta = {
        "numpy": {"name": name, "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": [py[0], list(py[1]), py[2]],
    }
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda][: torch.cuda.device_count()])
    n = meta["numpy"]
    keys = tensors["rng.numpy"].numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    torch.manual_seed(seed)
