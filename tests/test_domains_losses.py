"""load_domains (ToyFaces and folder datasets) and the shared GAN losses."""
import numpy as np
import pytest
import torch
from PIL import Image

from anime_lib import losses
from anime_lib.data.domains import load_domains


def test_toyfaces_domains_have_ground_truth():
    d = load_domains("toyfaces", size=32, n_train=20, n_eval=8)
    assert d.has_ground_truth
    assert len(d.train["human"]) == 20 and len(d.test["anime"]) == 8
    x = d.test["human"].tensor()
    assert x.shape == (8, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert d.test["human"].counterpart().domain == "anime"


def _folder_dataset(root, n=3):
    rng = np.random.default_rng(0)
    for sub in ("trainA", "trainB", "testA", "testB"):
        (root / sub).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(root / sub / f"{i}.png")
    (root / "trainA" / "broken.jpg").write_bytes(b"not really a jpeg")
    return root


def test_folder_dataset(tmp_path, capsys):
    root = _folder_dataset(tmp_path / "mine")
    d = load_domains(str(root), size=16, n_train=10, n_eval=2)
    assert not d.has_ground_truth
    assert len(d.train["human"]) == 3  # the broken file is skipped, not fatal
    assert "skipped 1 unreadable" in capsys.readouterr().out
    assert len(d.test["anime"]) == 2
    u = d.train["anime"].unit()
    assert u.shape == (3, 3, 16, 16) and 0 <= float(u.min()) and float(u.max()) <= 1


def test_folder_dataset_without_layout(tmp_path):
    (tmp_path / "flat").mkdir()
    with pytest.raises(ValueError, match="trainA"):
        load_domains(str(tmp_path / "flat"), size=16)


def test_gan_losses_known_values():
    big = torch.full((4, 1), 20.0)
    assert float(losses.gan_loss(big, True, "bce")) < 1e-6
    assert float(losses.gan_loss(big, False, "bce")) == pytest.approx(20.0, rel=1e-4)
    ones, zeros = torch.ones(3, 1, 4, 4), torch.zeros(3, 1, 4, 4)
    assert float(losses.discriminator_loss(ones, zeros, "lsgan")) == 0.0
    assert float(losses.discriminator_loss(zeros, ones, "lsgan")) == pytest.approx(1.0)
    assert float(losses.generator_loss(ones, "lsgan")) == 0.0
    assert float(losses.generator_loss(ones * 3, "hinge")) == -3.0
    assert float(losses.discriminator_loss(ones * 2, -ones * 2, "hinge")) == 0.0
    assert losses.discriminator_accuracy(ones, zeros, "lsgan") == 1.0
    with pytest.raises(ValueError, match="unknown GAN loss"):
        losses.gan_loss(ones, True, "wgan")


def test_generator_bce_is_non_saturating():
    fake = torch.full((2, 1), -10.0, requires_grad=True)  # D is sure these are fake
    losses.generator_loss(fake, "bce").backward()
    assert fake.grad.abs().mean() > 0.1  # strong gradient where the saturating form would vanish


def test_r1_penalty_known_value_and_gradient():
    """For a linear D(x) = <w, x> the gradient is w for every image, so R1 = ||w||^2 and d R1 / d w = 2 w."""
    w = torch.randn(3, 4, 4, requires_grad=True)
    real = torch.randn(5, 3, 4, 4).requires_grad_(True)
    r1 = losses.r1_penalty((real * w).flatten(1).sum(1), real)
    assert torch.isclose(r1, w.pow(2).sum())
    r1.backward()
    assert torch.allclose(w.grad, 2 * w.detach())
    # a D that ignores its input is flat: no penalty
    flat = losses.r1_penalty(real.sum(1).mean((1, 2)) * 0 + 3.0, real)
    assert float(flat) == 0.0
    with pytest.raises(ValueError, match="require gradients"):
        losses.r1_penalty(torch.zeros(2), torch.zeros(2, 3, 4, 4))
