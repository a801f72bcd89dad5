"""Lesson 04's step-function cell (the code students read and change) agrees with the library's reference
``anime_lib.models.cyclegan.train_step``, and both parts of the lesson resolve the same main model."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from anime_lib.config import resolve_params
from anime_lib.models import cyclegan as cg
from anime_lib.models.blocks import ImagePool
from notebook_cells import NOTEBOOKS, assert_same_updates, notebook_namespace

MAIN, DEEP = "04_cyclegan.ipynb", "04_cyclegan_deep_dive.ipynb"


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = cg.CycleGAN(img_size=16, ngf=4, ndf=4, n_blocks=1, norm="layer", upsampling="resize")
    opt_G = torch.optim.Adam(model.generators(), lr=1e-3, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(model.discriminators(), lr=1e-3, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(seed)
    return model, opt_G, opt_D, ImagePool(3, gen), ImagePool(3, gen), gen


@pytest.mark.parametrize("lambda_identity,input_noise", [(0.5, 0.0), (0.0, 0.1)])
def test_notebook_step_equals_the_library_reference(lambda_identity, input_noise):
    train_step = notebook_namespace(MAIN, "step-function")["train_step"]
    torch.manual_seed(1)
    batches = [(torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1) for _ in range(3)]
    runs = {}
    for name, step in (("notebook", train_step), ("library", cg.train_step)):
        model, opt_G, opt_D, pool_A, pool_B, gen = _setup()
        losses = [step(model, a, b, opt_G, opt_D, pool_A, pool_B, 10.0, lambda_identity, input_noise, noise_generator=gen)
                  for a, b in batches]  # three steps: the pools fill and start to swap
        runs[name] = (losses, copy.deepcopy(model.state_dict()))
    assert_same_updates(runs)


def _resolved(notebook: str, profile: str):
    ns = notebook_namespace(notebook, "parameters")
    ns["PROFILE"] = profile
    defaults = cg.DEEP_DIVE_DEFAULTS if notebook == DEEP else cg.PROFILE_DEFAULTS
    return resolve_params(ns, defaults=defaults)


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu"])
def test_both_parts_build_the_same_main_model(profile):
    """The deep dive resumes the main part's checkpoints only if it makes the same recipe from its parameters."""
    main, deep = _resolved(MAIN, profile), _resolved(DEEP, profile)
    assert cg.Recipe.from_params(main) == cg.Recipe.from_params(deep)
    for name in ("N_STEPS", "N_TRAIN", "N_EVAL", "IMG_SIZE", "BATCH_SIZE", "N_MONITOR", "MONITOR_EVERY"):
        assert main[name] == deep[name], name


def _source(notebook: str) -> str:
    cells = json.loads((NOTEBOOKS / notebook).read_text())["cells"]
    return "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def test_the_notebooks_resolve_their_profile_defaults_from_the_library():
    assert "resolve_params(globals(), defaults=cg.PROFILE_DEFAULTS)" in _source(MAIN)
    assert "resolve_params(globals(), defaults=cg.DEEP_DIVE_DEFAULTS)" in _source(DEEP)
    # the deep dive's run of the main model: the main part's name, folder and settings
    assert 'Run("cyclegan", MAIN_OUT, config=recipe.config(dataset=str(P.DATASET), n_train=len(train_A))' in _source(DEEP)
    assert 'Run("cyclegan", OUT, config=recipe.config(dataset=str(P.DATASET), n_train=len(train_A))' in _source(MAIN)
