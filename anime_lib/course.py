"""Run the whole course (or some lessons) end to end and tabulate what every lesson measured.

    python -m anime_lib.course list
    python -m anime_lib.course run [--profile auto] [--only 04,05] [--out runs/<timestamp>]
                                   [--notebooks DIR] [--timeout SECONDS] [--param NAME=VALUE ...]

``run`` executes each lesson with papermill into ``<out>/<lesson>.ipynb`` (``<out>`` defaults to
``runs/<YYYYmmdd-HHMMSS>`` of the checkout, see :func:`runs_root`), injecting ``PROFILE=<profile>``
and ``OUT_DIR=<out>/<lesson>`` (plus any ``--param``), with the notebooks folder as working directory
and the ``python3`` kernel. Every cell may run at most ``--timeout`` seconds (default
:data:`DEFAULT_CELL_TIMEOUT`, 3600 s; ``--timeout 0`` means no limit), and the kernel gets
``ANIME_LIB_HEADLESS=1`` so that widget helpers draw static figures instead of waiting for a frontend
(:mod:`anime_lib.widgets`). ``--param`` values are checked against the type of the parameters cell's
defaults, and an empty ``--only`` is refused, before any lesson starts. While a run writes into a
folder it holds ``<out>/.course-run.lock``; a second run into the same folder is refused until the
first ends (re-running lessons into a finished run folder is fine). A lesson that fails is recorded
and the run goes on. At the end every ``metrics.json`` of the run is collected into ``<out>/results.json`` and
``<out>/results.md`` (one row per trained model, wall times, failures) and the table is printed.
The exit status is 1 when any lesson failed.
"""
from __future__ import annotations

import argparse
import ast
import json
import math
import os
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from tqdm.auto import tqdm

from anime_lib import config, machine_speed, results
from anime_lib.notebook_meta import UPPER_CASE, parameters_cell, read_notebook

KERNEL = "python3"
#: Parameters the runners set themselves; ``--param`` may not override them.
RESERVED_PARAMETERS = ("PROFILE", "OUT_DIR")
#: Longest time (seconds) one cell may run in the course runner and in sweeps unless ``--timeout``
#: says otherwise; a hanging cell then fails its lesson instead of blocking the run forever. An hour:
#: a cpu-profile training cell takes minutes on an idle machine but over 15 on a busy one (seen: lesson 05).
DEFAULT_CELL_TIMEOUT = 3600.0
#: Set to 1 in the environment of every kernel the runners start: no interactive frontend there.
HEADLESS_ENV = "ANIME_LIB_HEADLESS"
LOCK_NAME = ".course-run.lock"


# --------------------------------------------------------------------------------------------------
# Finding lessons
# --------------------------------------------------------------------------------------------------


def default_notebooks_dir() -> Path:
    """The checkout's ``notebooks/`` (see :func:`anime_lib.config.repo_root`), else ``./notebooks``."""
    repo = config.repo_root()
    return repo / "notebooks" if repo else Path.cwd() / "notebooks"


def runs_root() -> Path:
    """Where runs go by default: ``runs/`` of the source checkout holding ``anime_lib``, else ``./runs``.

    A checkout keeps every run in one place whichever folder the command starts from (``/runs/`` is
    git-ignored); an installed library writes below the working folder.
    """
    return (config.repo_root() or Path.cwd()) / "runs"


def _only_tokens(only: str | Iterable[str] | None) -> list[str]:
    if only is None:
        return []
    items = [only] if isinstance(only, str) else list(only)
    return [tok.strip() for item in items for tok in str(item).split(",") if tok.strip()]


