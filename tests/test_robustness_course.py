"""The runners never hang and never fail silently: default cell timeouts, headless kernels, empty
selections, concurrent runs into one folder, parameter types and sweep metric names.

Most tests replace papermill's execute_notebook by a recorder, so no kernel starts."""
from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import papermill
import pytest

from anime_lib import course, sweep
from anime_lib.course import DEFAULT_CELL_TIMEOUT, LOCK_NAME, main, run_course, run_lock
from anime_lib.sweep import SweepError, load_sweep, run_sweep

PARAMETERS = """\
PROFILE = "auto"
OUT_DIR = None
N_STEPS = 3             # an int
LR = 2e-4               # a float
USE_AMP = None          # None: the profile decides
RESUME = True
ACTIVATION = "relu"
"""


@pytest.fixture
def lessons(tmp_path: Path, write_notebook) -> Path:
    folder = tmp_path / "notebooks"
    for name in ("01_one", "02_two"):
        write_notebook(folder / f"{name}.ipynb", [("markdown", f"# {name}"), ("code", PARAMETERS, ["parameters"]),
                                                  ("code", 'rows = [{"method": "m", "toy_fid": 1.0, "my_score": 2}]')])
    return folder


@pytest.fixture
def calls(monkeypatch) -> list:
    """Record papermill calls instead of starting kernels."""
    seen = []

    def fake_execute(source, executed, **kwargs):
        seen.append({"source": source, "env": os.environ.get("ANIME_LIB_HEADLESS"), **kwargs})
        Path(executed).write_text("{}")

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    return seen


def test_every_runner_has_a_finite_default_cell_timeout():
    assert 0 < DEFAULT_CELL_TIMEOUT < float("inf")
    for fn in (course.run_course, course.execute_notebook, sweep.run_sweep):
        assert inspect.signature(fn).parameters["timeout"].default == DEFAULT_CELL_TIMEOUT
    assert course._parser().parse_args(["run"]).timeout == DEFAULT_CELL_TIMEOUT


def test_run_course_passes_the_timeout_and_headless_env_to_every_lesson(lessons, tmp_path, calls, monkeypatch):
    monkeypatch.delenv("ANIME_LIB_HEADLESS", raising=False)
    run_course("smoke", None, tmp_path / "run", lessons, progress=False)
    assert [c["execution_timeout"] for c in calls] == [3600, 3600]
    assert [c["env"] for c in calls] == ["1", "1"]
    assert "ANIME_LIB_HEADLESS" not in os.environ  # restored afterwards
    calls.clear()
    run_course("smoke", "01", tmp_path / "run", lessons, timeout=0, progress=False)
    assert calls[0]["execution_timeout"] is None  # 0: no limit, on request only


def test_nbval_has_a_cell_timeout_by_default(pytestconfig):
    if not hasattr(pytestconfig.option, "nbval_cell_timeout"):
        pytest.skip("nbval is not installed")
    assert float(pytestconfig.option.nbval_cell_timeout) <= 600


@pytest.mark.parametrize("only", [",", " , ,"])
def test_an_empty_only_is_an_error_not_every_lesson(lessons, only, capsys, calls):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--notebooks", str(lessons), "--only", only, "--no-progress"])
    assert exc.value.code == 2 and "names no lesson" in capsys.readouterr().err
    with pytest.raises(ValueError, match="names no lesson"):
        run_course("smoke", [], None, lessons, progress=False)
    assert calls == []


def test_a_second_concurrent_run_into_one_folder_is_refused(lessons, tmp_path, calls):
    run_dir = tmp_path / "run"
    with run_lock(run_dir, "course run"):
        with pytest.raises(ValueError, match=r"another course run \(pid \d+ .*is writing into .*run; wait"):
            run_course("smoke", None, run_dir, lessons, progress=False)
    assert calls == [] and not (run_dir / LOCK_NAME).exists()
    run_course("smoke", None, run_dir, lessons, progress=False)  # finished: running into it again works
    run_course("smoke", "02", run_dir, lessons, progress=False)
    assert len(calls) == 3 and not (run_dir / LOCK_NAME).exists()


