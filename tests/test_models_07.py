"""Tests for anime_lib.models.cartoongan (lesson 07): the paper's networks, ArtifyGAN's sizes, the losses and the
two phases of a step, the random content network, the recipe and a resumable fit."""
from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
from torch import nn

from anime_lib.config import resolve_params
from anime_lib.models import cartoongan as cn
from anime_lib.models.blocks import ResnetBlock, count_parameters
from anime_lib.perceptual import FeatureExtractor
from anime_lib.training import Run
from anime_lib.translation import Translator, translate_set


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _images(n: int, size: int) -> torch.Tensor:
    return torch.rand(n, 3, size, size) * 2 - 1


def _tiny_features(name: str = "tiny conv") -> FeatureExtractor:
    return FeatureExtractor(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1)),
                            lambda x: x, name)


def _tiny_model() -> cn.CartoonGAN:
    return cn.CartoonGAN(ngf=4, ndf=4, n_blocks=1, norm="layer", upsampling="resize")


def _optimizers(model: cn.CartoonGAN):
    return (torch.optim.Adam(model.G.parameters(), lr=1e-3, betas=(0.5, 0.999)),
            torch.optim.Adam(model.D.parameters(), lr=1e-3, betas=(0.5, 0.999)))


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------------------- architecture


@pytest.mark.parametrize("size", [16, 32, 64])
def test_generator_keeps_the_shape_and_outputs_minus_one_to_one(size):
    G = cn.CartoonGenerator(ngf=4, n_blocks=2)
    x = _images(2, size)
    y = G(x)
    assert y.shape == x.shape and float(y.detach().abs().max()) <= 1


def test_generator_refuses_sides_that_are_not_multiples_of_4():
    with pytest.raises(ValueError, match="multiples of 4"):
        cn.CartoonGenerator(ngf=4, n_blocks=1)(_images(1, 30))


def test_paper_generator_layout_and_size():
    G = cn.CartoonGenerator()  # ngf 64, 8 blocks, InstanceNorm, transposed convs
    convs = [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0]) for m in G.modules() if type(m) is nn.Conv2d
             and not any(m is c for b in G.blocks for c in b.modules())]
    assert convs == [(3, 64, 7, 1), (64, 128, 3, 2), (128, 128, 3, 1), (128, 256, 3, 2), (256, 256, 3, 1),
                     (128, 128, 3, 1), (64, 64, 3, 1), (64, 3, 7, 1)]
    assert [(m.in_channels, m.out_channels, m.stride[0]) for m in G.modules() if isinstance(m, nn.ConvTranspose2d)] \
        == [(256, 128, 2), (128, 64, 2)]
    assert sum(isinstance(m, ResnetBlock) for m in G.modules()) == 8
    assert isinstance(G.after_blocks, nn.Identity) and isinstance(list(G.modules())[-1], nn.Tanh)
    assert all(not m.affine for m in G.modules() if isinstance(m, nn.InstanceNorm2d))
    # the training reference: about 11.1M parameters, ArtifyGAN (10 blocks) about 13.5M
    assert count_parameters(G) == 11_120_195
    assert count_parameters(cn.CartoonGenerator(n_blocks=10)) == 13_480_515


def test_conv_after_blocks_adds_one_3x3_conv_and_its_norm():
    plain = cn.CartoonGenerator(ngf=8, n_blocks=2, norm="layer")
    extra = cn.CartoonGenerator(ngf=8, n_blocks=2, norm="layer", conv_after_blocks=True)
    c = 4 * 8
    assert count_parameters(extra) - count_parameters(plain) == c * c * 9 + c + 2 * c  # conv + bias + GroupNorm
    assert extra(_images(1, 16)).shape == (1, 3, 16, 16)


def test_generator_sizes_count_cartoongan_artifygan_and_the_paper():
    rows = cn.generator_sizes(8, 2, 2, norm="layer", upsampling="resize")
    by = {(r["sizes"], r["generator"]): r for r in rows}
    assert by[("this lesson", "ArtifyGAN")]["residual blocks"] == 4
    assert by[("this lesson", "CartoonGAN")]["parameters"] == count_parameters(
        cn.CartoonGenerator(8, 2, norm="layer", upsampling="resize"))
    assert by[("paper", "CartoonGAN")]["parameters"] == 11_120_195
    assert by[("paper", "ArtifyGAN")]["parameters"] == 13_480_515
    assert by[("paper", "CartoonGAN + conv after the blocks")]["parameters"] == 11_120_195 + 256 * 256 * 9 + 256


