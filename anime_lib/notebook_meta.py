"""Lesson notebook conventions: the Colab badge, the install cell, the parameters cell.

Every lesson ``notebooks/NN_slug.ipynb`` follows the same frame (the lesson id is the file stem):

1. Cell 1 is markdown and its first line is the Colab badge built from
   :data:`anime_lib.config.REPO_URL` and :data:`~anime_lib.config.REPO_BRANCH` (:func:`badge_markdown`).
2. Cell 2 is the code cell tagged ``colab-install`` with exactly :func:`install_cell_source`.
3. Exactly one code cell is tagged ``parameters`` (papermill injects values after it). It holds only
   UPPER_CASE assignments (comments allowed) and names at least :data:`REQUIRED_PARAMETERS`.
   A *training* lesson also names one of :data:`TRAINING_LENGTH_NAMES`. The rule for "training":
   the notebook's metadata ``{"anime_lib": {"trains": true|false}}`` decides when present;
   otherwise a lesson trains when a code cell calls ``train_loop(`` or ``Run(`` (see :func:`is_training_lesson`).
4. No stored outputs and no execution counts in code cells, except in cells tagged ``keep-output``.
5. The lesson writes ``metrics.json`` with :func:`anime_lib.results.write_metrics`.

:func:`check_notebook` lists the problems of one notebook; :func:`sync_notebook` rewrites the badge and
the install cell (``python scripts/sync_notebooks.py`` runs both over ``notebooks/``).
"""
from __future__ import annotations

import ast
import copy
import os
import re
from pathlib import Path
from typing import Any

import nbformat

from anime_lib import config

INSTALL_TAG = "colab-install"
PARAMETERS_TAG = "parameters"
KEEP_OUTPUT_TAG = "keep-output"

#: Names every lesson's parameters cell must assign.
REQUIRED_PARAMETERS: tuple[str, ...] = ("PROFILE", "DATASET", "IMG_SIZE", "BATCH_SIZE", "SEED", "OUT_DIR")
#: A training lesson assigns at least one of these.
TRAINING_LENGTH_NAMES: tuple[str, ...] = ("N_STEPS", "N_EPOCHS", "N_ITERS", "TRAIN_STEPS")

BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_PREFIX = "[![Open In Colab]"
LESSON_NAME = re.compile(r"^\d\d_[a-z0-9][a-z0-9_]*\.ipynb$")
UPPER_CASE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_TRAIN_CALL = re.compile(r"\b(train_loop|Run)\s*\(")
_WRITE_METRICS_CALL = re.compile(r"\bwrite_metrics\s*\(")


class NotebookConventionError(ValueError):
    """A notebook breaks a convention in a way that stops a tool from going on."""


# --------------------------------------------------------------------------------------------------
# Badge and install cell, generated from config.REPO_URL / REPO_BRANCH
# --------------------------------------------------------------------------------------------------


def github_owner_repo(repo_url: str | None = None) -> tuple[str, str]:
    """``("owner", "repo")`` of a GitHub address such as ``https://github.com/owner/repo(.git)``."""
    url = (repo_url if repo_url is not None else config.REPO_URL).strip().rstrip("/")
    match = re.match(r"^(?:https?://|git@)?(?:www\.)?github\.com[/:]([^/]+)/([^/]+?)(?:\.git)?$", url)
    if not match:
        raise NotebookConventionError(
            f"config.REPO_URL={url!r} is not a GitHub repository address like https://github.com/OWNER/REPO"
        )
    return match.group(1), match.group(2)


def colab_url(nb_path: str | os.PathLike) -> str:
    """The Colab address that opens ``notebooks/<file>`` of the repository's :data:`config.REPO_BRANCH`."""
    owner, repo = github_owner_repo()
    name = Path(nb_path).name
    return f"https://colab.research.google.com/github/{owner}/{repo}/blob/{config.REPO_BRANCH}/notebooks/{name}"


