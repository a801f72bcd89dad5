"""One home for the weights the lessons load: files committed in the repository and public checkpoints
downloaded on request, each with its size and SHA-256, and one loader for every weights file.

* :data:`WEIGHTS` lists every file by name: where it lives (``repo_path`` inside the package, or a ``url``
  fetched into the cache folder), its size in bytes, its SHA-256 and what it is. A public file whose size and
  hash are published nowhere (AnimeGANv2's face_paint weights) is registered with ``sha256=None``: it is
  checked for a minimum size on download and *pinned* then (its size and hash written beside it), and every
  later use is checked against that pin.
* :func:`weights_path` returns a verified local path (downloading a public checkpoint on first use, with
  the checks of :mod:`anime_lib.data.download`); a file whose size or hash is wrong is named, never used.
* :func:`load_weights_file` is the one way the course reads a ``.pt`` file (checkpoints, the probe,
  pretrained models): ``torch.load(weights_only=True)``, so a file can hold tensors and plain values
  only, and every failure is a :class:`WeightsError` that names the file and says what to do.
* :func:`pretrained_for` is what a lesson's ``USE_PRETRAINED`` switch asks: the shipped weights of one
  trained model for a profile, or None (then the lesson trains it).
* :data:`MANIFEST` (``weights/shipped.json``) lists the lessons' shipped models, written by
  ``python -m anime_lib.pretrain`` (:mod:`anime_lib.pretrain`) with each model's steps, training time and
  figures; every entry is registered here. :func:`shipped_info` returns an entry.

Loading never runs code from a file: a file holding other Python objects is refused, and the message says
so without suggesting ``weights_only=False``.
"""
from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from anime_lib.data.download import sha256_of

__all__ = ["WeightsError", "WeightsFile", "WEIGHTS", "MANIFEST", "read_shipped", "register", "weights_path", "load_weights_file",
           "pretrained_for", "shipped_info", "describe"]

PACKAGE_ROOT = Path(__file__).resolve().parent
#: The shipped models of the lessons (written by ``python -m anime_lib.pretrain``).
MANIFEST = PACKAGE_ROOT / "weights" / "shipped.json"


class WeightsError(RuntimeError):
    """A weights or checkpoint file is missing, corrupt, of the wrong size or hash, or unsafe to load."""


@dataclass(frozen=True)
class WeightsFile:
    """One weights file. ``repo_path``: relative to the ``anime_lib`` package (committed files);
    ``url``: a public checkpoint, fetched into ``cache_dir()/weights/<filename>`` on request.
    ``lesson`` and ``profile`` say which lesson's trained model it is (for :func:`pretrained_for`).
    ``size`` and ``sha256`` None (a public file nobody publishes them for): ``min_size`` bytes at least, and the
    values found on the first download are pinned in ``<file>.pin`` and checked from then on."""

    name: str
    description: str
    size: int | None
    sha256: str | None
    repo_path: str | None = None
    url: str | None = None
    filename: str | None = None
    lesson: str | None = None
    profile: str | None = None
    made_by: str = ""
    min_size: int | None = None

    def __post_init__(self) -> None:
        if (self.repo_path is None) == (self.url is None):
            raise ValueError(f"{self.name}: give exactly one of repo_path (a committed file) and url (a download)")
        if self.sha256 is None and self.url is None:
            raise ValueError(f"{self.name}: a committed file needs its size and sha256")


WEIGHTS: dict[str, WeightsFile] = {}


def register(entry: WeightsFile) -> WeightsFile:
    """Add ``entry`` to :data:`WEIGHTS` (a name is registered once)."""
    if entry.name in WEIGHTS and WEIGHTS[entry.name] != entry:
        raise ValueError(f"weights {entry.name!r} are registered already")
    WEIGHTS[entry.name] = entry
    return entry


register(WeightsFile(
    name="probe",
    description="the ToyFaces probe (the instrument of every metric), 460k parameters",
    size=1_864_569, sha256="0a124892f4058e4a75500d86d28811d7d854d844327e8e483fd3e95aef55ec42",
    repo_path="weights/probe.pt", made_by="python -m anime_lib.probe",
))


