"""Turn whatever a user uploads into a clean RGB image, an aligned face crop, or a tensor.

Three jobs, in the order a lesson meets them:

1. ``load_image``: any file, file object, PIL image or NumPy array -> an 8-bit RGB ``PIL.Image``.
   Transparency is composited on white, EXIF rotation is applied, huge photos are shrunk, and
   anything that is not a usable image raises :class:`ImageError` naming the file.
2. Faces: ``detect_face`` (OpenCV Haar cascades, offline) and ``align_face`` rotate the photo so the
   eyes are level and crop an FFHQ-like square around the face; ``detect_anime_face`` does the same
   job for drawings with the optional ``animeface`` package.
3. Tensors: ``to_tensor`` / ``to_image`` convert between PIL and tensors in **[-1, 1]** (what the
   generators in this course take and produce); ``to_unit`` / ``to_signed`` switch between [-1, 1]
   and [0, 1]. ``edge_smooth`` builds CartoonGAN's edge-smoothed "fake cartoon" targets.

Conventions: image coordinates have x to the right and y **down**; a ``FaceBox``'s ``left_eye`` is
the eye on the left of the picture (the subject's right eye); ``roll_degrees`` is positive when the
face is turned clockwise on screen (the eye on the right of the picture is lower).
"""
from __future__ import annotations

import functools
import io
import math
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

ImageSource = Union[str, os.PathLike, IO[bytes], bytes, Image.Image, np.ndarray]
Point = tuple[float, float]

MIN_SIDE = 16  # smaller than this is an icon, not a photo
DEFAULT_MAX_SIDE = 2048
# PIL refuses (or warns about) images above ~89 Mpx to stop "decompression bombs". Real phone and
# DSLR photos reach 50-100 Mpx, so we allow up to this many pixels while we open a file and then
# shrink the image at once; beyond it the file is refused with a clear ImageError.
MAX_PIXELS = 250_000_000

FACE_CASCADE = "haarcascade_frontalface_default.xml"
EYE_CASCADES = ("haarcascade_eye.xml", "haarcascade_eye_tree_eyeglasses.xml")
# Haar face boxes put the eye line about 38% of the way down the box: used when no eyes are found.
EYE_LINE_IN_HAAR_BOX = 0.38
# Frontal Haar cascades miss faces tilted by more than ~20 degrees, so a second search runs on
# copies of the photo rotated by these angles (degrees, counter-clockwise as in PIL/OpenCV).
FALLBACK_ROTATIONS = (-25.0, 25.0)
DETECT_MAX_SIDE = 800  # faces are searched on a copy no larger than this (speed)
EYE_ROI_WIDTH = 160  # face boxes are rescaled to this width before the eye search


class ImageError(ValueError):
    """The input cannot be used as an image (not an image, corrupt, too small, too large)."""


class NoFaceError(ImageError):
    """No face was found where one is required."""


class NoEyesWarning(UserWarning):
    """A face was found but not both eyes, so its roll angle is assumed to be 0."""


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _describe(source: object) -> str:
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


