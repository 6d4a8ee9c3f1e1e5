"""MkDocs hook: fill the CLI reference with the real ``--help`` text of each command.

A page writes ``<!-- cli-help: detect -->`` (or ``<!-- cli-help -->`` for the top-level
command); the hook replaces it with that parser's help, so the reference cannot drift
from the code. An unknown command name fails the build.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

_MARK = re.compile(r"<!--\s*cli-help(?::\s*([\w-]+))?\s*-->")


def _parser() -> argparse.ArgumentParser:
    try:
        from deepfakedetect.cli import build_parser
    except ImportError:  # building from a clone without installing it
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
        from deepfakedetect.cli import build_parser
    return build_parser()


def _help(name: str | None) -> str:
    os.environ["COLUMNS"] = "90"  # argparse wraps to the terminal width; keep pages stable
    parser = _parser()
    if name is None:
        return parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            if name in action.choices:
                return action.choices[name].format_help()
            raise PluginError(f"cli-help: no command {name!r}; commands: {', '.join(action.choices)}")
    raise PluginError("cli-help: the parser has no subcommands")


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    def replace(m: re.Match[str]) -> str:
        return "```text\n" + _help(m.group(1)).rstrip() + "\n```"

    return _MARK.sub(replace, markdown)