def test_a_lock_left_by_a_dead_process_is_taken_over(lessons, tmp_path, calls):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / LOCK_NAME).write_text(
        f'{{"host": "{__import__("socket").gethostname()}", "pid": {dead.pid}, "what": "course run"}}')
    run_course("smoke", None, run_dir, lessons, progress=False)
    assert len(calls) == 2


def test_default_run_folders_never_collide(tmp_path):
    first = course.new_run_dir(tmp_path, "20260101-000000")
    first.mkdir()
    assert course.new_run_dir(tmp_path, "20260101-000000").name == "20260101-000000-2"


@pytest.mark.parametrize("param, ok", [
    ({"N_STEPS": "abc"}, False), ({"N_STEPS": 2.5}, False), ({"N_STEPS": True}, False), ({"N_STEPS": 10}, True),
    ({"LR": 1}, True), ({"LR": "fast"}, False), ({"RESUME": 0}, False), ({"RESUME": False}, True),
    ({"ACTIVATION": 3}, False), ({"USE_AMP": "anything"}, True), ({"N_STEPS": None}, True),
    ({"NOT_IN_THE_CELL": "x"}, True),
])
def test_param_values_are_type_checked_before_any_lesson_starts(lessons, tmp_path, calls, param, ok):
    if ok:
        run_course("smoke", "01", tmp_path / "run", lessons, params=param, progress=False)
        assert len(calls) == 1
    else:
        name = next(iter(param))
        with pytest.raises(ValueError, match=rf"01_one: {name}=.* is an? \w+, but the default {name} = "):
            run_course("smoke", None, tmp_path / "run", lessons, params=param, progress=False)
        assert calls == []


def test_cli_param_type_error_is_a_usage_error(lessons, capsys, calls):
    with pytest.raises(SystemExit):
        main(["run", "--notebooks", str(lessons), "--param", "N_STEPS=abc", "--no-progress"])
    assert "N_STEPS='abc' is a str, but the default N_STEPS = 3 is an int" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# sweeps
# --------------------------------------------------------------------------------------------
def _spec(tmp_path: Path, lessons: Path, body: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(f"notebook: {lessons / '01_one.ipynb'}\n{body}")
    return path


def test_sweep_metric_names_are_checked(lessons, tmp_path):
    with pytest.raises(SweepError, match=r"metric 'toy_fd' .*did you mean toy_fid"):
        load_sweep(_spec(tmp_path, lessons, "grid: {N_STEPS: [1, 2]}\nmetrics: [toy_fd]\n"))
    # a column the lesson writes itself is fine
    assert load_sweep(_spec(tmp_path, lessons, "grid: {N_STEPS: [1]}\nmetrics: [my_score, realism]\n")).metrics == [
        "my_score", "realism"]


def test_sweep_values_are_type_checked(lessons, tmp_path):
    with pytest.raises(SweepError, match=r"grid: N_STEPS='many' is a str"):
        load_sweep(_spec(tmp_path, lessons, "grid: {N_STEPS: [1, many]}\n"))
    with pytest.raises(SweepError, match=r"fixed: RESUME=1 is an int"):
        load_sweep(_spec(tmp_path, lessons, "fixed: {RESUME: 1}\ngrid: {N_STEPS: [1]}\n"))


def test_sweep_runs_headless_with_the_default_timeout_and_a_lock(lessons, tmp_path, calls):
    spec = _spec(tmp_path, lessons, "grid: {N_STEPS: [1, 2]}\nmetrics: [toy_fid]\n")
    with run_lock(tmp_path / "out", "course run"):
        with pytest.raises(ValueError, match="another course run"):
            run_sweep(spec, "smoke", tmp_path / "out", progress=False)
    run_sweep(spec, "smoke", tmp_path / "out", progress=False)
    assert [c["execution_timeout"] for c in calls] == [3600, 3600] and {c["env"] for c in calls} == {"1"}