def _open_file(source: Union[str, os.PathLike, IO[bytes], bytes], name: str, max_side: int) -> Image.Image:
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        with _pixel_limit(MAX_PIXELS):
            img = Image.open(source)
            if img.format == "JPEG":
                # Let the JPEG decoder skip detail we would throw away (1/2, 1/4, 1/8 scale):
                # a 6000x4000 photo then decodes in a fraction of the time and memory.
                img.draft("RGB", (max_side, max_side))
            img.load()
    except FileNotFoundError:
        raise FileNotFoundError(f"no such image file: {source}") from None
    except UnidentifiedImageError as err:
        raise ImageError(f"{name} is not an image (PIL cannot identify its format: {err})") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{name} is too large to open safely (more than {MAX_PIXELS:,} pixels)") from None
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

    Raises :class:`ImageError` (naming the file) for non-images, truncated or corrupt files,
    images smaller than 16 px on a side and images of more than 250 Mpx;
    ``FileNotFoundError`` for a missing path.
    """
    name = _describe(source)
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


# --------------------------------------------------------------------------------------------
# Photo faces: OpenCV Haar cascades
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceBox:
    """A face in image coordinates (pixels, x right, y down).

    ``left_eye`` / ``right_eye``: eye centres (x, y) on the left / right of the picture, or None.
    ``roll_degrees``: angle of the eye line, ``atan2(dy, dx)``; positive = turned clockwise on screen.
    ``score``: the detector's confidence where it reports one (animeface), else None.
    """

    x: int
    y: int
    w: int
    h: int
    left_eye: Point | None = None
    right_eye: Point | None = None
    roll_degrees: float = 0.0
    score: float | None = None

    @property
    def eyes_found(self) -> bool:
        return self.left_eye is not None and self.right_eye is not None

    @property
    def center(self) -> Point:
        return (self.x + self.w / 2, self.y + self.h / 2)


def _require_cv2():
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - cv2 is a hard dependency of the course
        raise ImportError("face detection needs OpenCV: pip install 'opencv-python-headless>=4.8,<5'") from err
    return cv2


@functools.lru_cache(maxsize=None)
def _cascade(filename: str):
    cv2 = _require_cv2()
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if folder is None or not hasattr(cv2, "CascadeClassifier"):
        raise ImportError(
            f"OpenCV {cv2.__version__} ships no Haar cascades (removed in OpenCV 5); "
            "install 'opencv-python-headless>=4.8,<5'"
        )
    clf = cv2.CascadeClassifier(os.path.join(folder, filename))
    if clf.empty():
        raise ImportError(f"could not load the Haar cascade {filename} from {folder}")
    return clf


def _roll(left: Point, right: Point) -> float:
    """Angle of the line from the left to the right eye, degrees, y down: positive = clockwise."""
    return math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))


def _merge_boxes(boxes: list[tuple[float, float, float, float]]) -> list[tuple[float, float, float, float]]:
    """Average boxes whose centres fall inside each other (the two eye cascades overlap a lot)."""
    merged: list[list[tuple[float, float, float, float]]] = []
    for b in sorted(boxes, key=lambda b: -b[2] * b[3]):
        cx, cy = b[0] + b[2] / 2, b[1] + b[3] / 2
        for group in merged:
            g = group[0]
            if g[0] <= cx <= g[0] + g[2] and g[1] <= cy <= g[1] + g[3]:
                group.append(b)
                break
        else:
            merged.append([b])
    return [tuple(float(np.mean([b[i] for b in group])) for i in range(4)) for group in merged]  # type: ignore[misc]


def _rotation_matrix(center: Point, angle: float, scale: float = 1.0) -> np.ndarray:
    """2x3 affine matrix: rotate by ``angle`` degrees counter-clockwise on screen about ``center``."""
    return _require_cv2().getRotationMatrix2D((float(center[0]), float(center[1])), float(angle), float(scale))


def _apply(m: np.ndarray, p: Point) -> Point:
    return (float(m[0, 0] * p[0] + m[0, 1] * p[1] + m[0, 2]), float(m[1, 0] * p[0] + m[1, 1] * p[1] + m[1, 2]))


def _eyes_in_patch(patch: np.ndarray) -> tuple[Point, Point] | None:
    """Eye centres (left, right of the picture) in an upright face patch EYE_ROI_WIDTH px square."""
    n = EYE_ROI_WIDTH
    # The cascade's window must fit in the search band, so the band reaches a little below the
    # middle of the face; only eyes whose centre lies in the upper half are kept.
    band = _require_cv2().equalizeHist(np.ascontiguousarray(patch[: int(0.6 * n)]))
    lo, hi = int(0.10 * n), int(0.45 * n)
    found = []
    for name in EYE_CASCADES:
        for ex, ey, ew, eh in _cascade(name).detectMultiScale(band, 1.05, 3, minSize=(lo, lo), maxSize=(hi, hi)):
            if ey + eh / 2 <= 0.5 * n:
                found.append((float(ex), float(ey), float(ew), float(eh)))
    cands = _merge_boxes(found)
    best, best_score = None, -math.inf
    for i, a in enumerate(cands):
        for b in cands[i + 1:]:
            a, b = (a, b) if a[0] < b[0] else (b, a)
            pa, pb = (a[0] + a[2] / 2, a[1] + a[3] / 2), (b[0] + b[2] / 2, b[1] + b[3] / 2)
            dx, dy = pb[0] - pa[0], pb[1] - pa[1]
            # A plausible pair: 20-70% of the face width apart, similar sizes, tilted < 45 degrees.
            if not (0.2 * n <= dx <= 0.7 * n) or abs(dy) > dx or max(a[2], b[2]) > 2 * min(a[2], b[2]):
                continue
            # Prefer pairs centred on the face with equal sizes.
            score = -abs((pa[0] + pb[0]) / 2 - n / 2) / n - abs(a[2] - b[2]) / n
            if score > best_score:
                best, best_score = (pa, pb), score
    return best


def _find_eyes(grey: np.ndarray, center: Point, side: float, angle: float) -> tuple[Point, Point] | None:
    """Eyes of the face at ``center`` (box ``side`` px), searched in a copy rotated by ``angle``.

    The face is cut out as an upright EYE_ROI_WIDTH px patch (so the eye cascades always see eyes
    of about the same size); the eyes found are mapped back to ``grey``'s coordinates.
    """
    cv2 = _require_cv2()
    n = EYE_ROI_WIDTH
    shrink = min(1.0, 2 * n / side)  # area-average big faces first: a warp alone would alias
    src = grey if shrink == 1.0 else cv2.resize(grey, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    c = (center[0] * shrink, center[1] * shrink)
    m = _rotation_matrix(c, angle, n / (side * shrink))
    m[:, 2] += (n / 2 - c[0], n / 2 - c[1])
    patch = cv2.warpAffine(src, m, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    eyes = _eyes_in_patch(patch)
    if eyes is None:
        return None
    back = cv2.invertAffineTransform(m) / shrink
    return _apply(back, eyes[0]), _apply(back, eyes[1])


def _faces(grey: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Haar face boxes (x, y, w, h), largest first."""
    cv2 = _require_cv2()
    min_face = max(24, int(0.06 * min(grey.shape[:2])))
    faces = _cascade(FACE_CASCADE).detectMultiScale(
        cv2.equalizeHist(grey), scaleFactor=1.1, minNeighbors=5, minSize=(min_face, min_face)
    )
    return sorted((tuple(int(v) for v in f) for f in faces), key=lambda f: -f[2] * f[3])  # type: ignore[misc]


