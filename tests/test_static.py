"""Static check: pyflakes' rules (ruff's F rules) over the library.

Undefined names, unused imports and variables, redefinitions and f-strings without placeholders
are bugs or leftovers that only show up when a rarely used code path runs (a Colab-only metric once
called a helper that no longer existed). ruff is in the test requirements; the check fails on any
finding and prints them all.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_library_has_no_pyflakes_findings():
    cmd = [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "F", "--output-format", "concise",
           "anime_lib"]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    except FileNotFoundError as exc:  # pragma: no cover - no interpreter?
        raise AssertionError(f"could not run {' '.join(cmd)}: {exc}") from exc
    if "No module named ruff" in proc.stderr:
        raise AssertionError("ruff is not installed: pip install -r requirements.txt (or pip install 'ruff>=0.4')")
    assert proc.returncode == 0, f"ruff check --select F anime_lib found problems:\n{proc.stdout}{proc.stderr}"
