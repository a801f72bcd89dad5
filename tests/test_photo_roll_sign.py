"""The roll of a real photo (Haar eyes) has ToyFaces' sign and eye assignment, end to end.

Lesson 05's convention: roll = atan2(y_right_eye - y_left_eye, x_right_eye - x_left_eye) in image
coordinates (y down), the left eye being the one on the left of the picture; positive = the face turned
clockwise on screen. ToyFaces records rolls in it; real photos get theirs from
:func:`anime_lib.data.faces.detect_face` through :meth:`anime_lib.models.geometry.FaceGeometry.of`.
These tests put a ToyFaces face of known roll and scikit-image's astronaut, rotated by a known angle so it
leans the same way on screen, through the SAME photo path (a folder-style uint8 ImageSet, as
``load_real_photos`` builds) and require the same sign.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

skimage_data = pytest.importorskip("skimage.data")
pytest.importorskip("cv2")

from anime_lib.data import toyfaces as tf  # noqa: E402
from anime_lib.data.domains import ImageSet  # noqa: E402
from anime_lib.data.faces import detect_face  # noqa: E402
from anime_lib.data.images import resize_and_crop  # noqa: E402
from anime_lib.models import geometry as geo  # noqa: E402

TILT = 20.0  # degrees
SIZE = 64  # a lesson's IMG_SIZE


def _photo_path_roll(images_uint8: torch.Tensor) -> tuple[float, bool]:
    """Roll of one (1, 3, S, S) uint8 image as a real-photo set of lesson 05 reads it."""
    g = geo.FaceGeometry.of(ImageSet(images_uint8, "human", images_uint8.shape[-1], ["img"]))
    return float(g.roll[0]), bool(g.found[0])


def _as_set_tensor(img: Image.Image) -> torch.Tensor:
    small = resize_and_crop(img, SIZE)  # what read_folder does to every photo of a folder
    return torch.from_numpy(np.asarray(small, dtype=np.uint8).copy()).permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def astronaut_face() -> tuple[Image.Image, tuple[float, float], int, float]:
    """The astronaut, the centre of her face, half a crop side and her own small roll (about +3)."""
    img = Image.fromarray(skimage_data.astronaut())
    face = detect_face(img)
    assert face is not None and face.eyes_found
    return img, face.center, int(0.9 * face.w), face.roll_degrees


def _tilted_crop(astronaut_face, clockwise_degrees: float) -> Image.Image:
    img, (cx, cy), half, _ = astronaut_face
    # PIL rotates counter-clockwise on screen for positive angles, so clockwise = -angle.
    rot = img.rotate(-clockwise_degrees, resample=Image.BICUBIC, center=(cx, cy))
    return rot.crop((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))


def test_pil_rotate_is_counter_clockwise_on_screen():
    a = np.zeros((41, 41, 3), np.uint8)
    a[20, 35] = 255  # a dot right of the centre
    ys, xs = np.nonzero(np.asarray(Image.fromarray(a).rotate(90))[..., 0])
    assert abs(xs.mean() - 20) < 1.5 and ys.mean() < 10  # it went up: counter-clockwise


def test_toyfaces_left_eye_is_left_of_the_picture_and_positive_roll_lowers_the_right_eye():
    rec = tf.Records(attrs={k: np.array([1 if k == "face_width" else 0]) for k in tf.ATTRIBUTE_NAMES},
                     roll=np.array([TILT]), light=np.array([0.0]), clothes=np.array([0]), noise_seed=np.array([1]))
    left, right = tf.landmarks_pixels(rec, "human", 128)[0, :2]
    assert left[0] < right[0]  # "left eye" = smaller x
    assert right[1] > left[1]  # positive roll: the eye on the right of the picture is lower (clockwise)
    assert float(geo.roll_from_landmarks(torch.from_numpy(np.stack([left, right])[None]))[0]) == pytest.approx(TILT, abs=1e-3)


def test_photo_eye_assignment_matches_toyfaces(astronaut_face):
    face = detect_face(_tilted_crop(astronaut_face, TILT))
    assert face is not None and face.eyes_found
    assert face.left_eye[0] < face.right_eye[0]  # left eye = the one on the left of the picture
    assert face.right_eye[1] > face.left_eye[1]  # turned clockwise: the right-hand eye is lower


@pytest.mark.parametrize("clockwise", [-TILT, TILT])
def test_rotated_photo_roll_sign_and_size(astronaut_face, clockwise):
    roll, found = _photo_path_roll(_as_set_tensor(_tilted_crop(astronaut_face, clockwise)))
    assert found
    own = astronaut_face[3]  # her own head tilt, about +3 degrees
    assert np.sign(roll) == np.sign(clockwise)
    assert roll == pytest.approx(own + clockwise, abs=4)


def test_toyfaces_and_photo_leaning_the_same_way_get_the_same_sign(astronaut_face):
    toy = (tf.render_one("human", size=SIZE, roll=TILT).clamp(0, 1) * 255).round().to(torch.uint8)[None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        toy_roll, toy_found = _photo_path_roll(toy)
    photo_roll, photo_found = _photo_path_roll(_as_set_tensor(_tilted_crop(astronaut_face, TILT)))
    assert toy_found and photo_found
    assert toy_roll == pytest.approx(TILT, abs=3)  # the Haar path reads ToyFaces' recorded roll
    assert photo_roll > 10 and toy_roll > 10
