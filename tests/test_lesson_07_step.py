"""Lesson 07's step-function cell (the code students read and change) agrees with the library's reference
``anime_lib.models.cartoongan.train_step`` in both phases and for every objective of the ablation, and the lesson
reads its defaults and settings from the library."""
from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from anime_lib.config import resolve_params
from anime_lib.models import cartoongan as cn
from anime_lib.perceptual import FeatureExtractor
from notebook_cells import NOTEBOOKS, assert_same_updates, notebook_namespace

LESSON = "07_cartoongan.ipynb"

OBJECTIVES = {
    "CartoonGAN": cn.Objective(),
    "Gram style loss": cn.Objective(adversarial=0.0, style=10.0),
    "adversarial + Gram": cn.Objective(style=10.0),
    "no edge smoothing": cn.Objective(edge_smoothing=False),
    "other weights": cn.Objective(omega=2.5, adversarial=0.3, style=0.7),
}


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = cn.CartoonGAN(ngf=4, ndf=4, n_blocks=1, norm="layer", upsampling="resize")
    features = FeatureExtractor(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1)),
                                lambda x: x, "tiny conv")
    opt_G = torch.optim.Adam(model.G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(model.D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    return model, features, opt_G, opt_D


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_notebook_step_equals_the_library_reference(name):
    train_step = notebook_namespace(LESSON, "step-function")["train_step"]
    torch.manual_seed(1)
    batches = [tuple(torch.rand(2, 3, 16, 16) * 2 - 1 for _ in range(3)) for _ in range(4)]
    runs = {}
    for label, step in (("notebook", train_step), ("library", cn.train_step)):
        model, features, opt_G, opt_D = _setup()
        losses = [step(model, photo, cartoon, smoothed, opt_G, opt_D, features, OBJECTIVES[name], init_phase=i < 2)
                  for i, (photo, cartoon, smoothed) in enumerate(batches)]  # two content-only steps, then two full ones
        runs[label] = (losses, copy.deepcopy(model.state_dict()))
    assert_same_updates(runs)


def _source() -> str:
    cells = json.loads((NOTEBOOKS / LESSON).read_text())["cells"]
    return "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def test_the_lesson_resolves_its_defaults_from_the_library_and_trains_through_run():
    source = _source()
    assert "resolve_params(globals(), defaults=cn.PROFILE_DEFAULTS)" in source
    assert 'Run("cartoongan", OUT, config=recipe.config(**data_config)' in source
    assert "step=train_step" in source and "cn.fit(" in source
    assert "write_metrics(OUT, rows + real_rows, notebook=\"07_cartoongan\"" in source


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu"])
def test_parameters_give_the_paper_objective_and_a_recipe_in_every_profile(profile):
    ns = notebook_namespace(LESSON, "parameters")
    ns["PROFILE"] = profile
    P = resolve_params(ns, defaults=cn.PROFILE_DEFAULTS)
    recipe = cn.Recipe.from_params(P)
    assert recipe.objective == cn.Objective()  # omega 10, adversarial 1, no style term, edge smoothing on
    assert (recipe.lr, recipe.beta1, recipe.beta2, recipe.lr_gamma) == (2e-4, 0.5, 0.999, 0.1)
    assert recipe.init_steps == P.N_INIT_STEPS > 0 and P.N_STEPS > 0
    assert P.ARTIFYGAN_BLOCKS == P.N_BLOCKS + cn.ARTIFYGAN_EXTRA_BLOCKS
    assert P.IMG_SIZE % 4 == 0 and P.BATCH_SIZE <= P.N_TRAIN