def badge_markdown(nb_path: str | os.PathLike) -> str:
    """The one-line "Open In Colab" badge for the notebook at ``nb_path``."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(nb_path)})"


#: Where the install cell writes its pip constraint pinning Colab's torch and torchvision.
COLAB_TORCH_PIN = "/tmp/anime_lib_keep_torch.txt"


def install_cell_source() -> str:
    """Source of the ``colab-install`` cell: in Colab only, pip-installs the library from the repository with
    its ``colab`` extras (torch-fidelity for Inception FID/KID, animeface), under a pip constraint that pins the
    torch and torchvision Colab already has, so its CUDA build is never replaced."""
    url = config.REPO_URL.strip().rstrip("/")
    return (
        "# Colab only: install the course library from the repository with its Colab extras (torch-fidelity for\n"
        "# Inception FID/KID, animeface), keeping Colab's own torch (elsewhere everything is installed already).\n"
        "import subprocess, sys\n"
        'if "google.colab" in sys.modules:\n'
        "    from importlib.metadata import version\n"
        f'    with open("{COLAB_TORCH_PIN}", "w") as pin:  # keep Colab\'s CUDA build of torch\n'
        '        pin.write("".join(f"{name}=={version(name)}\\n" for name in ("torch", "torchvision")))\n'
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-c", "{COLAB_TORCH_PIN}",\n'
        f'                    "anime_lib[colab] @ git+{url}@{config.REPO_BRANCH}"], check=True)'
    )


# --------------------------------------------------------------------------------------------------
# Reading notebooks
# --------------------------------------------------------------------------------------------------


def read_notebook(path: str | os.PathLike) -> nbformat.NotebookNode:
    """Read a notebook without converting its format version."""
    return nbformat.read(os.fspath(path), as_version=nbformat.NO_CONVERT)


def _as_notebook(nb: nbformat.NotebookNode | str | os.PathLike) -> nbformat.NotebookNode:
    return nb if isinstance(nb, dict) else read_notebook(nb)


def cell_tags(cell: dict[str, Any]) -> list[str]:
    """The cell's tags (an empty list when it has none)."""
    return list(cell.get("metadata", {}).get("tags", []) or [])


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def parameters_cell(nb: nbformat.NotebookNode | str | os.PathLike) -> dict[str, Any]:
    """The one code cell tagged ``parameters``; raises NotebookConventionError if there are zero or several."""
    nb = _as_notebook(nb)
    found = [i for i, c in enumerate(nb.cells) if c.get("cell_type") == "code" and PARAMETERS_TAG in cell_tags(c)]
    if len(found) != 1:
        where = f" (cells {', '.join(str(i + 1) for i in found)})" if found else ""
        raise NotebookConventionError(
            f"expected exactly one code cell tagged {PARAMETERS_TAG!r}, found {len(found)}{where}"
        )
    return nb.cells[found[0]]


def _parse_parameters(source: str) -> tuple[list[str], list[str]]:
    """``(names, problems)`` of a parameters cell's source: assigned names and rule violations."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return [], [f"parameters cell is not valid Python: {exc.msg} (line {exc.lineno})"]
    names: list[str] = []
    problems: list[str] = []
    for lineno, line in enumerate(source.splitlines(), 1):
        # papermill (--help-notebook, its parameter listing) skips any assignment line with a second "="
        if not line.lstrip().startswith("#") and line.count("=") > 1:
            problems.append(f"parameters cell line {lineno}: more than one '=' (papermill cannot list the "
                            "parameter; keep '=' out of the comment)")
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            targets = stmt.targets
        elif isinstance(stmt, ast.AnnAssign):
            targets = [stmt.target]
        else:
            problems.append(
                f"parameters cell line {stmt.lineno}: only UPPER_CASE assignments belong here, "
                f"found {type(stmt).__name__}"
            )
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                if UPPER_CASE.match(target.id):
                    if target.id not in names:
                        names.append(target.id)
                else:
                    problems.append(
                        f"parameters cell line {stmt.lineno}: {target.id!r} is not UPPER_CASE"
                    )
            else:
                problems.append(
                    f"parameters cell line {stmt.lineno}: assign to plain UPPER_CASE names only "
                    f"(found {ast.unparse(target)!r})"
                )
    return names, problems


def parameter_names(nb: nbformat.NotebookNode | str | os.PathLike) -> list[str]:
    """The UPPER_CASE names assigned in the notebook's parameters cell, in order."""
    names, _ = _parse_parameters(_source(parameters_cell(nb)))
    return names


def training_cells(nb: nbformat.NotebookNode | str | os.PathLike) -> list[int]:
    """Indices (into ``nb.cells``) of the code cells that train: they build a ``Run(`` or call ``train_loop(``.

    Everything a lesson's checkpoints depend on happens up to the last of them, which is why the resume test
    runs each lesson only that far.
    """
    nb = _as_notebook(nb)
    return [i for i, c in enumerate(nb.cells) if c.get("cell_type") == "code" and _TRAIN_CALL.search(_source(c))]


def is_training_lesson(nb: nbformat.NotebookNode | str | os.PathLike) -> bool:
    """Whether the lesson trains a model, so that it must name a training length.

    ``nb.metadata["anime_lib"]["trains"]`` decides when set; otherwise True when any code cell
    calls ``train_loop(`` or builds a ``Run(``.
    """
    nb = _as_notebook(nb)
    declared = nb.get("metadata", {}).get("anime_lib", {}).get("trains")
    if declared is not None:
        return bool(declared)
    return bool(training_cells(nb))