#: AnimeGANv2's public generators (the PyTorch port's plain state_dicts, about 8.6 MB each), loaded by lesson 08
#: with :func:`anime_lib.models.animegan.load_public_generator`. Their sizes and hashes are not published: each file is
#: pinned on its first download (every parameter alone takes 8,574,208 bytes, so a smaller file is truncated).
for _name, _what in (("face_paint_512_v2", "face portraits at 512 px, v2"), ("face_paint_512_v1", "face portraits at 512 px, v1"),
                     ("celeba_distill", "face portraits, distilled on CelebA"), ("paprika", "the Paprika film's style")):
    register(WeightsFile(
        name=f"animegan2/{_name}", description=f"AnimeGANv2 generator (PyTorch port): {_what}", size=None, sha256=None,
        url=f"https://github.com/bryandlee/animegan2-pytorch/raw/main/weights/{_name}.pt", min_size=8_574_208,
        made_by="bryandlee/animegan2-pytorch (converted from the authors' TensorFlow weights)",
    ))
del _name, _what


def read_shipped(path: Path = MANIFEST) -> dict[str, dict[str, Any]]:
    """The entries of a shipped-models manifest (default :data:`MANIFEST`), by name; {} when there is none."""
    return json.loads(Path(path).read_text(encoding="utf-8")) if Path(path).exists() else {}


def _register_shipped() -> None:
    entries = read_shipped()
    for name, e in entries.items():
        register(WeightsFile(name=name, description=e.get("description", ""), size=int(e["size"]),
                             sha256=e["sha256"], repo_path=f"weights/{e['file']}", lesson=e["lesson"],
                             profile=e["profile"], made_by=e.get("made_by", "")))


_register_shipped()


def shipped_info(name: str) -> dict[str, Any]:
    """The manifest entry of the shipped model ``name`` (steps, train_seconds, figures, made_by, date ...)."""
    entries = read_shipped()
    if name not in entries:
        raise WeightsError(f"no shipped model named {name!r}; shipped: {', '.join(sorted(entries)) or 'none'}")
    return entries[name]


def cache_dir() -> Path:
    """Where downloaded weights are kept: ``$ANIME_LIB_CACHE``, else ``~/.cache/anime_lib``."""
    return Path(os.environ.get("ANIME_LIB_CACHE", Path.home() / ".cache" / "anime_lib"))


def _pin_path(path: Path) -> Path:
    return path.with_name(path.name + ".pin")


def _expected(entry: WeightsFile, path: Path) -> tuple[int, str, str]:
    """(size, sha256, where the values come from) of ``entry``: the registry, or the pin of its first download."""
    if entry.sha256 is not None and entry.size is not None:
        return entry.size, entry.sha256, "the registry"
    pin = _pin_path(path)
    try:
        size, digest = pin.read_text(encoding="utf-8").split()
        return int(size), digest, f"its pin {pin.name} (written at its first download)"
    except (OSError, ValueError):
        raise WeightsError(f"weights {entry.name!r} at {path} have no pin (or an unreadable one): a file placed there by "
                           f"hand cannot be checked. {_recover(entry, path)}") from None


def _write_pin(entry: WeightsFile, path: Path) -> None:
    """Record the size and SHA-256 of a fresh download (already checked for ``min_size``) of an entry without
    published values."""
    size, digest = path.stat().st_size, sha256_of(path)
    _pin_path(path).write_text(f"{size} {digest}\n", encoding="utf-8")
    print(f"weights {entry.name!r}: no published size or hash; pinned this download ({size:,} bytes, sha256 "
          f"{digest}) in {_pin_path(path).name}; every later use is checked against it")


def _check(entry: WeightsFile, path: Path) -> None:
    size = path.stat().st_size
    expected_size, expected_sha, source = _expected(entry, path)
    if size != expected_size:
        raise WeightsError(f"weights {entry.name!r} at {path} have {size:,} bytes, expected {expected_size:,} ({source}): "
                           f"the file is truncated or another version. {_recover(entry, path)}")
    digest = sha256_of(path)
    if digest != expected_sha:
        raise WeightsError(f"weights {entry.name!r} at {path} have sha256 {digest[:16]}..., expected {expected_sha[:16]}... "
                           f"({source}): the file is corrupt or another version. {_recover(entry, path)}")


def _recover(entry: WeightsFile, path: Path) -> str:
    if entry.repo_path is not None:
        how = f"recreate it with `{entry.made_by}`" if entry.made_by else "check out the file again"
        return f"Restore it from the repository (`git checkout -- anime_lib/{entry.repo_path}`) or {how}."
    pin = " (and its .pin)" if entry.sha256 is None else ""
    return (f"Delete {path}{pin} and run again to download it, or put a copy downloaded in a browser from {entry.url} "
            f"there{'' if entry.sha256 else ' and write its size and sha256 into ' + _pin_path(path).name}.")


