"""Parameter sweeps: run one lesson over a grid of parameter values and tabulate / plot its metrics.

    python -m anime_lib.sweep sweeps/<name>.yaml [--profile X] [--out DIR] [--dry-run] [--timeout SECONDS]
                                                 [--workers N | --scheduler ADDRESS]

The YAML file (format in ``sweeps/README.md``)::

    notebook: notebooks/04_cyclegan.ipynb   # relative to the yaml's folder or the repository root
    profile: cpu                            # optional, default auto; --profile overrides it
    fixed: {N_STEPS: 300}                   # optional, applied to every run
    grid:                                   # cartesian product, in this order
      LAMBDA_IDENTITY: [0.0, 0.5]
      INPUT_NOISE: [0.0, 0.1]
    metrics: [toy_fid, realism, attr_preservation]   # optional, default: every standard metric
    select: {direction: "human->anime"}              # optional filter on metrics.json rows

Each grid point runs with papermill into ``<out>/<i>_<NAME=value...>/`` (executed notebook and its
``metrics.json``; ``OUT_DIR`` is that folder). The chosen metrics of every point go into
``<out>/sweep.json``, ``sweep.md`` and ``sweep.png`` (a heatmap per metric for a 2-parameter grid, a
line per metric for 1 parameter, bars over the points otherwise). A failed point is recorded and
the sweep goes on; the exit status is 1 when any point failed.

Before anything runs, the file is checked: parameter names against the lesson's parameters cell,
their values against the type of its defaults, and metric names against the standard result
columns plus the column names the lesson's code writes (quoted names such as ``"recon_l1"``). Each
cell may run at most ``--timeout`` seconds (default 3600; 0: no limit), the kernels run headless
(``ANIME_LIB_HEADLESS=1``), and the sweep folder is locked while the sweep writes there.

The points run one after another by default. ``--workers N`` runs N of them at once on this machine
(threads, each driving its own papermill kernel process). ``--scheduler ADDRESS`` sends every point
as a task to an existing Dask cluster (``distributed.Client(ADDRESS)``; needs
``pip install "dask[distributed]"``, imported only then): a worker executes the point exactly as
this machine would (:func:`run_point`), so the notebook and the output folder must be at the same
paths on every worker (put the repository and ``--out`` on storage they all share), and every worker
needs ``anime_lib`` and the ``python3`` kernel (start it from the course's environment). The
finished points come back in any order; ``sweep.json`` lists them in grid order. A worker that dies
while running a point (killed, out of memory) fails that point with "worker died while running
this point" and the rest of the grid goes on: if Dask retries the task, the retry sees the point's
``.point-running.json`` marker left by the dead attempt and fails at once instead of running (and
perhaps killing) the notebook again; if Dask gives up first (``KilledWorker``), that is the failure.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import socket
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import yaml
from tqdm.auto import tqdm

from anime_lib import config, results
from anime_lib.course import (
    DEFAULT_CELL_TIMEOUT,
    HEADLESS_ENV,
    LOCK_NAME,
    RESERVED_PARAMETERS,
    execute_notebook,
    new_run_dir,
    param_type_problem,
    parameter_defaults,
    run_lock,
    runs_root,
    timestamp,
)
from anime_lib.notebook_meta import NotebookConventionError, parameter_names, read_notebook

SPEC_KEYS = ("notebook", "profile", "fixed", "grid", "metrics", "select")
DEFAULT_METRICS: tuple[str, ...] = ("realism", "attr_preservation", "gt_l1", "toy_fid", "diversity")
#: Row columns shown next to the grid values when they differ between the selected rows of a point.
IDENTITY_COLUMNS = ("method", "direction")
REPO_ROOT = Path(__file__).resolve().parent.parent
#: Written into a point's folder while it runs; a retry that finds its own sweep's marker knows the
#: worker of the first attempt died.
RUNNING_MARK = ".point-running.json"
WORKER_DIED = "worker died while running this point"
DASK_MISSING = '--scheduler runs the points on a Dask cluster and needs Dask: pip install "dask[distributed]"'


class SweepError(ValueError):
    """The sweep file is invalid; the message names the file and what to fix."""


@dataclass
class SweepSpec:
    """A validated sweep file."""

    name: str                        # the yaml's stem
    source: Path                     # the yaml file
    notebook: Path                   # resolved, existing notebook
    profile: str                     # as written ("auto" when left out)
    grid: dict[str, list[Any]]
    fixed: dict[str, Any] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    select: dict[str, Any] = field(default_factory=dict)

    def points(self) -> list[dict[str, Any]]:
        """Every grid point as {NAME: value}, the cartesian product in the file's order."""
        names = list(self.grid)
        return [dict(zip(names, values)) for values in itertools.product(*self.grid.values())]

    def as_dict(self) -> dict[str, Any]:
        return results.json_safe({
            "name": self.name, "source": self.source, "notebook": self.notebook, "profile": self.profile,
            "fixed": self.fixed, "grid": self.grid, "metrics": self.metrics, "select": self.select,
        }, "spec")


