"""The real datasets of the course: where they come from, what they must look like, how to get them.

Each dataset is a small frozen :class:`DatasetSpec`. ``spec.prepare()`` downloads the archive
(unless it is already at ``<root>/<archive>``, for example because you downloaded it in a
browser), extracts it safely, and checks that every expected folder holds the expected number
of images. A dataset that is already present and complete is returned without any download.

Also here: parsers for CelebA's annotation files and :func:`local_folder`, which turns a folder
of your own images (trainA/trainB/testA/testB, or any two folders) into an
:class:`UnpairedImageFolder` dataset.

Nothing is downloaded at import time.
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from anime_lib.config import data_root
from anime_lib.data.download import JUNK_NAMES, DownloadError, extract_into, fetch_drive, fetch_url, read_manifest
from anime_lib.data.images import FolderNotFoundError, missing_path_hint, to_tensor

__all__ = [
    "IMAGE_EXTENSIONS",
    "DatasetSpec",
    "REGISTRY",
    "list_datasets",
    "describe",
    "get_spec",
    "prepare",
    "count_images",
    "list_images",
    "parse_celeba_attributes",
    "parse_celeba_landmarks",
    "parse_celeba_partition",
    "CELEBA_LANDMARK_NAMES",
    "CELEBA_PARTITIONS",
    "UnpairedImageFolder",
    "local_folder",
    "with_counts",
]

PathLike = Union[str, os.PathLike]  # typing.Union: requires-python is >= 3.9

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp"})


# --------------------------------------------------------------------------------------------
# Listing and counting images
# --------------------------------------------------------------------------------------------
def _hidden(name: str) -> bool:
    return name.startswith(".") or name in JUNK_NAMES


def list_images(folder: PathLike) -> list[Path]:
    """All image files (.jpg/.jpeg/.png/.webp) under ``folder``, recursively, sorted by relative path.

    Hidden files and folders (``.ipynb_checkpoints``, ``.DS_Store``, ``._*``) and ``__MACOSX``
    are skipped, as is anything that is not an image.
    """
    folder = Path(folder)
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not _hidden(d)]
        for f in filenames:
            if not _hidden(f) and Path(f).suffix.lower() in IMAGE_EXTENSIONS:
                found.append(Path(dirpath) / f)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def count_images(folder: PathLike) -> int:
    """Number of image files under ``folder`` as :func:`list_images` sees them (0 if missing)."""
    folder = Path(folder)
    return len(list_images(folder)) if folder.is_dir() else 0


# --------------------------------------------------------------------------------------------
# Dataset specifications
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetSpec:
    """One downloadable dataset and the layout it must have once extracted.

    Attributes:
        name: registry key; the dataset is extracted to ``<root>/<name>``.
        description: one sentence on what the images are.
        archive: file name of the downloaded archive, stored at ``<root>/<archive>``.
        layout: sub-folder (relative to the dataset folder) -> expected number of images in it
            (counted recursively).
        exact: True: the counts must match exactly; False: they are minimums.
        drive_id: Google Drive file id of the archive (downloaded with gdown).
        drive_folder_id: Google Drive folder id, for datasets published as a folder of files.
        url: a direct HTTP(S) URL of the archive; preferred over ``drive_id`` when both exist.
        kaggle: Kaggle dataset slug ("owner/name"), for manual or ``kaggle`` CLI downloads.
        homepage: where the dataset is documented.
        terms: licence or terms of use, in a sentence.
        size: human readable download size.
        sha256: SHA-256 hex digest (or prefix) of the archive, when known.
        min_bytes: smallest plausible archive size; smaller downloads are error pages.
    """

    name: str
    description: str
    archive: str
    layout: Mapping[str, int] = field(default_factory=dict, hash=False)
    exact: bool = True
    drive_id: str | None = None
    drive_folder_id: str | None = None
    url: str | None = None
    kaggle: str | None = None
    homepage: str | None = None
    terms: str = "no licence stated; research and teaching use only"
    size: str = "unknown size"
    sha256: str | None = None
    min_bytes: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "layout", MappingProxyType(dict(self.layout)))

    # paths ---------------------------------------------------------------------------------
    def folder(self, root: PathLike | None = None) -> Path:
        """The dataset folder, ``<root>/<name>``; root defaults to :func:`anime_lib.config.data_root`."""
        return _root(root) / self.name

    def archive_path(self, root: PathLike | None = None) -> Path:
        """Where the archive is downloaded to, and where to put one you downloaded by hand."""
        return _root(root) / self.archive

    # checking ------------------------------------------------------------------------------
    def counts(self, folder: PathLike, only: set[Path] | None = None) -> dict[str, int]:
        """Images found in each layout folder under ``folder`` (0 for a missing folder).

        ``only``: count just these files (absolute paths), e.g. the ones an archive brought.
        """
        folder = Path(folder)
        if only is None:
            return {sub: count_images(folder / sub) for sub in self.layout}
        return {sub: sum(p in only for p in list_images(folder / sub)) if (folder / sub).is_dir() else 0
                for sub in self.layout}

    def counts_ok(self, counts: Mapping[str, int]) -> bool:
        """Whether ``counts`` satisfy :attr:`layout` (exactly, or as minimums)."""
        if self.exact:
            return all(counts.get(k, 0) == n for k, n in self.layout.items())
        return all(counts.get(k, 0) >= n for k, n in self.layout.items())

    def locate(self, root: PathLike | None = None) -> Path | None:
        """The folder that holds the complete expected layout, or None.

        Archives often wrap their content in one extra folder (``selfie2anime/trainA``,
        ``img_align_celeba/img_align_celeba``), so the dataset folder and its sub-folders are
        searched up to three levels deep.
        """
        found, _ = self._search(self.folder(root))
        return found

    def _search(self, top: Path, max_depth: int = 3,
                only: set[Path] | None = None) -> tuple[Path | None, dict[str, int] | None]:
        """(complete folder or None, counts of the first candidate that had every sub-folder).

        ``only``: count just these files (see :meth:`counts`).
        """
        if not top.is_dir():
            return None, None
        first_counts: dict[str, int] | None = None
        level = [top]
        for _ in range(max_depth + 1):
            nxt: list[Path] = []
            for d in level:
                if all((d / sub).is_dir() for sub in self.layout):
                    counts = self.counts(d, only)
                    if self.counts_ok(counts):
                        return d, counts
                    first_counts = first_counts or counts
                nxt += sorted(p for p in d.iterdir() if p.is_dir() and not _hidden(p.name))
            level = nxt
        return None, first_counts or self.counts(top, only)

    # getting it ----------------------------------------------------------------------------
    def prepare(
        self,
        root: PathLike | None = None,
        force: bool = False,
        *,
        url: str | None = None,
        progress: bool = True,
    ) -> Path:
        """Make the dataset available and return the folder that holds its layout.

        1. Unless ``force``: if ``<root>/<name>`` already holds the complete layout, return it
           (no network at all).
        2. Unless ``force``: if the archive is already at :meth:`archive_path` (for example
           downloaded in a browser), use it. Otherwise download it from ``url`` if given, else
           :attr:`url`, else Google Drive :attr:`drive_id`.
        3. Extract with :func:`~anime_lib.data.download.extract_into` into ``<root>/<name>`` and
           check every folder's image count. Only files that came from an archive are ever
           replaced or removed there; a file of yours in the way is renamed to ``<name>.kept``
           (a warning says so), everything else of yours stays.

        An archive that cannot be extracted (corrupt, truncated, unsafe) or that holds too few
        images is moved aside to ``<archive>.broken`` (never deleted: it may be your only copy), so
        the next call downloads a fresh one instead of failing on the same file again.

        Raises :class:`DownloadError` (download failed, archive unsafe or corrupt, wrong layout,
        or no automatic source), always with the exact path where a manual copy should go.
        """
        root_path = _root(root)
        folder = self.folder(root_path)
        archive = self.archive_path(root_path)
        if not force:
            found = self.locate(root_path)
            if found is not None:
                return found
        if force or not archive.is_file():
            self._download(archive, url=url, progress=progress)
        source = url or self.url or self.drive_id
        drive = url is None and self.url is None and self.drive_id is not None
        try:
            _, kept = extract_into(archive, folder)
        except DownloadError as exc:
            aside = _move_aside(archive)
            raise DownloadError(
                f"{exc.problem} It was moved to {aside} so that no later call uses it again.",
                dest=archive, source=source, drive=drive, advice=self._retry_advice(aside, url),
            ) from exc
        if kept:
            warnings.warn(
                f"{len(kept)} file(s) of yours in {folder} sat where the archive has files of the same name "
                f"and were renamed, not overwritten: {', '.join(str(k) for k in kept[:3])}"
                f"{' ...' if len(kept) > 3 else ''}",
                stacklevel=2,
            )
        found, counts = self._search(folder)
        if found is None:
            expected = ", ".join(f"{k}: {'' if self.exact else '>= '}{n}" for k, n in self.layout.items())
            got = ", ".join(f"{k}: {n}" for k, n in (counts or {}).items())
            extracted = {folder / rel for rel in read_manifest(folder)}
            from_archive, archive_counts = self._search(folder, only=extracted)
            if from_archive is None:  # the archive itself falls short: incomplete or another dataset
                aside = _move_aside(archive)
                raise DownloadError(
                    f"The archive {archive} was extracted to {folder}, but it does not have the "
                    f"expected layout of {self.name!r}. Expected image counts {{{expected}}}, found "
                    f"{{{got}}}. The archive is incomplete or a different dataset; it was moved to "
                    f"{aside} so that no later call uses it again (the files it brought stay in {folder} "
                    f"until the next extraction replaces them).",
                    dest=archive, source=source, drive=drive, advice=self._retry_advice(aside, url),
                )
            yours = sorted(p for sub in self.layout for p in list_images(from_archive / sub) if p not in extracted)
            raise DownloadError(
                f"The archive {archive} is complete, but {folder} also holds {len(yours)} image(s) that did not "
                f"come from it ({', '.join(str(p.relative_to(folder)) for p in yours[:3])}"
                f"{' ...' if len(yours) > 3 else ''}), so the image counts of {self.name!r} do not match: "
                f"expected {{{expected}}}, found {{{got}}}. Nothing was deleted.",
                dest=archive, source=source, drive=drive,
                advice=f"move your own images out of {from_archive} (for example into a folder next to it) "
                       "and call prepare() again",
            )
        return found

    def _retry_advice(self, aside: Path, url: str | None) -> str:
        if url or self.url or self.drive_id:
            return (f"call prepare() again to download a fresh copy; delete {aside} once you no longer need it "
                    "(a copy you downloaded by hand goes where the next line says)")
        return f"download the archive again (see below); delete {aside} once you no longer need it"

    def _download(self, archive: Path, *, url: str | None, progress: bool) -> Path:
        source = url or self.url
        if source:
            return fetch_url(source, archive, sha256=self.sha256, min_bytes=self.min_bytes, progress=progress)
        if self.drive_id:
            return fetch_drive(self.drive_id, archive, sha256=self.sha256, min_bytes=self.min_bytes, quiet=not progress)
        raise DownloadError(
            f"{self.name!r} cannot be downloaded automatically. {self.manual_steps(archive.parent)}",
            dest=archive,
            source=self.homepage or (f"https://www.kaggle.com/datasets/{self.kaggle}" if self.kaggle else None),
        )

    # explaining ----------------------------------------------------------------------------
    def manual_steps(self, root: PathLike | None = None) -> str:
        """What to do offline, or when the automatic download fails."""
        archive = self.archive_path(root)
        folder = self.folder(root)
        steps = [f"Put the archive at {archive} (zip or tar) and call prepare() again"]
        if self.kaggle:
            steps.append(
                f"on Kaggle: `kaggle datasets download -d {self.kaggle}` (needs a Kaggle API token), "
                f"then rename the zip to {archive}"
            )
        if self.drive_folder_id:
            steps.append(
                f"the files are a Google Drive folder (https://drive.google.com/drive/folders/"
                f"{self.drive_folder_id}); download it with the publisher's script or in a browser, "
                f"zip it, and put the zip at {archive}"
            )
        layout = ", ".join(f"{k}/" for k in self.layout)
        steps.append(f"or extract it yourself so that {folder} contains {layout}")
        return "; ".join(steps) + "."

    def describe(self, root: PathLike | None = None) -> str:
        """A human readable paragraph: what, where from, how big, terms, what to do offline."""
        sources = []
        if self.url:
            sources.append(self.url)
        if self.drive_id:
            sources.append(f"Google Drive file {self.drive_id}")
        if self.drive_folder_id:
            sources.append(f"Google Drive folder {self.drive_folder_id}")
        if self.kaggle:
            sources.append(f"Kaggle {self.kaggle}")
        if self.homepage:
            sources.append(self.homepage)
        layout = ", ".join(
            f"{k}/ {'' if self.exact else '>= '}{n:,} images" for k, n in self.layout.items()
        )
        return (
            f"{self.name}: {self.description} Source: {'; '.join(sources) or 'none'}. "
            f"Download: {self.size}. Expected layout: {layout}. Terms: {self.terms}. "
            f"Offline or when the download fails: {self.manual_steps(root)}"
        )


def _move_aside(path: Path) -> Path:
    """Rename an unusable archive to ``<name>.broken`` (``.broken-2``, ...) and return the new path."""
    aside = path.with_name(path.name + ".broken")
    k = 2
    while aside.exists():
        aside = path.with_name(f"{path.name}.broken-{k}")
        k += 1
    os.replace(path, aside)
    return aside


def _root(root: PathLike | None) -> Path:
    if root is None:
        return data_root()
    p = Path(root).expanduser()
    p.mkdir(parents=True, exist_ok=True)
    return p


REGISTRY: Mapping[str, DatasetSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            DatasetSpec(
                name="selfie2anime",
                description=(
                    "U-GAT-IT's unpaired set of 256x256 selfies (domain A) and anime faces "
                    "(domain B), female faces only."
                ),
                archive="selfie2anime.zip",
                layout={"trainA": 3400, "trainB": 3400, "testA": 100, "testB": 100},
                exact=True,
                drive_id="1xOWj1UVgp6NKMT3HbPhBbtq2A4EDkghF",
                kaggle="arnaud58/selfie2anime",
                homepage="https://github.com/taki0112/UGATIT",
                terms="no licence stated; research and teaching use only",
                size="about 400 MB zip",
                min_bytes=50_000_000,
            ),
            DatasetSpec(
                name="anime_faces",
                description=(
                    "63,632 anime faces of 90-120 px cropped with lbpcascade_animeface, in one flat "
                    "images/ folder."
                ),
                archive="anime_faces.zip",
                layout={"images": 60000},
                exact=False,
                drive_id="1HG7YnakUkjaxtNMclbl2t5sJwGLcHYsI",
                kaggle="splcher/animefacedataset",
                homepage="https://github.com/bchao1/Anime-Face-Dataset",
                terms="for educational purposes only",
                size="about 400 MB",
                min_bytes=50_000_000,
            ),
            DatasetSpec(
                name="celeba",
                description=(
                    "CelebA aligned: 202,599 faces of 10,177 people, 178x218, with 40 binary "
                    "attributes, 5 landmarks and a train/valid/test split."
                ),
                archive="celeba.zip",
                layout={"img_align_celeba": 202599},
                exact=True,
                kaggle="jessicali9530/celeba-dataset",
                homepage="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
                terms="non-commercial research purposes only; never re-host the images",
                size="about 1.4 GB",
                min_bytes=100_000_000,
            ),
            DatasetSpec(
                name="ffhq_thumbs",
                description=(
                    "FFHQ thumbnails: 70,000 faces as 128x128 PNG files in "
                    "thumbnails128x128/NNNNN/ sub-folders of 1,000."
                ),
                archive="ffhq_thumbs.zip",
                layout={"thumbnails128x128": 70000},
                exact=True,
                drive_folder_id="1tg-Ur7d4vk1T8Bn0pPpUSQPxlPGBlGfv",
                homepage="https://github.com/NVlabs/ffhq-dataset",
                terms=(
                    "metadata CC BY-NC-SA 4.0; each image keeps its own Flickr licence "
                    "(non-commercial use)"
                ),
                size="1.95 GB",
                min_bytes=100_000_000,
            ),
        )
    }
)


def list_datasets() -> list[str]:
    """Names of the registered real datasets."""
    return list(REGISTRY)


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` called ``name``; ValueError listing the choices otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list_datasets()}") from None


def describe(name: str, root: PathLike | None = None) -> str:
    """A human readable paragraph about dataset ``name`` (source, size, terms, offline steps)."""
    return get_spec(name).describe(root)


def prepare(
    name: str | DatasetSpec,
    root: PathLike | None = None,
    force: bool = False,
    *,
    url: str | None = None,
    progress: bool = True,
) -> Path:
    """Download, extract and check a dataset; see :meth:`DatasetSpec.prepare`."""
    spec = name if isinstance(name, DatasetSpec) else get_spec(name)
    return spec.prepare(root, force, url=url, progress=progress)


def with_counts(spec: DatasetSpec, layout: Mapping[str, int], **changes: object) -> DatasetSpec:
    """A copy of ``spec`` with another layout (and other fields), e.g. small counts for a test."""
    return dataclasses.replace(spec, layout=dict(layout), **changes)


# --------------------------------------------------------------------------------------------
# CelebA annotation files (.txt from the official release, .csv from the Kaggle copy)
# --------------------------------------------------------------------------------------------
CELEBA_LANDMARK_NAMES = ("lefteye", "righteye", "nose", "leftmouth", "rightmouth")
CELEBA_PARTITIONS = {0: "train", 1: "valid", 2: "test"}


def _read_rows(path: PathLike) -> tuple[list[list[str]], bool]:
    """Non-empty lines split into fields, and whether the file was CSV."""
    text = Path(path).read_text(encoding="utf-8")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    is_csv = any("," in ln for ln in lines[:2])
    if is_csv:
        return [[c.strip() for c in ln.split(",")] for ln in lines], True
    return [ln.split() for ln in lines], False


def _header_and_body(path: PathLike, rows: list[list[str]], is_csv: bool) -> tuple[list[str], list[list[str]]]:
    """Official .txt: count line, header line, rows. Kaggle .csv: header (image_id, ...), rows."""
    if is_csv:
        if not rows:
            raise ValueError(f"{path}: empty file")
        return rows[0][1:], rows[1:]
    if len(rows) < 2 or len(rows[0]) != 1 or not rows[0][0].isdigit():
        raise ValueError(f"{path}: expected a count line, then a header line, then one row per image")
    count = int(rows[0][0])
    body = rows[2:]
    if count != len(body):
        raise ValueError(f"{path}: the first line says {count} images but {len(body)} rows follow")
    return rows[1], body


def parse_celeba_attributes(path: PathLike) -> tuple[list[str], dict[str, np.ndarray]]:
    """Parse ``list_attr_celeba.txt`` (or Kaggle's ``list_attr_celeba.csv``).

    Returns (attribute names, {filename: int8 array of shape (n_attributes,) with values in
    {-1, 1}}); n_attributes is 40 for the real file. Raises ValueError naming the line on a
    wrong count, a short row or a value other than -1/1.
    """
    rows, is_csv = _read_rows(path)
    names, body = _header_and_body(path, rows, is_csv)
    result: dict[str, np.ndarray] = {}
    for i, row in enumerate(body):
        if len(row) != len(names) + 1:
            raise ValueError(f"{path}: row {i + 1} ({row[:1]}) has {len(row) - 1} values, expected {len(names)}")
        try:
            values = np.array([int(v) for v in row[1:]], dtype=np.int8)
        except ValueError:
            raise ValueError(f"{path}: row {i + 1} ({row[0]}) holds a value that is not an integer") from None
        if not np.isin(values, (-1, 1)).all():
            raise ValueError(f"{path}: row {i + 1} ({row[0]}) holds a value other than -1 or 1")
        result[row[0]] = values
    return list(names), result


def parse_celeba_landmarks(path: PathLike) -> dict[str, np.ndarray]:
    """Parse ``list_landmarks_align_celeba.txt`` (or the Kaggle .csv).

    Returns {filename: int32 array of shape (5, 2)}: (x, y) pixel positions of
    :data:`CELEBA_LANDMARK_NAMES` (left eye, right eye, nose, left and right mouth corner)
    in the aligned 178x218 image.
    """
    rows, is_csv = _read_rows(path)
    header, body = _header_and_body(path, rows, is_csv)
    if len(header) != 10:
        raise ValueError(f"{path}: expected 10 landmark columns, the header has {len(header)}")
    result: dict[str, np.ndarray] = {}
    for i, row in enumerate(body):
        if len(row) != 11:
            raise ValueError(f"{path}: row {i + 1} ({row[:1]}) has {len(row) - 1} values, expected 10")
        try:
            result[row[0]] = np.array([int(v) for v in row[1:]], dtype=np.int32).reshape(5, 2)
        except ValueError:
            raise ValueError(f"{path}: row {i + 1} ({row[0]}) holds a value that is not an integer") from None
    return result


def parse_celeba_partition(path: PathLike) -> dict[str, int]:
    """Parse ``list_eval_partition.txt`` (or the Kaggle .csv): {filename: 0 train, 1 valid, 2 test}."""
    rows, is_csv = _read_rows(path)
    if is_csv and rows and not rows[0][-1].isdigit():
        rows = rows[1:]  # Kaggle header: image_id,partition
    result: dict[str, int] = {}
    for i, row in enumerate(rows):
        if len(row) != 2 or row[1] not in {"0", "1", "2"}:
            raise ValueError(f"{path}: line {i + 1} should be '<filename> <0|1|2>', got {' '.join(row)!r}")
        result[row[0]] = int(row[1])
    return result


# --------------------------------------------------------------------------------------------
# Your own images
# --------------------------------------------------------------------------------------------
class UnpairedImageFolder(Dataset):
    """Two folders of images, domain A and domain B, with no pairing between them.

    ``dataset[i]`` returns ``(a, b)``: ``a`` is the i-th image of A and ``b`` the
    ``i % len(B)``-th image of B (or the other way round when B is larger), each a float32
    tensor of shape (3, size, size) in [-1, 1]. ``len(dataset)`` is the larger of the two
    domains. Files are sorted by path; hidden folders (``.ipynb_checkpoints``) and non-image
    files are ignored. Shuffle with the DataLoader to get random unpaired couples. Images load
    through :func:`anime_lib.data.images.to_tensor`, so a corrupt or too-small file (under
    16 px) raises :class:`~anime_lib.data.images.ImageError` naming it.
    """

    def __init__(self, folder_a: PathLike, folder_b: PathLike, size: int = 256) -> None:
        self.folder_a, self.folder_b = Path(folder_a), Path(folder_b)
        self.size = int(size)
        self.files_a = self._images(self.folder_a)
        self.files_b = self._images(self.folder_b)

    @staticmethod
    def _images(folder: Path) -> list[Path]:
        if not folder.is_dir():
            what = "it is a file" if folder.exists() else f"nothing exists there{missing_path_hint(folder)}"
            raise FolderNotFoundError(f"{folder} is not a folder ({what})")
        files = list_images(folder)
        if not files:
            raise ValueError(
                f"{folder} holds no images (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}, "
                "ignoring hidden folders such as .ipynb_checkpoints)"
            )
        return files

    def __len__(self) -> int:
        return max(len(self.files_a), len(self.files_b))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        # One loader for the whole course (images.to_tensor): EXIF orientation, transparency on
        # white, and an ImageError naming the file for a corrupt, truncated or too-small image.
        a = to_tensor(self.files_a[index % len(self.files_a)], self.size)
        b = to_tensor(self.files_b[index % len(self.files_b)], self.size)
        return a, b

    def __repr__(self) -> str:
        return (
            f"UnpairedImageFolder(A={self.folder_a} [{len(self.files_a)} images], "
            f"B={self.folder_b} [{len(self.files_b)} images], size={self.size})"
        )


def local_folder(
    path: PathLike | Sequence[PathLike],
    path_b: PathLike | None = None,
    *,
    split: str = "train",
    size: int = 256,
) -> UnpairedImageFolder:
    """An :class:`UnpairedImageFolder` from your own images.

    Accepts either a folder with the selfie2anime layout (``<split>A`` and ``<split>B``
    sub-folders, e.g. trainA/trainB or testA/testB), or two folders: ``local_folder(a, b)``
    or ``local_folder((a, b))``. Images are resized and centre-cropped to ``size`` and
    returned as (3, size, size) float tensors in [-1, 1]. Raises ValueError naming the folder
    when a folder is missing or holds no images.
    """
    if path_b is None and not isinstance(path, (str, os.PathLike)):
        pair = list(path)
        if len(pair) != 2:
            raise ValueError(f"give one folder with {split}A/{split}B inside, or exactly two folders; got {pair}")
        path, path_b = pair
    if path_b is not None:
        return UnpairedImageFolder(path, path_b, size=size)
    root = Path(path)
    if not root.is_dir():
        raise FolderNotFoundError(f"{root} is not a folder (nothing exists there{missing_path_hint(root)})")
    a, b = root / f"{split}A", root / f"{split}B"
    if a.is_dir() and b.is_dir():
        return UnpairedImageFolder(a, b, size=size)
    raise ValueError(
        f"{root} has no {split}A/ and {split}B/ sub-folders; give a folder with that layout "
        "(like selfie2anime) or two folders: local_folder(folder_a, folder_b)"
    )
