"""Tests for anime_lib.sweep: validation, a 2x2 sweep on a tiny generated lesson, tables and figures,
the same sweep in threads and on a local Dask cluster, and a Dask worker that dies mid-point."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import matplotlib.image
import pytest

from anime_lib import sweep
from anime_lib.sweep import SweepError, SweepSpec, load_sweep, main, plot_sweep, run_sweep, select_rows

PARAMETERS = """\
PROFILE = "auto"
OUT_DIR = None
A = 1
B = 1
N_STEPS = 1
"""

# toy_fid = A * B and realism = A + B for human->anime; the point A=2, B=5 fails on purpose
LESSON = """\
from anime_lib.config import out_dir, resolve_params
from anime_lib.results import write_metrics
P = resolve_params(globals())
if A == 2 and B == 5:
    raise ValueError("this point fails on purpose")
rows = [{"method": "toy", "direction": "human->anime", "toy_fid": A * B, "realism": A + B},
        {"method": "toy", "direction": "anime->human", "toy_fid": -1.0, "realism": None}]
write_metrics(out_dir(OUT_DIR, "01_toy"), rows, notebook="01_toy", params=P)
"""

SPEC = """\
notebook: lessons/01_toy.ipynb
profile: cpu
fixed: {N_STEPS: 2}
grid:
  A: [1, 2]
  B: [3, 5]