# --------------------------------------------------------------------------------------------------
# Reading and validating the YAML file
# --------------------------------------------------------------------------------------------------


def _resolve_notebook(value: Any, source: Path) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise SweepError(f"{source}: 'notebook' must be a path such as notebooks/04_cyclegan.ipynb")
    given = Path(value).expanduser()
    candidates = [given] if given.is_absolute() else [source.parent / given, REPO_ROOT / given]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise SweepError(f"{source}: notebook {value!r} not found (looked at {looked})")


def _check_names(kind: str, names: Sequence[str], known: Sequence[str], source: Path, notebook: Path) -> None:
    for name in names:
        if name in RESERVED_PARAMETERS:
            hint = "use the 'profile' key or --profile" if name == "PROFILE" else "every point gets its own folder"
            raise SweepError(f"{source}: {kind} may not set {name} ({hint})")
        if name not in known:
            raise SweepError(
                f"{source}: {kind} names {name!r}, which is not in the parameters cell of {notebook.name} "
                f"(its parameters: {', '.join(known) or 'none'})"
            )


def _check_values(kind: str, values: Mapping[str, Sequence[Any]], defaults: Mapping[str, Any], source: Path,
                  notebook: Path) -> None:
    for name, options in values.items():
        for value in options:
            problem = param_type_problem(name, value, defaults.get(name))
            if problem:
                raise SweepError(f"{source}: {kind}: {problem} in the parameters cell of {notebook.name}")


def lesson_columns(notebook: str | os.PathLike) -> list[str]:
    """Column names a sweep may tabulate for ``notebook``: the standard result columns, then every
    quoted snake_case name in the lesson's code cells (the keys its result rows can hold)."""
    names = list(results.RESULT_COLUMNS)
    for cell in read_notebook(notebook).cells:
        if cell.get("cell_type") != "code":
            continue
        for match in re.finditer(r"""["']([a-z][a-z0-9_]*)["']""", "".join(cell.get("source", ""))):
            if match.group(1) not in names:
                names.append(match.group(1))
    return names


