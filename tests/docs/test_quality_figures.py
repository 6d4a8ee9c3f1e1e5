"""The quality page's figures (``docs/_figures/quality.py``) count and draw what the evaluation file says."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip("matplotlib")


def _module():
    spec = importlib.util.spec_from_file_location("docs_figures_quality", REPO / "docs" / "_figures" / "quality.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _source(y, s, threshold, band=None, level="image"):
    levels = {level: {"auc": 0.5, "ece": 0.1, "threshold": threshold, "n": len(y)}}
    if band is not None:
        levels[level]["uncertain"] = {"band": list(band), "uncertain_share": 0.0}
    return {"threshold": threshold, "levels": levels, "items": {level: {"y": y, "fake_score": s}}}


def test_confusion_counts_verdicts_at_the_threshold():
    q = _module()
    d = _source([0, 0, 0, 1, 1, 1], [0.1, 0.6, 0.9, 0.2, 0.7, 0.95], threshold=0.5)
    counts, columns = q.confusion(d, "image")
    assert columns == ["real", "fake"]
    assert counts.tolist() == [[1, 2], [1, 2]]


def test_confusion_has_an_uncertain_column_when_the_model_has_a_band():
    q = _module()
    # band [0.4, 0.8): 0.6 and 0.7 are uncertain; 0.8 is at the band's top, so a fake verdict
    d = _source([0, 0, 0, 1, 1, 1], [0.1, 0.6, 0.8, 0.2, 0.7, 0.95], threshold=0.5, band=(0.4, 0.8))
    counts, columns = q.confusion(d, "image")
    assert columns == ["real", "uncertain", "fake"]
    assert counts.tolist() == [[1, 1, 1], [1, 1, 1]]


def test_load_takes_the_one_model_and_refuses_several(tmp_path):
    q = _module()
    entry = {"sources": {"lfw": _source([0, 1], [0.2, 0.9], 0.5)}}
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"v2": entry}))
    assert q.load(one) == entry
    two = tmp_path / "two.json"
    two.write_text(json.dumps({"v2": entry, "0.1": entry}))
    with pytest.raises(ValueError, match="keep only the shipped model"):
        q.load(two)


def test_figures_are_drawn_from_the_file(tmp_path, monkeypatch):
    q = _module()
    rng = [0.05 * i for i in range(20)]
    sources = {
        "lfw": _source([0] * 10 + [1] * 10, rng, 0.5),
        "ffpp_videos": _source([0, 0, 1, 1], [0.2, 0.6, 0.4, 0.9], 0.5, level="video"),
    }
    results = tmp_path / "quality-eval-test.json"
    results.write_text(json.dumps({"v2": {"sources": sources}}))
    monkeypatch.setattr(q, "RESULTS", results)
    for name, make in (("roc.png", q.make_roc), ("rel.png", q.make_reliability), ("conf.png", q.make_confusion)):
        make(tmp_path / name, tmp_path)
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
