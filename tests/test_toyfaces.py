"""ToyFaces: determinism, ground truth, caching, and that the two styles really differ."""
import numpy as np
import pytest
import torch

from anime_lib.config import resolve_params, resolve_profile
from anime_lib.data import toyfaces as tf


def test_records_prefix_consistent():
    a = tf.sample_records(10, "human", seed=5)
    b = tf.sample_records(50, "human", seed=5)
    for k in tf.ATTRIBUTE_NAMES:
        assert np.array_equal(a.attrs[k], b.attrs[k][:10])
    assert np.allclose(a.roll, b.roll[:10])
    assert np.abs(b.roll).max() <= tf.ROLL_RANGE


def test_render_deterministic_and_chunk_independent():
    rec = tf.sample_records(12, "anime", seed=1)
    x1 = tf.render(rec, "anime", 64, chunk=5)
    x2 = tf.render(rec, "anime", 64, chunk=12)
    assert x1.dtype == torch.uint8 and x1.shape == (12, 3, 64, 64)
    assert torch.equal(x1, x2)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_sizes(size):
    rec = tf.sample_records(3, "human", seed=2)
    assert tf.render(rec, "human", size).shape == (3, 3, size, size)


def test_bad_arguments():
    rec = tf.sample_records(2)
    with pytest.raises(ValueError):
        tf.render(rec, "cartoon", 64)
    with pytest.raises(ValueError):
        tf.render(rec, "human", 16)
    with pytest.raises(ValueError):
        tf.sample_records(2, split="nope")


def test_domain_bias_and_balance_switch():
    h = tf.sample_records(4000, "human", seed=0)
    a = tf.sample_records(4000, "anime", seed=0)
    ab = tf.sample_records(4000, "anime", seed=0, balanced=True)
    light = lambda r: np.mean(r.attrs["skin_tone"] == 0)  # noqa: E731
    assert light(a) > light(h) + 0.25
    assert abs(light(ab) - light(h)) < 0.05


def test_counterpart_and_styles_differ(tmp_path, monkeypatch):
    monkeypatch.setenv("ANIME_LIB_DATA", str(tmp_path))
    ds = tf.toyfaces("human", n=16, size=64, with_counterpart=True)
    cp = ds.counterpart()
    assert cp.domain == "anime" and cp.images.shape == ds.images.shape
    assert cp.record(3) == ds.record(3)
    # same record, different style: clearly different pixels, but a similar colour layout
    diff = (ds.unit() - cp.unit()).abs().mean().item()
    assert 0.03 < diff < 0.3
    x = ds.tensor()
    assert x.min() >= -1 and x.max() <= 1 and x.dtype == torch.float32
    # cache: a second call loads the same images from disk
    again = tf.toyfaces("human", n=16, size=64, with_counterpart=True)
    assert torch.equal(again.images, ds.images) and torch.equal(again.counterpart().images, cp.images)
    assert len(list((tmp_path / "toyfaces").glob("*.pt"))) == 1


def test_landmarks_follow_roll():
    rec = tf.sample_records(200, "human", seed=3)
    lm = tf.landmarks_pixels(rec, "human", 64)
    eye_angle = np.degrees(np.arctan2(lm[:, 1, 1] - lm[:, 0, 1], lm[:, 1, 0] - lm[:, 0, 0]))
    assert np.allclose(eye_angle, rec.roll, atol=1e-4)
    assert (lm >= 0).all() and (lm < 64).all()


def test_eyes_are_bigger_in_anime():
    """Anime eyes are about twice the size of human eyes: measured by the area of blue iris."""
    kw = dict(size=128, skin_tone="dark", background="peach", eye_colour="blue")
    h = tf.render_one("human", **kw)
    a = tf.render_one("anime", **kw)
    white = lambda img: ((img[2] - img[0]) > 0.25).float().sum().item()  # noqa: E731
    assert white(a) > 2 * white(h) > 0


def test_profile_resolution(monkeypatch):
    monkeypatch.setenv("ANIME_LIB_PROFILE", "smoke")
    assert resolve_profile("auto") == "smoke"
    assert resolve_profile("cpu") == "cpu"
    monkeypatch.delenv("ANIME_LIB_PROFILE")
    assert resolve_profile("auto") in ("cpu", "gpu")
    with pytest.raises(ValueError):
        resolve_profile("tpu")


def test_injected_values_win(monkeypatch):
    monkeypatch.setenv("ANIME_LIB_PROFILE", "smoke")
    p = resolve_params({"PROFILE": "auto", "IMG_SIZE": 48, "STEPS": None, "DATASET": "auto"},
                       {"smoke": {"STEPS": 5}, "cpu": {"STEPS": 500}})
    assert p.IMG_SIZE == 48 and p.STEPS == 5 and p.DATASET == "toyfaces" and p.PROFILE == "smoke"
    assert "IMG_SIZE" in p.explicit and "STEPS" not in p.explicit


def test_rerunning_the_resolve_cell_ignores_non_parameters(monkeypatch, tmp_path):
    monkeypatch.setenv("ANIME_LIB_PROFILE", "smoke")
    first = resolve_params({"PROFILE": "auto", "IMG_SIZE": None})
    # a notebook's globals after the resolve cell ran once: P, an imported module, a function
    import math

    again = resolve_params({"PROFILE": "auto", "IMG_SIZE": None, "P": first, "MATH": math, "F": math.cos,
                            "OUT_DIR": tmp_path})
    assert "P" not in again.values and "MATH" not in again.values and "F" not in again.values
    assert again.OUT_DIR == tmp_path
    assert again.IMG_SIZE == first.IMG_SIZE
