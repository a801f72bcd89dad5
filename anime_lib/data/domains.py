"""One call that gives a lesson its two domains, whatever DATASET says.

``load_domains("toyfaces", ...)`` renders ToyFaces (with ground truth); any registry dataset with
trainA/trainB and testA/testB folders (selfie2anime, or a local folder) is read from disk. Either way
the lesson gets, per domain ("human" = A, "anime" = B), a set with the same small interface:
``len(s)``, ``s.images`` (uint8), ``s.tensor(idx)`` in [-1, 1], ``s.unit(idx)`` in [0, 1], ``s.domain``.
Only ToyFaces sets also have ``records`` and ``counterpart()``, which the ground-truth metrics need.

:func:`load_real_photos` is the loader of every lesson's optional last part, "now on real photos": the same
sets, or None (with what to do) when the part is switched off or the photos cannot be had, so a refused
download never stops a lesson that has already run on ToyFaces.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from anime_lib.data import toyfaces as tf

DOMAIN_FOLDERS = {"human": "A", "anime": "B"}  # selfie2anime: A = selfies, B = anime faces


@dataclass
class ImageSet:
    """Images of one domain read from disk: uint8 (N, 3, H, W), no ground truth."""

    images: torch.Tensor
    domain: str
    size: int
    files: list

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i].float().div(127.5).sub(1)

    def tensor(self, idx=None) -> torch.Tensor:
        """Float images in [-1, 1], shape (N, 3, H, W)."""
        x = self.images if idx is None else self.images[idx]
        return x.float().div(127.5).sub(1)

    def unit(self, idx=None) -> torch.Tensor:
        """Float images in [0, 1] (for metrics and plots)."""
        x = self.images if idx is None else self.images[idx]
        return x.float().div(255)


@dataclass
class Domains:
    """Train and test sets of both domains. ``has_ground_truth``: True for ToyFaces."""

    dataset: str
    train: dict
    test: dict
    size: int

    @property
    def has_ground_truth(self) -> bool:
        return self.dataset == "toyfaces"

    def __repr__(self) -> str:
        parts = ", ".join(f"{d}: {len(self.train[d])} train / {len(self.test[d])} test" for d in tf.DOMAINS)
        return f"Domains({self.dataset!r}, {self.size} px, {parts})"


def load_domains(dataset: str = "toyfaces", size: int = 64, n_train: int = 8000, n_eval: int = 1000,
                 seed: int = 0, balanced: bool = False, root=None, setting: str = "DATASET") -> Domains:
    """Both domains of ``dataset`` at ``size`` px.

    ToyFaces: ``n_train`` faces per domain from the train split and ``n_eval`` from the test split
    (with counterparts), natural (biased) frequencies unless ``balanced``. Other datasets: prepared
    through :mod:`anime_lib.data.registry` (downloads on request; a clear DownloadError offline) or
    read from a folder path with that layout, at most ``n_train`` / ``n_eval`` images per domain. ``setting``:
    the parameter's name in the error messages (a lesson's real-photo part reads ``REAL_DATA``).
    """
    if dataset == "toyfaces":
        train = {d: tf.toyfaces(d, n=n_train, size=size, split="train", seed=seed, balanced=balanced) for d in tf.DOMAINS}
        test = {d: tf.toyfaces(d, n=n_eval, size=size, split="test", seed=seed, balanced=balanced, with_counterpart=True)
                for d in tf.DOMAINS}
        return Domains(dataset, train, test, size)
    from anime_lib.data import registry

    # DATASET may also be the path of your own folder with trainA/trainB/testA/testB inside
    folder = Path(dataset).expanduser()
    if not folder.is_dir():
        folder = registry.prepare(_dataset_name(dataset, setting), root=root)
    train, test = {}, {}
    for dom, letter in DOMAIN_FOLDERS.items():
        for split, out, n in (("train", train, n_train), ("test", test, n_eval)):
            sub = folder / f"{split}{letter}"
            if not sub.is_dir():
                raise ValueError(f"{folder} has no {split}{letter}/ folder; translation lessons need the "
                                 "trainA/trainB/testA/testB layout (A = photos, B = anime)")
            out[dom] = read_folder(sub, dom, size, limit=n, seed=seed)
    return Domains(dataset, train, test, size)


#: Values of a lesson's ``REAL_DATA`` parameter that switch its real-photo part off.
REAL_DATA_OFF = (None, False, "", "none", "off")


def load_real_photos(real_data, size: int, n_train: int = 3400, n_eval: int = 100, seed: int = 0,
                     root=None) -> Domains | None:
    """Both domains of real photos for a lesson's optional "now on real photos" part, or None.

    ``real_data``: ``"selfie2anime"`` (downloaded once into :func:`anime_lib.config.data_root`, which is the
    course folder of a mounted Google Drive in Colab, so the next lesson and the next session find it), any
    registry dataset with the trainA/trainB/testA/testB layout, or the path of your own folder with that
    layout (A = photos, B = anime faces). Off (None, ``"none"``): prints how to switch the part on and
    returns None. When the photos cannot be had (a refused download, a wrong folder, no readable image) it
    prints the reason and what to do (where to put a manually downloaded archive) and returns None: the
    lesson has run on ToyFaces and goes on. Other errors (a bug) are raised as usual.
    """
    from anime_lib.data.download import DownloadError
    from anime_lib.data.images import ImageError

    if real_data in (None, False) or str(real_data).strip().lower() in REAL_DATA_OFF:
        print('REAL_DATA is not set, so the real-photo part is skipped. Set REAL_DATA = "selfie2anime" (about '
              "400 MB, downloaded once; in Colab into your Drive when it is mounted) or the path of a folder with "
              "trainA/trainB/testA/testB inside (A: photos, B: anime faces) and run this section again.")
        return None
    if str(real_data).lower() == "toyfaces":
        print('REAL_DATA names real photos ("selfie2anime" or a folder); ToyFaces is what the lesson above '
              "already used, so the real-photo part is skipped.")
        return None
    try:
        real = load_domains(str(real_data), size, n_train, n_eval, seed=seed, root=root, setting="REAL_DATA")
    except (DownloadError, ImageError, OSError, ValueError) as exc:
        print(f"The real photos could not be loaded ({type(exc).__name__}):\n{exc}\n"
              "The lesson above ran on ToyFaces and its results stand; this part is skipped until the photos "
              "are there (then run this section again).")
        return None
    print(f"real photos: {real}")
    return real


def _dataset_name(dataset: str, setting: str = "DATASET") -> str:
    """``dataset`` if it names a registry dataset; a clear error for a missing folder or an unknown name."""
    import difflib

    from anime_lib.data import registry
    from anime_lib.data.images import FolderNotFoundError, missing_path_hint

    names = registry.list_datasets()
    if dataset in names:
        return dataset
    looks_like_path = any(sep in dataset for sep in ("/", "\\", os.sep)) or dataset.startswith(("~", "."))
    if looks_like_path or Path(dataset).expanduser().exists():
        what = "it is a file, not a folder" if Path(dataset).expanduser().exists() else \
            f"nothing exists there{missing_path_hint(dataset)}"
        raise FolderNotFoundError(
            f"{setting} {dataset!r} is not a folder ({what}); give a folder with trainA/trainB/testA/testB "
            f"inside, \"toyfaces\" or one of {names}"
        )
    close = difflib.get_close_matches(dataset, ["toyfaces", *names], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(
        f"unknown {setting} {dataset!r}{hint}; choose \"toyfaces\", one of {names} or the path of a folder "
        "with trainA/trainB/testA/testB inside"
    )


def read_folder(folder, domain: str, size: int, limit: int | None = None, seed: int = 0) -> ImageSet:
    """Every image of ``folder`` (at most ``limit``, a seeded random choice) as a uint8 ImageSet.

    Files go through :func:`anime_lib.data.images.load_image` (EXIF rotation, transparency, CMYK,
    16-bit) and a centre crop; unreadable files (corrupt, broken links, too large) are skipped and
    named in a printed note, never a crash halfway through.
    """
    from anime_lib.data.images import ImageError, load_image, resize_and_crop
    from anime_lib.data.registry import list_images

    files = list_images(folder)
    if not files:
        raise ValueError(f"{folder} holds no images")
    if limit is not None and len(files) > limit:
        pick = np.random.default_rng(seed).choice(len(files), size=limit, replace=False)
        files = [files[i] for i in sorted(pick)]
    out, kept, bad = [], [], []
    for f in tqdm(files, desc=f"reading {Path(folder).name}", leave=False):
        try:
            img = resize_and_crop(load_image(f, max_side=None), size)
        except ImageError as exc:
            bad.append(str(exc))
            continue
        out.append(torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1))
        kept.append(f)
    if not out:
        raise ValueError(f"none of the {len(files)} files in {folder} could be read as an image: {bad[0]}")
    if bad:
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        print(f"skipped {len(bad)} unreadable file(s) in {folder}: {'; '.join(bad[:3])}{more}")
    return ImageSet(torch.stack(out), domain, size, kept)
