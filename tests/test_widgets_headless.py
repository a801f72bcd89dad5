"""Widget cells never block a headless run: executed by nbclient again and again, each call of a
widget helper draws static figures and the kernel is never left waiting for a frontend."""
from __future__ import annotations

import os
import time

import nbclient
import pytest

from anime_lib import widgets

WIDGET_CELL = """\
from matplotlib.figure import Figure
from anime_lib.widgets import slider_explorer, widgets_available

def render(alpha, colour, flip):
    fig = Figure(figsize=(2, 2))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, alpha if not flip else -alpha], color=colour)
    return fig

assert not widgets_available(), "a headless kernel must not build live widgets"
out = slider_explorer(render, {"alpha": (0.0, 1.0, 0.1), "colour": ["red", "blue"], "flip": False},
                      static_values=[{}, {"alpha": 0.9, "colour": "blue"}])
assert type(out).__name__ == "StaticFigures" and len(out) == 2
out
"""


def test_widget_cells_run_headless_many_times(write_notebook, tmp_path):
    assert os.environ.get("ANIME_LIB_HEADLESS") == "1"  # set by tests/conftest.py for every kernel
    path = write_notebook(tmp_path / "widgets.ipynb", [("code", WIDGET_CELL), ("code", "out")])
    import nbformat

    start = time.monotonic()
    for _ in range(10):
        nb = nbformat.read(str(path), as_version=4)
        nbclient.NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}},
                                startup_timeout=60).execute()
        for cell in nb.cells:
            mimes = {m for o in cell.outputs for m in o.get("data", {})}
            assert mimes  # the figures (image/png with the inline backend, their repr under MPLBACKEND=Agg)
            assert "application/vnd.jupyter.widget-view+json" not in mimes
    assert time.monotonic() - start < 300


@pytest.mark.parametrize("env, value, headless", [
    ("ANIME_LIB_HEADLESS", "1", True), ("ANIME_LIB_HEADLESS", "0", False), ("ANIME_LIB_STATIC_WIDGETS", "yes", True),
    ("ANIME_LIB_PROFILE", "smoke", True), ("ANIME_LIB_PROFILE", "cpu", False),
])
def test_is_headless_reads_the_environment(monkeypatch, env, value, headless):
    for name in ("ANIME_LIB_HEADLESS", "ANIME_LIB_STATIC_WIDGETS", "ANIME_LIB_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(env, value)
    assert widgets.is_headless() is headless
