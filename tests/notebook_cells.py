"""Read the cells of a lesson by tag, so tests can run the code a student reads (and may edit).

A lesson keeps its step function (the loss terms and one update) in a code cell tagged ``step-function``;
the library keeps the tested reference. ``notebook_namespace(name, "step-function")`` executes the
lesson's imports cell(s) tagged ``imports`` (if any) and then the tagged cell, and returns the names
they define, so a test can call the notebook's function and the library's on the same batch and compare.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def tagged_sources(notebook: str | Path, tag: str) -> list[str]:
    """The sources of every code cell of ``notebook`` (a path, or a file name in notebooks/) tagged ``tag``."""
    path = Path(notebook)
    if not path.is_absolute() and not path.exists():
        path = NOTEBOOKS / path
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    found = ["".join(c["source"]) for c in cells
             if c["cell_type"] == "code" and tag in c.get("metadata", {}).get("tags", [])]
    if not found:
        raise LookupError(f"{path.name} has no code cell tagged {tag!r}")
    return found


def notebook_namespace(notebook: str | Path, *tags: str, preset: dict[str, Any] | None = None) -> dict[str, Any]:
    """Execute the cells tagged ``tags`` (in that order; each tag may mark several cells) in one namespace.

    ``preset``: names defined before the cells run (stand-ins for what earlier cells of the lesson make,
    such as ``P`` or ``device``). Returns the namespace.
    """
    ns: dict[str, Any] = dict(preset or {})
    for tag in tags:
        for source in tagged_sources(notebook, tag):
            exec(compile(source, f"{Path(notebook).name}[{tag}]", "exec"), ns)
    return ns


def assert_same_updates(runs: dict[str, tuple[list[dict[str, float]], dict[str, Any]]],
                        *, rel: float | None = None, abs: float = 1e-6) -> None:
    """Check that a lesson's step function and the library's reference did the same training.

    ``runs`` maps "notebook" and "library" to ``(losses, state_dict)``: the loss dictionaries the steps
    returned (one per step, same names, same values) and the model's weights after the last step.
    """
    import pytest
    import torch

    (nb_losses, nb_state), (lib_losses, lib_state) = runs["notebook"], runs["library"]
    assert len(nb_losses) == len(lib_losses)
    for got, want in zip(nb_losses, lib_losses):
        assert got.keys() == want.keys()
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=rel, abs=abs), k
    assert nb_state.keys() == lib_state.keys()
    for k, v in lib_state.items():
        assert torch.allclose(nb_state[k], v, atol=1e-6), k
