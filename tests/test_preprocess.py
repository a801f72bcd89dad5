"""Tests for anime_lib.data.images, .faces and .stylise: loading odd images, face alignment, tensors, edge smoothing.

Fixtures are built offline from scikit-image's bundled photos (astronaut, camera).
"""
from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

skimage_data = pytest.importorskip("skimage.data")

from anime_lib.data.faces import (  # noqa: E402
    FaceBox,
    NoEyesWarning,
    NoFaceError,
    align_face,
    detect_anime_face,
    detect_face,
    load_face,
)
from anime_lib.data.images import ImageError, load_image, to_image, to_signed, to_tensor, to_unit  # noqa: E402
from anime_lib.data.stylise import edge_smooth, edge_smooth_tensor  # noqa: E402

ROTATION = 20  # degrees, PIL's counter-clockwise convention


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def upright_face(astronaut) -> FaceBox:
    face = detect_face(astronaut)
    assert face is not None
    return face


@pytest.fixture(scope="module")
def rotated(astronaut) -> Image.Image:
    # Counter-clockwise on screen: the eye on the right of the picture rises, roll becomes -20.
    return Image.fromarray(astronaut).rotate(ROTATION, resample=Image.BICUBIC, expand=True, fillcolor=(128, 128, 128))


# ------------------------------------------------------------------------------------ faces


def test_astronaut_has_one_face_and_two_eyes(upright_face):
    f = upright_face
    assert f.eyes_found
    assert 60 <= f.w <= 200 and 60 <= f.h <= 200
    # Both eyes inside the upper half of the box, left eye on the left.
    for ex, ey in (f.left_eye, f.right_eye):
        assert f.x <= ex <= f.x + f.w
        assert f.y <= ey <= f.y + f.h / 2
    assert f.left_eye[0] < f.right_eye[0]
    assert abs(f.roll_degrees) < 10


def test_align_face_shape_and_eye_position(astronaut):
    out = align_face(astronaut, size=128)
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (128, 128)
    again = detect_face(out)
    assert again is not None and again.eyes_found
    eye_y = (again.left_eye[1] + again.right_eye[1]) / 2 / 128
    assert 0.3 < eye_y < 0.5  # eyes at about 40% of the height
    assert abs(again.roll_degrees) < 3


def test_rotated_photo_roll_estimate(rotated, upright_face):
    face = detect_face(rotated)
    assert face is not None and face.eyes_found
    # Truth: -20 degrees plus the astronaut's own small head tilt.
    assert abs(face.roll_degrees - (-ROTATION)) < 6
    assert abs((face.roll_degrees - upright_face.roll_degrees) - (-ROTATION)) < 3


def test_align_face_levels_rotated_photo(rotated):
    out = align_face(rotated, size=160, pad_mode="edge")
    assert out.size == (160, 160)
    again = detect_face(out)
    assert again is not None and again.eyes_found
    assert abs(again.roll_degrees) < 4


def test_no_face_names_the_file(tmp_path):
    path = tmp_path / "cameraman.png"
    Image.fromarray(skimage_data.camera()).save(path)
    with pytest.raises(NoFaceError, match="cameraman.png") as info:
        load_face(path, size=64)
    assert "align=False" in str(info.value)
    # ... and align=False is a working escape hatch.
    t = load_face(path, size=64, align=False)
    assert t.shape == (3, 64, 64)


def test_flat_grey_image_has_no_face(tmp_path):
    path = tmp_path / "grey.jpg"
    Image.new("RGB", (300, 300), (128, 128, 128)).save(path)
    assert detect_face(path) is None
    with pytest.raises(NoFaceError, match="grey.jpg"):
        align_face(path)


def test_missing_eyes_warns_and_falls_back_to_roll_zero(astronaut, monkeypatch):
    import anime_lib.data.faces as pre

    monkeypatch.setattr(pre, "_find_eyes", lambda *args, **kwargs: None)
    with pytest.warns(NoEyesWarning):
        face = pre.detect_face(astronaut)
    assert face is not None and not face.eyes_found and face.roll_degrees == 0.0


def test_load_face_tensor(tmp_path, astronaut):
    path = tmp_path / "astronaut.jpg"
    Image.fromarray(astronaut).save(path, quality=95)
    t = load_face(path, size=96)
    assert t.shape == (3, 96, 96) and t.dtype == torch.float32
    assert -1.0 <= t.min() and t.max() <= 1.0


def test_animeface_on_a_photo_does_not_crash(astronaut, tmp_path):
    pytest.importorskip("animeface")
    from anime_lib.data.faces import load_anime_face

    face = detect_anime_face(astronaut)
    if face is None:
        path = tmp_path / "astronaut.png"
        Image.fromarray(astronaut).save(path)
        with pytest.raises(NoFaceError, match="astronaut.png"):
            load_anime_face(path)
    else:  # a false positive is allowed, but it must be a well-formed box
        assert isinstance(face, FaceBox) and face.w > 0 and face.h > 0


# ------------------------------------------------------------------------------------ loading


def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, I am not a picture\n")
    with pytest.raises(ImageError, match=r"notes\.txt is not an image"):
        load_image(path)


def test_truncated_jpeg(tmp_path, astronaut):
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    with pytest.raises(ImageError, match="cut.jpg"):
        load_image(path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "nope.png")


def _rgba() -> Image.Image:
    arr = np.zeros((40, 50, 4), np.uint8)
    arr[..., 0] = 200
    arr[:, 25:, 3] = 255  # left half fully transparent
    return Image.fromarray(arr, "RGBA")


