"""Every training lesson resumes its own checkpoints and never someone else's (the real notebooks, smoke profile).

A re-run after a Colab disconnect must continue from the checkpoints (not train again), and a re-run with a
changed setting must not continue, or report, the run made with the old one. Both depend on each lesson saving
its settings in its checkpoints and calling ``Checkpointer.prepare`` with them, which only running the notebook
checks.

Each notebook runs up to its last training cell (a cell that builds a ``Run(``, :func:`notebook_meta.training_cells`):
everything its checkpoints depend on happens by then, and the evaluation and figures after it are executed by the
nbval run of the whole notebook. On two cores (2026-12-01, a day the machine ran about 3x slower than the README's
table) the six lessons' three runs took 587 s this way and 1,129 s as whole notebooks.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from anime_lib.course import find_notebooks, run_course
from anime_lib.notebook_meta import read_notebook, training_cells

ROOT = Path(__file__).resolve().parents[1]
TRAINING_LESSONS = ("01", "02", "03", "04", "05", "06", "07", "08", "09")


def _checkpoints(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("ckpt_*.pt")}


def _printed(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    return "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))


def _training_parts(lesson: str, folder: Path) -> Path:
    """Copy every notebook of ``lesson`` into ``folder``, each cut after its last training cell; returns ``folder``."""
    for path in find_notebooks(ROOT / "notebooks", lesson):
        nb = read_notebook(path)
        # the optional real-photo part (its own runs, skipped in smoke: REAL_DATA is None) is left out, else the
        # cut would fall at the end of every lesson
        cells = [i for i in training_cells(nb) if "load_real_photos(" not in "".join(nb.cells[i].source)]
        assert cells, f"{path.name} trains nothing the resume test can see (no cell builds a Run)"
        nb.cells = nb.cells[:cells[-1] + 1]
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(folder / path.name))
    return folder


def _run(lesson: str, out: Path, notebooks: Path, **params) -> str:
    """Run every notebook of ``lesson`` (a long lesson has a main part and a deep dive) and return what they printed."""
    summary = run_course("smoke", lesson, out, notebooks, timeout=600, params=params or None, progress=False)
    assert summary["notebooks"], f"no notebook of lesson {lesson} ran"
    for entry in summary["notebooks"]:
        assert entry["status"] == "ok", entry["error"]
    return "".join(_printed(Path(entry["executed"])) for entry in summary["notebooks"])


@pytest.mark.parametrize("lesson", TRAINING_LESSONS)
def test_a_rerun_resumes_and_a_changed_seed_starts_over(lesson: str, tmp_path: Path):
    out, notebooks = tmp_path / "run", _training_parts(lesson, tmp_path / "notebooks")
    _run(lesson, out, notebooks)
    first = _checkpoints(out)
    assert first, f"lesson {lesson} wrote no checkpoints"

    again = _run(lesson, out, notebooks)  # same settings: everything is resumed, nothing is trained or saved again
    assert "other settings" not in again and "starting over" not in again
    assert _checkpoints(out) == first

    reseeded = _run(lesson, out, notebooks, SEED=1)
    assert "other settings (seed 0 -> 1" in reseeded
    assert _checkpoints(out) != first
