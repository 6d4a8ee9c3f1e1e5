import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from deepfakedetect import Detector
from deepfakedetect.cli import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    return Detector.from_backbone("resnet18", input_size=32).save_pretrained(folder)


@pytest.fixture()
def images(tmp_path):
    good = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(good)
    text = tmp_path / "text.jpg"
    text.write_text("hello")
    buf = io.BytesIO()
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(buf, format="JPEG")
    truncated = tmp_path / "trunc.jpg"
    truncated.write_bytes(buf.getvalue()[:200])
    return good, text, truncated


def test_detect_prints_one_line_per_file(model_dir, images, capsys):
    good = images[0]
    assert main(["detect", str(good), str(good), "--model", str(model_dir)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(str(good)) and "fake_score=" in lines[0]


def test_json_output(model_dir, images, capsys):
    assert main(["detect", str(images[0]), "--model", str(model_dir), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert 0 <= d["fake_score"] <= 1 and d["label"] in ("real", "fake") and d["model"]["backbone"] == "resnet18"


@pytest.mark.parametrize("which", [1, 2])
def test_bad_image_gives_one_line_error_and_nonzero_exit(model_dir, images, capsys, which):
    bad = images[which]
    code = main(["detect", str(images[0]), str(bad), "--model", str(model_dir)])
    out, err = capsys.readouterr()
    assert code == 1
    assert len(out.strip().splitlines()) == 1  # the good file was still scored
    assert err.count("\n") == 1 and str(bad) in err and "Traceback" not in err


def test_bad_model_exit_code_2(tmp_path, images, capsys):
    assert main(["detect", str(images[0]), "--model", str(tmp_path / "nope")]) == 2
    assert "error" in capsys.readouterr().err


def test_python_dash_m(model_dir, images):
    proc = subprocess.run(
        [sys.executable, "-m", "deepfakedetect", "detect", str(images[1]), "--model", str(model_dir)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "not an image" in proc.stderr


def test_compile_flag_compiles_the_detector(model_dir, images, capsys, monkeypatch):
    seen = []
    original = Detector.compile

    def spy(self, enabled=True):
        seen.append(enabled)
        return original(self, False)  # record the request, score eagerly (compiling takes 20-60 s)

    monkeypatch.setattr(Detector, "compile", spy)
    assert main(["detect", str(images[0]), "--model", str(model_dir), "--compile"]) == 0
    assert main(["detect", str(images[0]), "--model", str(model_dir)]) == 0
    assert seen == [True, False]
