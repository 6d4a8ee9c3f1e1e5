"""ONNX export and the ONNX Runtime backend: same scores as torch fp32, typed errors for bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from deepfakedetect import ConfigError, Detector, ModelLoadError

ort = pytest.importorskip("onnxruntime", reason="the [onnx] extra (onnx, onnxscript, onnxruntime) is not installed")
onnx = pytest.importorskip("onnx", reason="the [onnx] extra is not installed")
pytest.importorskip("onnxscript", reason="torch's ONNX exporter needs onnxscript (the [onnx] extra)")

TOLERANCE = 1e-4  # fp32 through two runtimes: measured differences are about 1e-6


def shared_faces(shared_dir: Path, n: int = 12) -> list[Path]:
    root = shared_dir / "data" / "faces"
    files = sorted((root / "lfw_faceswap" / "test" / "fake").glob("*.jpg"))[: n // 2]
    files += sorted((root / "stylegan2_ffhq" / "real").glob("*.jpg"))[: n // 2]
    if len(files) < n:
        pytest.skip(f"fewer than {n} shared faces under {root}")
    return files


@pytest.fixture(scope="module")
def default_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Detector, Path]:
    torch_det = Detector.from_pretrained(precision="fp32")
    out = torch_det.export_onnx(tmp_path_factory.mktemp("onnx-default"))
    return torch_det, out


@pytest.fixture(scope="module")
def resnet_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Detector, Path]:
    # A ResNet on whole images (no face stage); the weights are random but fixed.
    import torch

    torch.manual_seed(0)
    det = Detector.from_backbone("resnet18", input_size=64, precision="fp32")
    folder = det.save_pretrained(tmp_path_factory.mktemp("resnet"))
    torch_det = Detector.from_pretrained(folder, precision="fp32")
    return torch_det, torch_det.export_onnx(tmp_path_factory.mktemp("onnx-resnet"))


@pytest.mark.slow
def test_exported_folder_holds_the_same_config_and_dynamic_batch_networks(default_export: tuple[Detector, Path]) -> None:
    torch_det, out = default_export
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "config.json", "face_detector.onnx", "model.onnx", "training_manifest.json"
    ]
    assert json.loads((out / "config.json").read_text())["preprocess"] == torch_det.config.to_dict()["preprocess"]
    for name, outputs in (("model.onnx", ["logits"]), ("face_detector.onnx", ["loc", "logits", "landmarks"])):
        graph = onnx.load(str(out / name)).graph
        (inp,) = graph.input
        assert inp.name == "input"
        assert inp.type.tensor_type.shape.dim[0].dim_param  # a named (dynamic) batch dimension
        assert [o.name for o in graph.output] == outputs
    det = Detector.from_pretrained(out, backend="onnxruntime")
    assert det.backend == "onnxruntime"
    for n in (1, 5):
        scores = det.score_arrays([np.full((128, 128, 3), 40 * i, np.uint8) for i in range(n)])
        assert scores.shape == (n,)
        np.testing.assert_allclose(scores, torch_det.score_arrays([np.full((128, 128, 3), 40 * i, np.uint8) for i in range(n)]), atol=TOLERANCE)


@pytest.mark.slow
@pytest.mark.shared
def test_default_model_scores_match_torch_on_shared_faces(default_export: tuple[Detector, Path], shared_dir: Path) -> None:
    torch_det, out = default_export
    files = shared_faces(shared_dir)
    det = Detector.from_pretrained(out, backend="onnxruntime")
    ref = torch_det.detect_image(files)
    got = det.detect_image(files)
    for a, b in zip(ref, got):
        assert a.status == b.status == "ok"
        assert len(a.faces) == len(b.faces)
        assert abs(a.fake_score - b.fake_score) <= TOLERANCE, (a.source, a.fake_score, b.fake_score)
        for fa, fb in zip(a.faces, b.faces):
            np.testing.assert_allclose(fa.box, fb.box, atol=1e-2)
            assert abs(fa.fake_score - fb.fake_score) <= TOLERANCE
        assert a.label == b.label


@pytest.mark.slow
@pytest.mark.shared
def test_resnet_scores_match_torch_on_shared_faces_and_a_video(resnet_export: tuple[Detector, Path], shared_dir: Path, tmp_path: Path) -> None:
    torch_det, out = resnet_export
    assert not (out / "face_detector.onnx").exists()  # no face stage, no face detector
    det = Detector.from_pretrained(out, backend="onnxruntime")
    files = shared_faces(shared_dir)
    ref = [r.fake_score for r in torch_det.detect_image(files)]
    got = [r.fake_score for r in det.detect_image(files)]
    np.testing.assert_allclose(got, ref, atol=TOLERANCE)

    import imageio.v2 as imageio

    clip = tmp_path / "clip.mp4"
    with imageio.get_writer(clip, fps=10, codec="libx264", macro_block_size=16) as w:
        for i in range(12):
            w.append_data(np.full((64, 80, 3), 20 * i, np.uint8))
    a = torch_det.detect_video(clip, sampler="uniform:num_frames=6", progress=False)
    b = det.detect_video(clip, sampler="uniform:num_frames=6", progress=False)
    np.testing.assert_allclose([f.fake_score for f in b.frames], [f.fake_score for f in a.frames], atol=TOLERANCE)


@pytest.mark.slow
def test_onnx_backend_refuses_what_needs_torch(resnet_export: tuple[Detector, Path], tmp_path: Path) -> None:
    _, out = resnet_export
    det = Detector.from_pretrained(out, backend="onnxruntime")
    with pytest.raises(ConfigError, match="onnxruntime"):
        det.explain(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ConfigError, match="export_onnx"):
        det.save_pretrained(tmp_path / "again")
    with pytest.raises(ConfigError, match="CPU"):
        Detector.from_pretrained(out, backend="onnxruntime", device="cuda")
    import imageio.v2 as imageio

    clip = tmp_path / "clip.mp4"
    with imageio.get_writer(clip, fps=10, codec="libx264", macro_block_size=16) as w:
        for i in range(4):
            w.append_data(np.full((64, 80, 3), 50 * i, np.uint8))
    with pytest.raises(ConfigError, match="temporal aggregator needs the torch backend"):
        det.detect_video(clip, aggregator="temporal", progress=False)


def test_export_of_a_folder_with_a_bad_config_fails_with_a_typed_error(tmp_path: Path) -> None:
    folder = Detector.from_backbone("resnet18", input_size=32).save_pretrained(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["preprocess"]["input_size"] = "big"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="config.json|input_size"):
        Detector.from_pretrained(folder).export_onnx(tmp_path / "out")
    from deepfakedetect.cli import main

    assert main(["export", str(folder), "--format", "onnx", "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_loading_problems_are_typed_and_say_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = Detector.from_backbone("resnet18", input_size=32).save_pretrained(tmp_path / "m")
    with pytest.raises(ModelLoadError, match="export"):
        Detector.from_pretrained(folder, backend="onnxruntime")  # a torch folder: no model.onnx
    (folder / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelLoadError, match="model.onnx"):
        Detector.from_pretrained(folder, backend="onnxruntime")
    with pytest.raises(ConfigError, match="backend"):
        Detector.from_pretrained(folder, backend="tensorflow")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=r"deepfakedetect\[onnx\]"):
        Detector.from_pretrained(folder, backend="onnxruntime")


@pytest.mark.slow
def test_an_exported_folder_loads_from_the_hub(resnet_export: tuple[Detector, Path], hub_server, tmp_path: Path) -> None:
    torch_det, out = resnet_export
    sha = hub_server.add_repo("org/resnet-onnx", out)
    det = Detector.from_pretrained("org/resnet-onnx", backend="onnxruntime", cache_dir=tmp_path / "cache")
    assert det.backend == "onnxruntime" and det.revision == sha
    image = np.random.default_rng(0).integers(0, 255, (80, 80, 3), dtype=np.uint8)
    assert det.detect_image(image).fake_score == pytest.approx(torch_det.detect_image(image).fake_score, abs=TOLERANCE)


@pytest.mark.slow
def test_export_keeps_the_training_manifest_and_loading_checks_the_plugins(
    resnet_export: tuple[Detector, Path], tmp_path: Path
) -> None:
    import shutil

    from deepfakedetect import UnknownPluginError
    from deepfakedetect.models.manifest import TrainingManifest

    torch_det, _ = resnet_export
    torch_det.training_manifest = TrainingManifest().with_split("train", ["0123456789abcdef"])
    try:
        out = torch_det.export_onnx(tmp_path / "onnx")
    finally:
        torch_det.training_manifest = None
    loaded = Detector.from_pretrained(out, backend="onnxruntime")
    assert loaded.training_manifest is not None and loaded.training_manifest.seen("0123456789abcdef")

    bad = shutil.copytree(out, tmp_path / "bad")
    config = json.loads((bad / "config.json").read_text())
    config["video"]["sampler"] = "no_such_sampler"
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnknownPluginError, match=r"config.json: video.sampler"):
        Detector.from_pretrained(bad, backend="onnxruntime")


@pytest.mark.slow
def test_the_web_service_runs_an_onnx_detector(resnet_export: tuple[Detector, Path]) -> None:
    pytest.importorskip("starlette", reason="the [serve] extra is not installed")
    pytest.importorskip("multipart", reason="the [serve] extra is not installed")
    httpx = pytest.importorskip("httpx", reason="the API test needs httpx")
    import asyncio
    import io

    from PIL import Image

    from deepfakedetect.serve import create_app

    torch_det, out = resnet_export
    app = create_app(Detector.from_pretrained(out, backend="onnxruntime"))
    image = np.random.default_rng(1).integers(0, 255, (70, 90, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")

    async def go() -> tuple[dict, dict]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            model = (await c.get("/v1/model")).json()
            r = await c.post("/v1/detect", files={"file": ("a.png", buf.getvalue())})
            assert r.status_code == 200, r.text
            return model, r.json()

    model, got = asyncio.run(go())
    assert model["backend"] == "onnxruntime" and model["explain"] is False  # the page hides Grad-CAM
    assert "explanations" not in got or got["explanations"] == []
    assert got["fake_score"] == pytest.approx(torch_det.detect_image(image).fake_score, abs=TOLERANCE)


@pytest.mark.slow
def test_cli_export_then_detect_with_onnxruntime(
    resnet_export: tuple[Detector, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    from deepfakedetect.cli import main

    torch_det, _ = resnet_export
    folder = torch_det.save_pretrained(tmp_path / "torch")
    assert main(["export", str(folder), "--format", "onnx", "--out", str(tmp_path / "onnx")]) == 0
    assert "model.onnx" in capsys.readouterr().out
    image = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (60, 60, 3), dtype=np.uint8)).save(image)
    assert main(["detect", str(image), "--model", str(tmp_path / "onnx"), "--backend", "onnxruntime", "--json"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert record["fake_score"] == pytest.approx(torch_det.detect_image(image).fake_score, abs=TOLERANCE)
