"""Sampler and aggregator plugins: decorators, plain callables, names, entry points."""

from __future__ import annotations

import importlib
import sys
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from deepfakedetect.video.aggregators import AGGREGATORS, FrameScores, get_aggregator, list_aggregators, register_aggregator
from deepfakedetect._errors import ConfigError, UnknownPluginError
from deepfakedetect.video.samplers import SAMPLERS, get_sampler, list_samplers, register_sampler
from deepfakedetect.io.video import VideoInfo

REPO = Path(__file__).resolve().parents[2]
INFO = VideoInfo(path="v.mp4", width=64, height=48, fps=25.0, num_frames=100, duration=4.0)
SCORES = FrameScores(scores=[0.1, 0.7, 0.4, 0.9], indices=[0, 10, 20, 30], timestamps=[0.0, 0.4, 0.8, 1.2])


@pytest.fixture(autouse=True)
def isolated_registries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test registers is forgotten afterwards."""
    monkeypatch.setattr(SAMPLERS, "_entries", dict(SAMPLERS._entries))
    monkeypatch.setattr(AGGREGATORS, "_entries", dict(AGGREGATORS._entries))


def test_decorated_function_sampler_with_parameters() -> None:
    @register_sampler("tail_test")
    def tail(video: VideoInfo, count: int = 3) -> list[int]:
        return list(range(video.num_frames - count, video.num_frames))

    assert "tail_test" in list_samplers()
    assert get_sampler("tail_test")(INFO) == [97, 98, 99]
    assert get_sampler("tail_test:count=2")(INFO) == [98, 99]
    assert get_sampler({"name": "tail_test", "count": 1})(INFO) == [99]
    with pytest.raises(ConfigError, match="bad parameters"):
        get_sampler("tail_test:size=2")


def test_decorated_dataclass_aggregator() -> None:
    @register_aggregator("nth_highest_test")
    @dataclass(frozen=True)
    class NthHighest:
        n: int = 2

        def __call__(self, scores: FrameScores, /) -> float:
            return float(np.sort(scores.scores)[-self.n])

    agg = get_aggregator("nth_highest_test:n=3")
    assert repr(agg).endswith("NthHighest(n=3)")
    assert agg(SCORES) == 0.4
    assert get_aggregator("nth_highest_test")(SCORES) == 0.7


def test_default_name_is_the_function_name() -> None:
    @register_aggregator()
    def lowest_test(scores: FrameScores) -> float:
        return float(scores.scores.min())

    assert get_aggregator("lowest_test")(SCORES) == pytest.approx(0.1)


def test_plain_callables_are_used_as_they_are() -> None:
    def first_and_last(video: VideoInfo) -> list[int]:
        return [0, video.num_frames - 1]

    def spread(scores: FrameScores) -> float:
        return float(np.ptp(scores.scores))

    assert get_sampler(first_and_last) is first_and_last
    assert get_aggregator(spread) is spread
    assert get_aggregator(lambda s: 0.25)(SCORES) == 0.25
    assert "lowest_test" not in AGGREGATORS.names()  # the autouse fixture forgot the last test's entry


@pytest.mark.parametrize("register,get", [(register_sampler, get_sampler), (register_aggregator, get_aggregator)])
def test_duplicate_name_raises_unless_override(register: object, get: object) -> None:
    builtin = "uniform" if register is register_sampler else "mean"

    def replacement(x: object) -> object:
        return [0] if register is register_sampler else 0.5

    with pytest.raises(ConfigError, match=f"named '{builtin}' is already registered.*override=True"):
        register(builtin)(replacement)  # type: ignore[operator]
    register(builtin, override=True)(replacement)  # type: ignore[operator]
    assert get(builtin) is replacement  # type: ignore[operator]


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(UnknownPluginError) as e:
        get_sampler("no_such_sampler")
    for name in ("every_kth", "first_seconds", "fps", "keyframes", "random", "uniform"):
        assert name in str(e.value)
    with pytest.raises(UnknownPluginError) as e:
        get_aggregator({"name": "no_such_aggregator"})
    for name in ("confident", "majority", "max", "mean", "median", "quantile", "top_k_mean", "trimmed_mean"):
        assert name in str(e.value)
    assert isinstance(e.value, LookupError)


def write_distribution(root: Path, name: str, module_source: str, entry_points: str) -> None:
    """An installed distribution as importlib.metadata finds it: a module and its .dist-info."""
    (root / f"{name}.py").write_text(textwrap.dedent(module_source))
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = "dfd_test_plugin_pkg"
    write_distribution(
        tmp_path,
        name,
        """
        from dataclasses import dataclass

        import numpy as np


        def every_third(video, /):
            return list(range(0, video.num_frames, 3))


        @dataclass(frozen=True)
        class SecondHighest:
            offset: float = 0.0

            def __call__(self, scores, /):
                return float(np.sort(scores.scores)[-2]) + self.offset
        """,
        f"""
        [deepfakedetect.samplers]
        every_third_test = {name}:every_third

        [deepfakedetect.aggregators]
        second_highest_test = {name}:SecondHighest
        broken_test = {name}_missing_module:Nothing
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    yield name
    sys.modules.pop(name, None)


def test_entry_point_plugins_load_on_a_miss(plugin_dist: str) -> None:
    assert "every_third_test" in list_samplers() and "uniform" in list_samplers()
    assert "second_highest_test" in list_aggregators() and "confident" in list_aggregators()
    assert plugin_dist not in sys.modules  # listing names imports nothing
    assert get_sampler("every_third_test")(INFO) == list(range(0, 100, 3))
    assert plugin_dist in sys.modules
    agg = get_aggregator("second_highest_test:offset=0.05")
    assert repr(agg) == "SecondHighest(offset=0.05)"
    assert agg(SCORES) == pytest.approx(0.75)
    # An entry point that cannot be imported says which one and why.
    with pytest.raises(UnknownPluginError, match="broken_test.*failed to load"):
        get_aggregator("broken_test")


def test_example_package_registers_through_its_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = REPO / "examples" / "custom_aggregator"
    project = tomllib.loads((example / "pyproject.toml").read_text())
    group = project["project"]["entry-points"]["deepfakedetect.aggregators"]
    assert group == {"logit_mean": "deepfakedetect_logit_mean:LogitMeanAggregator"}
    info = tmp_path / "deepfakedetect_logit_mean-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: deepfakedetect-logit-mean\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[deepfakedetect.aggregators]\n" + "".join(f"{k} = {v}\n" for k, v in group.items())
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(example))
    monkeypatch.delitem(sys.modules, "deepfakedetect_logit_mean", raising=False)
    importlib.invalidate_caches()
    agg = get_aggregator("logit_mean:eps=0.001")
    p = np.clip(SCORES.scores, 0.001, 0.999)
    reference = 1 / (1 + np.exp(-np.mean(np.log(p / (1 - p)))))
    assert agg(SCORES) == pytest.approx(reference)
    assert repr(agg) == "LogitMeanAggregator(eps=0.001)"
    with pytest.raises(ConfigError, match="eps"):
        get_aggregator("logit_mean:eps=2")
    sys.modules.pop("deepfakedetect_logit_mean", None)
