"""Tests for anime_lib.models.geometry (lesson 05): the angle channel, the channel-mismatch fix, landmark
regressor, part patches, shape transfer, and training steps of every variant."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from anime_lib.data import toyfaces as tf
from anime_lib.models import geometry as geo
from anime_lib.models.cyclegan import ResnetGenerator
from anime_lib.models.blocks import ImagePool
from anime_lib.translation import translate_set


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _images(n: int, size: int) -> torch.Tensor:
    return torch.rand(n, 3, size, size) * 2 - 1


def _landmarks_at_roll(roll_degrees: list[float], size: int = 32) -> torch.Tensor:
    """Five landmarks (pixels) of an upright layout turned by each roll about the image centre."""
    upright = torch.tensor([[-0.3, -0.1], [0.3, -0.1], [0.0, 0.15], [-0.15, 0.35], [0.15, 0.35]])
    th = torch.deg2rad(torch.tensor(roll_degrees)).view(-1, 1)
    x = torch.cos(th) * upright[:, 0] - torch.sin(th) * upright[:, 1]
    y = torch.sin(th) * upright[:, 0] + torch.cos(th) * upright[:, 1]
    return (torch.stack([x, y], -1) + 1) / 2 * size


def _toy_batch(n: int = 4, size: int = 16) -> tuple[geo.GeometryBatch, geo.ShapeTransfer]:
    recs_a = tf.sample_records(n, "human", "test", seed=3)
    recs_b = tf.sample_records(n, "anime", "test", seed=3)
    # ToyFaces renders 32 px and up; smaller test images are average-pooled from 32 px
    a = torch.nn.functional.avg_pool2d(tf.render(recs_a, "human", 32).float().div(127.5).sub(1), 32 // size)
    b = torch.nn.functional.avg_pool2d(tf.render(recs_b, "anime", 32).float().div(127.5).sub(1), 32 // size)
    lm_a = geo.normalise_landmarks(torch.as_tensor(tf.landmarks_pixels(recs_a, "human", size)), size)
    lm_b = geo.normalise_landmarks(torch.as_tensor(tf.landmarks_pixels(recs_b, "anime", size)), size)
    batch = geo.GeometryBatch(a, b, geo.roll_from_landmarks(lm_a), geo.roll_from_landmarks(lm_b), lm_a, lm_b)
    return batch, geo.ShapeTransfer.fit(lm_a, lm_b)


# ----------------------------------------------------------------------------------------------- the angle


def test_roll_from_landmarks_recovers_known_rolls():
    rolls = [-28.0, -10.0, 0.0, 12.5, 30.0]
    got = geo.roll_from_landmarks(_landmarks_at_roll(rolls))
    assert torch.allclose(got, torch.tensor(rolls), atol=1e-3)


def test_roll_from_toyfaces_landmarks_matches_the_records():
    ds = tf.toyfaces("human", n=20, size=32, split="test", cache=False)
    assert torch.allclose(geo.roll_from_landmarks(ds.landmarks), ds.roll, atol=1e-3)
    anime = tf.toyfaces("anime", n=20, size=32, split="test", cache=False)
    assert torch.allclose(geo.roll_from_landmarks(anime.landmarks), anime.roll, atol=1e-3)


def test_angle_map_of_an_upright_face_is_a_top_to_bottom_ramp():
    m = geo.angle_map(torch.tensor([0.0]), 16)
    assert m.shape == (1, 1, 16, 16)
    assert torch.allclose(m[0, 0, :, 0], m[0, 0, :, 7])  # constant along every row
    assert bool((m[0, 0, 1:, 3] > m[0, 0, :-1, 3]).all())  # increasing downwards
    assert float(m.abs().max()) <= 1.0


def test_angle_map_is_built_on_the_device_of_the_rolls():
    # geometry_batch moves the rolls to the training device (a GPU in Colab); the map must be made there too.
    # The meta device stands in for a GPU: mixing it with a CPU grid fails the same way.
    m = geo.angle_map(torch.tensor([10.0, -5.0], device="meta"), 8)
    assert (m.device.type, tuple(m.shape)) == ("meta", (2, 1, 8, 8))


@pytest.mark.parametrize("roll", [-30.0, -15.0, 7.5, 22.0, 30.0])
def test_angle_map_encodes_the_roll(roll):
    m = geo.angle_map(torch.tensor([roll]), 32)
    assert float(geo.roll_from_angle_map(m)) == pytest.approx(roll, abs=1e-3)
    # stripes of equal value run along the eye line: moving along it leaves the map unchanged
    th = math.radians(roll)
    c = (torch.arange(32) + 0.5) / 32 * 2 - 1
    y, x = torch.meshgrid(c, c, indexing="ij")
    along = (-math.sin(th) * (x + 0.1 * math.cos(th)) + math.cos(th) * (y + 0.1 * math.sin(th))) / math.sqrt(2)
    assert torch.allclose(along, m[0, 0], atol=1e-5)
    assert not torch.allclose(geo.angle_map(torch.tensor([-roll]), 32), m)


def test_a_constant_plane_is_erased_by_instancenorm_but_the_ramp_is_not():
    const = torch.full((2, 1, 16, 16), 0.7)
    ramp = geo.angle_map(torch.tensor([20.0, -20.0]), 16)
    assert geo.instancenorm_response(const) < 1e-4
    assert geo.instancenorm_response(ramp) > 0.1


def test_with_channel_appends_one_channel_and_checks_shapes():
    x = _images(3, 16)
    out = geo.with_channel(x, geo.angle_map(torch.zeros(3), 16))
    assert out.shape == (3, 4, 16, 16) and torch.equal(out[:, :3], x)
    assert geo.with_channel(x, None) is x
    with pytest.raises(ValueError):
        geo.with_channel(x, geo.angle_map(torch.zeros(2), 16))


# ----------------------------------------------------------------------------------------------- the channel mismatch


def test_the_students_model_fails_on_the_identity_path():
    G_AB = ResnetGenerator(4, 1, in_channels=4)
    with pytest.raises(RuntimeError, match="channels"):
        G_AB(_images(2, 16))  # identity G(b): a 3-channel anime face into a 4-channel network


def test_angle_model_runs_every_path_with_four_channels():
    model = geo.GeometryCycleGAN(16, 4, 4, 1, angle_channel=True, conditional_d=True)
    seen: list[int] = []
    for G in (model.G_AB, model.G_BA):
        first = next(m for m in G.modules() if isinstance(m, nn.Conv2d))
        first.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[1]))
    d_seen: list[int] = []
    model.D_B.register_forward_hook(lambda mod, inp, out: d_seen.append(inp[0].shape[1]))
    batch, _ = _toy_batch(2, 16)
    g = geo.geometry_generator_objective(model, batch, geo.GeometryWeights(lambda_identity=0.5))
    # translation x2, cycle x2, identity x2: all six generator calls read 4 channels
    assert seen == [4] * 6
    assert d_seen == [4]
    assert g.fake_B.shape == (2, 3, 16, 16) and g.fake_A.shape == (2, 3, 16, 16)
    assert float(g.terms["idt_A"].detach()) > 0 and float(g.terms["cycle_B"].detach()) > 0
    with pytest.raises(ValueError, match="roll"):
        geo.geometry_generator_objective(model, geo.GeometryBatch(batch.a, batch.b), geo.GeometryWeights())


def test_dropping_identity_skips_the_identity_paths():
    model = geo.GeometryCycleGAN(16, 4, 4, 1, angle_channel=True)
    calls: list[int] = []
    model.G_BA.register_forward_hook(lambda mod, inp, out: calls.append(1))
    batch, _ = _toy_batch(2, 16)
    g = geo.geometry_generator_objective(model, batch, geo.GeometryWeights(lambda_identity=0.0))
    assert len(calls) == 2  # F(b) and the cycle F(G(a)); no identity F(a)
    assert float(g.terms["idt_A"]) == 0 and float(g.terms["idt_B"]) == 0


def test_plain_model_has_three_channel_generators_and_refuses_conditional_d_without_angle():
    model = geo.GeometryCycleGAN(16, 4, 4, 1)
    assert next(m for m in model.G_AB.modules() if isinstance(m, nn.Conv2d)).in_channels == 3
    with pytest.raises(ValueError):
        geo.GeometryCycleGAN(16, 4, 4, 1, conditional_d=True)


def test_translate_appends_the_map_only_when_needed():
    model = geo.GeometryCycleGAN(16, 4, 4, 1, angle_channel=True)
    x = _images(5, 16)
    roll = torch.tensor([-20.0, -5.0, 0.0, 5.0, 20.0])
    y = translate_set(model, x, "human->anime", batch=2, roll=roll)  # the rolls are cut into the same batches
    assert y.shape == x.shape
    with torch.no_grad():
        model.G_AB.eval()
        direct = model.G_AB(geo.with_channel(x, geo.angle_map(roll, 16)))
        assert torch.allclose(model.translate(x, "human->anime", roll=roll), direct, atol=1e-5)
    assert torch.allclose(y, direct, atol=1e-5)
    assert not torch.allclose(y, translate_set(model, x, "human->anime", roll=-roll), atol=1e-4)  # the angle matters
    with pytest.raises(ValueError, match="roll"):
        model.translate(x, "human->anime")
    plain = geo.GeometryCycleGAN(16, 4, 4, 1)
    with torch.no_grad():
        assert torch.allclose(plain.eval().translate(x, "anime->human"), plain.G_BA(x))  # no map, roll not needed


@pytest.mark.parametrize("inject", ["blocks", "all"])
def test_deep_angle_injection_builds_four_channel_generators_and_records_it(inject):
    model = geo.GeometryCycleGAN(16, 4, 4, 2, angle_channel=True, conditional_d=True, angle_injection=inject)
    assert model.config["angle_injection"] == inject
    for G in (model.G_AB, model.G_BA):
        assert isinstance(G, geo.AngleResnetGenerator)
        assert next(m for m in G.modules() if isinstance(m, nn.Conv2d)).in_channels == 4
        assert G(geo.with_channel(_images(3, 16), geo.angle_map(torch.zeros(3), 16))).shape == (3, 3, 16, 16)
        with pytest.raises(ValueError, match="4 channels"):
            G(_images(3, 16))
    # same widths as the input-only model: only the few map-reading input channels are extra
    base = geo.GeometryCycleGAN(16, 4, 4, 2, angle_channel=True)
    extra = sum(p.numel() for p in model.G_AB.parameters()) - sum(p.numel() for p in base.G_AB.parameters())
    assert 0 < extra <= 2 * 9 * 16 + (2 * 9 * 8 if inject == "all" else 0)
    assert geo.GeometryCycleGAN(16, 4, 4, 1, angle_channel=True).config["angle_injection"] == "input"
    with pytest.raises(ValueError, match="angle_channel"):
        geo.GeometryCycleGAN(16, 4, 4, 1, angle_injection=inject)
    with pytest.raises(ValueError):
        geo.GeometryCycleGAN(16, 4, 4, 1, angle_channel=True, angle_injection="bottleneck")
    # every path of the objective and translate work unchanged
    batch, _ = _toy_batch(2, 16)
    g = geo.geometry_generator_objective(model, batch, geo.GeometryWeights())
    assert g.fake_B.shape == (2, 3, 16, 16) and torch.isfinite(g.total)
    y = translate_set(model, batch.a, "human->anime", roll=batch.roll_a)
    assert y.shape == batch.a.shape


@pytest.mark.parametrize("inject", ["input", "blocks", "all"])
def test_the_map_reaches_the_deep_layers_even_when_the_stem_ignores_it(inject):
    """Cut the stem's map channel (its weights set to 0): only a model that reads the map deeper still
    changes its output when the map changes."""
    model = geo.GeometryCycleGAN(16, 4, 4, 2, angle_channel=True, angle_injection=inject)
    G = model.G_AB.eval()
    stem = next(m for m in G.modules() if isinstance(m, nn.Conv2d))
    with torch.no_grad():
        stem.weight[:, 3] = 0
        x = _images(2, 16)
        y1 = G(geo.with_channel(x, geo.angle_map(torch.tensor([-25.0, 25.0]), 16)))
        y2 = G(geo.with_channel(x, geo.angle_map(torch.tensor([25.0, -25.0]), 16)))
    if inject == "input":
        assert torch.allclose(y1, y2, atol=1e-6)
    else:
        assert float((y1 - y2).abs().max()) > 1e-4


@pytest.mark.parametrize("inject", ["blocks", "all"])
def test_gradient_reaches_the_deep_map_weights(inject):
    model = geo.GeometryCycleGAN(16, 4, 4, 2, angle_channel=True, angle_injection=inject)
    batch, _ = _toy_batch(2, 16)
    g = geo.geometry_generator_objective(model, batch, geo.GeometryWeights())
    g.total.backward()
    for block in model.G_AB.blocks:
        w = block.conv1[1].weight.grad
        assert w is not None and float(w[:, -1].abs().sum()) > 0  # the slice that reads the map
    first_up = next(m for m in model.G_AB.up[0].modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))
    n_in = first_up.weight.shape[0 if isinstance(first_up, nn.ConvTranspose2d) else 1]
    assert n_in == 16 + (1 if inject == "all" else 0)
    assert all(p.grad is not None for p in model.G_AB.parameters())


# ----------------------------------------------------------------------------------------------- landmarks and patches


def test_crop_patches_centres_the_patch_on_the_landmark():
    size, patch = 32, 8
    img = -torch.ones(2, 3, size, size)
    img[0, :, 6:8, 20:22] = 1.0   # a bright 2x2 dot centred at pixel (x=21, y=7)
    img[1, :, 24:26, 9:11] = 1.0  # centred at (x=10, y=25)
    centres = geo.normalise_landmarks(torch.tensor([[21.0, 7.0], [10.0, 25.0]]), size)
    crops = geo.crop_patches(img, centres, patch)
    assert crops.shape == (2, 3, patch, patch)
    for c in crops:
        assert torch.allclose(c[:, 3:5, 3:5], torch.ones(3, 2, 2), atol=1e-5)  # the dot sits in the middle
        assert float(c[:, 0, 0].max()) == pytest.approx(-1.0)
    # differentiable in the image, so a local discriminator trains the generator
    x = img.clone().requires_grad_(True)
    geo.crop_patches(x, centres, patch).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_part_centres_follow_the_landmarks():
    lm = torch.tensor([[[-0.4, -0.1], [0.2, -0.1], [0.0, 0.2], [-0.2, 0.4], [0.1, 0.5]]])
    c = geo.part_centres(lm)
    assert torch.allclose(c["eyes"], torch.tensor([[-0.1, -0.1]]))
    assert torch.allclose(c["nose"], torch.tensor([[0.0, 0.2]]))
    assert torch.allclose(c["mouth"], torch.tensor([[-0.05, 0.45]]))


def test_patches_at_toyfaces_eyes_differ_from_patches_at_the_mouth():
    ds = tf.toyfaces("anime", n=16, size=32, split="test", cache=False)
    centres = geo.part_centres(geo.normalise_landmarks(ds.landmarks, 32))
    eyes = geo.crop_patches(ds.tensor(), centres["eyes"], 12)
    mouth = geo.crop_patches(ds.tensor(), centres["mouth"], 12)
    # anime eyes are big and dark: the eye patches are darker than the mouth patches of the same faces
    assert float(eyes.mean()) < float(mouth.mean()) - 0.05


def test_landmark_regressor_learns_on_a_tiny_set():
    ds = tf.toyfaces("anime", n=64, size=32, split="train", cache=False)
    lm = geo.normalise_landmarks(ds.landmarks, 32)
    R, losses = geo.train_regressor(ds.tensor(), lm, steps=150, batch=16, lr=2e-3, width=8, seed=0)
    assert R(ds.tensor(slice(0, 2))).shape == (2, 5, 2)
    assert all(not p.requires_grad for p in R.parameters()) and not R.training
    baseline = float(((lm - lm.mean(0)) ** 2).mean())  # always predicting the mean layout
    with torch.no_grad():
        fit = float(((R(ds.tensor()) - lm) ** 2).mean())
    assert losses[-1] < losses[0] / 3
    assert fit < baseline / 3


def test_shape_transfer_keeps_the_roll_and_swaps_the_mean_shape():
    recs = tf.sample_records(200, "human", "train", seed=0)
    lm_h = geo.normalise_landmarks(torch.as_tensor(tf.landmarks_pixels(recs, "human", 32)), 32)
    recs_anime = tf.sample_records(200, "anime", "train", seed=0)
    lm_a = geo.normalise_landmarks(torch.as_tensor(tf.landmarks_pixels(recs_anime, "anime", 32)), 32)
    T = geo.ShapeTransfer.fit(lm_h, lm_a)
    out = T(lm_h)
    assert torch.allclose(geo.roll_from_landmarks(out), geo.roll_from_landmarks(lm_h), atol=0.5)
    # the transferred human landmarks land near the true anime rendering of the same records
    truth = geo.normalise_landmarks(torch.as_tensor(tf.landmarks_pixels(recs, "anime", 32)), 32)
    assert float((out - truth).norm(dim=-1).mean()) < 0.5 * float((lm_h - truth).norm(dim=-1).mean())
    assert torch.allclose(T.reverse()(out), lm_h, atol=1e-4)


# ----------------------------------------------------------------------------------------------- training


def _opts(model):
    opt_G = torch.optim.Adam(model.generators(), lr=1e-3, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(model.discriminators(), lr=1e-3, betas=(0.5, 0.999))
    opt_L = torch.optim.Adam(model.local_discriminators(), lr=1e-3, betas=(0.5, 0.999)) \
        if model.config["local_d"] else None
    return opt_G, opt_D, opt_L


def test_landmark_loss_needs_landmarks_and_local_needs_local_ds():
    model = geo.GeometryCycleGAN(16, 4, 4, 1)
    batch, T = _toy_batch(2, 16)
    R = geo.LandmarkRegressor(16, 4).eval().requires_grad_(False)
    no_lm = geo.GeometryBatch(batch.a, batch.b, batch.roll_a, batch.roll_b)
    with pytest.raises(ValueError, match="landmarks"):
        geo.geometry_generator_objective(model, no_lm, geo.GeometryWeights(lambda_landmark=1.0), R, R, T)
    with pytest.raises(ValueError, match="local"):
        geo.geometry_generator_objective(model, batch, geo.GeometryWeights(), R, R, T, use_local=True)


def test_full_step_updates_every_network_and_keeps_the_regressors_frozen():
    model = geo.GeometryCycleGAN(16, 4, 4, 1, local_d=True, patch=8)
    batch, T = _toy_batch(4, 16)
    R_A = geo.LandmarkRegressor(16, 4).eval().requires_grad_(False)
    R_B = geo.LandmarkRegressor(16, 4).eval().requires_grad_(False)
    r_before = {k: v.clone() for k, v in R_B.state_dict().items()}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt_G, opt_D, opt_L = _opts(model)
    w = geo.GeometryWeights(lambda_landmark=10.0, lambda_local=1.0)
    losses = geo.geometry_train_step(model, batch, opt_G, opt_D, ImagePool(5), ImagePool(5), w, R_A, R_B, T, True,
                                     opt_L, ImagePool(5), ImagePool(5))
    assert {"landmark_AB", "landmark_BA", "local_AB", "local_BA", "D_local_A", "D_local_B"} <= set(losses)
    assert all(math.isfinite(v) for v in losses.values())
    for net in ("G_AB", "G_BA", "D_A", "D_B", "D_local_A.eyes", "D_local_B.mouth"):
        assert any(not torch.equal(before[k], model.state_dict()[k]) for k in before if k.startswith(net + ".")), net
    assert all(torch.equal(r_before[k], v) for k, v in R_B.state_dict().items())
    # stage 1 (no local Ds yet): the local discriminators stay untouched
    state = {k: v.clone() for k, v in model.D_local_B.state_dict().items()}
    geo.geometry_train_step(model, batch, opt_G, opt_D, ImagePool(5), ImagePool(5), w, R_A, R_B, T, False)
    assert all(torch.equal(state[k], v) for k, v in model.D_local_B.state_dict().items())


def test_landmark_gradient_reaches_the_generator():
    model = geo.GeometryCycleGAN(16, 4, 4, 1)
    batch, T = _toy_batch(2, 16)
    R = geo.LandmarkRegressor(16, 4).eval().requires_grad_(False)
    g = geo.geometry_generator_objective(model, batch, geo.GeometryWeights(lambda_landmark=1.0), R, R, T)
    g.terms["landmark_AB"].backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.G_AB.parameters())
    assert all(p.grad is None for p in model.G_BA.parameters())


@pytest.mark.parametrize("switches", [{}, {"angle_channel": True, "conditional_d": True},
                                      {"angle_channel": True, "conditional_d": True, "angle_injection": "all"}])
def test_a_few_steps_reduce_the_cycle_loss(switches):
    torch.manual_seed(1)
    model = geo.GeometryCycleGAN(16, 8, 8, 1, **switches)
    batch, T = _toy_batch(4, 16)
    opt_G, opt_D, _ = _opts(model)
    w = geo.GeometryWeights()
    first = geo.geometry_train_step(model, batch, opt_G, opt_D, ImagePool(0), ImagePool(0), w)
    for _ in range(15):
        last = geo.geometry_train_step(model, batch, opt_G, opt_D, ImagePool(0), ImagePool(0), w)
    assert last["cycle_A"] < first["cycle_A"] and last["cycle_B"] < first["cycle_B"]


def test_a_few_steps_reduce_the_landmark_loss():
    torch.manual_seed(2)
    size = 32
    ds = tf.toyfaces("anime", n=64, size=size, split="train", cache=False)
    R_B, _ = geo.train_regressor(ds.tensor(), geo.normalise_landmarks(ds.landmarks, size), steps=150, width=8, lr=2e-3)
    hs = tf.toyfaces("human", n=64, size=size, split="train", cache=False)
    R_A, _ = geo.train_regressor(hs.tensor(), geo.normalise_landmarks(hs.landmarks, size), steps=150, width=8, lr=2e-3)
    batch, T = _toy_batch(8, size)
    model = geo.GeometryCycleGAN(size, 8, 8, 1)
    opt_G, opt_D, _ = _opts(model)
    w = geo.GeometryWeights(lambda_cycle=1.0, lambda_identity=0.0, lambda_landmark=100.0)
    first = geo.geometry_train_step(model, batch, opt_G, opt_D, ImagePool(0), ImagePool(0), w, R_A, R_B, T)
    for _ in range(20):
        last = geo.geometry_train_step(model, batch, opt_G, opt_D, ImagePool(0), ImagePool(0), w, R_A, R_B, T)
    assert last["landmark_AB"] < 0.7 * first["landmark_AB"]


# ----------------------------------------------------------------------------------------------- lesson plumbing


def test_part_patches_are_the_crops_at_the_part_centres_and_resize_for_figures():
    batch, _ = _toy_batch(3, 16)
    parts = geo.part_patches(batch.b, batch.lm_b, 8)
    assert tuple(parts) == geo.PARTS
    centres = geo.part_centres(batch.lm_b)
    for k, crop in parts.items():
        assert crop.shape == (3, 3, 8, 8)
        assert torch.equal(crop, geo.crop_patches(batch.b, centres[k], 8))
    enlarged = geo.part_patches(batch.b, batch.lm_b, 8, size=16)
    assert all(x.shape == (3, 3, 16, 16) for x in enlarged.values())
    assert torch.equal(enlarged["nose"][:, :, ::2, ::2], parts["nose"])  # nearest neighbour: every pixel doubled


class _FixedRegressor(nn.Module):
    """Finds the same landmarks in every batch (a stand-in for a trained regressor)."""

    def __init__(self, landmarks: torch.Tensor):
        super().__init__()
        self.landmarks = nn.Parameter(landmarks.clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.landmarks[: len(x)]


def test_regressor_errors_in_pixels_and_degrees():
    size = 32
    lm = geo.normalise_landmarks(_landmarks_at_roll([-20.0, 0.0, 25.0], size), size)
    images = _images(3, size)
    exact = geo.regressor_errors(_FixedRegressor(lm), images, lm)
    assert exact["faces"] == 3
    assert exact["landmark error (px)"] == pytest.approx(0.0, abs=1e-5)
    assert exact["roll error from its eyes (deg)"] == pytest.approx(0.0, abs=1e-3)
    shifted = geo.regressor_errors(_FixedRegressor(lm + torch.tensor([2.0 / size, 0.0])), images, lm)
    assert shifted["landmark error (px)"] == pytest.approx(1.0, abs=1e-4)  # every point one pixel to the right
    assert shifted["roll error from its eyes (deg)"] == pytest.approx(0.0, abs=1e-3)  # a shift keeps the roll
    level = geo.regressor_errors(_FixedRegressor(geo.normalise_landmarks(_landmarks_at_roll([0.0] * 3, size), size)),
                                 images, lm)
    assert level["roll error from its eyes (deg)"] == pytest.approx(15.0, abs=1e-3)  # mean of 20, 0 and 25


def test_mean_shift_px_lists_each_landmark_in_pixels():
    T = geo.ShapeTransfer(torch.zeros(5, 2), torch.tensor([[0.125, -0.0625]]).expand(5, 2))
    rows = T.mean_shift_px(32)
    assert [r["landmark"] for r in rows] == list(geo.LANDMARK_NAMES)
    assert all(r["dx (px)"] == pytest.approx(2.0) and r["dy (px)"] == pytest.approx(-1.0) for r in rows)
    assert T.reverse().mean_shift_px(32)[0]["dx (px)"] == pytest.approx(-2.0)


def _faces(domain: str, n: int = 12, size: int = 16) -> geo.FaceGeometry:
    """ToyFaces of ``domain`` at ``size`` px (average-pooled from 32 px) with their rolls and landmarks."""
    recs = tf.sample_records(n, domain, "train", seed=5)
    images = torch.nn.functional.avg_pool2d(tf.render(recs, domain, 32).float().div(127.5).sub(1), 32 // size)
    lm = geo.normalise_landmarks(torch.as_tensor(tf.landmarks_pixels(recs, domain, size)), size)
    return geo.FaceGeometry(images, geo.roll_from_landmarks(lm), lm, torch.ones(n, dtype=torch.bool))


def test_variant_step_is_the_hand_written_loop_with_a_second_stage():
    from anime_lib.training import batch_indices

    human, anime = _faces("human"), _faces("anime")
    T = geo.ShapeTransfer.fit(human.landmarks, anime.landmarks)
    R = geo.LandmarkRegressor(16, 4).eval().requires_grad_(False)
    w = geo.GeometryWeights(lambda_landmark=10.0, lambda_local=1.0)
    schedule = lambda step: 1.0 - step / 10  # noqa: E731

    def setup():
        torch.manual_seed(0)
        model = geo.GeometryCycleGAN(16, 4, 4, 1, angle_channel=True, local_d=True, patch=8)
        return model, geo.optimisers_and_pools(model, 1e-3, (0.5, 0.999), schedule, 3, seed=7)

    model, o = setup()
    step_fn = geo.variant_step(geo.geometry_train_step, model, o, human, anime, w, 4, 7, 1e-3, schedule,
                               local_start=2, R_A=R, R_B=R, transfer_AB=T)
    got = [step_fn(step) for step in range(4)]
    assert "local_AB" not in got[1] and {"local_AB", "D_local_A"} <= got[2].keys()
    assert o["opt_L"].param_groups[0]["lr"] == pytest.approx(1e-3 * schedule(3))
    assert o["opt_G"].param_groups[0]["lr"] == pytest.approx(1e-3 * schedule(4))  # the schedulers stepped 4 times

    ref_model, r = setup()
    for step in range(4):
        ia, ib = (batch_indices(step, 4, 12, 7, stream=k) for k in (0, 1))
        if step >= 2:
            r["opt_L"].param_groups[0]["lr"] = 1e-3 * schedule(step)
        losses = geo.geometry_train_step(ref_model, geo.geometry_batch(human, anime, ia, ib), r["opt_G"], r["opt_D"],
                                         r["pool_A"], r["pool_B"], w, R, R, T, step >= 2, r["opt_L"],
                                         r["pool_local_A"], r["pool_local_B"])
        r["sched_G"].step(), r["sched_D"].step()
        assert losses == pytest.approx(got[step], abs=1e-6)
    assert all(torch.equal(v, ref_model.state_dict()[k]) for k, v in model.state_dict().items())


def test_tilted_roll_errors_route_models_and_reference_rows(monkeypatch):
    human = tf.toyfaces("human", n=6, size=32, split="test", cache=False, with_counterpart=True)
    anime = tf.toyfaces("anime", n=6, size=32, split="test", cache=False, with_counterpart=True)
    seen = []
    monkeypatch.setattr(geo, "tilted_roll_error",
                        lambda fake, src, idx, probe=None: seen.append((fake, src, idx)) or float(fake.sum()))
    fake = torch.zeros(6, 3, 32, 32)
    rows = [{"method": "model", "direction": "human->anime"}, {"method": "model", "direction": "anime->human"},
            {"method": "identity (no translation)", "direction": "human->anime"},
            {"method": "ground truth (perfect translator)", "direction": "anime->human"}]
    tilted = {"human": torch.tensor([0, 2]), "anime": torch.tensor([1])}
    out = geo.tilted_roll_errors(rows, {"model": {"human->anime": fake, "anime->human": fake + 1}},
                                 {"human": human, "anime": anime}, tilted)
    assert out is rows
    assert [r["roll_error_tilted"] for r in rows[:2]] == [0.0, float(fake.numel())]
    assert rows[2]["roll_error_tilted"] == pytest.approx(float(human.tensor().sum()))
    assert rows[3]["roll_error_tilted"] == pytest.approx(float(anime.counterpart().tensor().sum()))
    assert [s.domain for _, s, _ in seen] == ["human", "anime", "human", "anime"]
    assert torch.equal(seen[1][2], tilted["anime"])
    with pytest.raises(KeyError, match="other"):
        geo.tilted_roll_errors([{"method": "other", "direction": "human->anime"}], {}, {"human": human}, tilted)


def test_image_rows_one_labelled_row_per_entry():
    from anime_lib.viz import image_rows

    fig = image_rows({"inputs": _images(4, 16), "maps (1 channel)": torch.rand(4, 1, 16, 16) * 2 - 1,
                      "two only": _images(2, 16)}, title="demo")
    axes = fig.axes
    assert [ax.get_title(loc="left") for ax in axes] == ["inputs", "maps (1 channel)", "two only"]
    assert fig._suptitle.get_text() == "demo"
    assert axes[2].get_xlim() == pytest.approx(axes[0].get_xlim())  # a short row keeps the image size
    with pytest.raises(ValueError):
        image_rows({})


def test_loss_panels_sum_the_named_losses_per_run():
    from anime_lib.viz import loss_panels

    histories = {"a": {"step": [0, 1, 2], "x": [1.0, 2.0, 3.0], "y": [1.0, 1.0, None]},
                 "b": {"step": [0, 1, 2], "x": [0.5, 0.5, 0.5]}}
    fig = loss_panels(histories, {"x + y": ["x", "y"], "x": ["x"], "z": ["z"]}, smooth=1, logy=["x"])
    both, single, missing = fig.axes
    assert [line.get_label() for line in both.get_lines()] == ["a"]  # b did not log y
    assert list(both.get_lines()[0].get_ydata()[:2]) == [2.0, 3.0] and math.isnan(both.get_lines()[0].get_ydata()[2])
    assert [line.get_label() for line in single.get_lines()] == ["a", "b"]
    assert single.get_yscale() == "log" and both.get_yscale() == "linear"
    assert not missing.axison and "no run" in missing.texts[0].get_text()
    smoothed = loss_panels(histories, {"x": ["x"]}, smooth=2)
    assert len(smoothed.axes[0].get_lines()) == 4  # raw and smoothed per run


def test_rolls_from_detector_reads_the_astronaut_and_reports_misses():
    skimage = pytest.importorskip("skimage")
    pytest.importorskip("cv2")
    photo = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1)[:, 0:256, 96:352].contiguous()
    blank = torch.full((3, 256, 256), 128, dtype=torch.uint8)
    rolls, found = geo.rolls_from_detector(torch.stack([photo, blank]), "human")
    assert found.tolist() == [True, False]
    assert abs(float(rolls[0])) < 20 and float(rolls[1]) == 0.0
