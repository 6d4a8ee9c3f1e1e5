import json

import pytest

from deepfakedetect import CalibrationConfig, ConfigError, FaceConfig, ModelConfig, PreprocessConfig
from deepfakedetect._config import FORMAT_VERSION


def test_round_trip_through_json(tmp_path):
    cfg = ModelConfig(
        backbone="resnet18",
        preprocess=PreprocessConfig(input_size=128, resize_size=144, interpolation="bicubic"),
        faces=FaceConfig(enabled=True, margin=1.5, select="largest"),
        calibration=CalibrationConfig(temperature=1.7, threshold=0.3, operating_points={"fpr@1%": 0.9}),
        training={"epochs": 3},
    )
    path = tmp_path / "config.json"
    cfg.save(path)
    assert ModelConfig.load(path) == cfg
    assert json.loads(path.read_text())["preprocess"]["mean"] == [0.485, 0.456, 0.406]


def test_unknown_keys_are_ignored():
    data = ModelConfig().to_dict()
    data["something_new"] = 1
    data["faces"]["future_option"] = True
    assert ModelConfig.from_dict(data) == ModelConfig()


def test_newer_format_is_refused_with_advice():
    data = ModelConfig().to_dict()
    data["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(ConfigError, match="newer than this deepfakedetect"):
        ModelConfig.from_dict(data)


@pytest.mark.parametrize(
    "change",
    [
        {"preprocess": {"input_size": -3}},
        {"preprocess": {"input_size": 10**9}},
        {"num_outputs": 1000},
        {"labels": ["fake", "fake"]},
        {"fake_label": "deepfake"},
        {"calibration": {"temperature": 0}},
        {"calibration": {"threshold": 2}},
        {"faces": {"select": "biggest"}},
        {"faces": "yes"},
    ],
)
def test_absurd_values_raise_config_error(change):
    data = ModelConfig().to_dict()
    for k, v in change.items():
        if isinstance(v, dict) and isinstance(data.get(k), dict):
            data[k].update(v)
        else:
            data[k] = v
    with pytest.raises(ConfigError):
        ModelConfig.from_dict(data, source="cfg.json")


def test_bad_json_file(tmp_path):
    p = tmp_path / "config.json"
    p.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        ModelConfig.load(p)


def test_fake_index_follows_labels():
    assert ModelConfig(labels=("real", "fake")).fake_index == 1
    assert ModelConfig().fake_index == 0
    assert ModelConfig(labels=("real", "fake")).real_label == "real"