def find_notebooks(notebooks_dir: str | os.PathLike | None = None,
                   only: str | Iterable[str] | None = None) -> list[Path]:
    """Lesson notebooks ``NN_*.ipynb`` of ``notebooks_dir``, sorted, filtered by ``only``.

    ``only`` holds lesson numbers ("04", "4": every notebook of the lesson) or lesson ids / id prefixes
    (a whole id names that notebook only), as a list or a comma separated string; None means every lesson.
    A number or name that matches no lesson, and a selection that names no lesson at all (``--only ,``,
    ``only=[]``), raise ``ValueError``.
    """
    folder = Path(notebooks_dir) if notebooks_dir is not None else default_notebooks_dir()
    if not folder.is_dir():
        raise ValueError(f"notebooks folder {folder} does not exist")
    lessons = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if p.is_file())
    tokens = _only_tokens(only)
    if only is None:
        return lessons
    if not tokens:
        raise ValueError(
            f"--only {only if isinstance(only, str) else ','.join(map(str, only))!r} names no lesson; "
            "give lesson numbers or ids such as 04,05, or leave --only out to run every lesson"
        )
    chosen: list[Path] = []
    for tok in tokens:
        prefix = tok.zfill(2) + "_" if tok.isdigit() else tok
        # a whole id names that notebook only (04_cyclegan, not its deep dive 04_cyclegan_deep_dive too)
        matches = [p for p in lessons if p.stem == tok] or [p for p in lessons if p.stem.startswith(prefix)]
        if not matches:
            available = ", ".join(p.stem for p in lessons) or "none"
            raise ValueError(f"--only {tok!r} matches no lesson in {folder} (available: {available})")
        chosen.extend(m for m in matches if m not in chosen)
    return sorted(chosen)


def lesson_title(path: str | os.PathLike) -> str:
    """The first Markdown heading of a notebook (without the '#'), or '' when it has none."""
    try:
        nb = read_notebook(path)
    except Exception:
        return ""
    for cell in nb.cells:
        if cell.get("cell_type") != "markdown":
            continue
        for line in "".join(cell.get("source", "")).splitlines():
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return ""


# --------------------------------------------------------------------------------------------------
# Executing one notebook
# --------------------------------------------------------------------------------------------------


def parse_param(text: str) -> tuple[str, Any]:
    """``"NAME=VALUE"`` -> ``(NAME, value)``; VALUE goes through ``ast.literal_eval``, else stays a string.

    ``IMG_SIZE=48`` gives 48, ``LAMBDAS=[1, 10]`` a list, ``DATASET=toyfaces`` the string "toyfaces".
    """
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not UPPER_CASE.match(name):
        raise ValueError(f"--param expects NAME=VALUE with an UPPER_CASE name, got {text!r}")
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        value = raw.strip()
    return name, value


