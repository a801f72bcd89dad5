"""Every training lesson resumes its own checkpoints and never someone else's (the real notebooks, smoke profile).

A re-run after a Colab disconnect must continue from the checkpoints (not train again), and a re-run with a
changed setting must not continue, or report, the run made with the old one. Both depend on each lesson saving
its settings in its checkpoints and calling ``Checkpointer.prepare`` with them, which only running the notebook
checks.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from anime_lib.course import run_course

ROOT = Path(__file__).resolve().parents[1]
TRAINING_LESSONS = ("01", "02", "03", "04", "05", "06")


def _checkpoints(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("ckpt_*.pt")}


def _printed(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    return "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))


def _run(lesson: str, out: Path, **params) -> str:
    """Run every notebook of ``lesson`` (a long lesson has a main part and a deep dive) and return what they printed."""
    summary = run_course("smoke", lesson, out, ROOT / "notebooks", timeout=600, params=params or None, progress=False)
    assert summary["notebooks"], f"no notebook of lesson {lesson} ran"
    for entry in summary["notebooks"]:
        assert entry["status"] == "ok", entry["error"]
    return "".join(_printed(Path(entry["executed"])) for entry in summary["notebooks"])


@pytest.mark.parametrize("lesson", TRAINING_LESSONS)
def test_a_rerun_resumes_and_a_changed_seed_starts_over(lesson: str, tmp_path: Path):
    out = tmp_path / "run"
    _run(lesson, out)
    first = _checkpoints(out)
    assert first, f"lesson {lesson} wrote no checkpoints"

    again = _run(lesson, out)  # same settings: everything is resumed, nothing is trained or saved again
    assert "other settings" not in again and "starting over" not in again
    assert _checkpoints(out) == first

    reseeded = _run(lesson, out, SEED=1)
    assert "other settings (seed 0 -> 1" in reseeded
    assert _checkpoints(out) != first