# --------------------------------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------------------------------


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0].rstrip()


def check_notebook(path: str | os.PathLike) -> list[str]:
    """Every way the lesson at ``path`` breaks the conventions (an empty list when it follows them)."""
    path = Path(path)
    try:
        nb = read_notebook(path)
    except Exception as exc:  # unreadable JSON or an invalid notebook: nothing else can be checked
        return [f"cannot read the notebook: {type(exc).__name__}: {exc}"]
    problems: list[str] = []
    cells = nb.cells

    if not LESSON_NAME.match(path.name):
        problems.append(f"file name {path.name!r} does not follow NN_slug.ipynb (two digits, lower-case slug)")

    badge = badge_markdown(path)
    first = cells[0] if cells else None
    if first is None or first.get("cell_type") != "markdown":
        problems.append(f"cell 1 must be markdown starting with the Colab badge: {badge}")
    else:
        line = _first_line(_source(first))
        if line.startswith(BADGE_PREFIX):
            if line != badge:
                problems.append(f"cell 1: wrong Colab badge {line!r}; expected {badge!r}")
        else:
            problems.append(f"cell 1: the first line must be the Colab badge {badge!r}")

    install = [i for i, c in enumerate(cells) if INSTALL_TAG in cell_tags(c)]
    if not install:
        problems.append(f"no cell tagged {INSTALL_TAG!r} (cell 2 must be the generated install cell)")
    else:
        if len(install) > 1:
            problems.append(f"{len(install)} cells are tagged {INSTALL_TAG!r}; keep exactly one")
        i = install[0]
        if i != 1:
            problems.append(f"the {INSTALL_TAG!r} cell is cell {i + 1}; it must be cell 2")
        cell = cells[i]
        if cell.get("cell_type") != "code":
            problems.append(f"the {INSTALL_TAG!r} cell must be a code cell")
        elif _source(cell).rstrip() != install_cell_source():
            problems.append(f"the {INSTALL_TAG!r} cell differs from install_cell_source() "
                            "(run python scripts/sync_notebooks.py)")

    try:
        params_source = _source(parameters_cell(nb))
    except NotebookConventionError as exc:
        problems.append(str(exc))
    else:
        names, param_problems = _parse_parameters(params_source)
        problems.extend(param_problems)
        missing = [n for n in REQUIRED_PARAMETERS if n not in names]
        if missing:
            problems.append(f"parameters cell lacks required names: {', '.join(missing)}")
        if is_training_lesson(nb) and not any(n in names for n in TRAINING_LENGTH_NAMES):
            problems.append(
                "a training lesson must name its training length in the parameters cell: one of "
                + ", ".join(TRAINING_LENGTH_NAMES)
            )

    for i, cell in enumerate(cells):
        if cell.get("cell_type") != "code" or KEEP_OUTPUT_TAG in cell_tags(cell):
            continue
        if cell.get("outputs"):
            problems.append(f"cell {i + 1}: stored outputs (strip them or tag the cell {KEEP_OUTPUT_TAG!r})")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {i + 1}: execution_count is {cell.get('execution_count')}, expected None")

    if not any(c.get("cell_type") == "code" and _WRITE_METRICS_CALL.search(_source(c)) for c in cells):
        problems.append("no code cell calls write_metrics(...): every lesson writes OUT_DIR/metrics.json")
    if not str(nb.metadata.get("anime_lib", {}).get("summary", "")).strip():
        problems.append('notebook metadata lacks anime_lib.summary (one line for the README lesson table: '
                        'what the lesson builds and measures)')
    return problems


# --------------------------------------------------------------------------------------------------
# Syncing
# --------------------------------------------------------------------------------------------------


def _new_cell(nb: nbformat.NotebookNode, kind: str, source: str, tags: list[str] | None = None):
    cell = nbformat.v4.new_markdown_cell(source) if kind == "markdown" else nbformat.v4.new_code_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) < (4, 5):
        cell.pop("id", None)  # cell ids exist from format 4.5 on; older files must not carry them
    return cell


def strip_outputs(nb: nbformat.NotebookNode) -> None:
    """Remove outputs and execution counts from every code cell not tagged ``keep-output``."""
    for cell in nb.cells:
        if cell.get("cell_type") == "code" and KEEP_OUTPUT_TAG not in cell_tags(cell):
            cell["outputs"] = []
            cell["execution_count"] = None


