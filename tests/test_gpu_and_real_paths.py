"""Nothing gpu-only can rot, and every lesson's real-photo part runs.

Each lesson is executed the way Colab executes it on a GPU runtime: ``PROFILE="gpu"`` (its image size, the papers'
widths, mixed precision switched on, the VGG19 features and the weight downloads that only that profile asks for),
here on the CPU with its amounts cut to the smoke profile's: steps, set sizes, batch sizes, checkpoint and monitor
intervals, and the networks' widths (at 128 px and the papers' widths one CycleGAN step is about 10^12 operations,
half a minute on two cores; widths change no code path, the image size does and stays). Test sets are cut further. The translation lessons run at the same time with ``REAL_DATA`` set to a local folder in the
selfie2anime layout (trainA/trainB/testA/testB, JPEG files the test writes), so their real-photo part loads the
photos through the real reader, trains, and measures FID/KID through the real code path, with the ToyFaces
probe's features standing in for Inception's (``FID_FEATURES="probe"``: no download here).
"""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image

from anime_lib.course import run_course
from anime_lib.data import toyfaces as tf
from anime_lib.notebook_meta import parameter_names, read_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
#: Parameters that set how much a lesson does, not what it does: cut to the smoke profile's values.
BUDGET = re.compile(r"STEPS$|^N_(TRAIN|EVAL|MONITOR|SNAPSHOTS|PROBE_EVAL|ANIME|SMALL)$|_EVERY$|BATCH_SIZE$|REPEATS$"
                    r"|^PROBE_(TRAIN_N|EPOCHS)$|^(NGF|NDF|WIDTH|CHANNELS)$")
#: ... and these further, to at most: the measurements run at the gpu profile's image size.
CAPS = {"N_EVAL": 24, "N_MONITOR": 16, "N_TRAIN": 64, "N_PROBE_EVAL": 32}
#: Images per folder of the stand-in photo dataset.
PHOTOS = {"trainA": 40, "trainB": 40, "testA": 12, "testB": 12}


def _gpu_budget():
    spec = importlib.util.spec_from_file_location("gpu_budget", ROOT / "benchmarks" / "gpu_budget.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def cut_budgets(notebook: str) -> dict[str, object]:
    """The parameters that run ``notebook``'s gpu code path in seconds: each budget parameter at the smoke
    profile's value where that is smaller than the gpu profile's; every other setting stays the gpu profile's."""
    gb = sys.modules.get("gpu_budget") or _gpu_budget()
    gpu, smoke = gb.gpu_params(notebook, "gpu").values, gb.gpu_params(notebook, "smoke").values
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    cut = {k: v for k, v in smoke.items() if BUDGET.search(k) and number(v) and number(gpu.get(k)) and v < gpu[k]}
    for k, cap in CAPS.items():
        if number(gpu.get(k)):
            cut[k] = min(cut.get(k, gpu[k]), cap)
    return cut


def test_cut_budgets_keep_the_gpu_settings_and_cut_only_amounts():
    cut = cut_budgets("04_cyclegan.ipynb")
    assert cut["N_STEPS"] < 100 and cut["N_TRAIN"] <= 256 and "CHECKPOINT_EVERY" in cut
    assert cut["NGF"] < 64 and cut["N_EVAL"] <= CAPS["N_EVAL"]
    assert not {"IMG_SIZE", "N_BLOCKS", "USE_AMP", "NORM", "UPSAMPLING"} & set(cut)  # what the gpu path *is* stays
    assert "FEATURES" not in cut_budgets("07_cartoongan.ipynb") and "N_INIT_STEPS" in cut_budgets("07_cartoongan.ipynb")


def test_every_lesson_ends_with_a_real_photo_part():
    """Each lesson (not its optional deep dive) has the three parameters of its real-photo part."""
    lessons = [nb for nb in NOTEBOOKS if "deep_dive" not in nb]
    assert len(lessons) >= 9
    for notebook in lessons:
        names = parameter_names(ROOT / "notebooks" / notebook)
        assert {"REAL_DATA", "FID_FEATURES"} <= set(names), f"{notebook} has no real-photo part"


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    """A folder in the selfie2anime layout: ToyFaces renders (64 px) saved as JPEG, photos in A, anime in B."""
    root = tmp_path_factory.mktemp("photos") / "my_selfie2anime"
    for sub, n in PHOTOS.items():
        domain = "human" if sub.endswith("A") else "anime"
        split = "train" if sub.startswith("train") else "test"
        folder = root / sub
        folder.mkdir(parents=True)
        faces = tf.toyfaces(domain, n=n, size=64, split=split, seed=3)
        for i in range(n):
            array = faces.images[i].permute(1, 2, 0).numpy().astype(np.uint8)
            Image.fromarray(array).save(folder / f"{i:04d}.jpg", quality=90)
    return root


def _rows(out: Path) -> list[dict]:
    rows = []
    for path in out.rglob("metrics.json"):
        rows += json.loads(path.read_text())["rows"]
    return rows


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_the_gpu_path_and_the_real_photo_part_run(notebook: str, photo_folder: Path, tmp_path: Path):
    names = parameter_names(ROOT / "notebooks" / notebook)
    real = "REAL_DATA" in names
    params = cut_budgets(notebook) | ({"REAL_DATA": str(photo_folder), "FID_FEATURES": "probe"} if real else {})
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbformat.write(read_notebook(ROOT / "notebooks" / notebook), str(folder / notebook))
    summary = run_course("gpu", notebook[:2], tmp_path / "run", folder, timeout=600, params=params, progress=False)
    (entry,) = summary["notebooks"]
    assert entry["status"] == "ok", entry["error"]
    if not real:
        return
    rows = [r for r in _rows(tmp_path / "run") if r.get("dataset") == str(photo_folder)]
    assert rows, f"{notebook} wrote no rows for the real photos"
    measured = [r for r in rows if r.get("fid") is not None and r.get("kid") is not None]
    assert measured and all(np.isfinite(r["fid"]) for r in measured), rows
    assert all(r["toy_fid"] is None and r["gt_l1"] is None for r in rows)  # no ground truth on photos: never invented
