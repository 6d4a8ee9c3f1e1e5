"""A temporal model: a small network over the per-frame embeddings of one person's track.

Frame-level detectors judge each frame alone; a manipulation that looks fine in every
frame (expression re-enactment such as Face2Face) may still move unnaturally. The
temporal head reads the sequence of a track's face embeddings (the frozen backbone's
pooled features, the input of its last linear layer) together with each frame's own
fake logit, and returns one fake probability for the track.

- :func:`embed_arrays` scores face crops and returns their embeddings in one pass.
- :class:`TemporalHead` is the network: a GRU or a 1-D convolution over time, pooled
  over the frames (mean and max), then a linear layer. It is small (about 0.2 M
  parameters on MobileNetV2's 1280 features) and trains in seconds on cached embeddings.
- :func:`save_temporal` / :func:`load_temporal` keep it in a model folder as
  ``temporal.json`` (its configuration) and ``temporal.safetensors`` (its weights),
  beside the detector's own ``config.json`` and ``model.safetensors``.

Importing this module does not import torch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepfakedetect._config import read_json_file
from deepfakedetect._errors import ConfigError, InputError, ModelLoadError
from deepfakedetect._untrusted import shorten
from deepfakedetect._utils import atomic_write, atomic_write_text

if TYPE_CHECKING:
    import torch

__all__ = [
    "TEMPORAL_CONFIG_NAME",
    "TEMPORAL_WEIGHTS_NAME",
    "TemporalConfig",
    "build_temporal_head",
    "embed_arrays",
    "load_temporal",
    "save_temporal",
    "score_logits",
    "temporal_probability",
]

TEMPORAL_CONFIG_NAME = "temporal.json"
TEMPORAL_WEIGHTS_NAME = "temporal.safetensors"
_KINDS = ("gru", "conv")
# Widest embedding or hidden layer a temporal config may describe (backbones give 512-2048).
_MAX_WIDTH = 65536
# Largest temporal.json read, in bytes (a real one is under 1 kB plus its training record).
MAX_TEMPORAL_CONFIG_BYTES = 1_000_000
_FORMAT_VERSION = 1
# Frame scores enter the head as logits, clipped so that a score of exactly 0 or 1 stays finite.
_LOGIT_CLIP = 8.0


@dataclass(frozen=True)
class TemporalConfig:
    """The temporal head's shape and how it was trained.

    Attributes:
        kind: ``"gru"`` (a bidirectional GRU) or ``"conv"`` (two 1-D convolutions of width 3).
        input_dim: Size of one frame's embedding (the backbone's pooled features).
        hidden: Width of the projection and of the recurrent or convolutional layers.
        dropout: Dropout on the projected embeddings while training.
        use_scores: Whether each frame's own fake logit is an input too.
        training: What the trainer recorded (data, epochs, validation metrics); free-form.

    Example:
        >>> TemporalConfig(input_dim=1280).kind
        'gru'
    """

    input_dim: int
    kind: str = "gru"
    hidden: int = 64
    dropout: float = 0.3
    use_scores: bool = True
    training: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or self.kind not in _KINDS:
            raise ConfigError(f"temporal.kind must be one of {_KINDS}, got {shorten(self.kind)}")
        for name in ("input_dim", "hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_WIDTH:
                raise ConfigError(f"temporal.{name} must be an integer from 1 to {_MAX_WIDTH}, got {shorten(value)}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ConfigError(f"temporal.dropout must be in [0, 1), got {shorten(self.dropout)}")
        if not isinstance(self.use_scores, bool):
            raise ConfigError(f"temporal.use_scores must be true or false, got {shorten(self.use_scores)}")
        if self.training is not None and not isinstance(self.training, dict):
            raise ConfigError(f"temporal.training must be an object or null, got {type(self.training).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (with the format version)."""
        return {"format_version": _FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "temporal config") -> TemporalConfig:
        """Build from :meth:`to_dict`'s output; unknown keys and newer formats are refused."""
        data = dict(data)
        version = data.pop("format_version", _FORMAT_VERSION)
        if version != _FORMAT_VERSION:
            raise ConfigError(
                f"{source}: temporal format_version {shorten(version)} is not supported (this library reads "
                f"{_FORMAT_VERSION}); upgrade deepfakedetect"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown temporal settings {shorten(unknown)}; known: {sorted(known)}")
        try:
            return cls(**data)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
        except TypeError as e:  # a required setting missing
            raise ConfigError(f"{source}: {shorten(str(e), 200)}") from None


def score_logits(scores: np.ndarray) -> np.ndarray:
    """Fake scores as logits, clipped to [-8, 8] so that scores of 0 or 1 stay finite.

    Example:
        >>> score_logits(np.array([0.5, 1.0])).tolist()
        [0.0, 8.0]
    """
    s = np.clip(np.asarray(scores, dtype=np.float64), 1e-12, 1 - 1e-12)
    return np.clip(np.log(s) - np.log1p(-s), -_LOGIT_CLIP, _LOGIT_CLIP)


def build_temporal_head(config: TemporalConfig) -> torch.nn.Module:
    """A fresh, randomly initialised head for ``config``.

    The module maps ``(features (B, T, D), logits (B, T), mask (B, T) bool)`` to one
    fake logit per sequence, ``(B,)``; ``mask`` marks the real frames of padded sequences.

    Example:
        >>> import torch
        >>> head = build_temporal_head(TemporalConfig(input_dim=8, hidden=4))
        >>> head(torch.zeros(2, 5, 8), torch.zeros(2, 5), torch.ones(2, 5, dtype=torch.bool)).shape
        torch.Size([2])
    """
    import torch  # heavy; only needed when a temporal head is built or used
    from torch import nn

    class TemporalHead(nn.Module):
        def __init__(self, cfg: TemporalConfig) -> None:
            super().__init__()
            self.cfg = cfg
            extra = 1 if cfg.use_scores else 0
            self.norm = nn.LayerNorm(cfg.input_dim)
            self.proj = nn.Linear(cfg.input_dim + extra, cfg.hidden)
            self.drop = nn.Dropout(cfg.dropout)
            if cfg.kind == "gru":
                self.seq: nn.Module = nn.GRU(cfg.hidden, cfg.hidden // 2 or 1, batch_first=True, bidirectional=True)
                out_dim = 2 * (cfg.hidden // 2 or 1)
            else:
                self.seq = nn.Sequential(
                    nn.Conv1d(cfg.hidden, cfg.hidden, 3, padding=1),
                    nn.GELU(),
                    nn.Conv1d(cfg.hidden, cfg.hidden, 3, padding=1),
                    nn.GELU(),
                )
                out_dim = cfg.hidden
            self.out = nn.Linear(2 * out_dim + extra, 1)

        def forward(self, feats: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            x = self.norm(feats)
            if self.cfg.use_scores:
                x = torch.cat([x, logits.unsqueeze(-1)], dim=-1)
            x = self.drop(torch.relu(self.proj(x)))
            x = x * mask.unsqueeze(-1)
            if self.cfg.kind == "gru":
                h, _ = self.seq(x)
            else:
                h = self.seq(x.transpose(1, 2)).transpose(1, 2)
            m = mask.unsqueeze(-1).to(h.dtype)
            count = m.sum(dim=1).clamp(min=1.0)
            mean = (h * m).sum(dim=1) / count
            peak = h.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)
            pooled = [mean, peak]
            if self.cfg.use_scores:
                pooled.append(((logits * mask).sum(dim=1) / count.squeeze(-1)).unsqueeze(-1))
            return self.out(torch.cat(pooled, dim=-1)).squeeze(-1)

    return TemporalHead(config)


def temporal_probability(head: torch.nn.Module, features: np.ndarray, scores: np.ndarray) -> float:
    """The head's fake probability for one track.

    Args:
        head: A head from :func:`build_temporal_head` or :func:`load_temporal`.
        features: The track's frame embeddings in time order, (T, D).
        scores: The frames' own fake scores in [0, 1], (T,).

    Raises:
        InputError: no frames, or shapes that do not fit the head.

    Example:
        >>> head = build_temporal_head(TemporalConfig(input_dim=4, hidden=4))
        >>> 0.0 < temporal_probability(head, np.zeros((3, 4), np.float32), np.array([0.1, 0.5, 0.9])) < 1.0
        True
    """
    import torch  # heavy; only needed when a temporal head is used

    feats = np.array(features, dtype=np.float32)  # a writable copy: torch.from_numpy refuses read-only arrays
    cfg: TemporalConfig = head.cfg  # type: ignore[assignment]
    if feats.ndim != 2 or len(feats) == 0 or feats.shape[1] != cfg.input_dim or len(scores) != len(feats):
        raise InputError(
            f"the temporal head needs (T, {cfg.input_dim}) frame embeddings with T >= 1 and one score per "
            f"frame; got embeddings of shape {feats.shape} and {len(scores)} scores"
        )
    was_training = head.training
    head.eval()
    try:
        with torch.inference_mode():
            logit = head(
                torch.from_numpy(feats)[None],
                torch.from_numpy(score_logits(scores).astype(np.float32))[None],
                torch.ones(1, len(feats), dtype=torch.bool),
            )
    finally:
        head.train(was_training)
    return float(torch.sigmoid(logit.float())[0])


def embed_arrays(detector: Any, images: Sequence[np.ndarray], *, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Fake scores and embeddings of RGB arrays (face crops), from one forward pass each.

    The embedding is the input of the network's last linear layer (for torchvision
    backbones: the globally pooled features). Scores are the detector's calibrated
    probabilities, as :meth:`Detector.score_arrays` gives them (computed in float32
    on the unfolded network, so they can differ from those in the last decimals).

    Args:
        detector: A :class:`~deepfakedetect.Detector`.
        images: RGB ``uint8`` arrays.
        batch_size: Images per forward pass.

    Returns:
        ``(scores (N,), embeddings (N, D) float32)``.
    """
    import torch  # heavy; only needed when embeddings are computed
    from torch import nn

    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    linears = [m for m in detector.model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ModelLoadError(f"{type(detector.model).__name__} has no linear layer whose input could serve as an embedding")
    captured: list[torch.Tensor] = []
    hook = linears[-1].register_forward_hook(lambda _m, inp, _out: captured.append(inp[0].detach()))
    scores: list[np.ndarray] = []
    feats: list[np.ndarray] = []
    try:
        model = detector.model.eval()
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                x = detector.preprocess(images[start : start + batch_size]).to(detector.device)
                captured.clear()
                logits = model(x)
                scores.append(detector.fake_probability(logits).cpu().double().numpy())
                feats.append(captured[-1].float().flatten(1).cpu().numpy())
    finally:
        hook.remove()
    if not scores:
        return np.empty(0), np.empty((0, linears[-1].in_features), dtype=np.float32)
    return np.concatenate(scores), np.concatenate(feats).astype(np.float32)


def save_temporal(folder: str | Path, head: torch.nn.Module) -> Path:
    """Write the head into a model folder as ``temporal.json`` and ``temporal.safetensors``.

    Returns:
        The folder.
    """
    from safetensors.torch import save_file  # heavy (torch); only needed to save a head

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    cfg: TemporalConfig = head.cfg  # type: ignore[assignment]
    state = {k: v.detach().cpu().float().contiguous() for k, v in head.state_dict().items()}
    atomic_write(out / TEMPORAL_WEIGHTS_NAME, lambda p: save_file(state, str(p), metadata={"format": "pt"}))
    atomic_write_text(out / TEMPORAL_CONFIG_NAME, json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")
    return out


def _check_sizes(cfg: TemporalConfig, state: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse weights whose names or shapes differ from the head ``cfg`` describes, before building it.

    The head is built on the meta device (no memory), so a config claiming a huge width
    next to a small weights file costs nothing.
    """
    import torch  # heavy; only needed when a temporal head is loaded

    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build_temporal_head(cfg).state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if found != expected:
        wrong = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
        raise ModelLoadError(
            f"{path} does not fit {TEMPORAL_CONFIG_NAME}: {len(wrong)} tensors differ in name or shape "
            f"(first: {shorten(wrong[:3], 200)}); the two files come from different trainings: copy both from the same one"
        )


def load_temporal(folder: str | Path) -> torch.nn.Module | None:
    """The temporal head saved in a model folder, or ``None`` when the folder has none.

    Raises:
        ModelLoadError: one of the two files without the other, or weights that do not
            fit the configuration (naming the folder).
        ConfigError: an invalid ``temporal.json``.
    """
    folder = Path(folder)
    cfg_path, w_path = folder / TEMPORAL_CONFIG_NAME, folder / TEMPORAL_WEIGHTS_NAME
    if not cfg_path.exists() and not w_path.exists():
        return None
    if not (cfg_path.exists() and w_path.exists()):
        missing = w_path if cfg_path.exists() else cfg_path
        raise ModelLoadError(
            f"{folder} has half a temporal model: {missing.name} is missing; copy it from where the model "
            f"was trained, or delete the other temporal file to use the model without it"
        )
    # Untrusted like config.json: size first, never blocking, typed errors; the weights'
    # header is validated before anything is allocated, and their shapes checked against
    # the config before a head of that size is built.
    data = read_json_file(cfg_path, what="a temporal model config", limit=MAX_TEMPORAL_CONFIG_BYTES)
    if not isinstance(data, dict):
        raise ConfigError(f"{cfg_path} must hold a JSON object, got {type(data).__name__}")
    cfg = TemporalConfig.from_dict(data, source=str(cfg_path))
    from deepfakedetect.models.weights import load_safetensors  # imports torch; only needed to load a head

    state = load_safetensors(w_path)
    _check_sizes(cfg, state, w_path)
    head = build_temporal_head(cfg)
    try:
        head.load_state_dict(state, strict=True)
    except Exception as e:
        raise ModelLoadError(
            f"{w_path} does not fit {cfg_path.name} ({type(e).__name__}: {str(e)[:200]}); the two files come "
            "from different trainings: copy both from the same one"
        ) from e
    return head.eval()

