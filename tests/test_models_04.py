"""Tests for anime_lib.models.cyclegan (lesson 04): shapes, ranges, PatchGAN size, init, one training step, pools."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from anime_lib.models.cyclegan import (
    CycleGAN,
    PatchDiscriminator,
    ResnetBlock,
    ResnetGenerator,
    add_input_noise,
    default_n_blocks,
    default_n_layers,
    generator_objective,
    patch_receptive_field,
    train_step,
)
from anime_lib.models import cyclegan as cg
from anime_lib.models.blocks import ImagePool
from anime_lib.training import Run, batch_indices
from anime_lib.translation import translate_set


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _optimizers(model: CycleGAN, lr: float = 2e-4):
    opt_G = torch.optim.Adam(model.generators(), lr=lr, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(model.discriminators(), lr=lr, betas=(0.5, 0.999))
    return opt_G, opt_D


def _images(n: int, size: int) -> torch.Tensor:
    return torch.rand(n, 3, size, size) * 2 - 1


# ----------------------------------------------------------------------------------------- architecture


@pytest.mark.parametrize("size", [16, 32, 48, 64])
def test_generator_keeps_the_shape_and_outputs_minus_one_to_one(size):
    G = ResnetGenerator(ngf=8, n_blocks=2)
    x = _images(3, size)
    y = G(x)
    assert y.shape == x.shape
    assert float(y.detach().min()) >= -1 and float(y.detach().max()) <= 1


def test_generator_refuses_sides_that_are_not_multiples_of_4():
    with pytest.raises(ValueError, match="multiples of 4"):
        ResnetGenerator(ngf=4, n_blocks=1)(_images(1, 30))


def test_paper_generator_layout():
    G = ResnetGenerator(ngf=64, n_blocks=9)
    convs = [(m.in_channels, m.out_channels, m.kernel_size[0]) for m in G.modules() if type(m) is nn.Conv2d]
    assert convs[0] == (3, 64, 7) and convs[1] == (64, 128, 3) and convs[2] == (128, 256, 3)
    assert convs[-1] == (64, 3, 7)
    assert sum(isinstance(m, ResnetBlock) for m in G.modules()) == 9
    tconvs = [(m.in_channels, m.out_channels) for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert tconvs == [(256, 128), (128, 64)]
    norms = [m for m in G.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(not m.affine for m in norms)
    assert all(m.bias is not None for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))
    assert isinstance(list(G.modules())[-1], nn.Tanh)


def test_leaky_relu_switch_changes_every_activation():
    relu = ResnetGenerator(ngf=4, n_blocks=2, activation="relu")
    leaky = ResnetGenerator(ngf=4, n_blocks=2, activation="leaky_relu")
    n_relu = sum(isinstance(m, nn.ReLU) for m in relu.modules())
    assert n_relu > 0 and sum(isinstance(m, nn.ReLU) for m in leaky.modules()) == 0
    assert sum(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2 for m in leaky.modules()) == n_relu
    with pytest.raises(ValueError, match="activation"):
        ResnetGenerator(ngf=4, n_blocks=1, activation="gelu")


def test_patchgan_receptive_field_is_70_px_for_3_layers():
    assert [patch_receptive_field(n) for n in (1, 2, 3)] == [16, 34, 70]


@pytest.mark.parametrize("size,n_layers", [(32, 1), (48, 2), (64, 2), (128, 3), (256, 3)])
def test_patchgan_output_size(size, n_layers):
    D = PatchDiscriminator(ndf=8, n_layers=n_layers)
    out = D(_images(2, size))
    side = size // 2 ** n_layers - 2
    assert out.shape == (2, 1, side, side)
    assert not isinstance(list(D.modules())[-1], nn.Sigmoid)  # raw logits for LSGAN


def test_patchgan_paper_channels():
    D = PatchDiscriminator(ndf=64, n_layers=3)
    convs = [(m.in_channels, m.out_channels, m.stride[0]) for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [(3, 64, 2), (64, 128, 2), (128, 256, 2), (256, 512, 1), (512, 1, 1)]
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in D.modules()) == 3  # none on the first layer


def test_sizes_scale_with_the_image():
    assert default_n_blocks(256) == 9 and default_n_blocks(128) == 6 and default_n_blocks(32) < default_n_blocks(64)
    assert default_n_layers(256) == 3 and default_n_layers(32) == 1
    for size in (32, 64, 128, 256):  # the patch stays a local critic: at most about half the image side
        assert patch_receptive_field(default_n_layers(size)) <= 0.6 * size


def test_init_is_normal_with_std_002():
    model = CycleGAN(img_size=64, ngf=32, ndf=32)
    weights = torch.cat([m.weight.detach().flatten() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert abs(float(weights.mean())) < 2e-3
    assert float(weights.std()) == pytest.approx(0.02, rel=0.05)
    biases = [m.bias for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(float(b.detach().abs().max()) == 0 for b in biases)


# ----------------------------------------------------------------------------------------- objective and step


def test_generator_objective_is_the_weighted_sum_of_its_terms():
    model = CycleGAN(img_size=16, ngf=4, ndf=4, n_blocks=1)
    a, b = _images(2, 16), _images(2, 16)
    g = generator_objective(model, a, b, lambda_cycle=10.0, lambda_identity=0.5)
    expected = g.gan_AB + g.gan_BA + 10 * (g.cycle_A + g.cycle_B) + 5 * (g.idt_A + g.idt_B)
    assert float(g.total.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert g.fake_A.shape == a.shape and g.fake_B.shape == b.shape
    no_idt = generator_objective(model, a, b, lambda_identity=0.0)
    assert float(no_idt.idt_A) == 0 and float(no_idt.idt_B) == 0


def test_one_step_updates_both_generators_and_both_discriminators():
    model = CycleGAN(img_size=16, ngf=4, ndf=4, n_blocks=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt_G, opt_D = _optimizers(model)
    losses = train_step(model, _images(4, 16), _images(4, 16), opt_G, opt_D, ImagePool(50), ImagePool(50))
    assert set(losses) == {"G_gan_AB", "G_gan_BA", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B"}
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    for net in ("G_AB", "G_BA", "D_A", "D_B"):
        changed = [k for k in before if k.startswith(net + ".") and not torch.equal(before[k], model.state_dict()[k])]
        assert changed, f"{net} was not updated"
    assert all(p.requires_grad for p in model.parameters())  # D unfrozen again after G's step


def test_generator_step_leaves_discriminator_gradients_alone():
    model = CycleGAN(img_size=16, ngf=4, ndf=4, n_blocks=1)
    opt_G, _ = _optimizers(model)
    opt_D = torch.optim.SGD(model.discriminators(), lr=0.0)  # D's update does nothing: only G's step shows
    before = {k: v.clone() for k, v in model.D_B.state_dict().items()}
    train_step(model, _images(2, 16), _images(2, 16), opt_G, opt_D, ImagePool(0), ImagePool(0))
    assert all(torch.equal(before[k], v) for k, v in model.D_B.state_dict().items())


def test_image_pool_fills_through_the_step_and_keeps_detached_copies():
    model = CycleGAN(img_size=16, ngf=4, ndf=4, n_blocks=1)
    opt_G, opt_D = _optimizers(model)
    pool_A, pool_B = ImagePool(5, torch.Generator().manual_seed(0)), ImagePool(5, torch.Generator().manual_seed(1))
    for step in range(3):
        train_step(model, _images(2, 16), _images(2, 16), opt_G, opt_D, pool_A, pool_B)
        assert len(pool_A) == len(pool_B) == min(5, 2 * (step + 1))
    assert all(not t.requires_grad for t in pool_A.images + pool_B.images)
    off = ImagePool(0)
    train_step(model, _images(2, 16), _images(2, 16), opt_G, opt_D, off, ImagePool(0))
    assert len(off) == 0


def test_full_pool_returns_a_stored_image_about_half_the_time():
    pool = ImagePool(4, torch.Generator().manual_seed(0))
    pool.query(torch.full((4, 3, 2, 2), -1.0))  # fill it
    new = torch.arange(400, dtype=torch.float32).view(400, 1, 1, 1).expand(400, 3, 2, 2)
    out = pool.query(new)
    fresh = float((out == new).all(dim=(1, 2, 3)).float().mean())
    assert 0.4 < fresh < 0.6  # the rest are images stored earlier
    assert len(pool) == 4


def test_input_noise_is_clipped_and_off_at_zero():
    x = _images(4, 8)
    assert add_input_noise(x, 0.0) is x
    noisy = add_input_noise(x, 0.5, torch.Generator().manual_seed(0))
    assert noisy.shape == x.shape and not torch.equal(noisy, x)
    assert float(noisy.min()) >= -1 and float(noisy.max()) <= 1


def test_a_few_steps_reduce_the_cycle_loss():
    torch.manual_seed(1)
    model = CycleGAN(img_size=16, ngf=8, ndf=8, n_blocks=1)
    opt_G, opt_D = _optimizers(model, lr=1e-3)
    a, b = _images(4, 16), _images(4, 16)
    first = train_step(model, a, b, opt_G, opt_D, ImagePool(0), ImagePool(0))
    for _ in range(15):
        last = train_step(model, a, b, opt_G, opt_D, ImagePool(0), ImagePool(0))
    assert last["cycle_A"] < first["cycle_A"] and last["cycle_B"] < first["cycle_B"]


def test_batch_indices_are_deterministic_epoch_permutations():
    n, bs = 10, 3
    epoch0 = torch.cat([batch_indices(s, bs, n, seed=0) for s in range(3)])
    assert len(set(epoch0.tolist())) == 9  # no repeats inside an epoch
    assert torch.equal(batch_indices(4, bs, n), batch_indices(4, bs, n))
    assert not torch.equal(batch_indices(0, bs, n, stream=0), batch_indices(0, bs, n, stream=1))
    with pytest.raises(ValueError):
        batch_indices(0, 11, n)


def test_translate_runs_in_eval_mode_and_restores_training():
    G = ResnetGenerator(ngf=4, n_blocks=1)
    x = _images(5, 16)
    y = translate_set(G, x, batch=2)
    assert y.shape == x.shape and G.training
    assert torch.allclose(y, translate_set(G, x, batch=5), atol=1e-6)


# ----------------------------------------------------------------------------------------- upsampling switch


def test_resize_upsampling_replaces_the_transposed_convs():
    G = ResnetGenerator(ngf=8, n_blocks=2, upsampling="resize")
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in G.modules())
    ups = [m for m in G.modules() if isinstance(m, nn.Upsample)]
    assert len(ups) == 2 and all(m.scale_factor == 2 and m.mode == "nearest" for m in ups)
    x = _images(2, 32)
    assert G(x).shape == x.shape
    paper = ResnetGenerator(ngf=8, n_blocks=2)
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in paper.modules()) == 2
    with pytest.raises(ValueError, match="upsampling"):
        ResnetGenerator(ngf=4, n_blocks=1, upsampling="bilinear-ish")


def test_resize_upsampling_has_no_checkerboard_on_a_constant_input():
    # a constant feature map stays constant through nearest resize + reflect-padded conv, while a stride-2
    # transposed conv with a 3x3 kernel adds its kernel a different number of times at even and odd pixels
    torch.manual_seed(0)
    from anime_lib.models.blocks import upsample_layer as _upsample_layer

    x = torch.ones(1, 4, 6, 6)
    with torch.no_grad():
        resize = _upsample_layer(4, 4, "resize")(x)
        transpose = _upsample_layer(4, 4, "transpose")(x)
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))
    assert float(resize[inner].std(dim=(2, 3)).max()) < 1e-5
    assert float(transpose[inner].std(dim=(2, 3)).max()) > 1e-3


def test_cyclegan_config_records_the_upsampling_only_when_it_differs_from_the_paper():
    assert "upsampling" not in CycleGAN(img_size=16, ngf=4, ndf=4, n_blocks=1).config
    model = CycleGAN(img_size=16, ngf=4, ndf=4, n_blocks=1, upsampling="resize")
    assert model.config["upsampling"] == "resize"
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in model.modules())
    assert model.G_AB(_images(2, 16)).shape == (2, 3, 16, 16)


def test_layer_norm_switch_normalises_all_channels_together():
    G = ResnetGenerator(ngf=8, n_blocks=2, norm="layer")
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in G.modules())
    groups = [m for m in G.modules() if isinstance(m, nn.GroupNorm)]
    assert len(groups) == 2 + 2 * 2 + 2 + 1 and all(m.num_groups == 1 for m in groups)  # down, blocks, up, stem
    x = _images(2, 16)
    assert G(x).shape == x.shape
    # the property that motivates it: InstanceNorm maps every flat image to the same all-zero feature map,
    # whatever its colour; GroupNorm(1, C) keeps the balance between channels, so two colours stay apart
    flat = torch.stack([torch.tensor([0.8, -0.2, -0.6]), torch.tensor([-0.5, 0.3, 0.9])]).view(2, 3, 1, 1).expand(2, 3, 16, 16)
    with torch.no_grad():
        inst = ResnetGenerator(ngf=8, n_blocks=1).stem(flat.contiguous())
        layer = G.stem(flat.contiguous())
    assert float(inst.abs().max()) < 1e-4
    assert float((layer[0] - layer[1]).abs().max()) > 1e-2
    model = CycleGAN(img_size=16, ngf=4, ndf=4, n_blocks=1, norm="layer")
    assert model.config["norm"] == "layer" and "norm" not in CycleGAN(img_size=16, ngf=4, ndf=4, n_blocks=1).config
    assert any(isinstance(m, nn.InstanceNorm2d) for m in model.D_B.modules())  # the discriminators keep the paper's norm
    with pytest.raises(ValueError, match="norm"):
        ResnetGenerator(ngf=4, n_blocks=1, norm="batch")


# ----------------------------------------------------------------------------------------- EMA generators (lesson 04)


def test_ema_generators_resume_exactly_through_a_checkpoint_state():
    """The lesson keeps an EMA of G_AB and G_BA in its checkpoints: a resumed run ends with the same averages."""
    from anime_lib.training import EMA, restore, state_of

    def build():
        torch.manual_seed(0)
        model = CycleGAN(img_size=16, ngf=4, ndf=4, n_blocks=1, norm="layer", upsampling="resize")
        return model, *_optimizers(model), {g: EMA(getattr(model, g), 0.9) for g in ("G_AB", "G_BA")}

    def step(model, opt_G, opt_D, emas, a, b):
        train_step(model, a, b, opt_G, opt_D, ImagePool(0), ImagePool(0))
        for g, ema in emas.items():
            ema.update(getattr(model, g))

    torch.manual_seed(1)
    batches = [(_images(2, 16), _images(2, 16)) for _ in range(4)]
    model, opt_G, opt_D, emas = build()
    for a, b in batches[:2]:
        step(model, opt_G, opt_D, emas, a, b)
    state = state_of(model=model, opt_G=opt_G, opt_D=opt_D, **{f"ema_{g}": e for g, e in emas.items()})
    for a, b in batches[2:]:
        step(model, opt_G, opt_D, emas, a, b)

    r_model, r_opt_G, r_opt_D, r_emas = build()
    restore(state, model=r_model, opt_G=r_opt_G, opt_D=r_opt_D, **{f"ema_{g}": e for g, e in r_emas.items()})
    assert r_emas["G_AB"].num_updates == 2
    for a, b in batches[2:]:
        step(r_model, r_opt_G, r_opt_D, r_emas, a, b)
    for g in emas:
        assert emas[g].num_updates == r_emas[g].num_updates == 4
        for (k, v), w in zip(emas[g].module.state_dict().items(), r_emas[g].module.state_dict().values()):
            assert torch.equal(v, w), k
        # the average differs from the raw weights, and a decay-0.9 shadow after 4 updates is still close to the start
        raw = getattr(model, g).state_dict()
        assert any(not torch.equal(v, raw[k]) for k, v in emas[g].module.state_dict().items())


def test_ema_started_from_an_old_checkpoint_equals_its_weights():
    """An old checkpoint without EMA state: the lesson starts the EMA from the restored weights."""
    from anime_lib.training import EMA

    model = CycleGAN(img_size=16, ngf=4, ndf=4, n_blocks=1)
    ema = EMA(model.G_AB, 0.995)
    x = _images(2, 16)
    assert torch.equal(ema.module(x), model.G_AB.eval()(x))
    assert ema.num_updates == 0 and not ema.module.training


# ----------------------------------------------------------------------------------------- recipe and fit (both parts of lesson 04)


def _tiny_recipe(**changes) -> cg.Recipe:
    settings = dict(img_size=16, batch_size=2, ngf=4, ndf=4, n_blocks=1, n_layers=1, norm="layer", upsampling="resize",
                    pool_size=2, ema_decay=0.5)
    return cg.Recipe(**{**settings, **changes})


def test_recipe_from_params_maps_the_lesson_parameter_names():
    from types import SimpleNamespace

    P = SimpleNamespace(IMG_SIZE=32, BATCH_SIZE=8, NGF=16, N_LAYERS_D=2, LAMBDA_IDENTITY=0.0, EMA_DECAY=0.9)
    r = cg.Recipe.from_params(P, pool_size=0)
    assert (r.img_size, r.batch_size, r.ngf, r.n_layers, r.lambda_identity, r.ema_decay, r.pool_size) == (32, 8, 16, 2, 0.0, 0.9, 0)
    assert r.ndf == cg.Recipe().ndf and r.config(dataset="toyfaces")["dataset"] == "toyfaces"
    assert r.build().config["n_layers"] == 2


def test_fit_resumes_exactly_and_refuses_a_run_made_for_another_recipe(tmp_path):
    recipe = _tiny_recipe()
    torch.manual_seed(3)
    A, B = _images(6, 16), _images(6, 16)
    monitor = lambda G: {"mean": float(G(_images(1, 16)).detach().mean())}  # noqa: E731

    def go(folder):
        run = Run("cyclegan", folder, config=recipe.config(), seed=0)
        return cg.fit(run, recipe, A, B, 4, monitor=monitor, monitor_every=2, checkpoint_every=2)

    straight = go(tmp_path / "a")
    go(tmp_path / "b")
    (tmp_path / "b" / "checkpoints" / "cyclegan" / "ckpt_0000004.pt").unlink()  # as if stopped after step 2
    resumed = go(tmp_path / "b")
    assert resumed.result.resumed_from == 2 and resumed.log["step"] == straight.log["step"] == [2, 4]
    for k, v in straight.model.state_dict().items():
        assert torch.allclose(v, resumed.model.state_dict()[k], atol=1e-6), k
    for g in ("G_AB", "G_BA"):
        assert resumed.emas[g].num_updates == 4
    assert isinstance(straight.final, cg.GeneratorPair) and straight.final.G_AB is straight.emas["G_AB"].module
    with pytest.raises(ValueError, match="recipe"):
        cg.fit(Run("other", tmp_path, config=_tiny_recipe(pool_size=0).config()), recipe, A, B, 1)


def test_a_checkpoint_with_other_monitor_readings_starts_over(tmp_path, capsys):
    """A finished run whose monitor log holds other readings (an older course version's monitor) is not resumed
    into a log the lesson cannot draw: the readings' names are part of the run's settings."""
    recipe = _tiny_recipe()
    A, B = _images(6, 16), _images(6, 16)

    def monitor(readings):
        read = lambda G: {k: 0.5 for k in readings}  # noqa: E731
        read.readings = readings
        return read

    def go(readings):
        run = Run("cyclegan", tmp_path, config=recipe.config(), seed=0)
        return cg.fit(run, recipe, A, B, 2, monitor=monitor(readings), monitor_every=1, checkpoint_every=2)

    old = go(("realism", "diversity"))
    assert set(old.log) == {"step", "monitor_seconds", "realism", "diversity"}
    again = go(("realism", "diversity"))  # same readings: resumed, nothing trained
    assert again.result.steps_done == 2 and again.result.resumed_from == 2
    capsys.readouterr()
    new = go(("realism", "toy_fid"))
    assert "monitor_readings" in capsys.readouterr().out  # the message names the setting that changed
    assert new.result.resumed_from is None and new.log["toy_fid"] == [0.5, 0.5] and "diversity" not in new.log


def test_fit_supervised_trains_g_ab_on_true_pairs(tmp_path):
    recipe = _tiny_recipe(ema_decay=0.0)
    torch.manual_seed(4)
    A = _images(4, 16)
    G, result = cg.fit_supervised(Run("sup", tmp_path, config=recipe.config()), recipe, A, A.flip(-1), 6)
    assert result.steps_done == 6 and set(result.history.names) == {"pixel"} and not G.training
    assert result.history["pixel"][-1] < result.history["pixel"][0]


def test_lesson_defaults_are_shared_by_both_parts():
    for profile, values in cg.PROFILE_DEFAULTS.items():
        deep = cg.DEEP_DIVE_DEFAULTS[profile]
        assert {k: v for k, v in deep.items() if k != "ABLATION_STEPS"} == values and deep["ABLATION_STEPS"] >= 0


def test_training_monitor_measures_like_the_lesson_table():
    """The monitor reads the table's metrics on fixed faces: the ground truth scores better than the untranslated
    faces on every one of them, and a generator module is called on the faces as a batch."""
    from anime_lib.data import toyfaces as tf

    faces = tf.toyfaces("human", n=64, size=32, split="test", with_counterpart=True, cache=False)
    read = cg.training_monitor(faces)
    untranslated, truth = read(nn.Identity()), read(lambda x, direction: faces.counterpart().tensor())
    assert set(untranslated) == {"realism", "attr_preservation", "gt_l1", "toy_fid", "diversity"}
    assert truth["toy_fid"] < untranslated["toy_fid"] and truth["gt_l1"] < untranslated["gt_l1"]
    assert truth["realism"] > untranslated["realism"] and truth["attr_preservation"] > 0.9