def _check_metrics(metrics: Sequence[str], notebook: Path, source: Path) -> None:
    import difflib

    known = lesson_columns(notebook)
    for metric in metrics:
        if metric not in known:
            close = difflib.get_close_matches(metric, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise SweepError(
                f"{source}: metric {metric!r} is neither a standard result column ({', '.join(results.RESULT_COLUMNS)}) "
                f"nor a column name that {notebook.name} writes{hint}"
            )


def load_sweep(path: str | os.PathLike) -> SweepSpec:
    """Read and validate a sweep file; raises :class:`SweepError` with a message saying what to fix."""
    source = Path(path)
    if not source.is_file():
        raise SweepError(f"sweep file {source} not found")
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SweepError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SweepError(f"{source}: expected a mapping with the keys {', '.join(SPEC_KEYS)}")
    unknown = sorted(set(map(str, data)) - set(SPEC_KEYS))
    if unknown:
        raise SweepError(f"{source}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(SPEC_KEYS)}")

    notebook = _resolve_notebook(data.get("notebook"), source)
    try:
        known = parameter_names(notebook)
    except NotebookConventionError as exc:
        raise SweepError(f"{source}: {notebook.name}: {exc}") from exc

    grid = data.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise SweepError(f"{source}: 'grid' must map at least one parameter name to a list of values")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"{source}: grid value of {name!r} must be a non-empty list "
                             "(put single values under 'fixed')")
    _check_names("grid", list(grid), known, source, notebook)

    fixed = data.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise SweepError(f"{source}: 'fixed' must map parameter names to values")
    _check_names("fixed", list(fixed), known, source, notebook)
    both = sorted(set(fixed) & set(grid))
    if both:
        raise SweepError(f"{source}: {', '.join(both)} appear(s) in both 'fixed' and 'grid'")

    try:
        defaults = parameter_defaults(notebook)
    except SyntaxError as exc:
        raise SweepError(f"{source}: the parameters cell of {notebook.name} is not valid Python: {exc}") from exc
    _check_values("grid", grid, defaults, source, notebook)
    _check_values("fixed", {k: [v] for k, v in fixed.items()}, defaults, source, notebook)

    metrics = data.get("metrics", list(DEFAULT_METRICS))
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise SweepError(f"{source}: 'metrics' must be a non-empty list of column names such as toy_fid")
    _check_metrics(metrics, notebook, source)

    select = data.get("select") or {}
    if not isinstance(select, dict):
        raise SweepError(f"{source}: 'select' must map metrics.json columns to a value or a list of values")

    profile = str(data.get("profile") or "auto").lower()
    if profile != "auto" and profile not in config.PROFILES:
        raise SweepError(f"{source}: profile {profile!r} is not one of {', '.join(config.PROFILES)} or auto")

    return SweepSpec(name=source.stem, source=source.resolve(), notebook=notebook, profile=profile,
                     grid={str(k): list(v) for k, v in grid.items()}, fixed={str(k): v for k, v in fixed.items()},
                     metrics=list(metrics), select={str(k): v for k, v in select.items()})


# --------------------------------------------------------------------------------------------------
# Points, rows and the table
# --------------------------------------------------------------------------------------------------


def point_label(point: Mapping[str, Any]) -> str:
    """``"A=1, B=0.5"``: a readable name for a grid point."""
    return ", ".join(f"{k}={v}" for k, v in point.items())


def point_folder(index: int, point: Mapping[str, Any], width: int = 2) -> str:
    """``"03_A=1_B=0.5"``: the point's folder name (characters unsafe in file names become '-')."""
    text = "_".join(f"{k}={v}" for k, v in point.items())
    text = re.sub(r"[^A-Za-z0-9._=+-]", "-", text)[:100]
    return f"{index:0{width}d}_{text}"


