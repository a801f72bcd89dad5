"""Tests for anime_lib.models.ugatit (lesson 06): AdaLIN maths, the rho clipper, CAM shapes, generator and
discriminator outputs, depth scaling, light vs full MLP sizes, the objective, and a short training run."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from anime_lib.models.ugatit import (
    CAM,
    LIN,
    UGATIT,
    AdaLIN,
    LossWeights,
    UGATITDiscriminator,
    UGATITGenerator,
    clip_rho_,
    d_receptive_field,
    default_d_layers,
    default_n_res,
    discriminator_objective,
    generator_objective,
    mlp_input_size,
    rho_values,
    attention_grid,
    attention_summary,
    centre_share,
    depth_table,
    discriminator_attention,
    fit,
    generator_sizes,
    heatmap_overlay,
    plot_rho,
    rho_table,
    train_step,
    upsample_heatmap,
)
from anime_lib.translation import Translator, translate_set


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _images(n: int, size: int) -> torch.Tensor:
    return torch.rand(n, 3, size, size) * 2 - 1


def _optimizers(model: UGATIT, lr: float = 1e-4):
    opt_G = torch.optim.Adam(model.generators(), lr=lr, betas=(0.5, 0.999), weight_decay=1e-4)
    opt_D = torch.optim.Adam(model.discriminators(), lr=lr, betas=(0.5, 0.999), weight_decay=1e-4)
    return opt_G, opt_D


# ----------------------------------------------------------------------------------------- AdaLIN / LIN


def _features(n=3, c=6, h=5, w=7):
    return torch.randn(n, c, h, w) * 3 + 1.5


def test_adalin_with_rho_one_is_instance_norm():
    x = _features()
    norm = AdaLIN(6)
    norm.rho.data.fill_(1.0)
    ones, zeros = torch.ones(3, 6), torch.zeros(3, 6)
    assert torch.allclose(norm(x, ones, zeros), F.instance_norm(x, eps=norm.eps), atol=1e-5)


def test_adalin_with_rho_zero_is_layer_norm():
    x = _features()
    norm = AdaLIN(6)
    norm.rho.data.fill_(0.0)
    ones, zeros = torch.ones(3, 6), torch.zeros(3, 6)
    expected = F.layer_norm(x, x.shape[1:], eps=norm.eps)
    assert torch.allclose(norm(x, ones, zeros), expected, atol=1e-5)
    # and differs from IN on data whose channels have different means
    assert not torch.allclose(expected, F.instance_norm(x, eps=norm.eps), atol=1e-2)


def test_adalin_mixes_linearly_and_applies_gamma_beta_per_sample_and_channel():
    x = _features()
    gamma, beta = torch.randn(3, 6), torch.randn(3, 6)
    norm = AdaLIN(6)
    assert torch.allclose(norm.rho, torch.full_like(norm.rho, 0.9))  # the paper's start value
    norm.rho.data = torch.linspace(0, 1, 6).view(1, 6, 1, 1)
    x_in = F.instance_norm(x, eps=norm.eps)
    x_ln = F.layer_norm(x, x.shape[1:], eps=norm.eps)
    rho = norm.rho
    expected = (rho * x_in + (1 - rho) * x_ln) * gamma[:, :, None, None] + beta[:, :, None, None]
    assert torch.allclose(norm(x, gamma, beta), expected, atol=1e-5)


def test_lin_starts_as_layer_norm_with_identity_affine():
    x = _features()
    lin = LIN(6)
    assert float(lin.rho.detach().abs().max()) == 0 and torch.all(lin.gamma == 1) and torch.all(lin.beta == 0)
    assert torch.allclose(lin(x), F.layer_norm(x, x.shape[1:], eps=lin.eps), atol=1e-5)


def test_rho_clipper_keeps_every_rho_in_zero_one():
    G = UGATITGenerator(ngf=4, n_res=2, img_size=16)
    layers = [m for m in G.modules() if isinstance(m, (AdaLIN, LIN))]
    assert len(layers) == 2 * 2 + 2  # two AdaLIN per decoder block, one LIN per up-sampling block
    for m in layers:
        m.rho.data = torch.linspace(-2, 3, m.rho.numel()).view_as(m.rho)
    inside = layers[0].rho.detach().clone().clamp(0, 1)
    clip_rho_(G)
    for m in layers:
        assert float(m.rho.detach().min()) == 0.0 and float(m.rho.detach().max()) == 1.0
    assert torch.equal(layers[0].rho.detach(), inside)  # values already inside are left alone
    values = rho_values(G)
    assert len(values) == len(layers) and all(0 <= v <= 1 for v in values.values())


def test_a_training_step_clips_rho_even_when_the_optimiser_pushes_it_out():
    model = UGATIT(img_size=16, ngf=4, ndf=4, n_res=1)
    opt_G = torch.optim.SGD(model.generators(), lr=1e4)  # a huge step sends rho far outside [0, 1]
    opt_D = torch.optim.SGD(model.discriminators(), lr=0.0)
    train_step(model, _images(2, 16), _images(2, 16), opt_G, opt_D)
    rhos = torch.cat([m.rho.detach().flatten() for m in model.modules() if isinstance(m, (AdaLIN, LIN))])
    assert float(rhos.min()) >= 0 and float(rhos.max()) <= 1
    assert float(((rhos == 0) | (rhos == 1)).float().mean()) > 0.5  # most were clipped: the step did push them


# ----------------------------------------------------------------------------------------- CAM


def test_cam_shapes_and_heatmap_is_the_channel_sum():
    cam = CAM(8, nn.ReLU())
    x = torch.randn(4, 8, 5, 6)
    features, logit, heatmap = cam(x)
    assert features.shape == x.shape and logit.shape == (4, 2) and heatmap.shape == (4, 1, 5, 6)
    assert torch.allclose(heatmap, features.sum(1, keepdim=True))
    # the two logits are the pooled features through the bias-free classifiers
    assert torch.allclose(logit[:, 0], x.mean((2, 3)) @ cam.gap_fc.weight[0], atol=1e-5)
    assert torch.allclose(logit[:, 1], x.amax((2, 3)) @ cam.gmp_fc.weight[0], atol=1e-5)


def test_cam_rescales_channels_by_the_classifier_weights():
    cam = CAM(3, nn.Identity())
    with torch.no_grad():
        cam.gap_fc.weight.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
        cam.gmp_fc.weight.copy_(torch.tensor([[0.0, 0.0, 0.0]]))
    x = torch.randn(2, 3, 4, 4)
    x2 = x.clone()
    x2[:, 1:] += 10 * torch.randn(2, 2, 4, 4)  # change only the channels whose classifier weight is 0
    assert torch.allclose(cam(x)[0], cam(x2)[0], atol=1e-5)
    x3 = x.clone()
    x3[:, 0] += 1.0  # the channel with weight 1 does pass through
    assert not torch.allclose(cam(x)[0], cam(x3)[0], atol=1e-3)


def test_discriminator_cam_uses_spectral_norm():
    D = UGATITDiscriminator(ndf=4, n_down=1)
    assert hasattr(D.cam.gap_fc, "parametrizations") and hasattr(D.cam.gmp_fc, "parametrizations")
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d) and m is not D.cam.conv1x1]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
    assert not any(isinstance(m, (nn.InstanceNorm2d, nn.BatchNorm2d)) for m in D.modules())


# ----------------------------------------------------------------------------------------- networks


@pytest.mark.parametrize("size", [16, 32, 64])
def test_generator_returns_image_cam_logit_and_heatmap(size):
    G = UGATITGenerator(ngf=4, n_res=1, img_size=size)
    x = _images(3, size)
    y, logit, heatmap = G(x)
    assert y.shape == x.shape
    assert float(y.detach().min()) >= -1 and float(y.detach().max()) <= 1
    assert logit.shape == (3, 2)
    assert heatmap.shape == (3, 1, size // 4, size // 4)


def test_generator_refuses_sides_that_are_not_multiples_of_4():
    with pytest.raises(ValueError, match="multiples of 4"):
        UGATITGenerator(ngf=4, n_res=1, img_size=32)(_images(1, 30))


def test_full_mlp_needs_its_image_size():
    G = UGATITGenerator(ngf=4, n_res=1, img_size=16, light=False)
    assert G(_images(2, 16))[0].shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="16 px"):
        G(_images(2, 32))


@pytest.mark.parametrize("size,ngf", [(16, 4), (32, 8), (64, 8)])
def test_light_and_full_differ_only_in_the_first_mlp_layer(size, ngf):
    light = UGATITGenerator(ngf=ngf, n_res=1, img_size=size, light=True)
    full = UGATITGenerator(ngf=ngf, n_res=1, img_size=size, light=False)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    ch = 4 * ngf
    s = size // 4
    assert count(full) - count(light) == (ch * s * s - ch) * ch
    assert mlp_input_size(ngf, size, True) == ch and mlp_input_size(ngf, size, False) == ch * s * s
    assert count(light.mlp) == 2 * ch * ch


def test_paper_size_full_mlp_has_268_million_parameters():
    with torch.device("meta"):  # no memory is allocated
        full = UGATITGenerator(ngf=64, n_res=4, img_size=256, light=False)
        light = UGATITGenerator(ngf=64, n_res=4, img_size=256, light=True)
    first_full = full.mlp[0].weight.numel()
    assert first_full == 256 * 64 * 64 * 256  # 268,435,456: the flattened 64x64x256 map -> 256
    n_full = sum(p.numel() for p in full.parameters())
    n_light = sum(p.numel() for p in light.parameters())
    assert n_full > 260e6 and n_light < 20e6
    assert light.mlp[0].weight.shape == (256, 256)


@pytest.mark.parametrize("size,n_down", [(32, 1), (32, 2), (64, 3), (128, 2), (256, 5)])
def test_discriminator_outputs(size, n_down):
    D = UGATITDiscriminator(ndf=4, n_down=n_down)
    logits, cam_logit, heatmap = D(_images(2, size))
    side = size // 2 ** n_down
    assert logits.shape == (2, 1, side - 2, side - 2)
    assert cam_logit.shape == (2, 2)
    assert heatmap.shape == (2, 1, side - 1, side - 1)


def test_depths_scale_with_the_image():
    assert default_d_layers(256) == (5, 3)  # the paper's global and local discriminators
    assert default_d_layers(128) == (4, 2) and default_d_layers(64) == (3, 1) and default_d_layers(32) == (2, 1)
    assert d_receptive_field(3) == 70  # the local D at 256 px sees the PatchGAN's 70 px patch
    for size in (32, 64, 128, 256):
        n_global, n_local = default_d_layers(size)
        assert d_receptive_field(n_global) >= size  # a global logit sees the whole face
        assert d_receptive_field(n_global - 1) < size  # ... with no layer more than needed
        assert d_receptive_field(n_local) <= 0.6 * size  # a local logit sees a part of it
        D = UGATITDiscriminator(ndf=2, n_down=n_global)
        assert min(D(_images(1, size))[0].shape[-2:]) >= 1
    assert default_n_res(256) == 4 and default_n_res(32) == 2


def test_model_builds_six_networks_with_scaled_depths():
    model = UGATIT(img_size=32, ngf=4, ndf=4)
    assert model.config["n_global"] == 2 and model.config["n_local"] == 1 and model.config["n_res"] == 2
    assert model.D_A_global.n_down == 2 and model.D_B_local.n_down == 1
    n_g = sum(p.numel() for p in model.generators())
    n_d = sum(p.numel() for p in model.discriminators())
    assert n_g + n_d == sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------------- objective and step


def test_generator_objective_is_the_weighted_sum_of_its_terms():
    model = UGATIT(img_size=16, ngf=4, ndf=4, n_res=1)
    a, b = _images(2, 16), _images(2, 16)
    w = LossWeights(adv=1.0, cycle=10.0, identity=10.0, cam=1000.0)
    g = generator_objective(model, a, b, w)
    expected = (g.adv_AB + g.adv_BA) + 10 * (g.cycle_A + g.cycle_B) + 10 * (g.idt_A + g.idt_B) + 1000 * (g.cam_AB + g.cam_BA)
    assert float(g.total.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert g.fake_A.shape == a.shape and g.fake_B.shape == b.shape
    assert LossWeights() == w  # the defaults are the paper's


def test_generator_cam_loss_is_bce_on_source_one_and_target_zero():
    model = UGATIT(img_size=16, ngf=4, ndf=4, n_res=1)
    a, b = _images(2, 16), _images(2, 16)
    with torch.no_grad():
        g = generator_objective(model, a, b)
        _, logit_a, _ = model.G_AB(a)
        _, logit_b, _ = model.G_AB(b)
    expected = F.binary_cross_entropy_with_logits(logit_a, torch.ones_like(logit_a)) + \
        F.binary_cross_entropy_with_logits(logit_b, torch.zeros_like(logit_b))
    assert float(g.cam_AB) == pytest.approx(float(expected), rel=1e-5)


def test_discriminator_objective_sums_global_and_local_patch_and_cam_terms():
    model = UGATIT(img_size=16, ngf=4, ndf=4, n_res=1)
    model.eval()  # freeze spectral-norm power iterations so repeated calls agree
    real, fake = _images(2, 16), _images(2, 16)
    with torch.no_grad():
        got = discriminator_objective(model.discriminators_of("B"), real, fake)
        expected = 0.0
        for D in model.discriminators_of("B"):
            lr, cr, _ = D(real)
            lf, cf, _ = D(fake)
            expected += float(((lr - 1) ** 2).mean() + ((cr - 1) ** 2).mean() + (lf ** 2).mean() + (cf ** 2).mean())
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_one_step_updates_all_six_networks_and_unfreezes_d():
    model = UGATIT(img_size=16, ngf=4, ndf=4, n_res=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt_G, opt_D = _optimizers(model)
    losses = train_step(model, _images(2, 16), _images(2, 16), opt_G, opt_D)
    assert set(losses) == {"G_adv_AB", "G_adv_BA", "cycle_A", "cycle_B", "idt_A", "idt_B", "cam_AB", "cam_BA",
                           "D_A", "D_B"}
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    for net in ("G_AB", "G_BA", "D_A_global", "D_A_local", "D_B_global", "D_B_local"):
        changed = [k for k in before if k.startswith(net + ".") and not torch.equal(before[k], model.state_dict()[k])]
        assert changed, f"{net} was not updated"
    assert all(p.requires_grad for p in model.parameters())


def test_generator_step_leaves_discriminator_weights_alone():
    model = UGATIT(img_size=16, ngf=4, ndf=4, n_res=1)
    opt_G, _ = _optimizers(model)
    opt_D = torch.optim.SGD(model.discriminators(), lr=0.0)
    before = {n: p.detach().clone() for n, p in model.D_B_global.named_parameters()}
    train_step(model, _images(2, 16), _images(2, 16), opt_G, opt_D)
    assert all(torch.equal(before[n], p) for n, p in model.D_B_global.named_parameters())


def test_a_short_training_run_lowers_the_losses():
    torch.manual_seed(1)
    model = UGATIT(img_size=16, ngf=8, ndf=8, n_res=1)
    opt_G, opt_D = _optimizers(model, lr=1e-3)
    a, b = _images(4, 16), _images(4, 16)
    first = train_step(model, a, b, opt_G, opt_D)
    for _ in range(20):
        last = train_step(model, a, b, opt_G, opt_D)
    for name in ("cycle_A", "cycle_B", "idt_A", "idt_B", "cam_AB", "cam_BA"):
        assert last[name] < first[name], f"{name}: {first[name]:.4f} -> {last[name]:.4f}"
    assert last["cam_AB"] < 0.75 * first["cam_AB"]  # the CAM classifier learns to tell the two batches apart


# ----------------------------------------------------------------------------------------- inference helpers


def test_ugatit_is_a_translator_with_attention_extras():
    model = UGATIT(img_size=16, ngf=4, ndf=4, n_res=1)
    assert isinstance(model, Translator)
    x = _images(5, 16)
    y, extras = translate_set(model, x, "human->anime", batch=2, with_extras=True)
    assert y.shape == x.shape and extras["cam_logit"].shape == (5, 2) and extras["heatmap"].shape == (5, 1, 16, 16)
    assert float(extras["heatmap"].min()) >= 0 and float(extras["heatmap"].max()) <= 1 + 1e-6
    assert model.training  # translate_set gives the model back in the mode it had
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model.translate(x, "anime->human"), model.G_BA(x)[0], atol=1e-6)
        assert torch.allclose(translate_set(model, x, "human->anime", batch=5), y, atol=1e-5)
    with pytest.raises(ValueError, match="direction"):
        model.translate(x, "anime->anime")


def test_discriminator_attention_and_summary():
    model = UGATIT(img_size=16, ngf=4, ndf=4, n_res=1)
    source, other = _images(6, 16), _images(5, 16)
    maps, logits = discriminator_attention(model.D_B_global, source, batch=4)
    assert maps.shape == (6, 1, 16, 16) and logits.shape == (6, 2) and model.D_B_global.training
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1 + 1e-6
    maps, row = attention_summary(model, source, other, "human->anime", batch=4)
    assert set(maps) == {"fake", "G", "D_global", "D_local"} and all(len(v) == 6 for v in maps.values())
    assert row["direction"] == "human->anime"
    assert all(0 <= row[k] <= 1 for k in row if k != "direction")
    grid = attention_grid(source[:3], maps)
    assert grid.shape == (15, 3, 16, 16) and float(grid.min()) >= 0 and float(grid.max()) <= 1


def test_centre_share_and_overlay():
    flat = torch.ones(2, 1, 8, 8)
    assert centre_share(flat) == pytest.approx(0.25)  # no preference: the central quarter of the area
    centre = torch.zeros(1, 1, 8, 8)
    centre[..., 2:6, 2:6] = 1
    assert centre_share(centre) == pytest.approx(1.0)
    blend = heatmap_overlay(_images(2, 8), torch.rand(2, 1, 8, 8))
    assert blend.shape == (2, 3, 8, 8) and float(blend.min()) >= 0 and float(blend.max()) <= 1


def test_rho_table_follows_the_layers_and_the_clipper():
    G = UGATITGenerator(ngf=4, n_res=2, img_size=16)
    rows = rho_table(G)
    assert [r["kind"] for r in rows] == ["AdaLIN"] * 4 + ["LIN"] * 2
    assert rows[0]["layer"] == "AdaLIN block 0, norm 1" and rows[-1]["layer"] == "up-sampling block 2 (LIN)"
    assert all(r["mean"] == pytest.approx(r["start"]) for r in rows)
    assert [r["at 0 or 1"] for r in rows] == [0.0] * 4 + [1.0] * 2  # LIN starts at rho = 0, a bound
    assert plot_rho(rows) is not None


def test_size_and_depth_tables():
    here, paper = generator_sizes(32, 8)
    full = UGATITGenerator(ngf=8, n_res=default_n_res(32), img_size=32, light=False)
    assert here["full"] == sum(p.numel() for p in full.parameters())
    assert paper["full MLP layer 1"] == 256 * 64 * 64 * 256 and paper["light MLP layer 1"] == 256 * 256
    depths = {r["image side"]: r for r in depth_table((32, 256))}
    assert depths[256]["global layers"] == 5 and depths[256]["local sees (px)"] == 70
    assert depths[32]["global sees (px)"] >= 32


def test_upsample_heatmap_min_max_per_image():
    h = torch.stack([torch.arange(16.0).view(1, 4, 4), -5 * torch.ones(1, 4, 4)])
    up = upsample_heatmap(h, 8)
    assert up.shape == (2, 1, 8, 8)
    assert float(up[0].min()) == 0 and float(up[0].max()) == pytest.approx(1.0)
    assert float(up[1].abs().max()) == 0  # a flat map stays flat (no division by zero)


def test_training_resumes_exactly_from_a_checkpoint_state(tmp_path):
    from anime_lib.training import Checkpointer, restore, rng_state, restore_rng_state, state_of

    def build():
        torch.manual_seed(3)
        model = UGATIT(img_size=16, ngf=4, ndf=4, n_res=1)
        return (model, *_optimizers(model, lr=1e-3))

    batches = [(_images(2, 16), _images(2, 16)) for _ in range(4)]
    model, opt_G, opt_D = build()
    for a, b in batches[:2]:
        train_step(model, a, b, opt_G, opt_D)
    ckpt = Checkpointer(tmp_path)
    ckpt.save(2, state_of(model=model, opt_G=opt_G, opt_D=opt_D, rng=rng_state()))
    straight = [train_step(model, a, b, opt_G, opt_D) for a, b in batches[2:]]

    resumed_model, r_opt_G, r_opt_D = build()
    state = ckpt.load_latest()  # weights_only load: spectral-norm vectors and rho must survive it
    restore(state, model=resumed_model, opt_G=r_opt_G, opt_D=r_opt_D)
    restore_rng_state(state["rng"])
    resumed = [train_step(resumed_model, a, b, r_opt_G, r_opt_D) for a, b in batches[2:]]
    assert resumed == straight
    assert all(torch.equal(v, resumed_model.state_dict()[k]) for k, v in model.state_dict().items())


def test_fit_trains_through_a_run_and_resumes_exactly(tmp_path):
    from anime_lib.training import Run

    A, B = _images(6, 16), _images(6, 16)
    calls = []

    def counting_step(model, a, b, opt_G, opt_D, weights):
        calls.append(len(a))
        return train_step(model, a, b, opt_G, opt_D, weights)

    def go(folder, step=None):
        run = Run("ugatit", folder, config={"lr": 1e-3}, seed=0)
        model = UGATIT(img_size=16, ngf=4, ndf=4, n_res=1)
        result = fit(run, model, A, B, 4, lr=1e-3, batch_size=2, step=step, checkpoint_every=2)
        return model, result

    model, straight = go(tmp_path / "a", counting_step)
    assert straight.steps_done == 4 and calls == [2, 2, 2, 2]  # the given step, on batches of batch_size
    assert list(straight.history.as_dict())[1:] == ["G_adv_AB", "G_adv_BA", "cycle_A", "cycle_B", "idt_A", "idt_B",
                                                   "cam_AB", "cam_BA", "D_A", "D_B"]
    rhos = torch.cat([p.detach().flatten() for n, p in model.G_AB.named_parameters() if n.endswith("rho")])
    assert float(rhos.min()) >= 0 and float(rhos.max()) <= 1
    go(tmp_path / "b")
    (tmp_path / "b" / "checkpoints" / "ugatit" / "ckpt_0000004.pt").unlink()  # as if stopped after step 2
    resumed_model, resumed = go(tmp_path / "b")
    assert resumed.resumed_from == 2 and resumed.steps_done == 4
    assert resumed.history.as_dict() == straight.history.as_dict()
    for k, v in model.state_dict().items():
        assert torch.allclose(v, resumed_model.state_dict()[k], atol=1e-6), k
