"""Tests for anime_lib.models.dcgan (lesson 03): shapes, value ranges, initialisation, training steps."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from anime_lib.losses import r1_penalty
from anime_lib.models.dcgan import (
    ConditionalDCGAN,
    Discriminator,
    Generator,
    ImageEncoder,
    adversarial_step,
    n_upsamplings,
    stage_channels,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _adam(model: nn.Module, lr: float = 2e-4) -> torch.optim.Adam:
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999))


# ----------------------------------------------------------------------------------------- sizes


def test_stage_channels_follow_the_paper_at_64px():
    assert stage_channels(64, 64) == [512, 256, 128, 64]
    assert stage_channels(128, 64) == [512, 512, 256, 128, 64]  # capped at max_channels
    assert stage_channels(32, 16) == [64, 32, 16]
    assert [n_upsamplings(s) for s in (8, 16, 32, 64, 128)] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("size", [0, 4, 48, 100, -8])
def test_sizes_that_are_not_4_times_a_power_of_two_are_refused(size):
    with pytest.raises(ValueError, match="img_size"):
        Generator(img_size=size)


def test_paper_generator_has_the_paper_layers():
    G = Generator(z_dim=100, img_size=64, width=64)
    convs = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels) for m in convs] == [(100, 512), (512, 256), (256, 128), (128, 64), (64, 3)]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in G.modules()) == 4  # none on the RGB layer
    assert isinstance(list(G.modules())[-1], nn.Tanh)


# ----------------------------------------------------------------------------------------- shapes and ranges


@pytest.mark.parametrize("size,width", [(16, 8), (32, 8), (64, 8), (128, 4)])
def test_generator_and_discriminator_shapes_and_ranges(size, width):
    G, D = Generator(z_dim=20, img_size=size, width=width), Discriminator(img_size=size, width=width)
    z = torch.randn(5, 20)
    x = G(z)
    assert x.shape == (5, 3, size, size)
    assert x.min() >= -1 and x.max() <= 1 and torch.isfinite(x).all()
    assert torch.equal(G.eval()(z), G(z[:, :, None, None]))  # (N, z) and (N, z, 1, 1) are the same input
    logits = D(x)
    assert logits.shape == (5,) and torch.isfinite(logits).all()
    # logits are raw scores, not probabilities: a sigmoid would keep them inside (0, 1)
    D.head.bias.data.fill_(3.0)
    assert (D(x) > 1).any()


@pytest.mark.parametrize("size", [32, 64])
def test_conditional_dcgan_maps_an_image_to_an_image_in_range(size):
    G = ConditionalDCGAN(img_size=size, width=8, code_dim=16)
    x = torch.rand(4, 3, size, size) * 2 - 1
    assert ImageEncoder(size, 8, 16)(x).shape == (4, 16)
    y = G(x)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    # the output depends on the input (before training the encoder is not constant)
    G.eval()
    assert not torch.allclose(G(x[:1]), G(x[1:2]))


def test_sample_z_is_standard_normal_and_reproducible():
    G = Generator(z_dim=100, img_size=16, width=4)
    z1 = G.sample_z(2000, generator=torch.Generator().manual_seed(3))
    z2 = G.sample_z(2000, generator=torch.Generator().manual_seed(3))
    assert z1.shape == (2000, 100) and torch.equal(z1, z2)
    assert abs(float(z1.mean())) < 0.02 and abs(float(z1.std()) - 1) < 0.02


def test_no_batchnorm_variant_has_no_batchnorm():
    G = Generator(img_size=32, width=8, batchnorm=False)
    D = Discriminator(img_size=32, width=8, batchnorm=False)
    for m in (G, D):
        assert not any(isinstance(x, nn.BatchNorm2d) for x in m.modules())
        # without a norm after it, a conv needs its bias back
        assert all(c.bias is not None for c in m.modules() if isinstance(c, (nn.Conv2d, nn.ConvTranspose2d)))


# ----------------------------------------------------------------------------------------- initialisation


def test_dcgan_initialisation():
    G, D = Generator(img_size=64, width=32), Discriminator(img_size=64, width=32)
    for model in (G, D):
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.weight.numel() > 10_000:
                w = m.weight.detach()
                assert abs(float(w.std()) - 0.02) < 0.003
                assert abs(float(w.mean())) < 0.002
            if isinstance(m, nn.BatchNorm2d):
                assert abs(float(m.weight.detach().mean()) - 1) < 0.02 and float(m.bias.detach().abs().max()) == 0


# ----------------------------------------------------------------------------------------- training


def test_adversarial_step_updates_both_networks_and_reports_d_view():
    G, D = Generator(z_dim=16, img_size=16, width=8), Discriminator(img_size=16, width=8)
    opt_G, opt_D = _adam(G, 1e-3), _adam(D, 1e-3)
    g0 = [p.detach().clone() for p in G.parameters()]
    d0 = [p.detach().clone() for p in D.parameters()]
    real = torch.rand(8, 3, 16, 16) * 2 - 1
    for _ in range(3):
        out = adversarial_step(G, D, opt_G, opt_D, torch.randn(8, 16), real)
    assert set(out) == {"loss_D", "loss_G", "d_acc", "D_x", "D_G_z"}
    assert all(torch.isfinite(torch.tensor(v)) for v in out.values())
    assert 0 <= out["d_acc"] <= 1 and 0 < out["D_x"] < 1 and 0 < out["D_G_z"] < 1
    assert all(not torch.equal(a, b) for a, b in zip(g0, G.parameters()) if a.dim() > 1)
    assert all(not torch.equal(a, b) for a, b in zip(d0, D.parameters()) if a.dim() > 1)
    assert all(p.requires_grad for p in D.parameters())  # D is unfrozen again after G's step
    x = G.eval()(torch.randn(4, 16))
    assert torch.isfinite(x).all() and x.abs().max() <= 1


def test_discriminator_learns_to_separate_an_easy_fake():
    """A few steps against a frozen generator that paints flat grey: D must start winning."""
    G = Generator(z_dim=8, img_size=16, width=4)
    D = Discriminator(img_size=16, width=8)
    opt_G = torch.optim.SGD(G.parameters(), lr=0.0)  # G is frozen
    opt_D = _adam(D, 2e-3)
    real = torch.rand(16, 3, 16, 16) * 2 - 1
    first = adversarial_step(G, D, opt_G, opt_D, torch.randn(16, 8), real)
    for _ in range(25):
        last = adversarial_step(G, D, opt_G, opt_D, torch.randn(16, 8), real)
    assert last["loss_D"] < first["loss_D"]
    assert last["d_acc"] > 0.9 and last["D_x"] > last["D_G_z"] + 0.3


def test_generator_step_follows_the_non_saturating_gradient():
    """G's update must raise D's score of its samples (against a fixed D)."""
    G = Generator(z_dim=8, img_size=16, width=4)
    D = Discriminator(img_size=16, width=4)
    opt_G, opt_D = _adam(G, 5e-3), torch.optim.SGD(D.parameters(), lr=0.0)
    z = torch.randn(16, 8)
    real = torch.rand(16, 3, 16, 16) * 2 - 1
    D.eval()  # fixed statistics so that D's score does not depend on the batch
    with torch.no_grad():
        before = float(torch.sigmoid(D(G(z))).mean())
    for _ in range(10):
        adversarial_step(G, D, opt_G, opt_D, z, real)
    with torch.no_grad():
        after = float(torch.sigmoid(D(G(z))).mean())
    assert after > before


def test_r1_gamma_flattens_d_around_the_reals():
    """The same steps with R1 (gamma 10) must leave D with a smaller gradient at the real images than without."""
    real = torch.rand(16, 3, 16, 16) * 2 - 1
    slopes = {}
    for gamma in (0.0, 10.0):
        torch.manual_seed(0)
        G, D = Generator(z_dim=8, img_size=16, width=4), Discriminator(img_size=16, width=8)
        opt_G, opt_D = _adam(G, 1e-3), _adam(D, 2e-3)
        for _ in range(15):
            out = adversarial_step(G, D, opt_G, opt_D, torch.randn(16, 8), real, r1_gamma=gamma)
        assert ("r1" in out) == (gamma > 0)
        x = real.clone().requires_grad_(True)
        slopes[gamma] = float(r1_penalty(D(x), x).detach())  # D's squared slope at the reals
    assert out["r1"] >= 0
    assert slopes[10.0] < 0.5 * slopes[0.0]
    with pytest.raises(ValueError, match="r1_gamma"):
        adversarial_step(G, D, opt_G, opt_D, torch.randn(16, 8), real, r1_gamma=-1)


def test_conditional_dcgan_trains_on_image_inputs():
    G, D = ConditionalDCGAN(img_size=16, width=8, code_dim=8), Discriminator(img_size=16, width=8)
    opt_G, opt_D = _adam(G, 1e-3), _adam(D, 1e-3)
    enc0 = G.encoder.from_rgb[0].weight.detach().clone()
    human, anime = torch.rand(8, 3, 16, 16) * 2 - 1, torch.rand(8, 3, 16, 16) * 2 - 1
    for _ in range(2):
        out = adversarial_step(G, D, opt_G, opt_D, human, anime)
    assert torch.isfinite(torch.tensor(out["loss_G"]))
    assert not torch.equal(enc0, G.encoder.from_rgb[0].weight)  # the adversarial gradient reaches the encoder


# ----------------------------------------------------------------------------------------- lesson 03's helpers


def test_profile_defaults_share_one_dcgan_table():
    """Both notebooks resolve their parameters from one table: the DCGAN's settings are the same in both."""
    from anime_lib.models import dcgan

    for profile in ("smoke", "cpu", "gpu"):
        main, deep = dcgan.PROFILE_DEFAULTS[profile], dcgan.DEEP_DIVE_DEFAULTS[profile]
        assert {k: v for k, v in main.items() if k in deep} == {k: v for k, v in deep.items() if k in main}
        assert {"COND_FRACTION", "BOTH_DIRECTIONS"} <= set(main) and "ABLATION_FRACTION" in deep
        assert main["Z_DIM"] == 100 and main["LR_G"] == main["LR_D"] == 2e-4 and main["BETA1"] == 0.5