def _palette_with_transparency() -> Image.Image:
    img = Image.new("P", (32, 32), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (16, 0, 32, 32))
    img.info["transparency"] = 0  # index 0 (red) is transparent
    return img


@pytest.mark.parametrize(
    "mode_name, make",
    [
        ("RGBA", _rgba),
        ("LA", lambda: Image.new("LA", (30, 20), (100, 0))),
        ("L", lambda: Image.new("L", (30, 20), 100)),
        ("P", _palette_with_transparency),
        ("CMYK", lambda: Image.new("CMYK", (30, 20), (0, 255, 255, 0))),
        ("I;16", lambda: Image.fromarray(np.full((20, 30), 65535, np.uint16))),
        ("1", lambda: Image.new("1", (30, 20), 1)),
    ],
)
def test_modes_load_as_rgb(tmp_path, mode_name, make):
    img = make()
    ext = "jpg" if mode_name == "CMYK" else "png"
    path = tmp_path / f"img.{ext}"
    img.save(path)
    out = load_image(path)
    assert out.mode == "RGB" and out.size == img.size


def test_transparency_becomes_white():
    out = np.asarray(load_image(_rgba()))
    assert (out[:, :20] == 255).all()  # transparent half -> white
    assert tuple(out[0, -1]) == (200, 0, 0)
    pal = np.asarray(load_image(_palette_with_transparency()))
    assert tuple(pal[0, 0]) == (255, 255, 255) and tuple(pal[0, -1]) == (0, 0, 255)


def test_sixteen_bit_is_scaled_not_clipped():
    arr = np.array([[0, 30000, 65535] * 10] * 20, np.uint16)
    out = np.asarray(load_image(arr))
    assert out[0, 0, 0] == 0 and out[0, 1, 0] == 117 and out[0, 2, 0] == 255  # 30000 / 257
    pil16 = np.asarray(load_image(Image.fromarray(arr)))
    assert pil16[0, 1, 0] == 117


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (60, 30), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "phone.jpg"
    img.save(path, exif=exif.tobytes())
    assert Image.open(path).size == (60, 30)
    assert load_image(path).size == (30, 60)


def test_webp_and_file_objects(tmp_path, astronaut):
    path = tmp_path / "a.webp"
    Image.fromarray(astronaut).save(path)
    with open(path, "rb") as fh:
        assert load_image(fh).size == (512, 512)
    assert load_image(path.read_bytes()).size == (512, 512)


def test_tiny_image_is_refused():
    with pytest.raises(ImageError, match="too small"):
        load_image(Image.new("RGB", (8, 8)))


def test_huge_image_is_downscaled(tmp_path):
    path = tmp_path / "huge.jpg"
    Image.new("RGB", (6000, 4000), (50, 100, 150)).save(path, quality=70)
    out = load_image(path, max_side=1024)
    assert out.size == (1024, 683)
    assert load_image(path).size == (2048, 1365)


# ------------------------------------------------------------------------------------ tensors


def test_to_tensor_shape_range_and_round_trip(astronaut):
    t = to_tensor(Image.fromarray(astronaut[:, :400]), 64)  # not square: centre crop
    assert t.shape == (3, 64, 64) and t.dtype == torch.float32
    assert t.min() >= -1 and t.max() <= 1 and t.min() < -0.5 and t.max() > 0.5
    img = to_image(t)
    assert img.size == (64, 64) and img.mode == "RGB"
    assert torch.allclose(to_tensor(img, 64), t, atol=1 / 127.5)
    assert to_image(t[None]).size == (64, 64)


def test_unit_and_signed_are_inverse():
    x = torch.linspace(-1, 1, 11)
    assert torch.allclose(to_unit(x), torch.linspace(0, 1, 11), atol=1e-6)
    assert torch.allclose(to_signed(to_unit(x)), x, atol=1e-6)


# ------------------------------------------------------------------------------------ edge smoothing


def test_edge_smooth_changes_only_pixels_near_edges(astronaut):
    import cv2

    img = astronaut[:200, :200].copy()
    out = edge_smooth(img)
    assert out.dtype == np.uint8 and out.shape == img.shape
    edges = cv2.Canny(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), 100, 200)
    near = cv2.dilate(edges, np.ones((5, 5), np.uint8)) > 0
    changed = (out != img).any(axis=2)
    assert changed.any()
    assert not changed[~near].any()  # far from edges: identical
    assert changed[near].mean() > 0.2  # near edges: mostly blurred


def test_edge_smooth_of_flat_image_is_identity():
    flat = np.full((32, 32, 3), 77, np.uint8)
    assert np.array_equal(edge_smooth(flat), flat)
    with pytest.raises(TypeError):
        edge_smooth(flat.astype(np.float32))


def test_edge_smooth_tensor_matches_numpy(astronaut):
    imgs = [astronaut[:64, :64], astronaut[100:164, 200:264]]
    x = torch.stack([to_signed(torch.from_numpy(i.astype(np.float32) / 255).permute(2, 0, 1)) for i in imgs])
    y = edge_smooth_tensor(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.min() >= -1 and y.max() <= 1
    for i, img in enumerate(imgs):
        ref = torch.from_numpy(edge_smooth(np.ascontiguousarray(img)).astype(np.float32)) / 127.5 - 1
        diff = (y[i].permute(1, 2, 0) - ref).abs()
        assert diff.max() <= 1.01 / 127.5  # equal up to OpenCV's uint8 rounding
    assert not torch.equal(y, x)
    assert math.isfinite(float(y.sum()))


def test_no_warnings_on_a_good_photo(astronaut):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert detect_face(astronaut) is not None
