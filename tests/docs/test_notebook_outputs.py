"""The documentation notebooks show a reader nothing of the build machine.

The checks themselves live in ``docs/_hooks/notebook_checks.py`` (the docs build applies
them to every rendered notebook page); here they are tested on made-up outputs. The
notebooks themselves are executed from scratch, and checked, by the strict docs build
that CI runs after the tests (running them here too would double CI's longest step).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytest.importorskip("mkdocs")  # the hook module raises mkdocs' PluginError
nbformat = pytest.importorskip("nbformat")


def _checks():
    spec = importlib.util.spec_from_file_location("notebook_checks", REPO / "docs" / "_hooks" / "notebook_checks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _notebook(*outputs):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = list(outputs)
    nb.cells = [cell]
    return nb


def test_clean_outputs_pass():
    nb = _notebook(
        nbformat.v4.new_output("stream", name="stdout", text="real_0.jpg real 0.13\nfake from 1.0 s to 31.3 s\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": "Detector(backbone='mobilenet_v2')"}),
        nbformat.v4.new_output("display_data", data={"text/markdown": "| a | b |\n|---|---|\n| 1 | 2 |"}),
    )
    assert _checks().problems_in_notebook(nb) == []


@pytest.mark.parametrize(
    ("output", "kind"),
    [
        (nbformat.v4.new_output("stream", name="stdout", text="shared data: /work/shared\n"), "absolute path"),
        (nbformat.v4.new_output("stream", name="stdout", text=r"saved to C:\Users\me\run" + "\n"), "absolute path"),
        (nbformat.v4.new_output("execute_result", data={"text/plain": "<function <lambda> at 0x7f3a2c1b9e40>"}),
         "memory address"),
        (nbformat.v4.new_output("execute_result", data={"text/plain": "'0'"}), "stray value"),
        (nbformat.v4.new_output("stream", name="stderr", text="UserWarning: something\n"), "stderr"),
        (nbformat.v4.new_output("error", ename="ValueError", evalue="bad", traceback=[]), "error"),
    ],
)
def test_each_kind_of_leak_is_found(output, kind):
    found = _checks().problems_in_notebook(_notebook(output))
    assert len(found) == 1 and kind in found[0], found


def test_rendered_page_check_looks_at_outputs_only():
    checks = _checks()
    page = (
        '<div class="jp-Cell jp-CodeCell"><div class="jp-InputArea"><pre>DATA = Path("/work/x")</pre></div>'
        '<div class="jp-OutputArea-output" data-mime-type="text/plain"><pre>&#39;0&#39;</pre></div></div>'
        '<div class="jp-Cell jp-CodeCell"><div class="jp-OutputArea-output"><pre>at 0x7fffdeadbeef</pre></div></div>'
    )
    found = checks.problems_in_html(page, "page")
    assert any("stray value" in f for f in found) and any("memory address" in f for f in found)
    assert not any("absolute path" in f for f in found)  # the input cell is the reader's to see