def sync_notebook(path: str | os.PathLike, *, strip: bool = False) -> bool:
    """Rewrite the badge line of cell 1 and the ``colab-install`` cell; return whether the file changed.

    The badge becomes the first line of cell 1 when that cell is markdown (replacing any badge line
    it had), else a new markdown cell holding the badge is inserted. A missing install cell is
    inserted as cell 2, a misplaced one moved there. Everything else is left alone, unless ``strip``
    is True, which also removes stored outputs and execution counts (see :func:`strip_outputs`).
    The file is only written when something changed, in its own nbformat version.
    """
    path = Path(path)
    nb = read_notebook(path)
    before = copy.deepcopy(nb)
    badge = badge_markdown(path)

    first = nb.cells[0] if nb.cells else None
    if first is not None and first.get("cell_type") == "markdown":
        # drop any badge line of the cell (stale or misplaced), then put the right one on top
        lines = [ln for ln in _source(first).split("\n") if not ln.strip().startswith(BADGE_PREFIX)]
        rest = "\n".join(lines)
        first["source"] = badge + "\n" + rest if rest else badge
    else:
        nb.cells.insert(0, _new_cell(nb, "markdown", badge))

    install_source = install_cell_source()
    tagged = [c for c in nb.cells if INSTALL_TAG in cell_tags(c)]
    if tagged:
        cell = tagged[0]
        nb.cells.remove(cell)
        if cell.get("cell_type") != "code":
            cell = _new_cell(nb, "code", install_source, [INSTALL_TAG])
    elif len(nb.cells) > 1 and nb.cells[1].get("cell_type") == "code" and \
            _source(nb.cells[1]).rstrip() == install_source:
        cell = nb.cells.pop(1)  # the right code without the tag: keep the cell, add the tag below
    else:
        cell = _new_cell(nb, "code", install_source, [INSTALL_TAG])
    cell["source"] = install_source
    if INSTALL_TAG not in cell_tags(cell):
        cell.setdefault("metadata", {})["tags"] = cell_tags(cell) + [INSTALL_TAG]
    cell["outputs"] = []
    cell["execution_count"] = None
    nb.cells.insert(1, cell)

    if strip:
        strip_outputs(nb)
    if nb == before:
        return False
    nbformat.write(nb, os.fspath(path))
    return True


# --------------------------------------------------------------------------------------------------
# The README's lesson table
# --------------------------------------------------------------------------------------------------

README_START = "<!-- lessons:start (generated by scripts/sync_notebooks.py; do not edit by hand) -->"
README_END = "<!-- lessons:end -->"


def binder_url(nb_path: str | os.PathLike) -> str:
    """mybinder.org link that opens ``notebooks/<file>`` of the repository in JupyterLab."""
    owner, repo = github_owner_repo()
    return (f"https://mybinder.org/v2/gh/{owner}/{repo}/{config.REPO_BRANCH}"
            f"?urlpath=lab/tree/notebooks/{Path(nb_path).name}")


def _title_and_summary(nb: nbformat.NotebookNode) -> tuple[str, str]:
    """The first heading of the notebook and the ``anime_lib.summary`` metadata (one line)."""
    title = ""
    for cell in nb.cells:
        if cell.get("cell_type") == "markdown":
            for line in _source(cell).splitlines():
                if line.startswith("#"):
                    title = line.lstrip("#").strip()
                    break
        if title:
            break
    summary = str(nb.metadata.get("anime_lib", {}).get("summary", "")).strip()
    return title, summary


def lesson_table(paths: list[str | os.PathLike]) -> str:
    """Markdown table of the lessons: number, title, what it measures, Colab and Binder badges."""
    rows = ["| # | lesson | what you build and measure | run |", "|---|---|---|---|"]
    for p in sorted(paths, key=lambda q: Path(q).name):
        nb = read_notebook(p)
        title, summary = _title_and_summary(nb)
        name = Path(p).name
        title = re.sub(r"^\d\d\s*[·.:-]\s*", "", title) or Path(p).stem
        badge = (f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(p)}) "
                 f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder_url(p)})")
        rows.append(f"| {name[:2]} | [{title}](notebooks/{name}) | {summary} | {badge} |")
    return "\n".join(rows)


def sync_readme(readme: str | os.PathLike, notebooks: list[str | os.PathLike], *, check: bool = False) -> bool:
    """Rewrite the lesson table between the README markers; return True if it changed (or would)."""
    path = Path(readme)
    text = path.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        raise NotebookConventionError(f"{path} lacks the lesson-table markers {README_START!r} ... {README_END!r}")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    new = f"{head}{README_START}\n{lesson_table(notebooks)}\n{README_END}{tail}"
    if new == text:
        return False
    if not check:
        path.write_text(new, encoding="utf-8")
    return True
