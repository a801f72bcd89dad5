"""Profiles, notebook parameters, paths and devices: one place for every setting a lesson resolves.

A lesson's ``parameters`` cell holds UPPER_CASE constants. ``None`` (or ``"auto"``) means
"take the profile's default"; anything else, in particular a value injected by papermill,
always wins over the profile.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

# The repository's public address. Colab badges and install cells are generated from it
# (scripts/sync_notebooks.py) and tests/test_notebooks_meta.py checks that they agree.
REPO_URL = "https://github.com/anime-face-course/human2anime"
REPO_BRANCH = "main"

PROFILES = ("smoke", "cpu", "gpu")

#: Settings shared by every lesson unless the lesson's own table overrides them. Every profile trains on ToyFaces,
#: which gives each lesson its ground truth and the probe's metrics; ``DATASET = "selfie2anime"`` (or a folder with
#: trainA/trainB/testA/testB) in a notebook's parameters trains on real faces instead. gpu: a Colab GPU (T4 class),
#: 128 px (a lesson whose models are too heavy for its budget at 128 px uses 64 px), at most about 15 minutes of
#: training per lesson (``benchmarks/gpu_budget.py`` estimates them); 3,400 training faces per domain, as many as
#: selfie2anime has.
BASE_DEFAULTS: dict[str, dict[str, Any]] = {
    "smoke": {"DATASET": "toyfaces", "IMG_SIZE": 32, "BATCH_SIZE": 16, "N_TRAIN": 256, "N_EVAL": 128},
    "cpu": {"DATASET": "toyfaces", "IMG_SIZE": 64, "BATCH_SIZE": 32, "N_TRAIN": 8000, "N_EVAL": 1000},
    "gpu": {"DATASET": "toyfaces", "IMG_SIZE": 128, "BATCH_SIZE": 16, "N_TRAIN": 3400, "N_EVAL": 500},
}


def resolve_profile(profile: str | None = "auto") -> str:
    """Return the concrete profile name.

    "auto" (or None) resolves to the ANIME_LIB_PROFILE environment variable if set, else "gpu"
    when CUDA is available, else "cpu".
    """
    if profile is None or str(profile).lower() == "auto":
        env = os.environ.get("ANIME_LIB_PROFILE", "").strip().lower()
        if env:
            profile = env
        else:
            profile = "gpu" if _cuda_available() else "cpu"
    profile = str(profile).lower()
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES} or 'auto'")
    return profile


def profile_reason(profile: str | None = "auto") -> str:
    """A sentence that says why :func:`resolve_profile` chose what it chose."""
    if profile is not None and str(profile).lower() != "auto":
        return f"PROFILE={profile!r} was set explicitly"
    env = os.environ.get("ANIME_LIB_PROFILE", "").strip()
    if env:
        return f"ANIME_LIB_PROFILE={env!r} is set in the environment"
    if _cuda_available():
        return "a CUDA GPU is available"
    return "no GPU was found, so the CPU profile with the ToyFaces dataset is used"


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # torch missing or broken: there is certainly no usable GPU
        return False


#: Types a notebook parameter can have (what papermill can inject). Other UPPER_CASE globals are ignored.
_PARAMETER_TYPES = (type(None), bool, int, float, str, list, tuple, dict, os.PathLike)


@dataclass
class Params:
    """Resolved lesson parameters: attribute access to UPPER_CASE names plus bookkeeping."""

    values: dict[str, Any]
    profile: str
    explicit: set[str] = field(default_factory=set)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)

    def table(self) -> str:
        """A small text table: name, value, and whether it came from the profile or was set."""
        width = max(len(k) for k in self.values)
        lines = [f"profile: {self.profile}"]
        for k, v in self.values.items():
            src = "set" if k in self.explicit else f"{self.profile} default"
            lines.append(f"  {k:<{width}} = {v!r:<24} ({src})")
        return "\n".join(lines)


def resolve_params(
    given: Mapping[str, Any],
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
) -> Params:
    """Merge a notebook's parameters with its profile defaults.

    ``given`` is usually ``globals()`` of the notebook: every UPPER_CASE name in it is a parameter.
    ``defaults`` maps profile name -> {NAME: value}; it is layered over :data:`BASE_DEFAULTS`.
    A given value of None or "auto" is replaced by the profile default; any other given value wins.
    DATASET="auto" means the profile's dataset: ToyFaces in every profile (:data:`BASE_DEFAULTS`).
    """
    profile = resolve_profile(given.get("PROFILE", "auto"))
    merged: dict[str, Any] = dict(BASE_DEFAULTS[profile])
    if defaults:
        for name, table in defaults.items():
            if name not in PROFILES:
                raise ValueError(f"defaults has unknown profile {name!r}")
        merged.update(defaults.get(profile, {}))
    values: dict[str, Any] = {}
    explicit: set[str] = set()
    names = [k for k in given if k.isupper() and not k.startswith("_")]
    library = _library_constants()
    for k in names:
        v = given[k]
        if not isinstance(v, _PARAMETER_TYPES):
            continue  # a module, function or Params object defined in the notebook is not a parameter
        if any(v is obj for obj in library.get(k, ())):
            continue  # a constant imported from anime_lib (BETTER, DIRECTIONS, ...) is not a parameter
        if v is None or (isinstance(v, str) and v.lower() == "auto" and k != "PROFILE"):
            values[k] = merged.get(k)
        else:
            values[k] = v
            explicit.add(k)
    for k, v in merged.items():
        values.setdefault(k, v)
    values["PROFILE"] = profile
    if str(values.get("DATASET", "auto")).lower() == "auto":
        values["DATASET"] = merged["DATASET"]
    return Params(values=values, profile=profile, explicit=explicit)


def _library_constants() -> dict[str, list[Any]]:
    """UPPER_CASE attributes of every loaded anime_lib module: name -> the objects (to recognise imports)."""
    import sys

    found: dict[str, list[Any]] = {}
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "anime_lib" or name.startswith("anime_lib.")):
            continue
        for attr, obj in vars(module).items():
            if attr.isupper() and not attr.startswith("_"):
                found.setdefault(attr, []).append(obj)
    return found


def repo_root() -> Path | None:
    """The repository folder when anime_lib runs from a source checkout (``pip install -e .``), else None."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").exists() and (root / "notebooks").is_dir() else None


