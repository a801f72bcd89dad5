"""Reading images: any file, folder entry, file object, PIL image or array -> a clean RGB image or a tensor.

- :func:`load_image`: any file, file object, ``bytes``, PIL image or NumPy array -> an 8-bit RGB
  ``PIL.Image``. Transparency is composited on white, EXIF rotation is applied, huge photos are
  shrunk, and anything that is not a usable image raises :class:`ImageError` naming the file: a
  folder, a broken symbolic link, a corrupt file, or an image above :data:`MAX_PIXELS` (checked
  on the file's header, before anything is decoded). A missing path raises ``FileNotFoundError``
  with the names of similar files next to it (a mistyped name).
- Tensors: :func:`to_tensor` / :func:`to_image` convert between PIL and tensors in **[-1, 1]**
  (what the generators in this course take and produce); :func:`to_unit` / :func:`to_signed` switch
  between [-1, 1] and [0, 1]; :func:`resize_and_crop` keeps the central square.

Face detection and alignment live in :mod:`anime_lib.data.faces`, CartoonGAN edge smoothing in
:mod:`anime_lib.data.stylise`.
"""
from __future__ import annotations

import difflib
import io
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "ImageSource", "ImageError", "FolderNotFoundError", "MIN_SIDE", "DEFAULT_MAX_SIDE", "MAX_PIXELS", "load_image", "to_unit",
    "to_signed", "resize_and_crop", "to_tensor", "to_image", "missing_path_hint", "require_cv2",
]

ImageSource = Union[str, os.PathLike, IO[bytes], bytes, Image.Image, np.ndarray]

MIN_SIDE = 16  # smaller than this is an icon, not a photo
DEFAULT_MAX_SIDE = 2048
# PIL refuses (or warns about) images above ~89 Mpx to stop "decompression bombs". Real phone and
# DSLR photos reach 50-100 Mpx, so we allow up to this many pixels while we open a file and then
# shrink the image at once; beyond it the file is refused with a clear ImageError.
MAX_PIXELS = 250_000_000


class ImageError(ValueError):
    """The input cannot be used as an image (not an image, a folder, a broken link, corrupt, too small, too large)."""


class FolderNotFoundError(FileNotFoundError, ValueError):
    """A folder of images does not exist (or is a file). Also a ValueError, as folder errors were before."""


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def describe_source(source: object) -> str:
    """A short name for messages: the file name, or the kind of object."""
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name or str(source)
    name = getattr(source, "name", None) or getattr(source, "filename", None)
    if isinstance(name, (str, os.PathLike)) and str(name):
        return Path(name).name
    if isinstance(source, np.ndarray):
        return f"array of shape {source.shape}"
    if isinstance(source, Image.Image):
        return f"PIL image ({source.mode}, {source.size[0]}x{source.size[1]})"
    return type(source).__name__


@contextmanager
def _pixel_limit(max_pixels: int) -> Iterator[None]:
    """Temporarily let PIL open images up to ``max_pixels`` (restored afterwards)."""
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def missing_path_hint(path: str | os.PathLike) -> str:
    """Text for a missing path's message: the names next to it that look like a typo of it, or ''.

    Walks up to the deepest folder that exists, so a mistyped folder in the middle of the path is
    found too: ``"; did you mean /data/selfie2anime?"``.
    """
    missing = Path(path).expanduser()
    parent = missing.parent
    while not parent.exists() and parent != parent.parent:
        missing, parent = parent, parent.parent
    try:
        names = [p.name for p in parent.iterdir() if not p.name.startswith(".")]
    except OSError:
        return ""
    close = difflib.get_close_matches(missing.name, names, n=3, cutoff=0.6)
    if not close:
        return f"; {parent} exists but holds nothing called {missing.name!r}"
    return "; did you mean " + " or ".join(str(parent / c) for c in close) + "?"


def _check_path(path: Path) -> None:
    """Name a folder, a broken link or a missing file plainly, before PIL sees the path."""
    if path.is_symlink() and not path.exists():
        raise ImageError(
            f"{path} is a broken symbolic link (it points to {os.readlink(path)}, which does not exist); "
            "restore its target or delete the link"
        )
    if path.is_dir():
        raise ImageError(
            f"{path} is a folder, not an image file; pass one of the images inside it, or give the folder "
            "to a folder loader (anime_lib.data.registry.local_folder, load_domains)"
        )
    if not path.exists():
        raise FileNotFoundError(f"no such image file: {path}{missing_path_hint(path)}")


