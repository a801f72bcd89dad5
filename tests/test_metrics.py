"""The probe's accuracy and the metrics' behaviour on cases whose answer is known."""
import numpy as np
import pytest
import torch

from anime_lib import metrics
from anime_lib.data import toyfaces as tf
from anime_lib.probe import evaluate_probe, load_probe


@pytest.fixture(scope="module")
def probe():
    return metrics.get_probe()


def test_probe_accuracy_on_fresh_faces(probe):
    acc = evaluate_probe(probe, n=300, seed=7, per_domain=True)
    assert acc["domain"] >= 0.98, acc
    for name in tf.ATTRIBUTE_NAMES:
        assert acc[name] >= 0.90, (name, acc)
    assert acc["roll_mae"] <= 3.0, acc
    for dom in tf.DOMAINS:  # neither style is carried by the other
        for name in tf.ATTRIBUTE_NAMES:
            assert acc[f"{dom}/{name}"] >= 0.85, (dom, name, acc)


def test_probe_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m anime_lib.probe"):
        load_probe(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="corrupt"):
        load_probe(bad)


@pytest.fixture(scope="module")
def human32():
    return tf.toyfaces("human", n=200, size=32, split="test", with_counterpart=True, cache=False)


def test_realism_separates_domains(probe, human32):
    anime = human32.counterpart().unit()
    assert metrics.realism(anime, "anime", probe) > 0.95
    assert metrics.realism(human32.unit(), "anime", probe) < 0.05
    assert metrics.realism(human32.unit(), "human", probe) > 0.95


def test_attr_preservation_perfect_and_shuffled(probe, human32):
    truth = human32.counterpart().unit()
    perfect = metrics.attr_preservation(truth, human32.records, probe)
    shuffled = metrics.attr_preservation(truth.flip(0), human32.records, probe)
    assert perfect > 0.9
    assert shuffled < perfect - 0.3
    per = metrics.attr_agreement(truth, human32.records, probe)
    assert set(per) == set(tf.ATTRIBUTE_NAMES) | {"roll"}
    assert metrics.roll_error(truth, human32.records, probe) < 4.0


