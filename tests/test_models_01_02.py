"""Tests for the models of lessons 01 (difference vectors) and 02 (encoder-decoder translation)."""
from __future__ import annotations

import pytest
import torch

from anime_lib.models import difference as dv
from anime_lib.models import encoder_decoder as ed
from anime_lib.models.blocks import init_weights
from anime_lib.translation import translate_set


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    # These models are tiny: one thread is faster than two on a busy machine (no thread synchronisation).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def images(n: int, size: int = 16) -> torch.Tensor:
    """Random noise images (N, 3, size, size) in [-1, 1]."""
    return torch.rand(n, 3, size, size) * 2 - 1


def smooth_images(n: int, size: int = 16) -> torch.Tensor:
    """Learnable images: 4x4 random colours upsampled bilinearly, in [-1, 1]."""
    return torch.nn.functional.interpolate(images(n, 4), size=size, mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------------------------
# Lesson 01: difference vectors
# --------------------------------------------------------------------------------------------------


def test_mean_difference_and_mean_image():
    a, b = images(10), images(7)
    assert torch.allclose(dv.mean_difference(a, b), b.mean(0) - a.mean(0), atol=1e-6)
    # mean_image reads in chunks and agrees with the plain mean; it also takes a dataset with .tensor(idx)
    assert torch.allclose(dv.mean_image(a, chunk=3), a.mean(0), atol=1e-6)

    class Set:
        def __len__(self):
            return len(a)

        def tensor(self, idx):
            return a[idx]

    assert torch.allclose(dv.mean_image(Set(), chunk=4), a.mean(0), atol=1e-6)
    with pytest.raises(ValueError):
        dv.mean_image(a[:0])


def test_difference_step_is_a_step_towards_the_batch_difference():
    delta = torch.zeros(3, 4, 4)
    a, b = torch.zeros(5, 3, 4, 4), torch.ones(5, 3, 4, 4)
    out = dv.difference_step(delta, a, b, lr=0.25)
    assert out["distance"] == pytest.approx(1.0)  # measured before the step
    assert torch.allclose(delta, torch.full_like(delta, 0.25))
    dv.difference_step(delta, a, b, lr=1.0)  # lr 1 jumps straight to the batch difference
    assert torch.allclose(delta, torch.ones_like(delta))
    with pytest.raises(ValueError):
        dv.difference_step(delta, a, b, lr=0.0)


def test_difference_vector_converges_to_the_true_mean_difference():
    """Noisy batches of two Gaussian 'domains': the vector ends near mu_B - mu_A, far nearer than it started."""
    g = torch.Generator().manual_seed(1)
    mu_a = torch.rand(3, 8, 8, generator=g) - 0.5
    mu_b = torch.rand(3, 8, 8, generator=g) - 0.5
    true = mu_b - mu_a
    delta = torch.zeros(3, 8, 8)
    for _ in range(600):
        a = mu_a + 0.5 * torch.randn(100, 3, 8, 8, generator=g)
        b = mu_b + 0.5 * torch.randn(100, 3, 8, 8, generator=g)
        dv.difference_step(delta, a, b, lr=0.02)
    start, end = true.abs().mean().item(), (delta - true).abs().mean().item()
    # batch-difference noise per pixel: 0.5 * sqrt(2/100) ~ 0.07; the EMA shrinks it by sqrt(lr / (2 - lr)) ~ 0.1
    assert end < 0.02, (start, end)
    assert end < 0.1 * start


def test_image_difference_adds_and_subtracts_and_clips():
    model = dv.ImageDifference(size=8)
    model.delta.fill_(0.5)
    x = torch.zeros(2, 3, 8, 8)
    assert torch.allclose(model(x, "human->anime"), torch.full_like(x, 0.5))
    assert torch.allclose(model(x, "anime->human"), torch.full_like(x, -0.5))
    assert torch.allclose(model(x, "human->anime", strength=0.0), x)
    assert model(torch.ones(1, 3, 8, 8), "human->anime").max() == 1.0  # clipped to [-1, 1]
    with pytest.raises(ValueError):
        model(x, "cat->dog")
    assert "delta" in model.state_dict()  # checkpointed with the module


def test_image_difference_from_a_snapshot():
    delta = torch.rand(3, 8, 8) - 0.5
    model = dv.ImageDifference.from_delta(delta)
    delta.zero_()  # a copy: later changes of the snapshot do not reach the model
    x = torch.zeros(1, 3, 8, 8)
    assert not torch.equal(model.translate(x, "human->anime"), x)
    assert torch.allclose(model.translate(x, "human->anime"), -model.translate(x, "anime->human"))


class EyeSet:
    """Two 8x8 faces with their eyes at fixed pixels; the counterpart is all ones (in [0, 1] units)."""

    size = 8

    def __init__(self, counterpart=False):
        self.landmarks = torch.tensor([[[2.5, 2.5], [5.5, 2.5], [4.0, 5.0], [3.0, 6.0], [5.0, 6.0]]] * 2)
        self.is_counterpart = counterpart

    def __len__(self):
        return 2

    def counterpart(self):
        return EyeSet(counterpart=True)

    def unit(self):
        return torch.ones(2, 3, 8, 8)


def test_eye_region_error_splits_the_error():
    mask = dv.eye_mask(EyeSet(), radius=1.0)
    assert mask.shape == (2, 1, 8, 8) and mask[0, 0, 2, 2] and mask[0, 0, 2, 5] and not mask[0, 0, 6, 0]
    fake = torch.ones(2, 3, 8, 8)
    fake[mask.expand_as(fake)] = 0.0  # wrong exactly around the eyes
    inside, outside, share = dv.eye_region_error(fake, EyeSet(), radius=1.0)
    assert inside == pytest.approx(1.0) and outside == pytest.approx(0.0)
    assert share == pytest.approx(mask.float().mean().item())


@pytest.mark.parametrize("size", [16, 32])
def test_autoencoder_shapes_and_ranges(size):
    ae = dv.ConvAutoencoder(size=size, latent_dim=12, width=4, max_channels=16)
    x = images(3, size)
    z = ae.encode(x)
    assert z.shape == (3, 12)
    y = ae.decode(z)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1
    with pytest.raises(ValueError):
        dv.ConvAutoencoder(size=48)


def test_autoencoder_steps_reduce_the_reconstruction_loss():
    ae = init_weights(dv.ConvAutoencoder(size=16, latent_dim=16, width=8, max_channels=32))
    opt = torch.optim.Adam(ae.parameters(), lr=3e-3)
    a, b = smooth_images(8), -smooth_images(8)
    first = dv.autoencoder_step(ae, opt, a, b)["recon"]
    for _ in range(25):
        last = dv.autoencoder_step(ae, opt, a, b)["recon"]
    assert last < 0.8 * first


def test_latent_difference_fit_and_directions():
    ae = dv.ConvAutoencoder(size=16, latent_dim=8, width=4, max_channels=16).eval()
    human, anime = images(6), images(5) * 0.5 + 0.3
    model = dv.LatentDifference(ae).fit(human, anime)
    with torch.no_grad():
        expected = ae.encode(anime).mean(0) - ae.encode(human).mean(0)
        assert torch.allclose(model.d, expected, atol=1e-5)
        x = human[:2]
        z = ae.encode(x)
        assert torch.allclose(model(x, "human->anime"), ae.decode(z + expected), atol=1e-5)
        assert torch.allclose(model(x, "anime->human"), ae.decode(z - expected), atol=1e-5)
        assert torch.allclose(model(x, "human->anime", strength=0.0), ae(x), atol=1e-5)


# --------------------------------------------------------------------------------------------------
# Lesson 02: encoder-decoder
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size,n_down", [(16, 2), (32, 3), (64, 3)])
def test_encoder_decoder_shapes_and_range(size, n_down):
    model = ed.EncoderDecoder(width=4, n_down=n_down)
    x = images(2, size) * 5  # even far out-of-range input gives an output in [-1, 1]
    h = model.encoder(x)
    assert h.shape == (2, model.encoder.out_channels, size // 2**n_down, size // 2**n_down)
    y = model(x)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1


def test_encoder_rejects_sizes_it_cannot_halve():
    with pytest.raises(ValueError):
        ed.EncoderDecoder(width=4, n_down=3)(images(1, 20))
    with pytest.raises(ValueError):
        ed.ConvEncoder(n_down=0)


def test_patch_discriminator_shape():
    d = ed.PatchDiscriminator(width=4)
    logits = d(images(2, 32), images(2, 32))
    assert logits.shape == (2, 1, 32 // 4 - 2, 32 // 4 - 2)


def test_pixel_loss():
    a, b = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    assert ed.pixel_loss(a, b, "l1").item() == pytest.approx(0.5)
    assert ed.pixel_loss(a, b, "l2").item() == pytest.approx(0.25)
    with pytest.raises(ValueError):
        ed.pixel_loss(a, b, "huber")


def test_random_and_true_pairs():
    g = torch.Generator().manual_seed(0)
    i, j = ed.random_pairs(10, 1000, 64, g)
    assert i.shape == j.shape == (64,)
    assert i.max() < 10 and j.max() < 1000
    assert not torch.equal(i, j)  # independent draws
    i, j = ed.true_pairs(10, 5, g)
    assert torch.equal(i, j)
    # the same generator state gives the same batch: what makes resuming exact
    a = ed.random_pairs(50, 50, 8, torch.Generator().manual_seed(3))
    b = ed.random_pairs(50, 50, 8, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_paired_training_steps_reduce_the_loss():
    """A few steps of paired training on a fixed learnable mapping (colour inversion of smooth images) lower
    the pixel loss."""
    model = init_weights(ed.EncoderDecoder(width=8, n_down=2))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, betas=(0.5, 0.999))
    x = smooth_images(16)
    y = -x
    first = ed.translation_step(model, opt, x, y)["pixel"]
    for _ in range(30):
        last = ed.translation_step(model, opt, x, y)["pixel"]
    assert last < 0.7 * first


def test_unpaired_optimum_is_the_average_target():
    """With random targets the L2 loss is minimised by the mean target: the model's outputs stop depending on
    the input. A model that outputs the mean target scores lower than one that copies a true pair."""
    targets = images(200, 8)
    mean = targets.mean(0, keepdim=True)
    perm = torch.randperm(200)
    constant = ed.pixel_loss(mean.expand_as(targets), targets[perm], "l2")
    copy_input = ed.pixel_loss(targets, targets[perm], "l2")  # a sharp, 'real-looking' output per input
    assert constant < copy_input


def test_pix2pix_step_updates_both_networks():
    g_net, d_net = ed.EncoderDecoder(width=4, n_down=2), ed.PatchDiscriminator(width=4)
    opt_g = torch.optim.Adam(g_net.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(d_net.parameters(), lr=1e-3)
    before_g = [p.clone() for p in g_net.parameters()]
    before_d = [p.clone() for p in d_net.parameters()]
    out = ed.pix2pix_step(g_net, d_net, opt_g, opt_d, images(4, 16), images(4, 16), lambda_l1=10.0)
    assert set(out) == {"gan", "pixel", "d"}
    assert all(isinstance(v, float) for v in out.values())
    assert any(not torch.equal(a, b) for a, b in zip(before_g, g_net.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before_d, d_net.parameters()))


def test_encoder_decoder_is_a_one_way_translator():
    model = ed.EncoderDecoder(width=4, n_down=2, direction="anime->human")
    x = images(5, 16)
    out = translate_set(model, x, "anime->human", batch=2)  # batched, in eval mode, the mode restored
    assert out.shape == x.shape and model.training
    assert torch.allclose(out, model.eval()(x), atol=1e-6)
    with pytest.raises(ValueError):
        model.translate(x, "human->anime")


def test_average_face_is_the_median_or_the_mean():
    x = images(9, 8)
    assert torch.allclose(ed.average_face(x, "l1"), x.median(dim=0).values)
    assert torch.allclose(ed.average_face(x, "l2"), x.mean(dim=0), atol=1e-6)
    assert torch.allclose(ed.average_face(x, "l2", limit=3), x[:3].mean(dim=0), atol=1e-6)
    with pytest.raises(ValueError):
        ed.average_face(x, "huber")


def test_drift_stats():
    sharp = (torch.arange(16).remainder(2).float().view(1, 1, 1, 16)).expand(4, 3, 16, 16).clone()  # stripes
    flat = torch.full_like(sharp, 0.5)
    stats = ed.drift_stats(sharp, flat[0])
    assert stats["sharpness"] > 0.2 and stats["spread"] == pytest.approx(0.0, abs=1e-7)
    assert stats["to_average"] == pytest.approx(0.5)
    assert ed.drift_stats(flat, flat[0]) == {"sharpness": 0.0, "spread": 0.0, "to_average": 0.0}
    assert ed.drift_stats(torch.rand(4, 3, 8, 8), flat[0, :, :8, :8])["spread"] > 0.1
