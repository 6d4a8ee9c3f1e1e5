"""Training under torchrun: two processes on gloo train one model together."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from imagefolders import make_split_data

SCRIPT = textwrap.dedent(
    """
    import hashlib, json, os, sys
    import torch
    import deepfakedetect.training.distributed as dm
    import deepfakedetect.training.run as rm
    import deepfakedetect.training.trainer as tm
    from deepfakedetect import Detector

    data, out, report = sys.argv[1], sys.argv[2], sys.argv[3]
    rank = int(os.environ["RANK"])
    seen, writes = {}, []

    real_indices = dm.ShardSampler.indices
    def recording(self):
        idx = real_indices(self)
        if self.shuffle:
            seen.setdefault(self.epoch, []).extend(idx)
        return idx
    dm.ShardSampler.indices = recording

    real_write = rm.write_checkpoint
    rm.write_checkpoint = lambda *a, **k: (writes.append(str(a[0])), real_write(*a, **k))[1]
    real_save = Detector.save_pretrained
    Detector.save_pretrained = lambda self, d, **k: (writes.append(str(d)), real_save(self, d, **k))[1]

    result = tm.Trainer("shufflenet_v2_x0_5", weights=None, epochs=2, batch_size=4, input_size=32,
                        progress=False, precision="fp32", out_dir=out).fit(data)
    h = hashlib.sha256()
    for k, v in sorted(result.detector.model.state_dict().items()):
        h.update(k.encode()); h.update(v.detach().cpu().contiguous().numpy().tobytes())
    doc = {"rank": rank, "seen": seen, "writes": writes,
           "weights": h.hexdigest(), "metrics": result.metrics,
           "world_size": result.detector.config.training["world_size"],
           "history": [{k: v for k, v in e.items() if not k.endswith("_s")} for e in result.history]}
    with open(os.path.join(report, f"rank{rank}.json"), "w") as f:
        json.dump(doc, f)
    """
)


@pytest.mark.slow  # two fresh interpreters importing torch: 15-30 s on a shared 2-core machine
def test_two_processes_train_one_model_on_disjoint_shards(tmp_path: Path) -> None:
    data = make_split_data(tmp_path / "data", train=7, val=3, test=2)  # 14 training images: 7 per rank
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    out, report = tmp_path / "out", tmp_path / "report"
    report.mkdir()
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "DEEPFAKEDETECT_PROGRESS": "0",
    }
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(script), str(data), str(out), str(report),
    ]
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0 = json.loads((report / "rank0.json").read_text())
    r1 = json.loads((report / "rank1.json").read_text())

    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["weights"] == r1["weights"]  # one model, whatever the rank
    assert r0["metrics"] == r1["metrics"] and r0["history"] == r1["history"]
    assert set(r0["seen"]) == set(r1["seen"]) == {"1", "2"}
    for epoch in ("1", "2"):
        a, b = r0["seen"][epoch], r1["seen"][epoch]
        assert len(a) == len(b) == 7
        assert not set(a) & set(b)  # disjoint shards
        assert sorted(a + b) == list(range(14))
    assert r0["seen"]["1"] != r0["seen"]["2"]  # a new order each epoch
    assert r0["writes"] and not r1["writes"]  # only rank 0 writes files
    assert (out / "config.json").is_file() and (out / "checkpoints" / "last.safetensors").is_file()