metrics: [toy_fid, realism]
select: {direction: "human->anime"}
"""


#: the table of SPEC at every --workers and on a Dask cluster
TABLE = [
    {"A": 1, "B": 3, "toy_fid": 3, "realism": 4},
    {"A": 1, "B": 5, "toy_fid": 5, "realism": 6},
    {"A": 2, "B": 3, "toy_fid": 6, "realism": 5},
]


@pytest.fixture
def spec_file(tmp_path: Path, write_notebook) -> Path:
    write_notebook(tmp_path / "lessons" / "01_toy.ipynb",
                   [("markdown", "# Toy lesson"), ("code", PARAMETERS, ["parameters"]), ("code", LESSON)])
    path = tmp_path / "toy.yaml"
    path.write_text(SPEC)
    return path


def _write_spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


def test_load_sweep_resolves_notebook_and_points(spec_file: Path):
    spec = load_sweep(spec_file)
    assert spec.name == "toy" and spec.profile == "cpu"
    assert spec.notebook == (spec_file.parent / "lessons" / "01_toy.ipynb").resolve()
    assert spec.points() == [{"A": 1, "B": 3}, {"A": 1, "B": 5}, {"A": 2, "B": 3}, {"A": 2, "B": 5}]
    assert spec.fixed == {"N_STEPS": 2} and spec.select == {"direction": "human->anime"}


def test_notebook_relative_to_repo_root(spec_file: Path, tmp_path: Path, monkeypatch):
    elsewhere = tmp_path / "sweeps"
    elsewhere.mkdir()
    path = elsewhere / "rooted.yaml"
    path.write_text(SPEC)  # lessons/01_toy.ipynb is not below sweeps/, only below the (patched) root
    monkeypatch.setattr(sweep, "REPO_ROOT", tmp_path)
    assert load_sweep(path).notebook == (tmp_path / "lessons" / "01_toy.ipynb").resolve()


@pytest.mark.parametrize("text, message", [
    (SPEC.replace("  B: [3, 5]", "  C: [3, 5]"), r"grid names 'C', which is not in the parameters cell"),
    (SPEC.replace("{N_STEPS: 2}", "{N_EPOCHS: 2}"), r"fixed names 'N_EPOCHS'"),
    (SPEC.replace("lessons/01_toy", "lessons/99_missing"), r"notebook 'lessons/99_missing.ipynb' not found"),
    (SPEC.replace("notebook: lessons/01_toy.ipynb\n", ""), r"'notebook' must be a path"),
    (SPEC.split("grid:")[0] + "grid: {}\n", r"'grid' must map at least one parameter"),
    (SPEC.replace("B: [3, 5]", "B: 3"), r"grid value of 'B' must be a non-empty list"),
    (SPEC.replace("B: [3, 5]", "OUT_DIR: [a, b]"), r"grid may not set OUT_DIR"),
    (SPEC.replace("{N_STEPS: 2}", "{A: 2}"), r"A appear\(s\) in both 'fixed' and 'grid'"),
    (SPEC + "metric: [toy_fid]\n", r"unknown key\(s\) metric"),
    (SPEC.replace("profile: cpu", "profile: tpu"), r"profile 'tpu' is not one of"),
    ("grid: [1, 2", r"not valid YAML"),
])
def test_validation_errors(spec_file: Path, text: str, message: str):
    with pytest.raises(SweepError, match=message):
        load_sweep(_write_spec(spec_file.parent, text))


def test_missing_sweep_file_is_a_usage_error(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "nope.yaml")])
    assert exc.value.code == 2
    assert "nope.yaml not found" in capsys.readouterr().err


def test_dry_run_lists_points_and_writes_nothing(spec_file: Path, tmp_path: Path, capsys):
    out = tmp_path / "dry"
    summary = run_sweep(spec_file, profile="smoke", out=out, dry_run=True)
    assert not out.exists()
    assert [p["label"] for p in summary["points"]] == ["A=1, B=3", "A=1, B=5", "A=2, B=3", "A=2, B=5"]
    first = summary["points"][0]["parameters"]
    assert first["PROFILE"] == "smoke" and first["N_STEPS"] == 2
    assert first["OUT_DIR"] == str(out.resolve() / "00_A=1_B=3")
    assert "A=2, B=5" in capsys.readouterr().out


def test_select_rows():
    rows = [{"direction": "human->anime", "method": "x"}, {"direction": "anime->human", "method": "y"}]
    assert select_rows(rows, {"direction": "human->anime"}) == [rows[0]]
    assert select_rows(rows, {"method": ["x", "y"]}) == rows
    assert select_rows(rows, {}) == rows
    assert select_rows(rows, {"dataset": "toyfaces"}) == []


def test_two_by_two_sweep(spec_file: Path, tmp_path: Path, capsys):
    out = tmp_path / "run"
    code = main([str(spec_file), "--profile", "smoke", "--out", str(out), "--no-progress"])
    assert code == 1  # one point fails on purpose

    summary = json.loads((out / "sweep.json").read_text())
    assert summary["profile"] == "smoke"
    assert summary["columns"] == ["A", "B", "toy_fid", "realism"]
    assert summary["table"] == TABLE
    assert [p["status"] for p in summary["points"]] == ["ok", "ok", "ok", "failed"]
    assert len(summary["failures"]) == 1
    failure = summary["failures"][0]
    assert failure["label"] == "A=2, B=5" and failure["error"].startswith("ValueError: this point fails on purpose")
    assert Path(failure["executed"]).is_file()

    # the fixed value and the profile reached the notebook; each point wrote into its own folder
    params = json.loads((out / "02_A=2_B=3" / "metrics.json").read_text())["params"]
    assert (params["A"], params["B"], params["N_STEPS"], params["PROFILE"]) == (2, 3, 2, "smoke")

    md = (out / "sweep.md").read_text()
    assert "| A | B | toy_fid | realism |" in md
    assert "| 2 | 3 | 6 | 5 |" in md
    assert "## Failures" in md and "A=2, B=5: ValueError: this point fails on purpose" in md
    assert md in capsys.readouterr().out

    image = matplotlib.image.imread(out / "sweep.png")
    assert image.shape[0] > 200 and image.shape[1] > 400 and image.std() > 0.05


def _records(spec: SweepSpec, metric_of) -> list[dict]:
    return [{"params": p, "status": "ok", "rows": [{"toy_fid": metric_of(p), "realism": None}]} for p in spec.points()]


@pytest.mark.parametrize("grid", [{"A": [0.0, 0.5, 1.0]}, {"A": ["x", "y"]}, {"A": [1, 2], "B": [3], "C": [4, 5]}])
def test_plot_other_grid_shapes(tmp_path: Path, grid: dict):
    spec = SweepSpec(name="shape", source=tmp_path / "shape.yaml", notebook=tmp_path / "01_x.ipynb",
                     profile="auto", grid=grid, metrics=["toy_fid", "realism"])
    records = _records(spec, lambda p: float(len(str(p))))
    records[-1].update(status="failed", rows=[])
    path = plot_sweep(spec, records, tmp_path / "sweep.png")
    image = matplotlib.image.imread(path)
    assert image.shape[1] > 400 and image.std() > 0.05


def test_point_values_average_selected_rows():
    points = [{"rows": [{"toy_fid": 1.0}, {"toy_fid": 3}]}, {"rows": [{"toy_fid": None}]}, {"rows": []}]
    values = sweep.point_values(points, "toy_fid")
    assert values[0] == 2.0
    assert all(v != v for v in values[1:])  # NaN: nothing to show


COMMITTED_SWEEPS = sorted((Path(__file__).resolve().parents[1] / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", COMMITTED_SWEEPS, ids=[p.stem for p in COMMITTED_SWEEPS])
def test_committed_sweep_files_are_valid_for_their_lessons(path: Path):
    """Every sweep in sweeps/ names an existing lesson and only parameters of its parameters cell."""
    spec = load_sweep(path)  # raises SweepError on an unknown notebook or parameter name
    assert spec.notebook.is_file() and len(spec.points()) >= 2


# --------------------------------------------------------------------------------------------------
# Several points at once: threads on this machine, tasks on a Dask cluster
# --------------------------------------------------------------------------------------------------


def _check_same_sweep(out: Path) -> None:
    """``out`` holds SPEC's sweep with the table, grid order and failure of the one-by-one run."""
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["columns"] == ["A", "B", "toy_fid", "realism"]
    assert summary["table"] == TABLE
    assert [p["index"] for p in summary["points"]] == [0, 1, 2, 3]
    assert [p["status"] for p in summary["points"]] == ["ok", "ok", "ok", "failed"]
    assert [f["label"] for f in summary["failures"]] == ["A=2, B=5"]
    assert summary["failures"][0]["error"].startswith("ValueError: this point fails on purpose")
    assert "| 2 | 3 | 6 | 5 |" in (out / "sweep.md").read_text()
    assert (out / "sweep.png").is_file()
    assert not list(out.glob("*/" + sweep.RUNNING_MARK)) and not (out / ".course-run.lock").exists()


