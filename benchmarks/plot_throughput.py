"""Plot images/s against batch size from ``inference.py --json`` files, one panel per CPU kind.

Each JSON file is one run of ``benchmarks/inference.py --json FILE`` on one machine. The
figure has one panel per file (titled with the CPU and the load average the run started
under), one line per model in the ``Detector`` default mode, and, dashed, plain fp32 eager
for comparison.

Usage::

    python benchmarks/plot_throughput.py docs/data/throughput-*.json --out throughput.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _default_mode(rows: list[dict[str, Any]]) -> str:
    for row in rows:
        if "(Detector default)" in row["mode"]:
            return str(row["mode"])
    raise ValueError("no '(Detector default)' mode in the file")


def plot(files: list[Path], out: Path) -> None:
    """Write the figure for ``files`` (``inference.py --json`` outputs) to ``out`` (PNG or SVG)."""
    import matplotlib  # heavy and optional: only the plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    runs = [json.loads(Path(f).read_text(encoding="utf-8")) for f in files]
    fig, axes = plt.subplots(1, len(runs), figsize=(6.4 * len(runs), 3.6), squeeze=False, sharey=False)
    for ax, run in zip(axes[0], runs):
        rows = run["rows"]
        default = _default_mode(rows)
        models = list(dict.fromkeys(r["model"] for r in rows))
        for i, model in enumerate(models):
            colour = f"C{i}"
            for mode, style, label in ((default, "-o", f"{model}, default"), ("fp32 eager", "--", f"{model}, fp32 eager")):
                pts = sorted((r["batch"], r["images_per_s"]) for r in rows if r["model"] == model and r["mode"] == mode)
                if pts:
                    ax.plot([b for b, _ in pts], [v for _, v in pts], style, color=colour, label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        batches = sorted({r["batch"] for r in rows})
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set_xlabel("batch size")
        ax.set_ylabel("images/s (224x224, both cores)")
        load = run.get("load_start", [float("nan")])[0]
        cpu = str(run["cpu"]).split(",")[0]
        ax.set_title(f"{cpu}\n{run.get('date', '')}, load average {load:.1f}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path("throughput.png"))
    args = ap.parse_args()
    plot(args.files, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
