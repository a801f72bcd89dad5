"""Lesson notebook conventions: every real lesson passes check_notebook; the checker and syncer work."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

import nbformat
import pytest

from anime_lib import config, notebook_meta
from anime_lib.notebook_meta import (
    NotebookConventionError,
    badge_markdown,
    check_notebook,
    colab_url,
    install_cell_source,
    is_training_lesson,
    parameter_names,
    parameters_cell,
    sync_notebook,
)

REPO = Path(__file__).resolve().parent.parent
LESSONS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", LESSONS, ids=[p.name for p in LESSONS])
def test_lesson_follows_conventions(path: Path):
    problems = check_notebook(path)
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems) + "\n(python scripts/sync_notebooks.py fixes some)"


# --------------------------------------------------------------------------------------------------
# Synthetic notebooks
# --------------------------------------------------------------------------------------------------

PARAMETERS = """\
# comments are allowed
PROFILE = "auto"
DATASET = "auto"
IMG_SIZE = None
BATCH_SIZE = None
SEED = 0
OUT_DIR = None
N_STEPS: int = 200
"""
BODY = """\
from anime_lib.results import write_metrics
write_metrics(OUT_DIR, [], notebook="01_demo")
"""
TRAINING_BODY = "result = train_loop(step, N_STEPS)\n" + BODY


def _conforming(name: str = "01_demo.ipynb") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    cells = [
        nbformat.v4.new_markdown_cell(badge_markdown(name) + "\n\n# Demo lesson\n\nWhat you will learn."),
        nbformat.v4.new_code_cell(install_cell_source()),
        nbformat.v4.new_code_cell(PARAMETERS),
        nbformat.v4.new_code_cell(TRAINING_BODY),
    ]
    cells[1].metadata["tags"] = ["colab-install"]
    cells[2].metadata["tags"] = ["parameters"]
    nb.cells = cells
    nb.metadata["anime_lib"] = {"summary": "a demo, measured"}
    return nb


def _save(nb: nbformat.NotebookNode, folder: Path, name: str = "01_demo.ipynb") -> Path:
    path = folder / name
    nbformat.write(nb, str(path))
    return path


def test_conforming_notebook_has_no_problems(tmp_path: Path):
    path = _save(_conforming(), tmp_path)
    assert check_notebook(path) == []
    assert parameter_names(path) == ["PROFILE", "DATASET", "IMG_SIZE", "BATCH_SIZE", "SEED", "OUT_DIR", "N_STEPS"]


def _set_source(i: int, text: str) -> Callable[[nbformat.NotebookNode], None]:
    def edit(nb):
        nb.cells[i].source = text
    return edit


def _edit_params(old: str, new: str) -> Callable[[nbformat.NotebookNode], None]:
    def edit(nb):
        nb.cells[2].source = nb.cells[2].source.replace(old, new)
    return edit


def _move_install(nb):
    nb.cells.insert(3, nb.cells.pop(1))


def _untag_params(nb):
    nb.cells[2].metadata["tags"] = []


def _second_params(nb):
    extra = nbformat.v4.new_code_cell("SEED = 1")
    extra.metadata["tags"] = ["parameters"]
    nb.cells.append(extra)


def _outputs(nb):
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]


def _execution_count(nb):
    nb.cells[3].execution_count = 7


def _code_first(nb):
    nb.cells[0] = nbformat.v4.new_code_cell("print('hello')")


PROBLEMS = {
    "badge missing": (_set_source(0, "# Demo lesson"), "cell 1: the first line must be the Colab badge"),
    "badge wrong": (_set_source(0, "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                                   "(https://colab.research.google.com/github/old/repo/blob/main/notebooks/01_demo.ipynb)"),
                    "cell 1: wrong Colab badge"),
    "first cell code": (_code_first, "cell 1 must be markdown"),
    "install missing": (lambda nb: nb.cells.pop(1), "no cell tagged 'colab-install'"),
    "install wrong": (_set_source(1, "!pip install anime_lib"), "'colab-install' cell differs"),
    "install misplaced": (_move_install, "'colab-install' cell is cell 4; it must be cell 2"),
    "no parameters cell": (_untag_params, "exactly one code cell tagged 'parameters', found 0"),
    "two parameters cells": (_second_params, "found 2 (cells 3, 5)"),
    "lower-case name": (_edit_params("SEED = 0", "SEED = 0\nimg_size = 3"), "'img_size' is not UPPER_CASE"),
    "statement": (_edit_params("SEED = 0", "SEED = 0\nimport os"), "only UPPER_CASE assignments belong here"),
    "attribute target": (_edit_params("SEED = 0", "SEED = 0\nP.X = 1"), "assign to plain UPPER_CASE names only"),
    "syntax error": (_edit_params("SEED = 0", "SEED = = 0"), "parameters cell is not valid Python"),
    "second = in comment": (_edit_params("SEED = 0", "SEED = 0  # 0 = the default"), "line 6: more than one '='"),
    "missing required": (_edit_params("SEED = 0\n", ""), "lacks required names: SEED"),
    "no training length": (_edit_params("N_STEPS: int = 200\n", ""), "must name its training length"),
    "stored outputs": (_outputs, "cell 4: stored outputs"),
    "execution count": (_execution_count, "cell 4: execution_count is 7"),
    "no write_metrics": (_set_source(3, "print(1)"), "no code cell calls write_metrics"),
}


@pytest.mark.parametrize("kind", list(PROBLEMS))
def test_each_problem_is_reported(tmp_path: Path, kind: str):
    edit, expected = PROBLEMS[kind]
    nb = _conforming()
    edit(nb)
    problems = check_notebook(_save(nb, tmp_path))
    assert any(expected in p for p in problems), problems


def test_file_name_must_be_a_lesson_id(tmp_path: Path):
    problems = check_notebook(_save(_conforming("Demo Lesson.ipynb"), tmp_path, "Demo Lesson.ipynb"))
    assert problems == ["file name 'Demo Lesson.ipynb' does not follow NN_slug.ipynb (two digits, lower-case slug)"]


def test_keep_output_cells_may_store_outputs(tmp_path: Path):
    nb = _conforming()
    _outputs(nb)
    _execution_count(nb)
    nb.cells[3].metadata["tags"] = ["keep-output"]
    assert check_notebook(_save(nb, tmp_path)) == []


def test_unreadable_notebook(tmp_path: Path):
    path = tmp_path / "01_demo.ipynb"
    path.write_text("{ not json")
    assert check_notebook(path)[0].startswith("cannot read the notebook")


def test_training_rule_and_metadata_override():
    nb = _conforming()
    assert is_training_lesson(nb)  # calls train_loop(
    nb.cells[3].source = BODY
    assert not is_training_lesson(nb)
    nb.metadata["anime_lib"]["trains"] = True
    assert is_training_lesson(nb)
    nb.cells[3].source = TRAINING_BODY
    nb.metadata["anime_lib"]["trains"] = False
    assert not is_training_lesson(nb)


def test_parameters_cell_errors():
    nb = _conforming()
    assert parameters_cell(nb) is nb.cells[2]
    _untag_params(nb)
    with pytest.raises(NotebookConventionError, match="found 0"):
        parameter_names(nb)


# --------------------------------------------------------------------------------------------------
# Badge / install cell generation and syncing
# --------------------------------------------------------------------------------------------------


def test_badge_and_install_cell_follow_repo_url(monkeypatch):
    monkeypatch.setattr(config, "REPO_URL", "https://github.com/someone/fork.git/")
    monkeypatch.setattr(config, "REPO_BRANCH", "dev")
    assert colab_url("notebooks/04_cyclegan.ipynb") == (
        "https://colab.research.google.com/github/someone/fork/blob/dev/notebooks/04_cyclegan.ipynb")
    assert badge_markdown("x/04_cyclegan.ipynb") == (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        "(https://colab.research.google.com/github/someone/fork/blob/dev/notebooks/04_cyclegan.ipynb)")
    source = install_cell_source()
    assert '"anime_lib[colab] @ git+https://github.com/someone/fork.git@dev"], check=True)' in source
    assert 'if "google.colab" in sys.modules:' in source.splitlines()
    monkeypatch.setattr(config, "REPO_URL", "https://gitlab.com/someone/fork")
    with pytest.raises(NotebookConventionError, match="not a GitHub repository"):
        colab_url("01_demo.ipynb")


def test_default_badge_uses_config():
    owner_repo = config.REPO_URL.removeprefix("https://github.com/")
    assert colab_url("01_demo.ipynb") == (
        f"https://colab.research.google.com/github/{owner_repo}/blob/{config.REPO_BRANCH}/notebooks/01_demo.ipynb")


def test_sync_inserts_badge_and_install_cell(tmp_path: Path):
    nb = _conforming()
    nb.cells.pop(1)
    nb.cells[0].source = "# Demo lesson\n\nWhat you will learn."
    path = _save(nb, tmp_path)
    assert sync_notebook(path) is True
    assert check_notebook(path) == []
    synced = nbformat.read(str(path), as_version=4)
    assert synced.cells[0].source == badge_markdown(path) + "\n# Demo lesson\n\nWhat you will learn."
    assert synced.cells[1].metadata["tags"] == ["colab-install"]
    assert [c.source for c in synced.cells[2:]] == [PARAMETERS, TRAINING_BODY]
    before = path.read_bytes()
    assert sync_notebook(path) is False  # idempotent: nothing to change, the file is not rewritten
    assert path.read_bytes() == before


def test_sync_follows_a_new_repo_url(tmp_path: Path, monkeypatch):
    path = _save(_conforming(), tmp_path)
    monkeypatch.setattr(config, "REPO_URL", "https://github.com/someone/fork")
    problems = check_notebook(path)
    assert any("wrong Colab badge" in p for p in problems) and any("differs" in p for p in problems)
    assert sync_notebook(path) is True
    assert check_notebook(path) == []
    synced = nbformat.read(str(path), as_version=4)
    assert "github/someone/fork/blob/" in synced.cells[0].source.splitlines()[0]
    assert synced.cells[0].source.endswith("\n\n# Demo lesson\n\nWhat you will learn.")  # rest of the cell kept
    assert "git+https://github.com/someone/fork@" in synced.cells[1].source


def test_sync_moves_a_misplaced_install_cell_and_tags_an_untagged_one(tmp_path: Path):
    nb = _conforming()
    _move_install(nb)
    path = _save(nb, tmp_path)
    assert sync_notebook(path)
    cells = nbformat.read(str(path), as_version=4).cells
    assert len(cells) == 4 and cells[1].metadata["tags"] == ["colab-install"] and check_notebook(path) == []

    nb = _conforming()
    nb.cells[1].metadata["tags"] = []
    path = _save(nb, tmp_path, "02_demo.ipynb")
    sync_notebook(path)
    cells = nbformat.read(str(path), as_version=4).cells
    assert len(cells) == 4 and cells[1].metadata["tags"] == ["colab-install"]


def test_sync_strips_outputs_only_when_asked(tmp_path: Path):
    nb = _conforming()
    _outputs(nb)
    kept = nbformat.v4.new_code_cell("print('figure')", execution_count=3)
    kept.metadata["tags"] = ["keep-output"]
    kept.outputs = [nbformat.v4.new_output("stream", name="stdout", text="figure\n")]
    nb.cells.append(kept)
    path = _save(nb, tmp_path)
    assert sync_notebook(path) is False  # badge and install cell are right: outputs are left alone
    assert any("stored outputs" in p for p in check_notebook(path))
    assert sync_notebook(path, strip=True) is True
    cells = nbformat.read(str(path), as_version=4).cells
    assert cells[3].outputs == [] and cells[4].outputs and cells[4].execution_count == 3
    assert check_notebook(path) == []


def test_sync_keeps_an_old_format_valid(tmp_path: Path):
    nb = _conforming()
    nb.nbformat_minor = 4
    for cell in nb.cells:
        cell.pop("id", None)
    nb.cells.pop(1)
    path = _save(nb, tmp_path)
    assert sync_notebook(path)
    synced = nbformat.read(str(path), as_version=nbformat.NO_CONVERT)
    assert synced.nbformat_minor == 4 and all("id" not in c for c in synced.cells)
    nbformat.validate(synced)


def _script():
    spec = importlib.util.spec_from_file_location("sync_notebooks", REPO / "scripts" / "sync_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sync_script(tmp_path: Path, capsys):
    script = _script()
    nb = _conforming()
    _outputs(nb)
    nb.cells.pop(1)
    path = _save(nb, tmp_path)
    before = path.read_bytes()

    assert script.main(["--check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "no cell tagged 'colab-install'" in out and "stored outputs" in out and "problem(s)" in out
    assert path.read_bytes() == before  # --check changes nothing

    assert script.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert f"updated {path}" in out and "all notebooks follow the conventions" in out
    assert check_notebook(path) == []

    nb = _conforming()
    _untag_params(nb)
    bad = _save(nb, tmp_path, "02_bad.ipynb")
    assert script.main([str(bad)]) == 1  # a missing parameters cell cannot be fixed automatically
    assert "found 0" in capsys.readouterr().out



# --------------------------------------------------------------------------------------------------
# The README's lesson table is generated from the notebooks and REPO_URL
# --------------------------------------------------------------------------------------------------

def test_readme_lesson_table_is_in_sync():
    root = Path(__file__).resolve().parent.parent
    notebooks = sorted((root / "notebooks").glob("*.ipynb"))
    assert not notebook_meta.sync_readme(root / "README.md", notebooks, check=True), (
        "README.md's lesson table is out of date: run python scripts/sync_notebooks.py")


def test_lesson_table_follows_repo_url(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 07 · Something new\ntext")]
    nb.metadata["anime_lib"] = {"summary": "a thing, measured"}
    path = tmp_path / "07_something_new.ipynb"
    nbformat.write(nb, path)
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{notebook_meta.README_START}\nold\n{notebook_meta.README_END}\noutro\n")
    monkeypatch.setattr(notebook_meta.config, "REPO_URL", "https://github.com/someone/fork")
    assert notebook_meta.sync_readme(readme, [path]) is True
    text = readme.read_text()
    assert "| 07 | [Something new](notebooks/07_something_new.ipynb) | a thing, measured |" in text
    assert "colab.research.google.com/github/someone/fork/blob/" in text
    assert "mybinder.org/v2/gh/someone/fork/" in text
    assert text.startswith("intro\n") and text.endswith("outro\n")
    assert notebook_meta.sync_readme(readme, [path]) is False
    readme.write_text("no markers")
    with pytest.raises(notebook_meta.NotebookConventionError, match="markers"):
        notebook_meta.sync_readme(readme, [path])


def test_summary_for_the_readme_is_required(tmp_path: Path):
    nb = _conforming()
    del nb.metadata["anime_lib"]["summary"]
    assert any("anime_lib.summary" in p for p in check_notebook(_save(nb, tmp_path)))


def test_install_cell_in_colab_keeps_colabs_torch_and_adds_the_colab_extras(monkeypatch, tmp_path: Path):
    """Run the install cell as Colab would (google.colab imported), with pip replaced by a recorder."""
    import subprocess
    import sys
    import tomllib
    import types
    from importlib.metadata import version

    from packaging.requirements import Requirement

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda args, **kw: calls.append((args, kw)))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    pin = tmp_path / "pin.txt"
    source = install_cell_source().replace(notebook_meta.COLAB_TORCH_PIN, str(pin))
    exec(compile(source, "colab-install", "exec"), {})
    (args, kw), = calls
    assert args[:4] == [sys.executable, "-m", "pip", "install"] and kw == {"check": True}
    assert args[args.index("-c") + 1] == str(pin)
    assert pin.read_text().splitlines() == [f"torch=={version('torch')}", f"torchvision=={version('torchvision')}"]
    requirement = Requirement(args[-1])
    assert (requirement.name, requirement.extras) == ("anime_lib", {"colab"})
    assert requirement.url == f"git+{config.REPO_URL.rstrip('/')}@{config.REPO_BRANCH}"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    extras = {Requirement(r).name for r in pyproject["project"]["optional-dependencies"]["colab"]}
    assert extras == {"torch-fidelity", "animeface"}
    monkeypatch.delitem(sys.modules, "google.colab")
    calls.clear()
    exec(compile(source, "colab-install", "exec"), {})
    assert calls == []  # outside Colab the cell does nothing
