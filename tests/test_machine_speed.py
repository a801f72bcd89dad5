"""The course runner's yardstick of machine speed (anime_lib.machine_speed) and its place in a course run's report."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from anime_lib import course, machine_speed
from anime_lib.machine_speed import MachineSpeed, combine, dcgan_seconds_per_step

LESSON = """\
from anime_lib.config import out_dir, resolve_params
from anime_lib.results import write_metrics
P = resolve_params(globals())
write_metrics(out_dir(OUT_DIR, "01_tiny"), [{"method": "tiny", "gt_l1": 0.5}], notebook="01_tiny", params=P)
"""
PARAMETERS = 'PROFILE = "cpu"\nDATASET = None\nSEED = 0\nOUT_DIR = None\n'


def test_the_yardstick_times_real_steps_and_leaves_the_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    seconds = dcgan_seconds_per_step(size=16, width=8, batch=4, steps=2, warmup=1)
    assert 0 < seconds < 10
    assert torch.equal(torch.rand(3), expected)  # a seeded lesson run is not disturbed by the timing
    with pytest.raises(ValueError, match="at least 1"):
        dcgan_seconds_per_step(steps=0)


def test_speed_converts_wall_times_to_the_reference_machine():
    speed = MachineSpeed(0.114, reference=0.038)
    assert speed.slowdown == pytest.approx(3.0)
    assert speed.at_reference(600.0) == pytest.approx(200.0)
    assert "3.00x" in speed.describe()
    assert combine([MachineSpeed(0.1, 0.05), MachineSpeed(0.2, 0.05)]).seconds_per_step == pytest.approx(0.15)
    with pytest.raises(ValueError, match="positive"):
        MachineSpeed(0.0)
    with pytest.raises(ValueError, match="no speed"):
        combine([])


def test_a_cpu_course_run_reports_its_wall_times_against_the_machine_speed(tmp_path: Path, write_notebook,
                                                                          monkeypatch):
    folder = tmp_path / "notebooks"
    write_notebook(folder / "01_tiny.ipynb", [("code", PARAMETERS, ["parameters"]), ("code", LESSON)])
    timings = iter([0.076, 0.114])  # before and after the lessons: the report uses their mean, 0.095 s (2.5x)
    monkeypatch.setattr(machine_speed, "measure", lambda: MachineSpeed(next(timings), reference=0.038))

    summary = course.run_course("cpu", None, tmp_path / "run", folder, timeout=120, progress=False)
    speed = summary["machine_speed"]
    assert speed["seconds_per_step"] == pytest.approx(0.095) and speed["slowdown"] == pytest.approx(2.5)
    (run,) = summary["notebooks"]
    md = (tmp_path / "run" / "results.md").read_text()
    assert "2.50x the reference's times" in md
    assert f"about {run['seconds'] / 2.5:.0f} s on the reference machine" in md

    # the smoke profile's seconds mean nothing: no timing, no conversion
    smoke = course.run_course("smoke", None, tmp_path / "smoke", folder, timeout=120, progress=False)
    assert smoke["machine_speed"] is None
    assert "reference machine" not in json.dumps(smoke["results_md"])
