"""Tests for anime_lib.results: the metrics.json contract, collection and Markdown tables."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from anime_lib.config import resolve_params
from anime_lib.results import (
    RESULT_COLUMNS,
    collect,
    format_float,
    read_metrics,
    save_results,
    to_markdown,
    write_metrics,
)


def _params(tmp_path: Path):
    return resolve_params({"PROFILE": "smoke", "IMG_SIZE": None, "OUT_DIR": tmp_path / "out", "SEED": 3})


def test_write_metrics_fills_columns_and_keeps_extra_keys(tmp_path: Path):
    params = _params(tmp_path)
    path = write_metrics(tmp_path / "out", [
        {"method": "cyclegan", "direction": "human->anime", "toy_fid": np.float32(12.5),
         "realism": torch.tensor(0.75), "n_params": np.int64(1234), "note": "kept"},
        {"method": "oracle", "notebook": "99_other", "profile": "gpu"},
    ], notebook="04_cyclegan", params=params, extra={"losses": torch.tensor([1.0, 0.5]), "ckpt": tmp_path / "c.pt"})

    assert path == tmp_path / "out" / "metrics.json"
    data = json.loads(path.read_text())
    assert data["notebook"] == "04_cyclegan"
    assert datetime.fromisoformat(data["written"]).tzinfo is not None
    assert data["params"]["OUT_DIR"] == str(tmp_path / "out")
    assert data["params"]["IMG_SIZE"] == 32 and data["params"]["PROFILE"] == "smoke"
    assert data["extra"] == {"losses": [1.0, 0.5], "ckpt": str(tmp_path / "c.pt")}

    first, second = data["rows"]
    assert list(first)[:len(RESULT_COLUMNS)] == list(RESULT_COLUMNS)  # standard columns first, in order
    assert first["notebook"] == "04_cyclegan" and first["profile"] == "smoke"
    assert first["toy_fid"] == 12.5 and first["realism"] == 0.75
    assert first["n_params"] == 1234 and isinstance(first["n_params"], int)
    assert first["note"] == "kept"
    assert first["gt_l1"] is None and first["train_seconds"] is None and first["dataset"] is None
    assert (second["notebook"], second["profile"]) == ("99_other", "gpu")  # given values are not overwritten
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_params_as_plain_dict(tmp_path: Path):
    path = write_metrics(tmp_path, [{"method": "m"}], notebook="01_x", params={"PROFILE": "cpu", "DIR": Path("a")})
    data = read_metrics(path)
    assert data["params"] == {"PROFILE": "cpu", "DIR": "a"}
    assert data["rows"][0]["profile"] == "cpu"
    no_params = read_metrics(write_metrics(tmp_path / "b", [{}], notebook="01_x"))
    assert no_params["params"] == {} and no_params["rows"][0]["profile"] is None


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), np.float64("-inf"), torch.tensor(float("nan"))])
def test_non_finite_values_are_refused(tmp_path: Path, bad):
    with pytest.raises(ValueError, match=r"rows\[1\]\['toy_fid'\] is .*finite numbers.*None"):
        write_metrics(tmp_path, [{"toy_fid": 1.0}, {"toy_fid": bad}], notebook="01_x")
    assert not (tmp_path / "metrics.json").exists()


def test_non_finite_extra_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match=r"extra\['loss'\]\[1\]"):
        write_metrics(tmp_path, [], notebook="01_x", extra={"loss": [1.0, float("nan")]})


def test_rows_must_be_dicts(tmp_path: Path):
    with pytest.raises(TypeError, match=r"rows\[0\] must be a dict"):
        write_metrics(tmp_path, [[1, 2]], notebook="01_x")


def test_read_metrics_rejects_other_json(tmp_path: Path):
    (tmp_path / "metrics.json").write_text('{"rows": 3}')
    with pytest.raises(ValueError, match="expected an object with a 'rows' list"):
        read_metrics(tmp_path)
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_metrics(tmp_path / "metrics.json")


def test_collect_sorts_by_notebook_and_reports_broken_files(tmp_path: Path):
    write_metrics(tmp_path / "b", [{"method": "b1"}, {"method": "b2"}], notebook="05_b")
    write_metrics(tmp_path / "a" / "deep", [{"method": "a1"}], notebook="02_a")
    assert [(r["notebook"], r["method"]) for r in collect(tmp_path)] == [
        ("02_a", "a1"), ("05_b", "b1"), ("05_b", "b2")]

    broken = tmp_path / "c" / "metrics.json"
    broken.parent.mkdir()
    broken.write_text('{"notebook": "07_c", "rows": [{"toy_fid": NaN}]}')
    with pytest.raises(ValueError, match="finite"):
        collect(tmp_path)
    errors: list = []
    assert len(collect(tmp_path, errors=errors)) == 3
    assert errors[0][0] == broken and "finite" in errors[0][1]


@pytest.mark.parametrize("x, text", [
    (123.4, "123"), (12.34, "12.3"), (1.2345, "1.23"), (0.5, "0.500"), (0.01234, "0.0123"),
    (12345.6, "12346"), (-2.5, "-2.50"), (0.0, "0"), (0.00001234, "1.23e-05"),
])
def test_format_float(x: float, text: str):
    assert format_float(x) == text


def test_to_markdown():
    rows = [
        {"notebook": "04_cyclegan", "method": "a|b", "train_seconds": 61.7, "toy_fid": 41.256, "realism": 0.91234},
        {"notebook": "05_ugatit", "train_seconds": None, "gt_l1": 0.0876, "diversity": 3},
    ]
    lines = to_markdown(rows).splitlines()
    assert lines[0] == "| " + " | ".join(RESULT_COLUMNS) + " |"
    assert lines[1] == "|" + "|".join(["---"] * len(RESULT_COLUMNS)) + "|"
    assert lines[2] == "| 04_cyclegan | a\\|b | – | – | – | 62 | 0.912 | – | – | 41.3 | – |"
    assert lines[3] == "| 05_ugatit | – | – | – | – | – | – | – | 0.0876 | – | 3 |"
    assert to_markdown(rows, ["method", "toy_fid"]).splitlines()[2] == "| a\\|b | 41.3 |"


def test_save_results_writes_json_and_markdown(tmp_path: Path):
    rows = [{"notebook": "01_x", "method": "m", "toy_fid": 2.0}]
    json_path, md_path = save_results(tmp_path / "run", rows, info={"profile": "cpu", "where": tmp_path},
                                      title="Run 1", appendix="## Failures\n\nNone.")
    data = json.loads(json_path.read_text())
    assert data["profile"] == "cpu" and data["where"] == str(tmp_path)
    assert data["rows"][0]["toy_fid"] == 2.0 and data["rows"][0]["realism"] is None
    md = md_path.read_text()
    assert md.startswith("# Run 1\n\n| notebook |")
    assert "| 01_x | m | – | – | – | – | – | – | – | 2.00 | – |" in md
    assert md.endswith("## Failures\n\nNone.\n")
    _, empty_md = save_results(tmp_path / "empty", [])
    assert "No metrics.json rows" in empty_md.read_text()


def test_the_course_table_says_which_rows_come_from_shipped_weights(tmp_path: Path):
    rows = [{"notebook": "04_x", "method": "long", "toy_fid": 0.5, "img_size": 64, "shipped": True},
            {"notebook": "04_x", "method": "short", "toy_fid": 2.0, "img_size": 64, "shipped": False},
            {"notebook": "03_x", "method": "gen", "toy_fid": 0.8}]
    md = save_results(tmp_path / "run", rows)[1].read_text()
    assert "| toy_fid | diversity | img_size | shipped |" in md
    assert "| 04_x | long | – | – | – | – | – | – | – | 0.500 | – | 64 | yes |" in md
    assert "| 03_x | gen | – | – | – | – | – | – | – | 0.800 | – | – | – |" in md
    plain = save_results(tmp_path / "plain", rows[2:])[1].read_text()
    assert "shipped" not in plain and "img_size" not in plain
