"""The performance page's figure: images/s against batch size, one panel per CPU kind.

Made by ``docs/_hooks/figures.py`` while the site builds (see its docstring), with
``benchmarks/plot_throughput.py`` from the throughput tables that
``benchmarks/inference.py --json FILE`` wrote, committed as
``docs/data/throughput-<cpu>-<date>.json`` (one file per machine). Adding a machine's file
adds its panel at the next build. Until such a file exists this module makes no figure.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
_PLOT = _ROOT / "benchmarks" / "plot_throughput.py"
RUNS = sorted((_ROOT / "docs" / "data").glob("throughput-*.json"))


def make_throughput(out: Path, shared: Path) -> None:
    spec = importlib.util.spec_from_file_location("plot_throughput", _PLOT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.plot(RUNS, out)


FIGURES = {"throughput.png": make_throughput} if RUNS and _PLOT.is_file() else {}