def test_discriminator_layout_and_patch_output():
    D = cn.CartoonDiscriminator()  # ndf 32
    convs = [(m.in_channels, m.out_channels, m.stride[0]) for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [(3, 32, 1), (32, 64, 2), (64, 128, 1), (128, 128, 2), (128, 256, 1), (256, 256, 1), (256, 1, 1)]
    assert all(m.negative_slope == 0.2 for m in D.modules() if isinstance(m, nn.LeakyReLU))
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in D.modules()) == 3
    assert cn.CartoonDiscriminator(4)(_images(2, 32)).shape == (2, 1, 8, 8)


def test_cartoongan_translates_human_to_anime_only():
    model = _tiny_model()
    assert isinstance(model, Translator) and model.directions == ("human->anime",)
    x = _images(3, 16)
    assert translate_set(model, x, "human->anime").shape == x.shape
    with pytest.raises(ValueError, match="translates"):
        model.translate(x, "anime->human")


# ----------------------------------------------------------------------------------------- losses and step


def test_content_loss_is_zero_for_the_photo_itself_and_has_no_gradient_on_the_target():
    f = _tiny_features()
    photo = _images(2, 16).requires_grad_(True)
    assert float(cn.content_loss(f, photo.detach(), photo.detach())) == 0.0
    fake = _images(2, 16).requires_grad_(True)
    cn.content_loss(f, fake, photo).backward()
    assert fake.grad is not None and photo.grad is None


def test_style_loss_is_zero_for_the_cartoons_own_texture_and_positive_otherwise():
    f = _tiny_features()
    one = _images(1, 16)
    assert float(cn.style_loss(f, one, one.expand(3, -1, -1, -1))) == pytest.approx(0.0, abs=1e-12)
    assert float(cn.style_loss(f, _images(2, 16), _images(3, 16))) > 0


def test_initialisation_phase_trains_g_with_the_content_loss_only():
    model, f = _tiny_model(), _tiny_features()
    opt_G, opt_D = _optimizers(model)
    d_before, g_before = _state(model.D), _state(model.G)
    losses = cn.train_step(model, _images(2, 16), _images(2, 16), _images(2, 16), opt_G, opt_D, f, init_phase=True)
    assert set(losses) == {"content"}
    assert _same(d_before, _state(model.D)) and not _same(g_before, _state(model.G))


