"""Shared test helpers: build small synthetic notebooks with nbformat.

Every kernel the tests start (nbval, nbclient, papermill) inherits this process's environment, so
``ANIME_LIB_HEADLESS=1`` set here makes widget helpers draw static figures instead of waiting for a
frontend that never comes (:mod:`anime_lib.widgets`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence, Union

import nbformat
import pytest

os.environ.setdefault("ANIME_LIB_HEADLESS", "1")

# A cell spec: ("markdown" | "code", source) or ("code", source, [tags])
CellSpec = Union[tuple[str, str], tuple[str, str, Sequence[str]]]


def build_notebook(cells: Sequence[CellSpec]) -> nbformat.NotebookNode:
    """A format-4 notebook with the python3 kernelspec and the given cells."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for spec in cells:
        kind, source = spec[0], spec[1]
        tags = list(spec[2]) if len(spec) > 2 else []
        cell = nbformat.v4.new_markdown_cell(source) if kind == "markdown" else nbformat.v4.new_code_cell(source)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    return nb


@pytest.fixture
def write_notebook() -> Callable[..., Path]:
    """``write_notebook(path, cells)`` writes a synthetic notebook and returns its path."""

    def write(path: Path, cells: Sequence[CellSpec]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(build_notebook(cells), str(path))
        return path

    return write