def check_extra_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate user parameters: UPPER_CASE names, none of :data:`RESERVED_PARAMETERS`."""
    params = dict(params or {})
    for name in params:
        if not UPPER_CASE.match(str(name)):
            raise ValueError(f"parameter names are UPPER_CASE, got {name!r}")
        if name in RESERVED_PARAMETERS:
            raise ValueError(f"{name} is set by the runner; use --profile / --out instead of --param {name}=...")
    return params


_UNKNOWN = object()  # a default that is not a literal (computed in the cell): any value goes


def parameter_defaults(path: str | os.PathLike) -> dict[str, Any]:
    """``{NAME: default}`` of a notebook's parameters cell; defaults that are not literals are omitted.

    Raises :class:`~anime_lib.notebook_meta.NotebookConventionError` (a ``ValueError``) when the
    notebook has no single parameters cell, ``SyntaxError`` for a cell that is not Python.
    """
    tree = ast.parse("".join(parameters_cell(path).get("source", "")))
    out: dict[str, Any] = {}
    for stmt in tree.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
        value = getattr(stmt, "value", None)
        for target in targets:
            if isinstance(target, ast.Name) and value is not None:
                try:
                    out[target.id] = ast.literal_eval(value)
                except ValueError:
                    out[target.id] = _UNKNOWN
    return {k: v for k, v in out.items() if v is not _UNKNOWN}


def _type_name(value: Any) -> str:
    """``"an int"``, ``"a str"``, ``"None"``: the type of ``value`` for messages."""
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def param_type_problem(name: str, value: Any, default: Any) -> str | None:
    """Why ``value`` cannot replace ``default`` (None when it can).

    Pragmatic rules: a None default accepts anything (its comment says what it means); a bool
    accepts bools; an int accepts ints (not bools); a float accepts ints and floats; a str accepts
    strings; a list or tuple accepts lists and tuples; a dict accepts dicts. Any parameter accepts
    None (papermill's way of saying "the profile's default").
    """
    if default is None or value is None:
        return None
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
    elif isinstance(default, dict):
        ok = isinstance(value, dict)
    else:
        ok = True
    if ok:
        return None
    return (f"{name}={value!r} is {_type_name(value)}, but the default {name} = {default!r} is "
            f"{_type_name(default)}")


def check_param_types(params: Mapping[str, Any], notebooks: Iterable[str | os.PathLike]) -> None:
    """Refuse, before anything runs, values whose type does not fit a lesson's default (:func:`param_type_problem`).

    Only names that a lesson's parameters cell defines are checked against that lesson.
    """
    problems = []
    for path in notebooks:
        defaults = parameter_defaults(path)
        for name, value in params.items():
            if name in defaults:
                problem = param_type_problem(name, value, defaults[name])
                if problem:
                    problems.append(f"{Path(path).stem}: {problem}")
    if problems:
        raise ValueError("parameter values of the wrong type: " + "; ".join(problems)
                         + ". Write numbers as numbers (N_STEPS=300), strings as text, True/False for switches.")


@contextmanager
def run_lock(run_dir: str | os.PathLike, what: str = "course run") -> Iterator[Path]:
    """Hold ``<run_dir>/.course-run.lock`` while a run writes there; refuse a second concurrent run.

    The lock file names the process (host, pid, start time). A lock left by a process that no longer
    runs on this host is taken over; any other lock raises ``ValueError`` saying what to do.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / LOCK_NAME
    me = {"host": socket.gethostname(), "pid": os.getpid(), "what": what,
          "started": datetime.now().astimezone().isoformat(timespec="seconds")}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                holder = {}
            if holder.get("host") == me["host"] and isinstance(holder.get("pid"), int) and not _pid_alive(holder["pid"]):
                lock.unlink(missing_ok=True)  # left behind by a run that was killed: take it over
                continue
            raise ValueError(
                f"another {holder.get('what', 'run')} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                f"started {holder.get('started', '?')}) is writing into {run_dir}; wait for it to finish or choose "
                f"another --out. If no run is active there, delete {lock}."
            ) from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(me, f)
        break
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _headless_kernel_env() -> Iterator[None]:
    """Set :data:`HEADLESS_ENV` for the kernels started inside (they inherit the environment)."""
    old = os.environ.get(HEADLESS_ENV)
    os.environ[HEADLESS_ENV] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(HEADLESS_ENV, None)
        else:
            os.environ[HEADLESS_ENV] = old


def new_run_dir(parent: str | os.PathLike, name: str) -> Path:
    """``<parent>/<name>``, or ``<name>-2``, ``-3``, ... when it exists (two runs started in one second)."""
    parent = Path(parent)
    candidate, k = parent / name, 2
    while candidate.exists():
        candidate, k = parent / f"{name}-{k}", k + 1
    return candidate


@dataclass
class NotebookRun:
    """The outcome of executing one notebook."""

    notebook: str                 # lesson id (file stem)
    status: str                   # "ok" or "failed"
    seconds: float                # wall time including the kernel start
    executed: str                 # path of the executed copy (outputs and, on failure, the traceback)
    out_dir: str                  # the OUT_DIR it was given
    parameters: dict[str, Any] = field(default_factory=dict)
    error: str | None = None      # "ExceptionName: message (cell [n])" when it failed

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return results.json_safe(asdict(self), "run")