def test_adversarial_phase_updates_d_on_three_sets_then_g_with_d_frozen():
    model, f = _tiny_model(), _tiny_features()
    before = copy.deepcopy(model)
    opt_G, opt_D = _optimizers(model)
    photo, cartoon, smoothed = _images(2, 16), _images(2, 16), _images(2, 16)
    losses = cn.train_step(model, photo, cartoon, smoothed, opt_G, opt_D, f)
    assert set(losses) == {"content", "D_real", "D_fake", "D_smoothed", "G_adv"}
    # D's loss: real cartoons -> 1, G(photo) -> 0, edge-smoothed cartoons -> 0, on the networks before the step
    terms = {"D_real": cn.bce(before.D(cartoon), 1.0), "D_fake": cn.bce(before.D(before.G(photo).detach()), 0.0),
             "D_smoothed": cn.bce(before.D(smoothed), 0.0)}
    for k, v in terms.items():
        assert losses[k] == pytest.approx(float(v.detach()), rel=1e-5), k
    sum(terms.values()).backward()
    # G's update ran through D but left D's gradients as D's own loss made them, and D is trainable again
    for (name, p), q in zip(model.D.named_parameters(), before.D.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name
    assert all(p.requires_grad for p in model.D.parameters())
    assert not _same(_state(before.D), _state(model.D)) and not _same(_state(before.G), _state(model.G))


def test_edge_smoothing_off_ignores_the_smoothed_batch():
    results = []
    for smoothed in (_images(2, 16), _images(2, 16)):
        torch.manual_seed(5)
        model, f = _tiny_model(), _tiny_features()
        opt_G, opt_D = _optimizers(model)
        torch.manual_seed(6)
        photo, cartoon = _images(2, 16), _images(2, 16)
        losses = cn.train_step(model, photo, cartoon, smoothed, opt_G, opt_D, f, cn.Objective(edge_smoothing=False))
        results.append((losses, _state(model)))
    assert results[0][0] == results[1][0] and results[0][0]["D_smoothed"] == 0.0
    assert _same(results[0][1], results[1][1])


def test_gram_only_objective_never_touches_d():
    model, f = _tiny_model(), _tiny_features()
    opt_G, opt_D = _optimizers(model)
    d_before = _state(model.D)
    losses = cn.train_step(model, _images(2, 16), _images(2, 16), _images(2, 16), opt_G, opt_D, f,
                           cn.Objective(adversarial=0.0, style=1.0))
    assert set(losses) == {"content", "style"} and _same(d_before, _state(model.D))
    assert all(p.grad is None for p in model.D.parameters())


def test_generator_loss_is_the_weighted_sum_of_its_terms():
    """G's update equals one SGD step on omega * content + adversarial * G_adv + style * style, written out."""
    torch.manual_seed(7)
    photo, cartoon, smoothed = _images(2, 16), _images(2, 16), _images(2, 16)
    w = cn.Objective(omega=3.0, adversarial=0.5, style=2.0)

    def fresh():
        torch.manual_seed(8)
        model = _tiny_model()
        return model, torch.optim.SGD(model.G.parameters(), lr=0.1), torch.optim.SGD(model.D.parameters(), lr=0.1)

    f = _tiny_features()
    model, opt_G, opt_D = fresh()
    cn.train_step(model, photo, cartoon, smoothed, opt_G, opt_D, f, w)
    ref, ref_G, ref_D = fresh()
    fake = ref.G(photo)
    d_loss = cn.bce(ref.D(cartoon), 1.0) + cn.bce(ref.D(fake.detach()), 0.0) + cn.bce(ref.D(smoothed), 0.0)
    ref_D.zero_grad()
    d_loss.backward()
    ref_D.step()
    g_loss = 3.0 * cn.content_loss(f, fake, photo) + 0.5 * cn.bce(ref.D(fake), 1.0) + 2.0 * cn.style_loss(f, fake, cartoon)
    ref_G.zero_grad()
    g_loss.backward()
    ref_G.step()
    for k, v in _state(ref.G).items():
        assert torch.allclose(v, model.G.state_dict()[k], atol=1e-6), k


# ----------------------------------------------------------------------------------------- content networks


def test_random_content_network_has_the_trained_ones_architecture_and_other_weights():
    trained = cn.content_network("probe")
    torch.manual_seed(0)
    random = cn.content_network("probe", random=True)
    assert random.name.startswith("randomly initialised") and cn.kind_of(random) == "probe"
    a, b = trained.state_dict(), random.state_dict()
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    assert not all(torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
    assert not any(p.requires_grad for p in random.parameters())
    random.train()
    assert not random.training  # stays in eval mode: its BatchNorm statistics never move
    x = _images(2, 64)
    assert trained(x).shape == random(x).shape


def test_counterpart_closer_counts_content_over_style():
    photos = _images(6, 8)
    assert cn.counterpart_closer(nn.Identity(), photos, photos + 0.01) == 1.0  # the same face, barely restyled
    assert cn.counterpart_closer(nn.Identity(), photos, -photos) < 1.0
    with pytest.raises(ValueError, match="counterparts"):
        cn.counterpart_closer(nn.Identity(), photos, photos[:3])


# ----------------------------------------------------------------------------------------- recipe and fit


def test_lr_milestones_count_the_training_after_the_initialisation_phase():
    assert cn.lr_milestones(400, (0.5, 0.75), 80) == [240, 320]
    assert cn.lr_milestones(400, (), 80) == []
    assert cn.lr_milestones(80, (0.5, 0.75), 80) == []  # an initialisation-only run never decays


def test_recipe_from_params_maps_the_lesson_parameters():
    P = resolve_params({"PROFILE": "cpu", "OMEGA": 3.0, "ADV_WEIGHT": 0.5, "STYLE_WEIGHT": 7.0, "FEATURES": "vgg19",
                        "N_INIT_STEPS": None, "N_BLOCKS": None, "LR_DECAY_AT": None, "BETA1": 0.5},
                       defaults=cn.PROFILE_DEFAULTS)
    r = cn.Recipe.from_params(P, features="net")
    assert (r.omega, r.adversarial, r.style, r.features) == (3.0, 0.5, 0.0, "net")  # STYLE_WEIGHT is per run
    assert r.init_steps == cn.PROFILE_DEFAULTS["cpu"]["N_INIT_STEPS"] and r.n_blocks == cn.PROFILE_DEFAULTS["cpu"]["N_BLOCKS"]
    assert r.lr_decay_at == () and r.config()["lr_decay_at"] == []
    assert r.objective == cn.Objective(3.0, 0.5, 0.0, True)


def test_profile_defaults_keep_the_paper_in_the_gpu_profile_and_artifygan_two_blocks_deeper():
    gpu = cn.PROFILE_DEFAULTS["gpu"]
    assert (gpu["NGF"], gpu["NDF"], gpu["N_BLOCKS"], gpu["BATCH_SIZE"]) == (64, 32, 8, 8)
    assert (gpu["NORM"], gpu["UPSAMPLING"], gpu["FEATURES"], gpu["LR_DECAY_AT"]) == ("instance", "transpose", "vgg19", [])
    for values in cn.PROFILE_DEFAULTS.values():
        assert values["ARTIFYGAN_BLOCKS"] == values["N_BLOCKS"] + cn.ARTIFYGAN_EXTRA_BLOCKS
    assert cn.PROFILE_DEFAULTS["cpu"]["IMG_SIZE"] == 64


def _tiny_recipe(**changes) -> cn.Recipe:
    return replace(cn.Recipe(img_size=16, batch_size=2, ngf=4, ndf=4, n_blocks=1, norm="layer", upsampling="resize",
                             init_steps=2, lr=1e-3, lr_decay_at=(0.5,), features="tiny conv"), **changes)


def test_fit_resumes_exactly_keeps_the_initialised_generator_and_refuses_other_recipes(tmp_path):
    recipe = _tiny_recipe()
    torch.manual_seed(3)
    A, B = _images(6, 16), _images(6, 16)
    S = B.flip(-1)

    def go(folder, n_steps=5, r=recipe):
        torch.manual_seed(11)
        features = _tiny_features()
        return cn.fit(Run("cartoongan", folder, config=r.config(), seed=0), r, A, B, S, n_steps, features,
                      checkpoint_every=2)

    straight = go(tmp_path / "a")
    go(tmp_path / "b")
    (tmp_path / "b" / "checkpoints" / "cartoongan" / "ckpt_0000005.pt").unlink()  # as if stopped after step 4
    resumed = go(tmp_path / "b")
    assert resumed.result.resumed_from == 4 and resumed.result.steps_done == 5
    assert straight.result.history.as_dict() == resumed.result.history.as_dict()
    for k, v in straight.model.state_dict().items():
        assert torch.allclose(v, resumed.model.state_dict()[k], atol=1e-6), k
    # the first two steps are content-only; the learning rate drops at half of the remaining three
    hist = straight.result.history.as_dict()
    assert hist["G_adv"][:2] == [None, None] and None not in hist["G_adv"][2:]
    assert hist["lr"] == [1e-3, 1e-3, 1e-3, pytest.approx(1e-4), pytest.approx(1e-4)]
    # init_G is the generator as the initialisation phase left it: an init-only run ends there too
    only_init = go(tmp_path / "c", 2, replace(recipe, lr_decay_at=()))
    for k, v in only_init.model.G.state_dict().items():
        assert torch.allclose(v, straight.init_G.state_dict()[k], atol=1e-6), k
        assert torch.allclose(v, resumed.init_G.state_dict()[k], atol=1e-6), k
    with pytest.raises(ValueError, match="recipe"):
        cn.fit(Run("other", tmp_path, config=_tiny_recipe(omega=1.0).config()), recipe, A, B, S, 1, _tiny_features())
    with pytest.raises(ValueError, match="content network"):
        cn.fit(Run("other", tmp_path, config=recipe.config()), recipe, A, B, S, 1, _tiny_features("another"))


def test_step_seconds_times_every_recipe():
    times = cn.step_seconds({"a": _tiny_recipe(), "b": _tiny_recipe(n_blocks=3)}, _tiny_features(), repeats=2)
    assert set(times) == {"a", "b"} and all(t > 0 for t in times.values())


def test_way_to_truth_places_a_row_between_the_input_and_the_ground_truth():
    from anime_lib.evaluation import way_to_truth

    d = "human->anime"
    refs = [{"method": "identity (no translation)", "direction": d, "realism": 0.0, "gt_l1": 0.2, "toy_fid": 1.0,
             "attr_preservation": 1.0},
            {"method": "ground truth (perfect translator)", "direction": d, "realism": 1.0, "gt_l1": 0.0, "toy_fid": 0.0,
             "attr_preservation": 1.0},
            {"method": "identity (no translation)", "direction": "anime->human", "realism": 0.5}]
    row = {"direction": d, "realism": 0.25, "gt_l1": 0.3, "toy_fid": None, "attr_preservation": 0.9}
    got = way_to_truth(row, refs, ("realism", "gt_l1", "toy_fid", "attr_preservation"))
    assert got == {"realism": 0.25, "gt_l1": pytest.approx(-0.5), "toy_fid": None, "attr_preservation": None}
    with pytest.raises(ValueError, match="ground-truth"):
        way_to_truth({"direction": "anime->human", "realism": 0.1}, refs)
