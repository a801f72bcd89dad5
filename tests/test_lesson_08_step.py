"""Lesson 08's step-function cell (the code students read and change) agrees with the library's references
``anime_lib.models.animegan.init_step`` and ``train_step``, and the lesson resolves its profiles from the library."""
from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from anime_lib.config import resolve_params
from anime_lib.models import animegan as ag
from notebook_cells import NOTEBOOKS, assert_same_updates, notebook_namespace

NOTEBOOK = "08_animeganv2.ipynb"


def _setup(freeze=()):
    torch.manual_seed(0)
    model = ag.AnimeGAN(width=0.125, ndf=8, n_layers_d=2)
    opt_G = torch.optim.Adam(ag.freeze(model.G, freeze), lr=1e-3, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(model.D.parameters(), lr=2e-3, betas=(0.5, 0.999))
    return model, opt_G, opt_D


def _features():
    torch.manual_seed(5)
    return nn.Sequential(nn.Conv2d(3, 6, 3, stride=2), nn.LeakyReLU(0.2), nn.Conv2d(6, 8, 3)).requires_grad_(False)


@pytest.mark.parametrize("weights,freeze", [(ag.LossWeights(), ()), (ag.LossWeights(adv=10.0, style=250.0), ("block_a", "block_b"))])
def test_notebook_train_step_equals_the_library_reference(weights, freeze):
    train_step = notebook_namespace(NOTEBOOK, "step-function")["train_step"]
    torch.manual_seed(1)
    batches = []
    for _ in range(3):
        anime = torch.rand(2, 3, 16, 16) * 2 - 1
        batches.append((torch.rand(2, 3, 16, 16) * 2 - 1, anime, *ag.anime_targets(anime, 3)))
    features = _features()
    runs = {}
    for name, step in (("notebook", train_step), ("library", ag.train_step)):
        model, opt_G, opt_D = _setup(freeze)
        losses = [step(model, *b, opt_G, opt_D, features, weights) for b in batches]
        runs[name] = (losses, copy.deepcopy(model.state_dict()))
    assert_same_updates(runs, rel=1e-5, abs=1e-7)


def test_notebook_init_step_equals_the_library_reference():
    init_step = notebook_namespace(NOTEBOOK, "step-function")["init_step"]
    features, photos = _features(), [torch.rand(2, 3, 16, 16) * 2 - 1 for _ in range(3)]
    states = {}
    for name, step in (("notebook", init_step), ("library", ag.init_step)):
        torch.manual_seed(0)
        G = ag.Generator(0.125)
        opt = torch.optim.Adam(G.parameters(), lr=1e-3)
        losses = [step(G, x, opt, features, ag.LossWeights())["init_content"] for x in photos]
        states[name] = (losses, copy.deepcopy(G.state_dict()))
    assert states["notebook"][0] == pytest.approx(states["library"][0], rel=1e-6)
    for k, v in states["library"][1].items():
        assert torch.allclose(states["notebook"][1][k], v, atol=1e-6), k


def _source() -> str:
    cells = json.loads((NOTEBOOKS / NOTEBOOK).read_text())["cells"]
    return "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu"])
def test_the_lesson_resolves_its_profiles_from_the_library(profile):
    assert "resolve_params(globals(), defaults=ag.PROFILE_DEFAULTS)" in _source()
    ns = notebook_namespace(NOTEBOOK, "parameters")
    ns["PROFILE"] = profile
    P = resolve_params(ns, defaults=ag.PROFILE_DEFAULTS)
    recipe = ag.Recipe.from_params(P)
    assert recipe.width == ag.PROFILE_DEFAULTS[profile]["WIDTH"] and recipe.img_size == P.IMG_SIZE
    assert (recipe.con_weight, recipe.sty_weight, recipe.color_weight, recipe.tv_weight) == (1.5, 2.5, 10.0, 1.0)
    assert P.FINETUNE_FREEZE == ["block_a", "block_b"] and P.FINETUNE_LR_SCALE == 0.1
    assert P.IMG_SIZE % 2 == 0 and P.FINETUNE_START in ("init", *ag.PUBLIC_WEIGHTS)
    if profile == "cpu":
        assert P.IMG_SIZE == 64  # the course's base CPU size
    assert P.DOWNLOAD_WEIGHTS is (profile != "smoke")  # the test suite never reaches out
