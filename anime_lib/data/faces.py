"""Faces in photos and drawings: find them, measure their roll, and crop them upright.

- Photos: :func:`detect_face` (OpenCV Haar cascades for the face and the eyes, offline) returns a
  :class:`FaceBox` with the eye centres and the roll angle; :func:`align_face` rotates the photo so the
  eyes are level and crops an FFHQ-like square around the face; :func:`load_face` does both and
  returns a tensor in [-1, 1].
- Drawings: :func:`detect_anime_face` / :func:`load_anime_face` do the same with the optional
  ``animeface`` package.

Images are read with :func:`anime_lib.data.images.load_image`, so every input it accepts works here
and every unusable file raises :class:`~anime_lib.data.images.ImageError` naming it.

Conventions: image coordinates have x to the right and y **down**; a ``FaceBox``'s ``left_eye`` is
the eye on the left of the picture (the subject's right eye); ``roll_degrees`` is positive when the
face is turned clockwise on screen (the eye on the right of the picture is lower).
"""
from __future__ import annotations

import functools
import math
import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from anime_lib.data.images import ImageError, ImageSource, describe_source, load_image, require_cv2, to_tensor

__all__ = [
    "FaceBox", "NoFaceError", "NoEyesWarning", "ImageError", "detect_face", "align_face", "load_face",
    "detect_anime_face", "load_anime_face", "FACE_CASCADE", "EYE_CASCADES", "FALLBACK_ROTATIONS",
]

Point = tuple[float, float]

FACE_CASCADE = "haarcascade_frontalface_default.xml"
EYE_CASCADES = ("haarcascade_eye.xml", "haarcascade_eye_tree_eyeglasses.xml")
# Haar face boxes put the eye line about 38% of the way down the box: used when no eyes are found.
EYE_LINE_IN_HAAR_BOX = 0.38
# Frontal Haar cascades miss faces tilted by more than ~20 degrees, so a second search runs on
# copies of the photo rotated by these angles (degrees, counter-clockwise as in PIL/OpenCV).
FALLBACK_ROTATIONS = (-25.0, 25.0)
DETECT_MAX_SIDE = 800  # faces are searched on a copy no larger than this (speed)
EYE_ROI_WIDTH = 160  # face boxes are rescaled to this width before the eye search


class NoFaceError(ImageError):
    """No face was found where one is required."""


class NoEyesWarning(UserWarning):
    """A face was found but not both eyes, so its roll angle is assumed to be 0."""


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


@functools.lru_cache(maxsize=None)
def _cascade(filename: str):
    cv2 = require_cv2()
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
    return require_cv2().getRotationMatrix2D((float(center[0]), float(center[1])), float(angle), float(scale))


def _apply(m: np.ndarray, p: Point) -> Point:
    return (float(m[0, 0] * p[0] + m[0, 1] * p[1] + m[0, 2]), float(m[1, 0] * p[0] + m[1, 1] * p[1] + m[1, 2]))


def _eyes_in_patch(patch: np.ndarray) -> tuple[Point, Point] | None:
    """Eye centres (left, right of the picture) in an upright face patch EYE_ROI_WIDTH px square."""
    n = EYE_ROI_WIDTH
    # The cascade's window must fit in the search band, so the band reaches a little below the
    # middle of the face; only eyes whose centre lies in the upper half are kept.
    band = require_cv2().equalizeHist(np.ascontiguousarray(patch[: int(0.6 * n)]))
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
    cv2 = require_cv2()
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
    cv2 = require_cv2()
    min_face = max(24, int(0.06 * min(grey.shape[:2])))
    faces = _cascade(FACE_CASCADE).detectMultiScale(
        cv2.equalizeHist(grey), scaleFactor=1.1, minNeighbors=5, minSize=(min_face, min_face)
    )
    return sorted((tuple(int(v) for v in f) for f in faces), key=lambda f: -f[2] * f[3])  # type: ignore[misc]


def _rotated(grey: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """``grey`` rotated by ``angle`` degrees on an expanded canvas, and the matrix back to ``grey``."""
    cv2 = require_cv2()
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
    cv2 = require_cv2()
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
    cv2 = require_cv2()
    borders = {"reflect": cv2.BORDER_REFLECT_101, "edge": cv2.BORDER_REPLICATE}
    if pad_mode not in borders:
        raise ValueError(f"pad_mode must be one of {sorted(borders)}, got {pad_mode!r}")
    name = describe_source(img)
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
        raise NoFaceError(_no_face_message(describe_source(path)))
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
    name = describe_source(path)
    if _import_animeface() is None:
        raise NoFaceError(f"cannot look for an anime face in {name}: pip install animeface, or pass align=False")
    face = detect_anime_face(img)
    if face is None:
        raise NoFaceError(f"no anime face found in {name} (tried animeface); pass align=False to centre-crop")
    return to_tensor(align_face(img, size=size, face_scale=face_scale, face=face), size)
