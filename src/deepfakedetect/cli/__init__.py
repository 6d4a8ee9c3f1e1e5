"""The ``deepfakedetect`` command line.

Errors the library raises on purpose are printed as one line (no traceback) and give
a non-zero exit code: 1 when some inputs failed, 2 for usage or model problems.
"""

from __future__ import annotations

import importlib
import logging
import sys

from deepfakedetect._errors import DeepfakeDetectError
from deepfakedetect.cli.parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Example:
        >>> main(["--version"])  # doctest: +SKIP
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        # The library (torch and all) is imported here, for the subcommand that runs: the
        # parser alone answers --help and argument errors without it.
        module, _, name = args.run.partition(":")
        return int(getattr(importlib.import_module(module), name)(args))
    except DeepfakeDetectError as e:
        print(f"deepfakedetect: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deepfakedetect: interrupted", file=sys.stderr)
        return 130
