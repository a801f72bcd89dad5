"""The measurements of a lesson's real-photo part: FID/KID rows from the one evaluation helper, the reference rows
that make them readable, and an honest None (said once) where the feature network is not available."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from anime_lib import evaluation as E
from anime_lib import metrics as M
from anime_lib.data import toyfaces as tf
from anime_lib.data.domains import load_real_photos
from anime_lib.translation import FunctionTranslator


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder of JPEG files in the selfie2anime layout (ToyFaces renders), read back as real photos."""
    root = tmp_path_factory.mktemp("real") / "photos"
    for sub, n in {"trainA": 40, "trainB": 40, "testA": 40, "testB": 40}.items():
        domain, split = ("human" if sub.endswith("A") else "anime"), ("train" if sub.startswith("train") else "test")
        (root / sub).mkdir(parents=True)
        faces = tf.toyfaces(domain, n=n, size=32, split=split, seed=1)
        for i in range(n):
            Image.fromarray(faces.images[i].permute(1, 2, 0).numpy().astype(np.uint8)).save(root / sub / f"{i}.jpg")
    real = load_real_photos(root, 32, n_train=40, n_eval=40)
    assert real is not None and not real.has_ground_truth
    return real


def test_fid_rows_on_photos_with_their_two_reference_rows(photos):
    same = FunctionTranslator(lambda x, direction=None: x)  # "translates" by returning the photo
    rows = E.evaluate(same, photos.test, method="identity translator", fid_features="probe", dataset="photos")
    refs = E.reference_rows(photos.test, fid_features="probe", train_sets=photos.train)
    assert [r["method"] for r in refs] == ["identity (no translation)", "real anime faces (training images)",
                                          "identity (no translation)", "real human faces (training images)"]
    for row in rows + refs:
        assert all(row[k] is not None and np.isfinite(row[k]) for k in ("fid", "kid", "kid_std")), row
        assert row["toy_fid"] is None and row["gt_l1"] is None and row["realism"] is None  # nothing invented
    by = {(r["method"], r["direction"]): r for r in rows + refs}
    for d, dst in (("human->anime", "anime"), ("anime->human", "human")):
        identity, floor = by[("identity (no translation)", d)], by[(f"real {dst} faces (training images)", d)]
        assert by[("identity translator", d)]["fid"] == pytest.approx(identity["fid"])  # the same images, the same FID
        assert floor["fid"] < identity["fid"] / 2 and floor["kid"] < identity["kid"]  # real target faces score far lower
        assert identity["kid_std"] > 0  # KID's subsets differ, so its spread is measured
    assert E.reference_rows(photos.test) == []  # without fid_features: nothing can be measured on photos


def test_without_the_feature_network_the_values_are_none_and_the_reason_is_said_once(photos, monkeypatch, capsys):
    def unavailable():
        raise M.MetricUnavailable("no Inception weights here (test)")

    monkeypatch.setattr(M, "_inception_extractor", unavailable)
    monkeypatch.setattr(E, "_SAID", set())
    same = FunctionTranslator(lambda x, direction=None: x)
    rows = E.evaluate(same, photos.test, method="m", fid_features="inception")
    rows += E.reference_rows(photos.test, fid_features="inception", train_sets=photos.train)
    assert all(r[k] is None for r in rows for k in E.FID_METRICS)
    assert all(r["recon_l1"] is not None for r in rows[:2])  # what can be measured still is
    assert capsys.readouterr().out.count("no Inception weights here") == 1


def test_fid_features_names_and_kid_subsets():
    assert M.fid_feature_extractor("inception") is None  # inception_fid_kid's default network
    features = M.fid_feature_extractor("probe")(torch.rand(3, 3, 32, 32))
    assert features.shape == (3, 128)
    with pytest.raises(ValueError, match="FID_FEATURES"):
        M.fid_feature_extractor("vgg")
    assert M.kid_subset_size(100, 100, 100) == 50 and M.kid_subset_size(100, 1000, 1000) == 100
    assert M.kid_subset_size(100, 3, 40) == 2
    with pytest.raises(KeyError, match="needs a test set of 'anime'"):
        E.evaluate(FunctionTranslator(lambda x, direction=None: x), {"human": torch.zeros(2, 3, 8, 8)}, "human->anime",
                   method="m", fid_features="probe")


def test_the_fid_ladder_on_photos_orders_its_ends(photos):
    from anime_lib.calibration import REAL_RUNGS, fid_ladder

    rows, images = fid_ladder(photos, "human->anime", features="probe")
    assert [r["rung"] for r in rows] == list(REAL_RUNGS) and set(images) == set(REAL_RUNGS)
    by = {r["rung"]: r for r in rows}
    assert by["ground truth"]["method"] == "real anime faces (training images)"
    assert by["ground truth"]["fid"] < by["noise sigma 0.1"]["fid"] and by["ground truth"]["fid"] < by["identity (no translation)"]["fid"]
    assert by["50/50 blend of input and ground truth"]["fid"] < by["identity (no translation)"]["fid"]
    assert images["identity (no translation)"].shape == (len(photos.test["anime"]), 3, 32, 32)
    with pytest.raises(ValueError, match="needs pairs"):
        fid_ladder(photos, rungs=["another face's ground truth"], features="probe")
