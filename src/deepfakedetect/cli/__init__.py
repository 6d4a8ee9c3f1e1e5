"""The ``deepfakedetect`` command line.

Errors are printed as one line (no traceback), with control characters in file names and
messages escaped, and give an exit code scripts can act on:

- 0: every input was scored;
- 1: some inputs could not be read (one ``deepfakedetect: error:`` line each; the others
  were scored);
- 2: a bad model, bad arguments, or results that cannot be written (nothing more is done);
- 3: an internal error, i.e. a bug in deepfakedetect or in a plugin (``-vv`` prints the
  traceback; please report it);
- 130: interrupted (Ctrl-C); 141: the reader of standard output went away (``| head``).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import traceback

from deepfakedetect._errors import DeepfakeDetectError
from deepfakedetect._untrusted import printable
from deepfakedetect.cli.parser import build_parser

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_SOME_FAILED", "EXIT_USAGE",
           "build_parser", "main"]

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a process killed by it


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that nothing fails again when Python flushes it at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real stdout (embedded use): nothing to protect
        pass


def _finish(code: int) -> int:
    """Exit code; a decoding thread abandoned after its timeout cannot be joined, so exit without waiting for it."""
    if any(t.name.startswith("dfd-decode") and t.is_alive() for t in threading.enumerate()):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    return code


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
        return _finish(int(getattr(importlib.import_module(module), name)(args)))
    except BrokenPipeError:
        _silence_stdout()
        return _finish(EXIT_BROKEN_PIPE)
    except DeepfakeDetectError as e:
        if getattr(e, "stdout", False):
            _silence_stdout()
        print(f"deepfakedetect: error: {printable(e)}", file=sys.stderr)
        return _finish(EXIT_USAGE)
    except KeyboardInterrupt:
        print("deepfakedetect: interrupted", file=sys.stderr)
        return _finish(EXIT_INTERRUPTED)
    except Exception as e:  # noqa: BLE001 - a bug: one line, its own exit code, the traceback on request
        if args.verbose >= 2:
            traceback.print_exc()
        print(
            f"deepfakedetect: internal error (a bug in deepfakedetect or a plugin; please report it, "
            f"with the output of -vv): {type(e).__name__}: {printable(e)}",
            file=sys.stderr,
        )
        return _finish(EXIT_INTERNAL)