def test_speckle_and_degraded_like_live_in_metrics():
    from anime_lib import metrics

    g = torch.Generator().manual_seed(0)
    flat = torch.full((4, 3, 16, 16), 0.5)
    noisy = (flat + 0.1 * torch.randn(flat.shape, generator=g)).clamp(0, 1)
    assert metrics.speckle(flat) < 1e-6 < metrics.speckle(noisy)
    real = torch.rand(6, 3, 16, 16, generator=g).round()  # blocky "cartoon" faces: some speckle of their own
    sigma, sets = metrics.degraded_like(real, noisy, seed=0)
    assert 0 <= sigma <= 0.2 and len(sets) == 3
    assert all(x.shape == real.shape and 0 <= x.min() and x.max() <= 1 for x in sets.values())
    assert f"real + noise {sigma:.3f}" in sets  # the names say what was done
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.speckle(real * 2 - 1)


def test_histogram_figure_lives_in_viz():
    from anime_lib.viz import histogram_figure

    classes = {"hair": ("black", "blond"), "roll": ("-10..0", "0..+10", "+10..+20")}
    hists = {"real": {"hair": np.array([0.5, 0.5]), "roll": np.array([0.2, 0.6, 0.2])},
             "fake": {"hair": np.array([1.0, 0.0]), "roll": np.array([0.0, 1.0, 0.0])}}
    fig = histogram_figure(hists, classes)
    drawn = [ax for ax in fig.axes if ax.axison]
    assert len(drawn) == 2 and drawn[1].get_title() == "roll (degrees)"
    assert len(drawn[0].patches) == 4  # two classes x two sets


