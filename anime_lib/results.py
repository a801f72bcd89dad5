"""The ``metrics.json`` contract: what every lesson writes and how the runners read it back.

Each lesson ends with one call::

    write_metrics(OUT_DIR, [{"method": "cyclegan", "direction": "human->anime", "toy_fid": 41.2}],
                  notebook="04_cyclegan", params=P)

which writes ``OUT_DIR/metrics.json``::

    {"notebook": "04_cyclegan", "params": {...}, "rows": [{...}, ...], "extra": {...}, "written": "..."}

One row per trained model (or per model and direction). Every row carries the standard columns of
:data:`RESULT_COLUMNS`; a metric that does not apply is ``null`` ("not applicable, never invented").
NaN and infinity are refused: a number that could not be measured is ``None``, not a float.
The course runner (:mod:`anime_lib.course`) collects every ``metrics.json`` of a run with
:func:`collect` and tabulates them with :func:`to_markdown` / :func:`save_results`.
"""
from __future__ import annotations

import json
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

#: The standard columns of a result row, in table order.
RESULT_COLUMNS: tuple[str, ...] = (
    "notebook",
    "method",
    "direction",
    "dataset",
    "profile",
    "train_seconds",
    "realism",
    "attr_preservation",
    "gt_l1",
    "toy_fid",
    "diversity",
)

#: Columns the course table adds when some row has them: the standard FID/KID of the lessons' real-photo parts
#: (rows whose ``dataset`` is real photos), the image side (toy_fid depends on it) and whether the row's model
#: was loaded from shipped weights (``anime_lib.pretrain``) instead of trained in the run.
TRACE_COLUMNS: tuple[str, ...] = ("fid", "kid", "img_size", "shipped")

METRICS_FILE = "metrics.json"
MISSING = "–"  # how a null value looks in a Markdown table


# --------------------------------------------------------------------------------------------------
# JSON-safe values
# --------------------------------------------------------------------------------------------------


def json_safe(value: Any, where: str = "value") -> Any:
    """Return ``value`` converted to plain JSON types.

    Paths become strings, numpy / torch scalars become Python numbers, arrays and tensors become
    (nested) lists, tuples and sets become lists, mappings get string keys. Objects with no JSON
    counterpart (a ``torch.device``, an enum) become their ``str``. NaN and infinity raise
    ``ValueError`` naming ``where`` the value sits, because JSON has no such numbers and a silent
    ``NaN`` in a results table reads like a measurement.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(
                f"{where} is {value!r}; metrics must be finite numbers "
                "(use None for 'not applicable' or 'could not be measured')"
            )
        return float(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return [json_safe(v, f"{where}[{i}]") for i, v in enumerate(sorted(value, key=repr))]
    # numpy and torch values, recognised by duck typing so that neither has to be imported here:
    # .tolist() turns a 0-d array / tensor into a Python scalar and anything larger into nested lists
    if hasattr(value, "tolist") and hasattr(value, "dtype"):
        return json_safe(value.tolist(), where)
    return str(value)


# --------------------------------------------------------------------------------------------------
# Writing and reading metrics.json
# --------------------------------------------------------------------------------------------------


def _params_dict(params: Any) -> tuple[dict[str, Any], str | None]:
    """``(values, profile)`` from a :class:`anime_lib.config.Params`, a mapping or None."""
    if params is None:
        return {}, None
    if hasattr(params, "as_dict") and hasattr(params, "profile"):
        values = dict(params.as_dict())
        return values, str(params.profile)
    if isinstance(params, Mapping):
        values = dict(params)
        profile = values.get("PROFILE")
        return values, (str(profile) if profile is not None else None)
    raise TypeError(f"params must be a config.Params, a mapping or None, not {type(params).__name__}")


def normalize_row(row: Mapping[str, Any], *, notebook: str | None = None, profile: str | None = None,
                  where: str = "row") -> dict[str, Any]:
    """A result row with every standard column (missing ones as None) followed by any extra keys.

    ``notebook`` and ``profile`` fill in those columns when the row leaves them out or None.
    Raises ``ValueError`` for NaN / infinite values and ``TypeError`` for a row that is not a mapping.
    """
    if not isinstance(row, Mapping):
        raise TypeError(f"{where} must be a dict of column -> value, not {type(row).__name__}")
    safe = json_safe(dict(row), where)
    out: dict[str, Any] = {col: safe.get(col) for col in RESULT_COLUMNS}
    if out["notebook"] is None:
        out["notebook"] = notebook
    if out["profile"] is None:
        out["profile"] = profile
    for key, value in safe.items():
        if key not in out:
            out[key] = value
    return out


def write_metrics(
    out_dir: str | os.PathLike,
    rows: Iterable[Mapping[str, Any]],
    *,
    notebook: str,
    params: Any = None,
    extra: dict | None = None,
) -> Path:
    """Write ``out_dir/metrics.json`` and return its path.

    ``rows``: one dict per trained model; missing standard columns become None, unknown keys are
    kept, ``notebook`` and ``profile`` come from the arguments when absent. ``params`` is the
    lesson's :class:`~anime_lib.config.Params` (or a plain dict); it is stored as ``"params"``.
    ``extra`` holds anything else worth keeping (loss summaries, notes). The file is replaced
    atomically, so a reader never sees half of it.
    """
    values, profile = _params_dict(params)
    rows = list(rows)
    payload = {
        "notebook": str(notebook),
        "params": json_safe(values, "params"),
        "rows": [normalize_row(r, notebook=str(notebook), profile=profile, where=f"rows[{i}]")
                 for i, r in enumerate(rows)],
        "extra": json_safe(dict(extra or {}), "extra"),
        "written": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / METRICS_FILE
    _write_json(path, payload)
    return path


def _write_json(path: Path, payload: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``metrics.json`` (or the one inside a folder) and check its shape.

    Rows are returned normalised: every standard column present, ``notebook`` filled from the file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ValueError(f"{path} is not a metrics.json: expected an object with a 'rows' list")
    notebook = data.get("notebook")
    profile = (data.get("params") or {}).get("PROFILE")
    try:
        data["rows"] = [normalize_row(r, notebook=notebook, profile=profile, where=f"{path}: rows[{i}]")
                        for i, r in enumerate(data["rows"])]
    except TypeError as exc:
        raise ValueError(str(exc)) from exc
    data.setdefault("params", {})
    data.setdefault("extra", {})
    return data


def collect(run_dir: str | os.PathLike, *, errors: list[tuple[Path, str]] | None = None) -> list[dict[str, Any]]:
    """All rows of every ``metrics.json`` below ``run_dir``, sorted by notebook (stable within a file).

    A file that cannot be read raises ``ValueError``, unless an ``errors`` list is given: then
    ``(path, message)`` is appended to it and the file is skipped.
    """
    found = []
    for path in sorted(Path(run_dir).rglob(METRICS_FILE)):
        try:
            data = read_metrics(path)
        except (ValueError, TypeError, OSError) as exc:
            if errors is None:
                raise
            errors.append((path, str(exc)))
            continue
        for i, row in enumerate(data["rows"]):
            found.append((str(row.get("notebook") or ""), str(path), i, row))
    found.sort(key=lambda item: item[:3])
    return [row for *_, row in found]


# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------


def format_value(value: Any, column: str = "") -> str:
    """One table cell: None -> "–", floats to 3 significant digits, ``train_seconds`` as an integer."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if column == "train_seconds" and isinstance(value, (int, float)):
        return str(int(round(value)))
    if isinstance(value, float):
        return format_float(value)
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("|", "\\|").replace("\n", " ")