def _refuse_if_too_large(img: Image.Image, name: str) -> None:
    """ImageError when the header announces more than :data:`MAX_PIXELS` pixels (nothing decoded yet)."""
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageError(
            f"{name} is {w}x{h} px ({w * h / 1e6:,.1f} Mpx), more than the limit of {MAX_PIXELS:,} pixels "
            f"(decoding it would take about {w * h * 3 / 1e9:.1f} GB of memory); shrink it first, "
            "for example to 8000 px on the longer side"
        )


def _open_file(source: Union[str, os.PathLike, IO[bytes], bytes], name: str, max_side: int) -> Image.Image:
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    if isinstance(source, (str, os.PathLike)):
        _check_path(Path(source))
    with _pixel_limit(MAX_PIXELS):
        try:
            img = Image.open(source)  # reads the header only
        except FileNotFoundError:
            raise FileNotFoundError(f"no such image file: {source}{missing_path_hint(source)}") from None
        except UnidentifiedImageError as err:
            raise ImageError(f"{name} is not an image (PIL cannot identify its format: {err})") from None
        except Image.DecompressionBombError:
            raise ImageError(f"{name} is too large to open safely (more than the {MAX_PIXELS:,}-pixel limit)") from None
        except IsADirectoryError:
            raise ImageError(f"{source} is a folder, not an image file") from None
        except (OSError, SyntaxError, ValueError) as err:
            raise ImageError(f"{name} is truncated or corrupt ({err})") from None
        try:
            _refuse_if_too_large(img, name)  # before decoding: PIL only warns between 1x and 2x its limit
        except ImageError:
            img.close()
            raise
        try:
            if img.format == "JPEG":
                # Let the JPEG decoder skip detail we would throw away (1/2, 1/4, 1/8 scale):
                # a 6000x4000 photo then decodes in a fraction of the time and memory.
                img.draft("RGB", (max_side, max_side))
            img.load()
        except (OSError, SyntaxError, ValueError) as err:
            raise ImageError(f"{name} is truncated or corrupt ({err})") from None
    return img


def _array_to_pil(arr: np.ndarray, name: str) -> Image.Image:
    """(H, W), (H, W, 1|3|4) arrays -> PIL. uint8 as is, uint16 / 65535, float and bool in [0, 1]."""
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(f"{name}: expected an array of shape (H, W), (H, W, 3) or (H, W, 4)")
    if arr.dtype == np.uint8:
        pass
    elif arr.dtype == np.uint16:
        arr = (arr.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        if arr.size and (np.nanmin(arr) < -1e-3 or np.nanmax(arr) > 1 + 1e-3):
            raise ImageError(
                f"{name}: float arrays must hold values in [0, 1] (got {np.nanmin(arr):.3g}.."
                f"{np.nanmax(arr):.3g}); for [-1, 1] tensors use to_image()"
            )
        arr = (np.nan_to_num(arr).clip(0, 1) * 255).round().astype(np.uint8)
    else:
        raise ImageError(f"{name}: unsupported array dtype {arr.dtype}")
    return Image.fromarray(np.ascontiguousarray(arr))


def _high_bit_depth_to_l(img: Image.Image) -> Image.Image:
    """16-bit / 32-bit greyscale (modes I;16*, I, F) -> 8-bit 'L', scaled by the value range."""
    arr = np.asarray(img).astype(np.float64)
    top = float(arr.max()) if arr.size else 0.0
    if img.mode == "F":
        scale = 1.0 if top <= 1.0 else (255.0 if top <= 255.0 else 65535.0)
    elif img.mode.startswith("I;16") or top > 255:
        scale = 65535.0
    else:
        scale = 255.0
    return Image.fromarray((arr / scale * 255.0).clip(0, 255).round().astype(np.uint8), "L")


def _to_rgb(img: Image.Image, name: str) -> Image.Image:
    """Any PIL mode -> 'RGB'; transparent pixels become white."""
    if img.mode == "RGB":
        return img
    if img.mode == "P":
        # A palette image may be transparent through info["transparency"].
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode.startswith("I") or img.mode == "F":
        img = _high_bit_depth_to_l(img)
    elif img.mode == "1":
        img = img.convert("L")
    elif img.mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, img).convert("RGB")
    try:
        return img.convert("RGB")  # L, CMYK, YCbCr, ...
    except (ValueError, OSError) as err:
        raise ImageError(f"{name} has an unsupported colour mode {img.mode!r} ({err})") from None


