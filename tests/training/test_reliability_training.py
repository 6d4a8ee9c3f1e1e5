"""A training process killed while it writes a checkpoint (issue 9, item 10).

``test_trainer.py`` simulates the crash inside the process (an exception, or
``os._exit``). Here a real training process gets ``SIGKILL`` from outside while it is
half-way through writing ``last.safetensors``; the previous checkpoint must still load,
and resuming must end with exactly the weights of a run that was never interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from deepfakedetect.training.trainer import Trainer, read_checkpoint

BACKBONE = "shufflenet_v2_x0_5"  # 0.34 M parameters: checkpoints stay small and fast
SETTINGS: dict[str, Any] = {
    "weights": None, "epochs": 3, "batch_size": 8, "input_size": 32, "progress": False, "precision": "fp32",
    "augment": None, "lr": 1e-3,
}

# Runs the same training as SETTINGS in a child process. When it starts writing the
# second last.safetensors (after epoch 2), it writes half of the file, says so on stdout
# and waits to be killed.
_CHILD = textwrap.dedent(
    """
    import sys, time
    import torch
    torch.set_num_threads(1)
    from safetensors.torch import save
    import deepfakedetect.training.checkpoint as ck
    import deepfakedetect.training.trainer as tm

    out_dir, data_dir, settings = sys.argv[1], sys.argv[2], eval(sys.argv[3])
    real = ck.save_file
    lasts = []

    def slow_save(tensors, path, metadata):
        if "last" in path:
            lasts.append(path)
            if len(lasts) == 2:
                data = save(tensors, metadata=metadata)
                with open(path, "wb") as f:
                    f.write(data[: len(data) // 2])
                    f.flush()
                print("HALF-WRITTEN", path, flush=True)
                time.sleep(120)
        real(tensors, path, metadata)

    ck.save_file = slow_save
    tm.Trainer({backbone!r}, out_dir=out_dir, **settings).fit(data_dir)
    print("FINISHED", flush=True)
    """
).replace("{backbone!r}", repr(BACKBONE))


def make_data(root: Path, *, n: int = 8, size: int = 36) -> Path:
    """Dark reals and bright striped fakes in train/ and val/: learnable in an epoch or two."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for split, count in (("train", n), ("val", n // 2)):
        for label in ("real", "fake"):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                img = rng.normal(70 if label == "real" else 170, 20, (size, size, 3))
                if label == "fake":
                    img[(yy + xx) % 4 < 2] += 50
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{label}_{i}.png")
    return root


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # Same thread count as the child, so that both runs compute bit for bit the same.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_checkpoint_keeps_the_previous_one_and_resume_matches_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    data = make_data(tmp_path / "data")
    killed_dir = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"), *sys.path])}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(killed_dir), str(data), repr(SETTINGS)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = child.stdout.readline() if child.stdout else ""
        assert line.startswith("HALF-WRITTEN"), (line, child.stderr.read() if child.stderr else "")
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()

    checkpoints = killed_dir / "checkpoints"
    half = Path(line.split(maxsplit=1)[1].strip())
    assert half.parent == checkpoints and half.name != "last.safetensors" and half.exists()  # the debris
    tensors, state = read_checkpoint(checkpoints / "last.safetensors")
    assert state["epoch"] == 1 and [h["epoch"] for h in state["history"]] == [1]
    assert any(k.startswith("model.") for k in tensors)

    straight = Trainer(BACKBONE, out_dir=tmp_path / "straight", **SETTINGS).fit(data)
    resumed = Trainer(BACKBONE, out_dir=killed_dir, **SETTINGS).fit(data, resume=True)

    a, b = _state(straight.detector.model), _state(resumed.detector.model)
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    last_a, meta_a = read_checkpoint(tmp_path / "straight" / "checkpoints" / "last.safetensors")
    last_b, meta_b = read_checkpoint(checkpoints / "last.safetensors")
    assert meta_a["epoch"] == meta_b["epoch"] == 3
    assert last_a.keys() == last_b.keys()
    assert [k for k in last_a if not torch.equal(last_a[k], last_b[k])] == []  # model, optimizer, RNG states
    assert straight.best_epoch == resumed.best_epoch
    assert straight.detector.config.calibration == resumed.detector.config.calibration