def _rotated(grey: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """``grey`` rotated by ``angle`` degrees on an expanded canvas, and the matrix back to ``grey``."""
    cv2 = _require_cv2()
    h, w = grey.shape
    m = _rotation_matrix((w / 2, h / 2), angle)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    new_w, new_h = int(h * sin + w * cos + 0.5), int(h * cos + w * sin + 0.5)
    m[:, 2] += ((new_w - w) / 2, (new_h - h) / 2)
    work = cv2.warpAffine(grey, m, (new_w, new_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return work, cv2.invertAffineTransform(m)


def _as_rgb_array(img: ImageSource) -> np.ndarray:
    return np.asarray(load_image(img, max_side=None))


def detect_face(img: ImageSource) -> FaceBox | None:
    """Find the largest face in a photo with OpenCV's Haar cascades; None if there is none.

    Eyes are searched in the upper half of the face box (cascades ``haarcascade_eye`` and
    ``haarcascade_eye_tree_eyeglasses``) and ``roll_degrees`` comes from the eye line, refined once
    by searching the eyes again in a copy levelled by the first estimate. Faces tilted by more than
    about 20 degrees are found by also searching rotated copies (``FALLBACK_ROTATIONS``). Boxes with
    both eyes win over larger boxes without (those are usually false detections). When no face has
    both eyes, the largest upright box is returned with roll 0 and a :class:`NoEyesWarning` says so
    (boxes found only in rotated copies count only with both eyes).
    """
    cv2 = _require_cv2()
    grey_full = cv2.cvtColor(_as_rgb_array(img), cv2.COLOR_RGB2GRAY)
    # Faces are searched on a copy of at most DETECT_MAX_SIDE px (cascades are slow on big photos).
    shrink = min(1.0, DETECT_MAX_SIDE / max(grey_full.shape))
    grey = grey_full if shrink == 1.0 else cv2.resize(
        grey_full, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA
    )
    without_eyes: list[FaceBox] = []
    for angle in (0.0, *FALLBACK_ROTATIONS):
        if angle == 0.0:
            work, back = grey, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        else:
            work, back = _rotated(grey, angle)
        for x, y, w, h in _faces(work):
            # Back to the original photo: centre and size (the box stays axis-aligned there).
            cx, cy = _apply(back, (x + w / 2, y + h / 2))
            center, side = (cx / shrink, cy / shrink), max(w, h) / shrink
            box = (round(center[0] - side / 2), round(center[1] - side / 2), round(side), round(side))
            # Rotating the photo counter-clockwise by `angle` made this face upright, so its roll
            # (positive = clockwise) is about `angle`.
            eyes = _find_eyes(grey_full, center, side, angle)
            if eyes is None:
                # Boxes found only in rotated copies are kept only with eyes: the extra search
                # roughly triples the false detections (e.g. on skimage's cameraman).
                if angle == 0.0:
                    without_eyes.append(FaceBox(*box))
                continue
            refined = _find_eyes(grey_full, center, side, _roll(*eyes))
            if refined is not None and abs(_roll(*refined) - _roll(*eyes)) < 15:
                eyes = refined
            return FaceBox(*box, left_eye=eyes[0], right_eye=eyes[1], roll_degrees=_roll(*eyes))
    if not without_eyes:
        return None
    face = without_eyes[0]
    warnings.warn(
        "face found but not both eyes; assuming it is upright (roll 0)", NoEyesWarning, stacklevel=2
    )
    return face


def _no_face_message(name: str) -> str:
    rot = ", ".join(f"{a:+g}" for a in FALLBACK_ROTATIONS)
    return (
        f"no face found in {name} (tried OpenCV Haar cascade {FACE_CASCADE} upright and rotated by "
        f"{rot} degrees); use a frontal, well-lit photo or pass align=False"
    )


def align_face(
    img: ImageSource,
    size: int = 256,
    face_scale: float = 0.6,
    eye_height: float = 0.4,
    face: FaceBox | None = None,
    pad_mode: str = "reflect",
) -> Image.Image:
    """Rotate the photo so the eyes are level and crop an FFHQ-like square around the face.

    The face box fills ``face_scale`` of the crop's width (about the central 60%), the eye line
    sits at ``eye_height`` of the crop's height, and the result is ``size`` x ``size`` RGB.
    Where the crop leaves the photo it is padded by ``pad_mode``: "reflect" or "edge".
    ``face`` may come from :func:`detect_face` or :func:`detect_anime_face`; if None the photo is
    searched with :func:`detect_face`, and :class:`NoFaceError` is raised when there is no face.
    """
    cv2 = _require_cv2()
    borders = {"reflect": cv2.BORDER_REFLECT_101, "edge": cv2.BORDER_REPLICATE}
    if pad_mode not in borders:
        raise ValueError(f"pad_mode must be one of {sorted(borders)}, got {pad_mode!r}")
    name = _describe(img)
    rgb = _as_rgb_array(img)
    if face is None:
        face = detect_face(rgb)
        if face is None:
            raise NoFaceError(_no_face_message(name))

    if face.eyes_found:
        anchor = ((face.left_eye[0] + face.right_eye[0]) / 2, (face.left_eye[1] + face.right_eye[1]) / 2)
    else:
        anchor = (face.x + face.w / 2, face.y + EYE_LINE_IN_HAAR_BOX * face.h)
    crop_side = max(face.w, face.h) / face_scale  # in photo pixels
    scale = size / crop_side
    if scale < 0.5:
        # Shrink first with area averaging; a single bilinear warp would alias badly.
        pre = min(1.0, 2 * scale)
        rgb = cv2.resize(rgb, None, fx=pre, fy=pre, interpolation=cv2.INTER_AREA)
        anchor, scale = (anchor[0] * pre, anchor[1] * pre), scale / pre
    # Rotating counter-clockwise by the roll angle levels the eyes; then move the eye midpoint to
    # (centre, eye_height) of the output square.
    m = _rotation_matrix(anchor, face.roll_degrees, scale)
    m[:, 2] += (size / 2 - anchor[0], eye_height * size - anchor[1])
    out = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_CUBIC, borderMode=borders[pad_mode])
    return Image.fromarray(out, "RGB")


def load_face(path: ImageSource, size: int = 128, align: bool = True, face_scale: float = 0.6) -> torch.Tensor:
    """Load a photo and return its aligned face as a tensor (3, size, size) in [-1, 1].

    ``align=False`` skips detection and centre-crops the whole photo instead.
    Raises :class:`NoFaceError` (naming the file) when no face is found, :class:`ImageError` when
    the file is not a usable image.
    """
    img = load_image(path)
    if not align:
        return to_tensor(img, size)
    face = detect_face(img)
    if face is None:
        raise NoFaceError(_no_face_message(_describe(path)))
    return to_tensor(align_face(img, size=size, face_scale=face_scale, face=face), size)


# --------------------------------------------------------------------------------------------
# Anime faces: the optional `animeface` package
# --------------------------------------------------------------------------------------------


def _import_animeface():
    try:
        import animeface  # noqa: PLC0415 - optional dependency, imported only when needed
    except Exception:  # ImportError, or a native library that fails to load
        return None
    return animeface


def detect_anime_face(img: ImageSource) -> FaceBox | None:
    """Find the most likely anime face with the ``animeface`` package; None if none (or no package).

    Returns a :class:`FaceBox` with eye centres, the roll angle from the eye line and the
    detector's likelihood as ``score``.
    """
    animeface = _import_animeface()
    if animeface is None:
        warnings.warn("anime face detection needs the animeface package: pip install animeface", stacklevel=2)
        return None
    pil = load_image(img, max_side=None)
    with warnings.catch_warnings():  # animeface calls Image.getdata, deprecated in Pillow 13
        warnings.simplefilter("ignore", DeprecationWarning)
        faces = animeface.detect(pil)
    if not faces:
        return None
    best = max(faces, key=lambda f: f.likelihood)
    box = best.face.pos
    eyes = []
    for eye in (best.left_eye, best.right_eye):
        p = eye.pos
        if p.width > 0 and p.height > 0:
            eyes.append((p.x + p.width / 2, p.y + p.height / 2))
    if len(eyes) == 2:
        left, right = sorted(eyes)  # our convention: left = left of the picture
        roll = _roll(left, right)
    else:
        left = right = None
        roll = 0.0
    return FaceBox(int(box.x), int(box.y), int(box.width), int(box.height), left, right, roll, float(best.likelihood))


def load_anime_face(path: ImageSource, size: int = 128, align: bool = True, face_scale: float = 0.6) -> torch.Tensor:
    """Load a drawing and return its aligned anime face as a tensor (3, size, size) in [-1, 1].

    Raises :class:`NoFaceError` when ``animeface`` is missing or finds no face (unless ``align=False``).
    """
    img = load_image(path)
    if not align:
        return to_tensor(img, size)
    name = _describe(path)
    if _import_animeface() is None:
        raise NoFaceError(f"cannot look for an anime face in {name}: pip install animeface, or pass align=False")
    face = detect_anime_face(img)
    if face is None:
        raise NoFaceError(f"no anime face found in {name} (tried animeface); pass align=False to centre-crop")
    return to_tensor(align_face(img, size=size, face_scale=face_scale, face=face), size)


# --------------------------------------------------------------------------------------------
# CartoonGAN edge smoothing
# --------------------------------------------------------------------------------------------


def _edge_mask(img_uint8: np.ndarray, kernel: int) -> np.ndarray:
    """Boolean (H, W): Canny(100, 200) edges of the grey image, dilated by a kernel x kernel square."""
    cv2 = _require_cv2()
    grey = img_uint8 if img_uint8.ndim == 2 else cv2.cvtColor(img_uint8, cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(grey, 100, 200)
    return cv2.dilate(edges, np.ones((kernel, kernel), np.uint8)) > 0


def _check_kernel(kernel: int) -> None:
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel must be a positive odd number, got {kernel}")


def edge_smooth(img_uint8_rgb: np.ndarray, kernel: int = 5) -> np.ndarray:
    """CartoonGAN's edge-smoothed copy of a cartoon: blur only near its edges.

    Input: uint8 array (H, W, 3) RGB or (H, W) grey, values 0..255. Output: same shape and dtype.
    Canny(100, 200) on the grey image, dilated with a kernel x kernel square, marks the edge zone;
    there the image is replaced by its kernel x kernel Gaussian blur, elsewhere it is unchanged.
    """
    cv2 = _require_cv2()
    _check_kernel(kernel)
    img = np.asarray(img_uint8_rgb)
    if img.dtype != np.uint8:
        raise TypeError(f"edge_smooth expects uint8 values 0..255, got {img.dtype}; for tensors use edge_smooth_tensor")
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"edge_smooth expects (H, W, 3) or (H, W), got shape {img.shape}")
    mask = _edge_mask(img, kernel)
    blurred = cv2.GaussianBlur(img, (kernel, kernel), 0)
    if img.ndim == 3:
        mask = mask[..., None]
    return np.where(mask, blurred, img)


def edge_smooth_tensor(x: torch.Tensor, kernel: int = 5) -> torch.Tensor:
    """Batch version of :func:`edge_smooth`: (N, 3, H, W) in [-1, 1] -> (N, 3, H, W) in [-1, 1].

    Canny needs 8-bit images, so the edge masks are found with OpenCV on a uint8 copy (CPU); the
    blur and the blend run in torch on ``x``'s device and dtype, so pixels away from edges keep
    their exact values.
    """
    cv2 = _require_cv2()
    _check_kernel(kernel)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"edge_smooth_tensor expects (N, 3, H, W), got shape {tuple(x.shape)}")
    with torch.no_grad():
        as_uint8 = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        as_uint8 = as_uint8.permute(0, 2, 3, 1).cpu().numpy()
        masks = np.stack([_edge_mask(np.ascontiguousarray(im), kernel) for im in as_uint8])
    mask = torch.from_numpy(masks).to(x.device)[:, None]  # (N, 1, H, W)

    # The same Gaussian as cv2.GaussianBlur(ksize=kernel, sigma=0), as a separable depthwise conv;
    # torch's "reflect" padding equals OpenCV's default border (BORDER_REFLECT_101).
    g = torch.from_numpy(cv2.getGaussianKernel(kernel, 0)[:, 0]).to(x.device, x.dtype)
    pad = kernel // 2
    blurred = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
    blurred = torch.nn.functional.conv2d(blurred, g.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    blurred = torch.nn.functional.conv2d(blurred, g.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    return torch.where(mask, blurred, x)