def test_two_workers_give_the_same_table(spec_file: Path, tmp_path: Path):
    out = tmp_path / "threads"
    assert main([str(spec_file), "--profile", "smoke", "--out", str(out), "--no-progress", "--workers", "2"]) == 1
    _check_same_sweep(out)


@pytest.fixture(scope="module")
def dask_cluster():
    """Two single-threaded Dask worker processes (each under a nanny that restarts it when it dies)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster


def test_dask_cluster_gives_the_same_table(spec_file: Path, tmp_path: Path, dask_cluster):
    out = tmp_path / "dask"
    code = main([str(spec_file), "--profile", "smoke", "--out", str(out), "--no-progress",
                 "--scheduler", dask_cluster.scheduler_address])
    assert code == 1
    _check_same_sweep(out)


KILL_PARAMETERS = """\
PROFILE = "auto"
OUT_DIR = None
A = 1
KILL_AT = 0
"""

# The kernel's parent is the process that started it with papermill: here, the Dask worker.
KILL_LESSON = """\
import os
from pathlib import Path
from anime_lib.config import out_dir
from anime_lib.results import write_metrics
if A == KILL_AT:
    Path(OUT_DIR, "killed_pid.txt").write_text(str(os.getppid()))
    os.kill(os.getppid(), 9)
    os._exit(1)  # and leave no orphaned kernel behind