def format_float(x: float, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits, without scientific notation for 1e-4 <= |x| < 1e15.

    123.4 -> "123", 12.34 -> "12.3", 0.01234 -> "0.0123", 12345.6 -> "12346".
    """
    if x == 0 or not math.isfinite(x):
        return "0" if x == 0 else str(x)
    magnitude = math.floor(math.log10(abs(x)))
    if magnitude < -4 or magnitude >= 15:
        return f"{x:.{digits - 1}e}"
    decimals = max(0, digits - 1 - magnitude)
    return f"{x:.{decimals}f}"


def to_markdown(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = RESULT_COLUMNS) -> str:
    """A GitHub Markdown table of ``rows`` restricted to ``columns`` (null shown as "–")."""
    columns = list(columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(format_value(row.get(c), c) for c in columns) + " |")
    return "\n".join(lines)


def save_results(
    run_dir: str | os.PathLike,
    rows: Sequence[Mapping[str, Any]],
    *,
    info: Mapping[str, Any] | None = None,
    title: str = "Results",
    appendix: str = "",
) -> tuple[Path, Path]:
    """Write ``run_dir/results.json`` ({**info, "rows": rows}) and ``run_dir/results.md``.

    ``results.md`` is ``# title``, the table of :data:`RESULT_COLUMNS` (plus the :data:`TRACE_COLUMNS` that
    some row has) and then ``appendix`` (extra
    Markdown such as wall times and failures). Returns both paths.
    """
    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    rows = [normalize_row(r, where=f"rows[{i}]") for i, r in enumerate(rows)]
    payload = {**json_safe(dict(info or {}), "info"), "rows": rows}
    json_path = folder / "results.json"
    _write_json(json_path, payload)
    shown = [*RESULT_COLUMNS, *(c for c in TRACE_COLUMNS if any(r.get(c) is not None for r in rows))]
    table = to_markdown(rows, shown) if rows else "No metrics.json rows were written."
    text = f"# {title}\n\n{table}\n"
    if appendix:
        text += "\n" + appendix.strip("\n") + "\n"
    md_path = folder / "results.md"
    md_path.write_text(text, encoding="utf-8")
    return json_path, md_path