def test_gt_l1_and_range_check(human32):
    y = human32.counterpart().unit()
    assert metrics.gt_l1(y, y) == 0.0
    assert metrics.gt_l1(torch.zeros_like(y), torch.ones_like(y)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.gt_l1(y * 2 - 1, y)
    with pytest.raises(ValueError, match="shape"):
        metrics.gt_l1(y[:, :, :16], y)


def test_toy_fid_is_normalised(probe, human32):
    real_anime = tf.toyfaces("anime", n=200, size=32, split="test", cache=False).unit()
    near = metrics.toy_fid(real_anime, "anime", probe)
    far = metrics.toy_fid(human32.unit(), "anime", probe)
    assert abs(near) < 0.15, near
    assert 0.8 < far < 1.2, far
    noisy = (real_anime + 0.25 * torch.randn(real_anime.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    mid = metrics.toy_fid(noisy, "anime", probe)
    assert near < mid, (near, mid)
    assert metrics.toy_fid(real_anime, "anime", probe, raw=True) >= 0


def test_diversity_exposes_mode_collapse(probe):
    real = tf.toyfaces("anime", n=200, size=32, split="test", cache=False).unit()
    collapsed = real[:1].expand(200, -1, -1, -1)
    d_real = metrics.diversity(real, "anime", probe)
    d_collapsed = metrics.diversity(collapsed, "anime", probe)
    assert d_real < 0.12, d_real
    assert d_collapsed > 0.5, d_collapsed


def test_evaluate_bundles(probe, human32):
    m = metrics.evaluate_translation(human32.counterpart().unit(), human32, "anime", probe=probe)
    assert set(m) == {"realism", "attr_preservation", "gt_l1", "toy_fid", "roll_error"}
    assert m["gt_l1"] == 0.0 and m["realism"] > 0.95
    with pytest.raises(ValueError, match="translations"):
        metrics.evaluate_translation(human32.unit()[:10], human32, "anime", probe=probe)
    g = metrics.evaluate_generator(human32.counterpart().unit(), "anime", probe=probe)
    assert set(g) == {"realism", "toy_fid", "diversity"}
    assert all(np.isfinite(v) for v in g.values())


def test_domain_is_checked(human32):
    with pytest.raises(ValueError, match="domain"):
        metrics.realism(human32.unit(), "cartoon")


def test_inception_fid_never_fakes_a_number(monkeypatch, human32):
    import builtins

    real_import = builtins.__import__

    def no_fidelity(name, *a, **k):
        if name.startswith("torch_fidelity"):
            raise ImportError("no torch_fidelity here")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_fidelity)
    with pytest.raises(metrics.MetricUnavailable, match="torch-fidelity"):
        metrics.inception_fid_kid(human32.unit(), human32.unit())


class _TinyFeatures(torch.nn.Module):
    """A stand-in for Inception: per-channel means of a 2x2 grid plus per-channel std (15 features)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool2d(x.float(), 2).flatten(1)
        return torch.cat([pooled, x.float().std(dim=(2, 3))], dim=1)


def test_inception_fid_kid_real_code_path_with_a_stand_in_extractor(monkeypatch):
    # the Inception path must not be touched when an extractor is given (no download, no network)
    monkeypatch.setattr(metrics, "_inception_extractor", lambda: pytest.fail("Inception was loaded"))
    g = torch.Generator().manual_seed(0)
    a = torch.rand(90, 3, 16, 16, generator=g) * 0.6
    a2 = torch.rand(90, 3, 16, 16, generator=g) * 0.6  # a fresh draw from the same distribution
    b = torch.rand(90, 3, 16, 16, generator=g) * 0.6 + 0.4
    calls = []
    extractor = _TinyFeatures()
    extractor.register_forward_hook(lambda module, inputs, out: calls.append(len(inputs[0])))
    same = metrics.inception_fid_kid(a, a, kid_subset=50, feature_extractor=extractor, batch=32)
    assert calls == [32, 32, 26, 32, 32, 26]  # batched, each set through the extractor once
    assert set(same) == {"fid", "kid", "kid_std"}
    assert abs(same["fid"]) < 1e-3 and abs(same["kid"]) < 1e-3
    fresh = metrics.inception_fid_kid(a2, a, kid_subset=50, feature_extractor=extractor)
    other = metrics.inception_fid_kid(b, a, kid_subset=50, feature_extractor=extractor)
    assert other["fid"] > 10 * max(fresh["fid"], 1e-4) and other["fid"] > 0.01
    assert other["kid"] > 10 * max(abs(fresh["kid"]), 1e-5)
    with pytest.raises(ValueError, match="at least 2 images"):
        metrics.inception_fid_kid(a[:1], a, feature_extractor=extractor)


def test_probe_warns_when_the_renderer_changed(tmp_path, monkeypatch, probe):
    from anime_lib.probe import save_probe

    path = save_probe(probe, tmp_path / "p.pt")
    monkeypatch.setattr(tf, "RENDER_VERSION", tf.RENDER_VERSION + 1)
    with pytest.warns(UserWarning, match="render version"):
        load_probe(path)


def test_translation_toy_fid_does_not_punish_keeping_attributes(probe, human32):
    # the ground-truth translations carry human attribute frequencies (30% light skin); real anime
    # faces are 70% light. Matched references score a perfect translator near 0, unmatched ones do not.
    truth = human32.counterpart().unit()
    matched = metrics.toy_fid(truth, "anime", probe, matched=True)
    unmatched = metrics.toy_fid(truth, "anime", probe, matched=False)
    assert abs(matched) < 0.15, matched
    assert unmatched > matched + 0.1, (matched, unmatched)
    assert metrics.evaluate_translation(truth, human32, "anime", probe=probe)["toy_fid"] == pytest.approx(matched)


def test_feature_spread_reads_content_not_speckle(probe):
    real = tf.toyfaces("anime", n=200, size=32, split="test", seed=3, cache=False).unit()
    other = tf.toyfaces("anime", n=200, size=32, split="extra", seed=3, cache=False).unit()
    one = real[:1].expand(200, -1, -1, -1)
    g = torch.Generator().manual_seed(0)
    speckled = (one + 0.05 * torch.randn(one.shape, generator=g)).clamp(0, 1)
    s_real, s_other = metrics.feature_spread(real, probe), metrics.feature_spread(other, probe)
    assert s_real > 0 and abs(s_real - s_other) < 0.15 * s_real  # two real sets agree
    assert metrics.feature_spread(one, probe) == pytest.approx(0.0, abs=1e-5)  # never paired with itself: 0 only if all equal
    # one face with pixel noise: far apart in pixels, close together in content
    pixel = lambda x: float((x - x.roll(1, 0)).abs().mean())  # noqa: E731
    assert pixel(speckled) > 0.15 * pixel(real)
    assert metrics.feature_spread(speckled, probe) < 0.5 * s_real
    assert metrics.feature_spread(metrics.analyse(real, probe), probe) == pytest.approx(s_real)  # a reading is reused
    with pytest.raises(ValueError, match="at least 2"):
        metrics.feature_spread(real[:1], probe)


def test_frechet_distance_is_torchmetrics_fid_on_the_same_features():
    """toy_fid's own Frechet distance gives the number torchmetrics' FID gives for the same features."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    torch.manual_seed(0)
    real, fake = torch.randn(300, 16), torch.randn(200, 16) * 1.3 + 0.4
    reference = FrechetInceptionDistance(feature=metrics._Precomputed(16))
    reference.update(real, real=True)
    reference.update(fake, real=False)
    ours = metrics.frechet_distance(metrics.gaussian_statistics(real), metrics.gaussian_statistics(fake))
    assert ours == pytest.approx(float(reference.compute()), rel=1e-6)
    assert metrics.frechet_distance(metrics.gaussian_statistics(real), metrics.gaussian_statistics(real)) == pytest.approx(0, abs=1e-6)
    mu, cov = metrics.gaussian_statistics(real)
    assert mu.dtype == torch.float64 and torch.allclose(cov, torch.cov(real.double().T))


def test_reading_agreement_pairs_images_without_records():
    from anime_lib.data.toyfaces import ATTRIBUTE_NAMES, toyfaces

    faces = toyfaces("human", n=24, size=32, split="test", seed=4).unit()
    same = metrics.reading_agreement(faces, faces)
    assert set(same) == {*ATTRIBUTE_NAMES, "roll"} and all(v == 1.0 for v in same.values())
    shifted = metrics.reading_agreement(faces, faces.roll(1, dims=0))
    assert min(shifted.values()) < 1.0
    with pytest.raises(ValueError, match="differ in length"):
        metrics.reading_agreement(faces, faces[:3])