#: Where Colab mounts Google Drive (``drive.mount("/content/drive")``); ``$ANIME_LIB_DRIVE`` names another place.
DRIVE_FOLDER = Path("/content/drive/MyDrive")
#: The course's folder inside a mounted Drive: ``runs/`` (outputs, checkpoints) and ``data/`` (datasets).
COURSE_FOLDER_IN_DRIVE = "anime_course"


def drive_root() -> Path | None:
    """The course's folder in a mounted Google Drive (``<Drive>/anime_course``), or None when no Drive is mounted.

    Outputs, checkpoints and downloaded datasets default to it, so they survive a Colab runtime reset and a
    dataset is downloaded once, not once per notebook or per session.
    """
    drive = Path(os.environ.get("ANIME_LIB_DRIVE") or DRIVE_FOLDER).expanduser()
    return drive / COURSE_FOLDER_IN_DRIVE if drive.is_dir() else None


def data_root() -> Path:
    """Where datasets land (created on demand): $ANIME_LIB_DATA; else ``anime_course/data`` in a mounted Google
    Drive (:func:`drive_root`); else the checkout's data/ folder, so notebooks run from notebooks/ and scripts
    run from the top share one cache; else ./data."""
    env = os.environ.get("ANIME_LIB_DATA")
    repo, drive = repo_root(), drive_root()
    root = (Path(env).expanduser() if env else drive / "data" if drive else repo / "data" if repo else Path("data"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def get_device(prefer: str | None = None):
    """torch.device: `prefer` if given, else cuda when available, else cpu."""
    import torch

    if prefer:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) for repeatable runs."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def out_dir(path: str | os.PathLike | None, lesson: str) -> Path:
    """The lesson's output folder (metrics.json, checkpoints, figures).

    Default: ``anime_course/runs/<lesson>`` in a mounted Google Drive (:func:`drive_root`; it says so, since
    there the checkpoints survive a Colab runtime reset), else runs/local/<lesson> in the checkout (or in the
    working folder when installed from git), so that re-running a notebook finds its checkpoints again.
    """
    drive = None if path else drive_root()
    p = Path(path) if path else drive / "runs" / lesson if drive else (repo_root() or Path(".")) / "runs" / "local" / lesson
    p.mkdir(parents=True, exist_ok=True)
    if drive:
        print(f"outputs and checkpoints: {p} (in Google Drive: they survive a runtime reset, and running this "
              f"notebook again continues from its checkpoints)")
    return p


def environment_report(out: str | os.PathLike | None = None, profile: str | None = "auto") -> str:
    """The lines to paste into a bug report: versions, device, profile, data and output folders, optional parts."""
    import importlib.util
    import platform

    import cv2
    import matplotlib
    import torch
    import torchvision

    import anime_lib
    from anime_lib.widgets import widgets_available

    device = get_device()
    gpu = f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else ""
    haar = Path(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
    lines = [
        f"python        {platform.python_version()}",
        f"torch         {torch.__version__}   torchvision {torchvision.__version__}",
        f"opencv        {cv2.__version__}   numpy {np.__version__}   matplotlib {matplotlib.__version__}",
        f"anime_lib     {anime_lib.__version__}",
        f"device        {device}{gpu}; {torch.get_num_threads()} CPU threads",
        f"profile       {resolve_profile(profile)}: {profile_reason(profile)}",
        f"data root     {data_root().resolve()}  (set ANIME_LIB_DATA to move it)",
    ]
    if out is not None:
        lines.append(f"outputs       {Path(out).resolve()}")
    lines += [
        f"Haar cascades {'found' if haar.exists() else 'MISSING: install opencv-python-headless>=4.8,<5'}",
        f"animeface     {'installed' if importlib.util.find_spec('animeface') else 'not installed (optional)'}",
        f"live widgets  {widgets_available()}",
    ]
    return "\n".join(lines)
