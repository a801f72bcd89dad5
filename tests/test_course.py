"""Tests for anime_lib.course: the course runner on tiny synthetic lessons (not the real ones)."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from anime_lib import config
from anime_lib.course import find_notebooks, main, parse_param, run_course
from anime_lib.results import write_metrics

PARAMETERS = """\
PROFILE = "cpu"          # the runner injects its own profile
DATASET = None
IMG_SIZE = None
BATCH_SIZE = None
SEED = 0
OUT_DIR = "not_the_run_dir"   # the runner injects <run>/<lesson>
N_STEPS = 3
"""

ALPHA = """\
from anime_lib.config import out_dir, resolve_params
from anime_lib.results import write_metrics
P = resolve_params(globals())
rows = [
    {"method": "alpha", "direction": "human->anime", "dataset": P.DATASET, "train_seconds": 2.6, "toy_fid": 12.345},
    {"method": "alpha", "direction": "anime->human", "dataset": P.DATASET, "train_seconds": 2.6, "toy_fid": 23.456,
     "realism": 0.5},
]
write_metrics(out_dir(OUT_DIR, "01_alpha"), rows, notebook="01_alpha", params=P)
"""

GAMMA = """\
from anime_lib.config import out_dir, resolve_params
from anime_lib.results import write_metrics
P = resolve_params(globals())
write_metrics(out_dir(OUT_DIR, "03_gamma"), [{"method": "gamma", "gt_l1": 0.25}], notebook="03_gamma", params=P)
"""

# a lesson whose metrics.json is broken (NaN is not a measurement): the runner must call it a failure
DELTA = """\
import os
os.makedirs(OUT_DIR, exist_ok=True)
with open(os.path.join(OUT_DIR, "metrics.json"), "w") as f:
    f.write('{"notebook": "04_delta", "rows": [{"toy_fid": NaN}]}')