def _error_summary(exc: BaseException) -> str:
    ename = getattr(exc, "ename", None)
    if ename is not None:  # papermill.PapermillExecutionError: an exception inside a cell
        evalue = str(getattr(exc, "evalue", "")).strip().splitlines()
        count = getattr(exc, "exec_count", None)
        where = f" (cell [{count}])" if count is not None else ""
        return f"{ename}: {evalue[0] if evalue else ''}{where}"
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def execute_notebook(
    source: str | os.PathLike,
    executed: str | os.PathLike,
    parameters: Mapping[str, Any],
    *,
    cwd: str | os.PathLike,
    out_dir: str | os.PathLike,
    timeout: float | None = DEFAULT_CELL_TIMEOUT,
    progress: bool = True,
) -> NotebookRun:
    """Execute ``source`` with papermill into ``executed``, injecting ``parameters``; never raises on failure.

    ``timeout`` is the longest one cell may run (papermill's ``execution_timeout``), by default
    :data:`DEFAULT_CELL_TIMEOUT`; None or 0 means no limit. The kernel runs with
    ``ANIME_LIB_HEADLESS=1``. Errors are caught and summarised in the returned :class:`NotebookRun`.
    """
    import papermill as pm  # imported here: it is slow to import and only the runners need it

    source, executed = Path(source), Path(executed)
    executed.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    error: str | None = None
    try:
        with _headless_kernel_env():
            pm.execute_notebook(
                str(source),
                str(executed),
                parameters=dict(parameters),
                kernel_name=KERNEL,
                cwd=str(cwd),
                progress_bar=progress,
                execution_timeout=None if not timeout else max(1, math.ceil(timeout)),
            )
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # any failure of the lesson is recorded, the run goes on
        error = _error_summary(exc)
    return NotebookRun(
        notebook=source.stem,
        status="ok" if error is None else "failed",
        seconds=time.perf_counter() - start,
        executed=str(executed),
        out_dir=str(out_dir),
        parameters=dict(parameters),
        error=error,
    )


def timestamp() -> str:
    """Local time as ``YYYYmmdd-HHMMSS`` for run folder names."""
    return datetime.now().strftime("%Y%m%d-%H%M%S")


# --------------------------------------------------------------------------------------------------
# The course run
# --------------------------------------------------------------------------------------------------


def _report_appendix(runs: Sequence[NotebookRun], speed: machine_speed.MachineSpeed | None = None) -> str:
    lines = ["## Wall time", ""]
    if speed is not None:
        lines += [f"Machine speed, timed before and after the lessons: {speed.describe()}. In brackets: the "
                  "wall time converted to the reference machine (`anime_lib.machine_speed`).", ""]

    def at_reference(run: NotebookRun) -> str:
        return "" if speed is None else f"; about {speed.at_reference(run.seconds):.0f} s on the reference machine"

    lines += [f"- `{r.notebook}`: {r.seconds:.1f} s ({r.status}{at_reference(r)})" for r in runs] or ["No lesson ran."]
    lines += ["", "## Failures", ""]
    failed = [r for r in runs if not r.ok]
    lines += [f"- `{r.notebook}`: {r.error} — executed notebook: `{r.executed}`" for r in failed] or ["None."]
    return "\n".join(lines)