write_metrics(out_dir(OUT_DIR, "02_kill"), [{"method": "toy", "toy_fid": float(A)}], notebook="02_kill")
"""


@pytest.mark.parametrize("allowed_failures", [None, 0], ids=["dask-retries", "dask-gives-up"])
def test_a_dead_worker_fails_its_point_only(tmp_path: Path, write_notebook, dask_cluster, monkeypatch,
                                            allowed_failures):
    """The point A=2 kills its worker. Dask either reruns the task (its default allows 3 deaths), and
    the rerun fails at once on the marker the dead attempt left, or gives up (KilledWorker)."""
    import psutil
    from distributed import Client

    if allowed_failures is not None:
        monkeypatch.setattr(dask_cluster.scheduler, "allowed_failures", allowed_failures)
    write_notebook(tmp_path / "02_kill.ipynb", [("code", KILL_PARAMETERS, ["parameters"]), ("code", KILL_LESSON)])
    spec = tmp_path / "kill.yaml"
    spec.write_text("notebook: 02_kill.ipynb\nfixed: {KILL_AT: 2}\ngrid: {A: [1, 2, 3]}\nmetrics: [toy_fid]\n")
    with Client(dask_cluster.scheduler_address, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=60)  # the previous case's victim may still be restarting
        workers_before = set(client.run(os.getpid).values())

    out = tmp_path / "run"
    code = main([str(spec), "--profile", "smoke", "--out", str(out), "--no-progress",
                 "--scheduler", dask_cluster.scheduler_address])
    assert code == 1
    summary = json.loads((out / "sweep.json").read_text())
    assert [p["status"] for p in summary["points"]] == ["ok", "failed", "ok"]
    assert summary["table"] == [{"A": 1, "toy_fid": 1.0}, {"A": 3, "toy_fid": 3.0}]
    error = summary["failures"][0]["error"]
    assert error.startswith(sweep.WORKER_DIED)
    assert ("not run again" in error) == (allowed_failures is None)  # which of the two ways caught it

    assert not (out / "01_A=2" / sweep.RUNNING_MARK).exists()
    killed = int((out / "01_A=2" / "killed_pid.txt").read_text())
    assert killed in workers_before and killed != os.getpid()  # it really was a Dask worker ...
    assert not psutil.pid_exists(killed) or psutil.Process(killed).status() == psutil.STATUS_ZOMBIE  # ... now dead


def test_run_point_refuses_a_point_whose_worker_died(tmp_path: Path):
    notebook = tmp_path / "01_x.ipynb"
    notebook.write_text("{}")
    folder = tmp_path / "run" / "00_A=1"
    folder.mkdir(parents=True)
    outcome = sweep.run_point(str(notebook), str(folder), {"A": 1}, None, "sweep-1")
    assert outcome["status"] == "failed" and "not visible on" in outcome["error"]  # no lock: not shared storage

    (folder.parent / ".course-run.lock").write_text("{}")
    (folder / sweep.RUNNING_MARK).write_text(json.dumps({"attempt": "sweep-1", "host": "h", "pid": 7, "started": 0}))
    outcome = sweep.run_point(str(notebook), str(folder), {"A": 1}, None, "sweep-1")
    assert outcome["status"] == "failed" and outcome["error"].startswith(sweep.WORKER_DIED + " (pid 7 on h")


def test_scheduler_without_dask_says_what_to_install(spec_file: Path, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed now raises ImportError
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        main([str(spec_file), "--out", str(out), "--scheduler", "tcp://127.0.0.1:8786"])
    assert exc.value.code == 2
    assert 'pip install "dask[distributed]"' in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["--workers", "0"], "--workers must be at least 1"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"], "not allowed with argument"),
])
def test_workers_usage_errors(spec_file: Path, argv: list, message: str, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(spec_file), *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err
