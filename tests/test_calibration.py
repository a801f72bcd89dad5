"""The calibration ladder (anime_lib.calibration): each rung spoils the ground truth the way its name says,
and the metrics read the rungs the way the ladder teaches."""
from __future__ import annotations

import pytest
import torch

from anime_lib import metrics
from anime_lib.calibration import RUNGS, ladder, spoil
from anime_lib.data import toyfaces as tf


@pytest.fixture(scope="module")
def faces():
    return tf.toyfaces("human", n=96, size=32, split="test", with_counterpart=True)


def test_each_rung_does_what_its_name_says(faces):
    truth, source = faces.counterpart().unit(), faces.unit()
    assert torch.equal(spoil("ground truth", truth, source), truth)
    assert torch.equal(spoil("identity (no translation)", truth, source), source)
    assert torch.equal(spoil("another face's ground truth", truth, source)[1:], truth[:-1])
    assert torch.allclose(spoil("50/50 blend of input and ground truth", truth, source), (truth + source) / 2)
    a, b = spoil("noise sigma 0.1", truth, source, seed=3), spoil("noise sigma 0.1", truth, source, seed=3)
    assert torch.equal(a, b) and not torch.equal(a, spoil("noise sigma 0.1", truth, source, seed=4))
    assert 0.05 < (a - truth).std() < 0.1  # sigma 0.1, a little less where the clamp to [0, 1] bites
    for rung in ("blur sigma 1.2 px", "downsample x2 and back"):
        spoilt = spoil(rung, truth, source)
        assert metrics.sharpness(spoilt) < 0.8 * metrics.sharpness(truth), rung
        assert abs(float(spoilt.mean() - truth.mean())) < 0.01, rung  # blurring moves no brightness
    jpeg = spoil("JPEG quality 10", truth, source)
    assert jpeg.shape == truth.shape and 0.005 < float((jpeg - truth).abs().mean()) < 0.2
    cast = spoil("colour cast (+0.1 red, -0.1 blue)", truth, source)
    assert float(cast[:, 0].mean() - truth[:, 0].mean()) > 0.05 > float(cast[:, 2].mean() - truth[:, 2].mean())
    for rung in RUNGS:
        x = spoil(rung, truth, source)
        assert x.shape == truth.shape and x.min() >= 0 and x.max() <= 1, rung
    with pytest.raises(ValueError, match="unknown rung"):
        spoil("sepia", truth, source)
    with pytest.raises(ValueError, match="differ in shape"):
        spoil("ground truth", truth, source[:5])


def test_the_ladder_separates_what_toy_fid_sees_from_what_it_does_not(faces):
    rows, images = ladder(faces, "human->anime",
                          rungs=("ground truth", "another face's ground truth", "identity (no translation)"))
    truth, wrong, identity = rows
    assert [r["rung"] for r in rows] == [r["method"] for r in rows] == list(images)
    assert truth["gt_l1"] < 1e-6 and truth["attr_preservation"] > 0.95
    # the wrong face is a perfect anime face: toy_fid, a distance between sets, barely notices ...
    assert wrong["toy_fid"] < 0.3 < identity["toy_fid"]
    # ... the per-face metrics do
    assert wrong["gt_l1"] > 0.05 and wrong["attr_preservation"] < truth["attr_preservation"] - 0.2
    with pytest.raises(ValueError, match="needs a human test set"):
        ladder(faces.counterpart(), "human->anime")