def select_rows(rows: Sequence[Mapping[str, Any]], select: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows whose every ``select`` column equals the given value (or is one of the given list)."""
    def keep(row: Mapping[str, Any]) -> bool:
        for column, wanted in select.items():
            allowed = wanted if isinstance(wanted, list) else [wanted]
            if row.get(column) not in allowed:
                return False
        return True

    return [dict(r) for r in rows if keep(r)]


def table_columns(spec: SweepSpec, points: Sequence[Mapping[str, Any]]) -> list[str]:
    """Grid names, then :data:`IDENTITY_COLUMNS` that vary between the selected rows, then the metrics."""
    rows = [row for p in points for row in p.get("rows", [])]
    varying = [c for c in IDENTITY_COLUMNS if len({json.dumps(r.get(c)) for r in rows}) > 1]
    return list(spec.grid) + varying + list(spec.metrics)


def sweep_table(spec: SweepSpec, points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (grid point x selected metrics.json row) with the grid values and the chosen metrics."""
    columns = table_columns(spec, points)
    table = []
    for p in points:
        for row in p.get("rows", []):
            merged = {**row, **p["params"]}
            table.append({c: merged.get(c) for c in columns})
    return table


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def point_values(points: Sequence[Mapping[str, Any]], metric: str) -> list[float]:
    """Per point, the mean of ``metric`` over its selected rows (NaN when it has no value)."""
    out = []
    for p in points:
        numbers = [float(r[metric]) for r in p.get("rows", []) if _is_number(r.get(metric))]
        out.append(sum(numbers) / len(numbers) if numbers else math.nan)
    return out


# --------------------------------------------------------------------------------------------------
# The figure
# --------------------------------------------------------------------------------------------------


def plot_sweep(spec: SweepSpec, points: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Draw ``sweep.png``: one panel per metric (heatmap for 2 grid names, line for 1, bars otherwise).

    A point's value is the mean over its selected rows; failed points are blank ("failed").
    Uses the Agg canvas directly, so it never opens a window or touches pyplot's global state.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(spec.grid)
    metrics = list(spec.metrics)
    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig = Figure(figsize=(4.6 * ncols, 3.8 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    for k, metric in enumerate(metrics):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        values = point_values(points, metric)
        ax.set_title(metric if any(not math.isnan(v) for v in values) else f"{metric} (no values)")
        if len(names) == 2:
            _heatmap(ax, fig, spec, points, values)
        elif len(names) == 1:
            xs = spec.grid[names[0]]
            numeric = all(_is_number(x) for x in xs)
            pos = [float(x) for x in xs] if numeric else list(range(len(xs)))
            ax.plot(pos, values, marker="o")
            pad = 0.05 * ((max(pos) - min(pos)) or 1.0)
            ax.set_xlim(min(pos) - pad, max(pos) + pad)  # keep failed points (no data) in view
            if not numeric:
                ax.set_xticks(pos, [str(x) for x in xs])
            ax.set_xlabel(names[0])
            ax.grid(alpha=0.3)
            _mark_missing(ax, pos, values, points)
        else:
            labels = [point_label(p["params"]) for p in points]
            ax.bar(range(len(values)), [0.0 if math.isnan(v) else v for v in values])
            ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
            _mark_missing(ax, range(len(values)), values, points)
    fig.suptitle(f"sweep {spec.name}: {spec.notebook.stem}")
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def _mark_missing(ax, positions, values: Sequence[float], points: Sequence[Mapping[str, Any]]) -> None:
    """Write "failed" (or "–" when the point ran but has no value) at the foot of the axes."""
    for x, v, p in zip(positions, values, points):
        if math.isnan(v):
            text = "failed" if p.get("status") == "failed" else "–"
            ax.text(x, 0.03, text, transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                    color="tab:red" if text == "failed" else "black", fontsize=8)


def _heatmap(ax, fig, spec: SweepSpec, points: Sequence[Mapping[str, Any]], values: Sequence[float]) -> None:
    import numpy as np

    row_name, col_name = list(spec.grid)
    row_values, col_values = spec.grid[row_name], spec.grid[col_name]
    grid = np.full((len(row_values), len(col_values)), np.nan)
    status = {}
    for p, v in zip(points, values):
        i = row_values.index(p["params"][row_name])
        j = col_values.index(p["params"][col_name])
        grid[i, j] = v
        status[i, j] = p.get("status", "ok")
    masked = np.ma.masked_invalid(grid)
    image = ax.imshow(masked, cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax, shrink=0.8)
    finite = grid[np.isfinite(grid)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    for (i, j), v in np.ndenumerate(grid):
        if np.isnan(v):
            text, colour = ("failed" if status.get((i, j)) == "failed" else "–"), "black"
        else:
            text = results.format_float(float(v))
            colour = "white" if hi == lo or (v - lo) / (hi - lo) < 0.5 else "black"
        ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=9)
    ax.set_xticks(range(len(col_values)), [str(v) for v in col_values])
    ax.set_yticks(range(len(row_values)), [str(v) for v in row_values])
    ax.set_xlabel(col_name)
    ax.set_ylabel(row_name)


# --------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------


_headless_lock = threading.Lock()
_headless_users: dict[str, Any] = {"points": 0, "before": None}


@contextmanager
def _headless_while_points_run() -> Iterator[None]:
    """Keep ``ANIME_LIB_HEADLESS=1`` set while any point of this process runs.

    :func:`~anime_lib.course.execute_notebook` sets and restores the variable around each notebook;
    with several points in threads, one restoring it could otherwise unset it under another's kernel
    start. Inside this, every such restore puts back "1".
    """
    with _headless_lock:
        if _headless_users["points"] == 0:
            _headless_users["before"] = os.environ.get(HEADLESS_ENV)
            os.environ[HEADLESS_ENV] = "1"
        _headless_users["points"] += 1
    try:
        yield
    finally:
        with _headless_lock:
            _headless_users["points"] -= 1
            if _headless_users["points"] == 0:
                if _headless_users["before"] is None:
                    os.environ.pop(HEADLESS_ENV, None)
                else:
                    os.environ[HEADLESS_ENV] = _headless_users["before"]


def _failed_run(notebook: Path, folder: Path, parameters: Mapping[str, Any], error: str,
                seconds: float | None = None) -> dict[str, Any]:
    executed = folder / notebook.name
    return {"notebook": notebook.stem, "status": "failed", "seconds": seconds,
            "executed": str(executed) if executed.is_file() else None, "out_dir": str(folder),
            "parameters": dict(parameters), "error": error}


def run_point(notebook: str, out_dir: str, parameters: Mapping[str, Any], timeout: float | None,
              attempt: str, progress: bool = False) -> dict[str, Any]:
    """Execute one grid point: ``notebook`` with papermill into ``<out_dir>/<notebook name>``.

    Returns the :class:`~anime_lib.course.NotebookRun` fields as a plain dict and never raises for
    a failing lesson. Plain arguments and a plain result, so that a Dask worker can run it as it
    is (the sweep ships it by reference: the worker imports ``anime_lib.sweep``). ``attempt`` names
    the sweep run: a ``.point-running.json`` marker with the same name in the folder means an earlier
    attempt of this point died with its worker, and the point fails instead of running again.
    """
    notebook, folder = Path(notebook), Path(out_dir)
    host = socket.gethostname()
    if not (folder.parent / LOCK_NAME).is_file():
        return _failed_run(notebook, folder, parameters,
                           f"the sweep folder {folder.parent} is not visible on {host} (its {LOCK_NAME} is "
                           "missing): --out must be on storage that every worker shares")
    if not notebook.is_file():
        return _failed_run(notebook, folder, parameters,
                           f"{notebook} not found on {host}: the notebook must be at the same path on every worker")
    mark = folder / RUNNING_MARK
    try:
        earlier = json.loads(mark.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        earlier = {}
    if isinstance(earlier, dict) and earlier.get("attempt") == attempt:
        return _failed_run(notebook, folder, parameters,
                           f"{WORKER_DIED} (pid {earlier.get('pid')} on {earlier.get('host')}; "
                           "not run again, since it may take down the next worker as well)",
                           seconds=max(0.0, time.time() - float(earlier.get("started", time.time()))))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / results.METRICS_FILE).unlink(missing_ok=True)  # never report an earlier run's numbers
    mark.write_text(json.dumps({"attempt": attempt, "host": host, "pid": os.getpid(), "started": time.time()}),
                    encoding="utf-8")
    try:
        with _headless_while_points_run():
            run = execute_notebook(notebook, folder / notebook.name, parameters, cwd=notebook.parent,
                                   out_dir=folder, timeout=timeout, progress=progress)
    finally:
        mark.unlink(missing_ok=True)
    return asdict(run)


def _point_record(index: int, params: dict[str, Any], folder: Path, run: Mapping[str, Any] | None,
                  spec: SweepSpec) -> dict[str, Any]:
    """Run outcome (:func:`run_point`'s dict) plus the selected metrics.json rows; a point without
    usable rows counts as failed."""
    record: dict[str, Any] = {"index": index, "label": point_label(params), "params": params, "dir": str(folder),
                              "status": "ok", "seconds": None, "executed": None, "error": None, "rows": []}
    if run is not None:
        record.update({k: run.get(k) for k in ("status", "seconds", "executed", "error")})
    if record["status"] != "ok":
        return record
    metrics_path = folder / results.METRICS_FILE
    if not metrics_path.is_file():
        record.update(status="failed", error="the notebook wrote no metrics.json into OUT_DIR")
        return record
    try:
        rows = results.read_metrics(metrics_path)["rows"]
    except ValueError as exc:
        record.update(status="failed", error=f"unreadable metrics.json: {exc}")
        return record
    chosen = select_rows(rows, spec.select)
    if not chosen:
        record.update(status="failed", error=f"no metrics.json row matches select {spec.select}")
    record["rows"] = chosen
    return record


def _markdown(spec: SweepSpec, summary: Mapping[str, Any]) -> str:
    points = summary["points"]
    lines = [
        f"# Sweep {spec.name}",
        "",
        f"- notebook: `{spec.notebook.name}`",
        f"- profile: {summary['profile']}",
        f"- fixed: {json.dumps(spec.fixed) if spec.fixed else 'nothing'}",
        f"- grid: {', '.join(f'{k} in {v}' for k, v in spec.grid.items())}",
    ]
    if spec.select:
        lines.append(f"- select: {json.dumps(spec.select)}")
    lines += ["", results.to_markdown(summary["table"], summary["columns"]) if summary["table"]
              else "No point produced metrics.", "", "![sweep](sweep.png)", "", "## Wall time", ""]
    lines += [f"- {p['index']:02d} {p['label']}: "
              + (f"{p['seconds']:.1f} s" if p["seconds"] is not None else "–") + f" ({p['status']})"
              for p in points]
    lines += ["", "## Failures", ""]
    failed = [p for p in points if p["status"] != "ok"]
    lines += [f"- {p['index']:02d} {p['label']}: {p['error']} — `{p['executed'] or p['dir']}`"
              for p in failed] or ["None."]
    return "\n".join(lines) + "\n"


def run_sweep(
    spec_path: str | os.PathLike,
    profile: str | None = None,
    out: str | os.PathLike | None = None,
    dry_run: bool = False,
    timeout: float | None = DEFAULT_CELL_TIMEOUT,
    *,
    progress: bool = True,
    workers: int = 1,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Run every grid point of a sweep file and write ``sweep.json``, ``sweep.md``, ``sweep.png``.

    ``profile`` overrides the file's profile. With ``dry_run`` nothing runs and nothing is written:
    the returned dict lists the points with their parameters and folders. Otherwise it returns the
    content of ``sweep.json`` plus ``"run_dir"``. Raises :class:`SweepError` for an invalid file.
    ``timeout``: seconds one cell may run (default 3600; None or 0: no limit). Raises ``ValueError``
    when another sweep or course run is writing into the same folder.
    ``workers``: how many points run at once on this machine. ``scheduler``: the address of a Dask
    scheduler whose workers run the points instead (``out`` must then be on storage they share);
    raises ``ImportError`` saying what to install when Dask is missing, ``ValueError`` when the
    scheduler cannot be reached.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if scheduler and workers != 1:
        raise ValueError("workers is for this machine; with a scheduler the cluster's workers run the points")
    spec = load_sweep(spec_path)
    chosen_profile = profile if profile is not None else spec.profile
    resolved = config.resolve_profile(chosen_profile)
    run_dir = Path(out if out is not None else new_run_dir(runs_root() / "sweeps", f"{spec.name}-{timestamp()}")).resolve()
    points = spec.points()
    width = max(2, len(str(len(points) - 1)))
    plan = []
    for i, point in enumerate(points):
        folder = run_dir / point_folder(i, point, width)
        params = {**spec.fixed, **point, "PROFILE": resolved, "OUT_DIR": str(folder)}
        plan.append((i, point, folder, params))

    where = f", on the Dask cluster at {scheduler}" if scheduler else f", {workers} at once" if workers > 1 else ""
    print(f"sweep {spec.name}: {len(points)} point(s) of {spec.notebook.name}, "
          f"profile {resolved} ({config.profile_reason(chosen_profile)}){where}")
    if dry_run:
        for i, point, folder, params in plan:
            print(f"  {i:0{width}d} {point_label(point)} -> {folder}")
        return {"sweep": spec.name, "dry_run": True, "profile": resolved, "run_dir": str(run_dir),
                "spec": spec.as_dict(),
                "points": [{"index": i, "label": point_label(p), "dir": str(f), "parameters": results.json_safe(a)}
                           for i, p, f, a in plan]}

    client = _dask_client(scheduler) if scheduler else None  # before the folder exists: fails early
    try:
        with run_lock(run_dir, f"sweep {spec.name}"):
            return _run_points(spec, plan, run_dir, resolved, width, timeout, progress, workers, client)
    finally:
        if client is not None:
            client.close()


def _dask_client(address: str):
    """A ``distributed.Client`` connected to ``address``; Dask is imported only here."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(DASK_MISSING) from exc
    try:
        return distributed.Client(address, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc


def _outcomes(jobs: Mapping[int, dict[str, Any]], workers: int, client: Any,
              starting: Callable[[int], None]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Run the points' :func:`run_point` calls and yield ``(index, its dict)`` as each finishes:
    one after another here (``starting`` is told which), in ``workers`` threads, or as Dask tasks."""
    if client is None and workers == 1:
        for i, job in jobs.items():
            starting(i)
            yield i, run_point(**job)
        return
    if client is not None:
        from distributed import as_completed as dask_completed
        from distributed.scheduler import KilledWorker

        def as_completed(fs):  # our client is not Dask's default one
            return dask_completed(fs, loop=client.loop)

        # By name from the importable module: under python -m this file is __main__, and Dask would try
        # to ship __main__'s functions by value.
        from anime_lib.sweep import run_point as task

        attempt = next(iter(jobs.values()))["attempt"][:8]
        futures = {client.submit(task, key=f"sweep-point-{i:02d}-{attempt}", pure=False, retries=0, **job): i
                   for i, job in jobs.items()}
        pool = None
    else:
        from concurrent.futures import as_completed

        KilledWorker = ()  # catches nothing: threads have no workers to lose
        pool = ThreadPoolExecutor(workers, thread_name_prefix="sweep-point")
        futures = {pool.submit(run_point, **job): i for i, job in jobs.items()}
    try:
        for future in as_completed(futures):
            i = futures[future]
            job = jobs[i]
            try:
                yield i, future.result()
            except KilledWorker as exc:  # Dask gave up on the task after its worker(s) died
                yield i, _failed_run(Path(job["notebook"]), Path(job["out_dir"]), job["parameters"],
                                     f"{WORKER_DIED} ({str(exc).splitlines()[0]})")
            except Exception as exc:  # the task could not run or its result not come back
                yield i, _failed_run(Path(job["notebook"]), Path(job["out_dir"]), job["parameters"],
                                     f"{type(exc).__name__}: {str(exc).strip() or 'no message'}")
    finally:  # interrupted or done: nothing is left queued
        for future in futures:
            future.cancel()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _run_points(spec: SweepSpec, plan: Sequence[tuple], run_dir: Path, resolved: str, width: int,
                timeout: float | None, progress: bool, workers: int = 1, client: Any = None) -> dict[str, Any]:
    """The body of :func:`run_sweep`, run while the folder's lock is held."""
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    attempt = uuid.uuid4().hex
    one_by_one = client is None and workers == 1  # only then papermill's own bar per notebook
    jobs = {i: {"notebook": str(spec.notebook), "out_dir": str(folder), "parameters": params, "timeout": timeout,
                "attempt": attempt, "progress": progress and one_by_one}
            for i, point, folder, params in plan}
    records: dict[int, dict[str, Any]] = {}
    bar = tqdm(total=len(plan), desc=f"sweep {spec.name}", unit="point", disable=not progress, file=sys.stderr)

    def starting(i: int) -> None:
        bar.set_postfix_str(point_label(plan[i][1]))

    with closing(_outcomes(jobs, workers, client, starting)) as outcomes:  # closed: nothing left queued
        for i, run in outcomes:
            _, point, folder, _ = plan[i]
            (folder / RUNNING_MARK).unlink(missing_ok=True)  # left by an attempt whose worker died
            record = _point_record(i, point, folder, run, spec)
            records[i] = record
            bar.update()
            detail = "" if record["status"] == "ok" else f"  {record['error']}"
            seconds = "–" if record["seconds"] is None else f"{record['seconds']:.1f} s"
            tqdm.write(f"{record['status']:<6} {i:0{width}d} {record['label']}  {seconds}{detail}")
    bar.close()
    ordered = [records[i] for i in sorted(records)]  # grid order, whatever order they finished in

    summary: dict[str, Any] = {
        "sweep": spec.name,
        "spec": spec.as_dict(),
        "profile": resolved,
        "started": started,
        "finished": datetime.now().astimezone().isoformat(timespec="seconds"),
        "columns": table_columns(spec, ordered),
        "table": sweep_table(spec, ordered),
        "points": ordered,
        "failures": [{"index": r["index"], "label": r["label"], "error": r["error"], "executed": r["executed"]}
                     for r in ordered if r["status"] != "ok"],
    }
    summary = results.json_safe(summary, "sweep")
    (run_dir / "sweep.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    plot_sweep(spec, ordered, run_dir / "sweep.png")
    (run_dir / "sweep.md").write_text(_markdown(spec, summary), encoding="utf-8")
    summary["run_dir"] = str(run_dir)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (1 when a point failed)."""
    parser = argparse.ArgumentParser(prog="python -m anime_lib.sweep",
                                     description="Run a lesson over a grid of parameters (see sweeps/README.md).")
    parser.add_argument("spec", type=Path, help="the sweep file, e.g. sweeps/cyclegan_identity.yaml")
    parser.add_argument("--profile", default=None, help="smoke, cpu, gpu or auto (default: the file's, else auto)")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: runs/sweeps/<name>-<timestamp>)")
    parser.add_argument("--dry-run", action="store_true", help="validate and list the points without running them")
    parser.add_argument("--timeout", type=float, default=DEFAULT_CELL_TIMEOUT, metavar="SECONDS",
                        help=f"longest time one cell may run (default: {DEFAULT_CELL_TIMEOUT:g}; 0: no limit)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=1, metavar="N",
                       help="run N grid points at once on this machine (default: 1, one after another)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run the points as tasks on the Dask cluster of this scheduler (e.g. tcp://host:8786; "
                            'needs pip install "dask[distributed]"). The notebook and --out must be at the same '
                            "paths on every worker: put them on storage the workers share")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, not {args.workers}")
    try:
        summary = run_sweep(args.spec, args.profile, args.out, args.dry_run, args.timeout,
                            progress=not args.no_progress, workers=args.workers, scheduler=args.scheduler)
    except (ValueError, ImportError) as exc:  # SweepError, a bad --profile, no Dask or no scheduler
        parser.error(str(exc))
    if args.dry_run:
        return 0
    print()
    print((Path(summary["run_dir"]) / "sweep.md").read_text(encoding="utf-8"))
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
