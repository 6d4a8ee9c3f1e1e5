"""Average the weights of models fine-tuned from the same start (a "model soup" or WiSE-FT).

Each part is a model folder and its weight; floating-point tensors are averaged, integer
ones (batch-norm step counts) taken from the first part. The new folder gets the
``config.json`` and ``training_manifest.json`` of ``--config-from`` (default: the first
part); calibrate it on validation data with ``quality_select.py`` before comparing it::

    # the uniform soup of three fine-tunes of the 0.1 model
    python benchmarks/quality_soup.py runs/quality/soups/soup runs/quality/v4 runs/quality/v5 runs/quality/v6
    # WiSE-FT: a quarter of the 0.1 model, three quarters of v4
    python benchmarks/quality_soup.py runs/quality/soups/wise75 runs/quality/shipped_0.1=0.25 \\
        runs/quality/v4=0.75 --config-from runs/quality/v4

The parts must share a network (the same tensor names and shapes).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file


def parse_part(text: str) -> tuple[Path, float | None]:
    folder, _, weight = text.partition("=")
    return Path(folder), float(weight) if weight else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the new model folder (replaced if it exists)")
    parser.add_argument("parts", nargs="+", help="model folders, each optionally =WEIGHT (default: equal weights)")
    parser.add_argument("--config-from", type=Path, help="the folder whose config and manifest to copy")
    args = parser.parse_args(argv)
    parts = [parse_part(p) for p in args.parts]
    if any(w is None for _, w in parts) and not all(w is None for _, w in parts):
        parser.error("give a weight to every part or to none")
    weights = [1.0 / len(parts)] * len(parts) if parts[0][1] is None else [float(w) for _, w in parts]  # type: ignore[arg-type]
    if abs(sum(weights) - 1.0) > 1e-6:
        parser.error(f"the weights sum to {sum(weights)}, not 1")
    states = [load_file(str(folder / "model.safetensors")) for folder, _ in parts]
    first = states[0]
    for (folder, _), state in zip(parts, states):
        if {k: v.shape for k, v in state.items()} != {k: v.shape for k, v in first.items()}:
            parser.error(f"{folder} has another network than {parts[0][0]}")
    soup = {
        k: sum(w * s[k].float() for w, s in zip(weights, states)).to(v.dtype) if v.is_floating_point() else v
        for k, v in first.items()
    }
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    source = args.config_from or parts[0][0]
    for name in ("config.json", "training_manifest.json"):
        if (source / name).is_file():
            shutil.copy(source / name, args.out / name)
    save_file(soup, str(args.out / "model.safetensors"))
    print(f"{args.out}: " + " + ".join(f"{w:g} x {folder}" for (folder, _), w in zip(parts, weights)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