def test_readings_of_the_lesson():
    from anime_lib.models import dcgan

    gaps = dcgan.attribute_gaps({"a": np.array([1.0, 0.0]), "b": np.array([0.5, 0.5])},
                                {"a": np.array([0.0, 1.0]), "b": np.array([0.5, 0.5])})
    assert gaps == {"a": 1.0, "b": 0.0}
    steady = dcgan.read_collapse_monitor([0, 10, 20, 30, 40], [0.9, 0.5, 0.4, 0.3, 0.2])
    assert "fell at every snapshot" in steady[0] and "no collapse" in steady[-1]
    collapsed = dcgan.read_collapse_monitor([0, 10, 20, 30, 40], [0.9, 0.3, 0.6, 0.5, 0.5])
    assert any("At step 20" in line for line in collapsed)
    phase = {"d_acc": 0.9, "D_x": 0.8, "D_G_z": 0.1, "loss_D": 0.5, "loss_G": 2.3, "r1": 0.01}
    assert "D accuracy 90%" in dcgan.describe_d(phase) and "R1 0.010" in dcgan.describe_d(phase)
    row = {"method": "conditional DCGAN", "attr_preservation": 0.40, "attr_vs_shuffled": 0.40,
           "attr_someone_else": 0.40, "attr_ground_truth": 0.90, "output_spread": 0.05, "gt_spread": 0.20}
    text = dcgan.describe_controls(row)
    assert "no closer to their own input" in text and "conditional DCGAN closes none" in text
    assert dcgan.dcgan_label(0.0) == "DCGAN" and dcgan.dcgan_label(1.0) == "DCGAN + R1 (gamma 1)"
    assert "too few" in dcgan.read_collapse_monitor([0, 60], [0.6, 0.6])[0]