def weights_path(name: str, download: bool = True) -> Path:
    """A local, verified (size and SHA-256) path of the registered weights ``name``.

    Committed files are read from the package; public checkpoints are downloaded into :func:`cache_dir` on
    first use (``download=False``: raise instead). Raises :class:`WeightsError` naming the file and the fix.
    """
    if name not in WEIGHTS:
        raise WeightsError(f"no weights named {name!r}; known: {', '.join(sorted(WEIGHTS)) or 'none'}")
    entry = WEIGHTS[name]
    if entry.repo_path is not None:
        path = PACKAGE_ROOT / entry.repo_path
        if not path.exists():
            raise WeightsError(f"weights {name!r} are missing: {path} does not exist. {_recover(entry, path)}")
    else:
        path = cache_dir() / "weights" / (entry.filename or Path(entry.url).name)
        if not path.exists():
            if not download:
                raise WeightsError(f"weights {name!r} are not downloaded yet ({path}); call weights_path({name!r}) "
                                   f"with download=True where the network works")
            from anime_lib.data.download import DownloadError, fetch_url

            try:
                fetch_url(entry.url, path, sha256=entry.sha256, min_bytes=entry.size or entry.min_size)
            except DownloadError as exc:
                raise WeightsError(f"could not download weights {name!r}: {exc}") from exc
            if entry.sha256 is None:
                _write_pin(entry, path)
    _check(entry, path)
    return path


def load_weights_file(path: str | os.PathLike, map_location: Any = "cpu", what: str = "weights file",
                      advice: str = "delete it") -> Any:
    """Read a ``.pt`` file with ``torch.load(weights_only=True)``: tensors, state dicts and plain values only.

    Every failure is a :class:`WeightsError` naming the file: missing, a folder, empty, truncated or not a
    torch file, or holding Python objects that a safe load refuses (it was not written by this course's code;
    loading it anyway could run code hidden in it, so the course never does).
    """
    path = Path(path)
    noun = what.split()[-1]
    if not path.exists():
        raise WeightsError(f"{what} {path} does not exist")
    if path.is_dir():
        raise WeightsError(f"{what} {path} is a folder, not a file")
    if path.stat().st_size == 0:
        raise WeightsError(f"{what} {path} is empty (0 bytes): a save was interrupted; {advice}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" in str(exc).lower():  # a pickled class or function, not a tensor or plain value
            raise WeightsError(
                f"{what} {path} holds Python objects other than tensors and plain values, which a safe load refuses "
                f"(loading them could run code hidden in the file). It was not written by this course's code: use "
                f"a file saved as a state_dict; {advice}") from None
        raise WeightsError(f"{what} {path} is corrupt or not a {noun} (it is not a readable torch file); {advice}") from None
    except Exception as exc:  # truncated zip, random bytes, ...
        raise WeightsError(f"{what} {path} is corrupt or not a {noun} ({type(exc).__name__}: "
                           f"{_first_line(exc)}); {advice}") from None


def _first_line(exc: BaseException, limit: int = 160) -> str:
    lines = str(exc).strip().splitlines()
    line = lines[0] if lines else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def pretrained_for(lesson: str, model: str, profile: str) -> WeightsFile | None:
    """The registered weights of ``model`` trained by ``lesson`` for ``profile`` (or None: none shipped)."""
    for entry in WEIGHTS.values():  # shipped models are named <lesson>/<model>/<profile>
        if entry.lesson == lesson and entry.profile == profile and entry.name.split("/")[-2:] == [model, profile]:
            return entry
    return None


def describe() -> str:
    """A Markdown table of every registered weights file."""
    lines = ["| name | what | size | sha256 | source |", "|---|---|---|---|---|"]
    for e in WEIGHTS.values():
        source = f"anime_lib/{e.repo_path}" if e.repo_path else e.url
        size = f"{e.size / 1e6:.1f} MB" if e.size else f">= {(e.min_size or 0) / 1e6:.1f} MB"
        digest = f"{e.sha256[:12]}..." if e.sha256 else "pinned at first download"
        lines.append(f"| {e.name} | {e.description} | {size} | {digest} | {source} |")
    return "\n".join(lines)