def run_course(
    profile: str | None = "auto",
    only: str | Iterable[str] | None = None,
    out: str | os.PathLike | None = None,
    notebooks_dir: str | os.PathLike | None = None,
    timeout: float | None = DEFAULT_CELL_TIMEOUT,
    *,
    params: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Execute the chosen lessons and write ``results.json`` / ``results.md`` into the run folder.

    The results cover every ``metrics.json`` below the run folder, so re-running one lesson into an
    existing run folder (``out`` plus ``only``) updates its rows and keeps the others.
    Returns the content of ``results.json`` plus ``"results_md"`` (the Markdown text) and
    ``"run_dir"``. ``params`` are extra parameters injected into every lesson (``--param``).
    ``timeout``: seconds one cell may run (default :data:`DEFAULT_CELL_TIMEOUT`; None or 0: no limit).
    Raises ``ValueError`` for a bad profile, folder, ``only`` or parameter (name or type) before
    anything runs, and when another run is writing into the same folder (:func:`run_lock`).
    """
    resolved = config.resolve_profile(profile)
    reason = config.profile_reason(profile)
    extra = check_extra_params(params)
    folder = (Path(notebooks_dir) if notebooks_dir is not None else default_notebooks_dir()).resolve()
    lessons = find_notebooks(folder, only)
    check_param_types(extra, lessons)
    run_dir = Path(out if out is not None else new_run_dir(runs_root(), timestamp())).resolve()
    with run_lock(run_dir, "course run"):
        return _run_lessons(lessons, run_dir, folder, resolved, reason, extra, timeout, progress)


def _run_lessons(lessons: Sequence[Path], run_dir: Path, folder: Path, resolved: str, reason: str,
                 extra: Mapping[str, Any], timeout: float | None, progress: bool) -> dict[str, Any]:
    """The body of :func:`run_course`, run while the folder's lock is held."""
    print(f"profile: {resolved} ({reason})")
    print(f"{len(lessons)} lesson(s) from {folder} -> {run_dir}")
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    # the smoke profile's seconds mean nothing; a cpu or gpu run's wall times are read against the machine's speed
    timed = resolved != "smoke" and bool(lessons)
    speeds = [machine_speed.measure()] if timed else []
    if speeds:
        print(f"machine speed: {speeds[0].describe()}")
    runs: list[NotebookRun] = []
    bar = tqdm(lessons, desc="course", unit="lesson", disable=not progress, file=sys.stderr)
    for path in bar:
        bar.set_postfix_str(path.stem)
        lesson_out = run_dir / path.stem
        # a metrics.json left by an earlier run into the same folder must not pass for this run's
        (lesson_out / results.METRICS_FILE).unlink(missing_ok=True)
        parameters = {"PROFILE": resolved, "OUT_DIR": str(lesson_out), **extra}
        run = execute_notebook(path, run_dir / path.name, parameters, cwd=folder, out_dir=lesson_out,
                               timeout=timeout, progress=progress)
        runs.append(run)
        mark = "ok    " if run.ok else "FAILED"
        detail = "" if run.ok else f"  {run.error}"
        tqdm.write(f"{mark} {path.stem}  {run.seconds:.1f} s{detail}")
    bar.close()
    if timed:
        speeds.append(machine_speed.measure())
    speed = machine_speed.combine(speeds) if speeds else None

    unreadable: list[tuple[Path, str]] = []
    rows = results.collect(run_dir, errors=unreadable)
    for bad_path, message in unreadable:  # a lesson that wrote a broken metrics.json did not succeed
        lesson = bad_path.relative_to(run_dir).parts[0]
        for run in runs:
            if run.notebook == lesson and run.ok:
                run.status, run.error = "failed", f"unreadable metrics.json: {message}"
    info = {
        "profile": resolved,
        "profile_reason": reason,
        "notebooks_dir": str(folder),
        "started": started,
        "finished": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine_speed": speed.as_dict() if speed is not None else None,
        "notebooks": [r.as_dict() for r in runs],
        "failures": [{"notebook": r.notebook, "error": r.error, "executed": r.executed} for r in runs if not r.ok],
    }
    json_path, md_path = results.save_results(
        run_dir, rows, info=info, title=f"Course run {run_dir.name} (profile {resolved})",
        appendix=_report_appendix(runs, speed),
    )
    summary = json.loads(json_path.read_text(encoding="utf-8"))
    summary["run_dir"] = str(run_dir)
    summary["results_md"] = md_path.read_text(encoding="utf-8")
    return summary


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m anime_lib.course",
                                     description="Run the course's lesson notebooks and tabulate their metrics.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute lessons with papermill and collect results")
    run.add_argument("--profile", default="auto", help="smoke, cpu, gpu or auto (default: auto)")
    run.add_argument("--only", action="append", default=None, metavar="NN[,NN...]",
                     help="lesson numbers or ids to run, e.g. 04,05 (default: all)")
    run.add_argument("--out", type=Path, default=None,
                     help="run folder (default: runs/<YYYYmmdd-HHMMSS> in the checkout)")
    run.add_argument("--notebooks", type=Path, default=None,
                     help="folder of the lesson notebooks (default: the repository's notebooks/)")
    run.add_argument("--timeout", type=float, default=DEFAULT_CELL_TIMEOUT, metavar="SECONDS",
                     help=f"longest time one cell may run (default: {DEFAULT_CELL_TIMEOUT:g}; 0: no limit)")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="inject a parameter into every lesson (repeatable; VALUE is a Python literal or a string)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    lst = sub.add_parser("list", help="list the lessons")
    lst.add_argument("--notebooks", type=Path, default=None, help="folder of the lesson notebooks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (1 when a lesson failed)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            for path in find_notebooks(args.notebooks):
                print(f"{path.stem:<32} {lesson_title(path)}")
            return 0
        params = dict(parse_param(p) for p in args.param)
        summary = run_course(args.profile, args.only, args.out, args.notebooks, args.timeout,
                             params=params, progress=not args.no_progress)
    except ValueError as exc:
        parser.error(str(exc))
    print()
    print(summary["results_md"])
    print(f"results: {Path(summary['run_dir']) / 'results.md'}")
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
