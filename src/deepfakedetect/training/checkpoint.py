"""Training checkpoints: safetensors for tensors, JSON for the rest, written atomically; never pickle."""

from __future__ import annotations

import json
import math
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

__all__ = ['CHECKPOINT_FORMAT', 'check_state', 'optimizer_from_parts', 'optimizer_to_parts', 'read_checkpoint', 'restore_rng', 'rng_parts', 'seed_all', 'write_checkpoint']


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
        raise ModelLoadError(f"{path}: the checkpoint's state is not valid JSON ({e.msg}); delete it to start over") from None
    except RecursionError:
        raise ModelLoadError(f"{path}: the checkpoint's state is nested too deeply; delete it to start over") from None
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path}: the checkpoint's state is a JSON {type(state).__name__}, not an object; "
                             "delete it to start over")
    return tensors, state


def _is_count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _same_shape(saved: Any, fresh: Any) -> bool:
    """Whether a saved optimizer value has the type (and, for lists, the length) a fresh one has."""
    if fresh is None:  # options left unset ("foreach", "fused"): unset or a flag
        return saved is None or isinstance(saved, bool)
    if isinstance(fresh, bool):
        return isinstance(saved, bool)
    if isinstance(fresh, (int, float)):
        return _is_real(saved)
    if isinstance(fresh, (list, tuple)):
        return isinstance(saved, (list, tuple)) and len(saved) == len(fresh) and all(
            _same_shape(a, b) for a, b in zip(saved, fresh)
        )
    if isinstance(fresh, str):
        return isinstance(saved, str)
    return True  # anything else the optimizer keeps is checked by torch itself


def check_state(state: dict[str, Any], path: Path, *, optimizer: dict[str, Any]) -> None:
    """Check a resumed checkpoint's state has every field, of the right type, before any is used.

    Args:
        state: What :func:`read_checkpoint` returned.
        path: The checkpoint, for messages.
        optimizer: ``state_dict()`` of the run's fresh optimizer: the saved one must match
            its groups, keys and value types.

    Raises:
        ModelLoadError: naming the first field that is missing or malformed.
    """

    def bad(what: str) -> ModelLoadError:
        return ModelLoadError(
            f"{path}: the checkpoint's {what}; it is damaged or was not written by deepfakedetect: "
            "delete it to start over"
        )

    for key, ok, kind in (
        ("epoch", _is_count, "a non-negative integer"),
        ("step", _is_count, "a non-negative integer"),
        ("history", lambda v: isinstance(v, list) and all(isinstance(h, dict) for h in v), "a list of objects"),
        ("best", lambda v: isinstance(v, dict), "an object"),
        ("settings", lambda v: isinstance(v, dict), "an object"),
        ("fingerprint", lambda v: isinstance(v, dict), "an object"),
        ("optimizer", lambda v: isinstance(v, dict), "an object"),
        ("rng", lambda v: isinstance(v, dict), "an object"),
        ("stopped_early", lambda v: isinstance(v, bool), "true or false"),
        ("train_seconds", lambda v: _is_real(v) and v >= 0, "a number of seconds"),
        ("scaler", lambda v: v is None or isinstance(v, dict), "an object or null"),
    ):
        optional = key in ("stopped_early", "train_seconds", "scaler")
        if key not in state:
            if optional:
                continue
            raise bad(f"'{key}' is missing")
        if not ok(state[key]):
            raise bad(f"'{key}' is not {kind}")
    best = state["best"]
    if not (_is_count(best.get("epoch")) and _is_count(best.get("since"))
            and (best.get("value") is None or _is_real(best.get("value")))):
        raise bad("'best' lacks a valid epoch, since or value")
    opt = state["optimizer"]
    groups, fresh_groups = opt.get("param_groups"), optimizer["param_groups"]
    if not (isinstance(groups, list) and len(groups) == len(fresh_groups) and all(isinstance(g, dict) for g in groups)):
        raise bad(f"optimizer has no list of {len(fresh_groups)} parameter groups")
    for i, (g, fresh) in enumerate(zip(groups, fresh_groups)):
        for k, v in fresh.items():
            if k not in g or not _same_shape(g[k], v):
                raise bad(f"optimizer group {i} has a missing or malformed {k!r}")
    if not (isinstance(opt.get("state", {}), dict) and all(
        isinstance(k, str) and k.isdigit() and isinstance(v, dict) for k, v in opt.get("state", {}).items()
    )):
        raise bad("optimizer state is malformed")
    rng = state["rng"]
    n, py = rng.get("numpy"), rng.get("python")
    if not (isinstance(n, dict) and isinstance(n.get("name"), str) and _is_count(n.get("pos"))
            and _is_count(n.get("has_gauss")) and _is_real(n.get("cached_gaussian"))):
        raise bad("random state (numpy) is malformed")
    if not (isinstance(py, list) and len(py) == 3 and _is_count(py[0]) and isinstance(py[1], list)
            and all(_is_count(x) for x in py[1]) and (py[2] is None or _is_real(py[2]))):
        raise bad("random state (python) is malformed")


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