"""


@pytest.fixture
def lessons(tmp_path: Path, write_notebook) -> Path:
    folder = tmp_path / "notebooks"
    write_notebook(folder / "01_alpha.ipynb", [("markdown", "# Alpha lesson"), ("code", PARAMETERS, ["parameters"]),
                                               ("code", ALPHA)])
    write_notebook(folder / "02_broken.ipynb", [("markdown", "# Broken lesson"),
                                                ("code", PARAMETERS, ["parameters"]),
                                                ("code", 'raise RuntimeError("the lesson broke on purpose")')])
    write_notebook(folder / "03_gamma.ipynb", [("markdown", "# Gamma lesson"), ("code", PARAMETERS, ["parameters"]),
                                               ("code", GAMMA)])
    write_notebook(folder / "04_delta.ipynb", [("markdown", "# Delta lesson"), ("code", PARAMETERS, ["parameters"]),
                                               ("code", DELTA)])
    (folder / "notes.ipynb").write_text("not a lesson: no NN_ prefix")
    return folder


def test_find_notebooks_filters_by_number_and_id(lessons: Path):
    assert [p.stem for p in find_notebooks(lessons)] == ["01_alpha", "02_broken", "03_gamma", "04_delta"]
    assert [p.stem for p in find_notebooks(lessons, "3,1")] == ["01_alpha", "03_gamma"]
    assert [p.stem for p in find_notebooks(lessons, ["04_delta", "02"])] == ["02_broken", "04_delta"]
    with pytest.raises(ValueError, match="'07' matches no lesson"):
        find_notebooks(lessons, "01,07")
    with pytest.raises(ValueError, match="does not exist"):
        find_notebooks(lessons / "missing")


def test_a_whole_id_names_one_notebook_a_number_every_part(tmp_path: Path, write_notebook):
    folder = tmp_path / "notebooks"
    for stem in ("04_cyclegan", "04_cyclegan_deep_dive", "05_geometry"):
        write_notebook(folder / f"{stem}.ipynb", [("code", PARAMETERS, ["parameters"])])
    assert [p.stem for p in find_notebooks(folder, "04_cyclegan")] == ["04_cyclegan"]
    assert [p.stem for p in find_notebooks(folder, "04")] == ["04_cyclegan", "04_cyclegan_deep_dive"]
    assert [p.stem for p in find_notebooks(folder, "04_cyc")] == ["04_cyclegan", "04_cyclegan_deep_dive"]


def test_parse_param():
    assert parse_param("IMG_SIZE=48") == ("IMG_SIZE", 48)
    assert parse_param("LAMBDAS=[1, 10.5]") == ("LAMBDAS", [1, 10.5])
    assert parse_param("DATASET=toyfaces") == ("DATASET", "toyfaces")
    assert parse_param("DIRECTION=human->anime") == ("DIRECTION", "human->anime")
    assert parse_param("USE_EMA=False") == ("USE_EMA", False)
    with pytest.raises(ValueError, match="UPPER_CASE"):
        parse_param("img_size=48")
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_param("IMG_SIZE")


def test_reserved_parameters_are_refused_before_running(lessons: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="OUT_DIR is set by the runner"):
        run_course("smoke", "01", tmp_path / "run", lessons, params={"OUT_DIR": "x"}, progress=False)
    assert not (tmp_path / "run").exists()


def test_list_command(lessons: Path, capsys):
    assert main(["list", "--notebooks", str(lessons)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["01_alpha", "02_broken", "03_gamma", "04_delta"]
    assert out[0].endswith("Alpha lesson")


def test_run_records_failures_injects_parameters_and_tabulates(lessons: Path, tmp_path: Path, capsys):
    run = tmp_path / "run"
    code = main(["run", "--profile", "smoke", "--only", "01,02", "--only", "4", "--out", str(run),
                 "--notebooks", str(lessons), "--param", "IMG_SIZE=48", "--timeout", "60", "--no-progress"])
    assert code == 1

    # only the chosen lessons ran, each into <run>/<lesson>.ipynb
    assert sorted(p.name for p in run.glob("*.ipynb")) == ["01_alpha.ipynb", "02_broken.ipynb", "04_delta.ipynb"]

    # the injected values won over the notebook's defaults; un-injected names took the smoke defaults
    metrics = json.loads((run / "01_alpha" / "metrics.json").read_text())
    params = metrics["params"]
    assert params["PROFILE"] == "smoke"
    assert params["OUT_DIR"] == str(run.resolve() / "01_alpha")
    assert params["IMG_SIZE"] == 48
    assert params["BATCH_SIZE"] == config.BASE_DEFAULTS["smoke"]["BATCH_SIZE"]
    assert params["DATASET"] == config.BASE_DEFAULTS["smoke"]["DATASET"]
    assert params["N_STEPS"] == 3
    assert not (lessons / "not_the_run_dir").exists()

    summary = json.loads((run / "results.json").read_text())
    assert summary["profile"] == "smoke"
    assert [(r["notebook"], r["status"]) for r in summary["notebooks"]] == [
        ("01_alpha", "ok"), ("02_broken", "failed"), ("04_delta", "failed")]
    assert all(r["seconds"] > 0 for r in summary["notebooks"])

    failures = {f["notebook"]: f for f in summary["failures"]}
    assert set(failures) == {"02_broken", "04_delta"}
    assert failures["02_broken"]["error"].startswith("RuntimeError: the lesson broke on purpose")
    assert "unreadable metrics.json" in failures["04_delta"]["error"]
    executed = nbformat.read(failures["02_broken"]["executed"], as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors and errors[0]["ename"] == "RuntimeError"

    rows = summary["rows"]
    assert [(r["notebook"], r["direction"]) for r in rows] == [
        ("01_alpha", "human->anime"), ("01_alpha", "anime->human")]
    assert rows[0]["profile"] == "smoke" and rows[0]["dataset"] == "toyfaces"
    assert rows[0]["realism"] is None and rows[1]["realism"] == 0.5

    md = (run / "results.md").read_text()
    assert "| notebook | method | direction | dataset | profile | train_seconds |" in md
    assert "| 01_alpha | alpha | human->anime | toyfaces | smoke | 3 | – | – | – | 12.3 | – |" in md
    assert "| 01_alpha | alpha | anime->human | toyfaces | smoke | 3 | 0.500 | – | – | 23.5 | – |" in md
    assert "## Wall time" in md and "- `01_alpha`:" in md
    assert "## Failures" in md and "- `02_broken`: RuntimeError: the lesson broke on purpose" in md
    assert md in capsys.readouterr().out  # the whole report is printed at the end


def test_timeout_stops_a_hanging_cell(tmp_path: Path, write_notebook):
    folder = tmp_path / "notebooks"
    write_notebook(folder / "07_slow.ipynb", [("code", PARAMETERS, ["parameters"]),
                                              ("code", "import time\ntime.sleep(120)")])
    summary = run_course("smoke", None, tmp_path / "run", folder, timeout=2, progress=False)
    (run,) = summary["notebooks"]
    assert run["status"] == "failed" and "Timeout" in run["error"]
    assert run["seconds"] < 60


def test_passing_run_exits_zero_and_a_rerun_updates_the_folder(lessons: Path, tmp_path: Path, capsys):
    run = tmp_path / "ok-run"
    assert main(["run", "--profile", "smoke", "--only", "03", "--out", str(run),
                 "--notebooks", str(lessons), "--no-progress"]) == 0
    summary = json.loads((run / "results.json").read_text())
    assert summary["failures"] == []
    assert [(r["notebook"], r["method"], r["gt_l1"]) for r in summary["rows"]] == [("03_gamma", "gamma", 0.25)]
    assert "## Failures\n\nNone." in (run / "results.md").read_text()

    # re-running one lesson into the same folder keeps the other lessons' rows, and a metrics.json
    # left from before never passes for the new run's result
    write_metrics(run / "02_broken", [{"method": "stale"}], notebook="02_broken")
    assert main(["run", "--profile", "smoke", "--only", "02", "--out", str(run),
                 "--notebooks", str(lessons), "--no-progress"]) == 1
    summary = json.loads((run / "results.json").read_text())
    assert [r["notebook"] for r in summary["notebooks"]] == ["02_broken"]
    assert [r["method"] for r in summary["rows"]] == ["gamma"]
    assert not (run / "02_broken" / "metrics.json").exists()