def load_image(source: ImageSource, max_side: int | None = DEFAULT_MAX_SIDE) -> Image.Image:
    """Load anything image-like as an 8-bit RGB ``PIL.Image``.

    ``source`` may be a path, an open binary file, ``bytes``, a PIL image or a NumPy array
    ((H, W) or (H, W, 3|4); uint8, uint16, or float/bool in [0, 1]). JPEG, PNG, WebP and every
    other format PIL reads are accepted. The image is rotated upright according to its EXIF
    orientation, transparency (RGBA, LA, palette with transparency) is composited on white,
    greyscale, CMYK and 16-bit images are converted, and the image is shrunk (LANCZOS) so that its
    longer side is at most ``max_side`` pixels (``None`` keeps the full size).

    Raises :class:`ImageError` (naming the file) for non-images, folders, broken symbolic links,
    truncated or corrupt files, images smaller than 16 px on a side and images of more than
    :data:`MAX_PIXELS` (250 Mpx; checked on the header, before decoding); ``FileNotFoundError``
    for a missing path, naming similar files next to it.
    """
    name = describe_source(source)
    if isinstance(source, Image.Image):
        img = source
    elif isinstance(source, np.ndarray):
        img = _array_to_pil(source, name)
    elif isinstance(source, torch.Tensor):
        raise ImageError(f"{name}: got a tensor; use to_image(t) for tensors in [-1, 1]")
    else:
        img = _open_file(source, name, max_side or 1 << 30)

    try:
        img = ImageOps.exif_transpose(img)
    except Exception as err:  # a broken EXIF block should not cost the user their photo
        warnings.warn(f"{name}: ignoring unreadable EXIF orientation ({err})", stacklevel=2)
    if min(img.size) < MIN_SIDE:
        raise ImageError(
            f"{name} is too small ({img.size[0]}x{img.size[1]} px); "
            f"images need at least {MIN_SIDE} px on each side"
        )
    img = _to_rgb(img, name)
    if max_side is not None and max(img.size) > max_side:
        scale = max_side / max(img.size)
        new_size = (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale)))
        img = img.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return img


# --------------------------------------------------------------------------------------------
# Tensors
# --------------------------------------------------------------------------------------------


def to_unit(t: torch.Tensor) -> torch.Tensor:
    """Map values from [-1, 1] to [0, 1] (``(t + 1) / 2``); no clamping. Works on arrays too."""
    return (t + 1) / 2


def to_signed(t: torch.Tensor) -> torch.Tensor:
    """Map values from [0, 1] to [-1, 1] (``t * 2 - 1``); no clamping. Works on arrays too."""
    return t * 2 - 1


def resize_and_crop(img: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is ``size`` (BICUBIC), then crop the central size x size square."""
    w, h = img.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return img.crop((left, top, left + size, top + size))


def to_tensor(img: ImageSource, size: int) -> torch.Tensor:
    """An image (anything :func:`load_image` accepts) -> float32 tensor (3, size, size) in [-1, 1].

    The shorter side is resized to ``size`` and the centre square is kept.
    """
    img = resize_and_crop(load_image(img, max_side=None), size)
    arr = np.asarray(img, dtype=np.float32)  # (H, W, 3) in [0, 255]
    return torch.from_numpy(arr / 127.5 - 1.0).permute(2, 0, 1).contiguous()


def to_image(t: torch.Tensor) -> Image.Image:
    """A tensor (3, H, W), (1, H, W) or a batch of one (1, C, H, W) with values in [-1, 1] -> RGB PIL.

    Values outside [-1, 1] are clamped. For tensors in [0, 1] call ``to_image(to_signed(t))``.
    """
    t = t.detach()
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"to_image expects a (3, H, W) or (1, H, W) tensor, got shape {tuple(t.shape)}")
    t = t.float().cpu().expand(3, -1, -1)
    arr = ((t.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(arr), "RGB")




def require_cv2():
    """``import cv2`` with an error that says what to install (face detection and edge smoothing need it)."""
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - cv2 is a hard dependency of the course
        raise ImportError("this needs OpenCV: pip install 'opencv-python-headless>=4.8,<5'") from err
    return cv2
