"""Lesson 09's step-function cell (the StyleGAN2 iteration students read and change) agrees with the library's
reference ``anime_lib.models.stylegan2_training.train_step`` (plain, with ADA, with FreezeD/FreezeG and without the
path-length term), and the lesson resolves its profiles from the library and loads the shipped generator's
architecture in smoke and cpu."""
from __future__ import annotations

import copy
import json
import random

import pytest
import torch

from anime_lib.config import resolve_params
from anime_lib.models import stylegan2 as sg
from anime_lib.models import stylegan2_training as st
from anime_lib.training import EMA
from notebook_cells import NOTEBOOKS, notebook_namespace

NOTEBOOK = "09_stylegan2.ipynb"


def _recipe(**kw) -> st.Recipe:
    return st.Recipe(**{"size": 16, "channels": 8, "style_dim": 16, "n_mlp": 2, "batch": 4, **kw})


def _run(step_fn, recipe: st.Recipe, variant: st.Transfer, n_steps: int = 5):
    torch.manual_seed(0)
    G, D = recipe.build()
    if variant.freeze_d is not None:
        sg.freeze_discriminator_blocks(D, variant.freeze_d)
    if variant.freeze_g is not None:
        sg.freeze_generator_layers(G, variant.freeze_g)
    ema = EMA(G, 0.5)
    opt_G, opt_D = recipe.optimisers(G, D)
    state = st.new_state(recipe)
    real = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    torch.manual_seed(1)
    random.seed(1)  # style mixing draws its switch and crossover with Python's random
    losses = [step_fn(G, D, ema, opt_G, opt_D, real, i, recipe, state) for i in range(n_steps)]
    return losses, {**{f"G.{k}": v for k, v in G.state_dict().items()}, **{f"D.{k}": v for k, v in D.state_dict().items()},
                    **{f"ema.{k}": v for k, v in ema.module.state_dict().items()}}, copy.deepcopy(state)


CASES = {
    "paper recipe (R1 and path length on step 0 and 4)": (_recipe(d_reg_every=4, g_reg_every=4), st.Transfer("plain")),
    "ADA with a short horizon": (_recipe(augment=True, ada_length=40, ada_every=1, ada_target=-2.0, d_reg_every=2),
                                 st.Transfer("ada", augment=True)),
    "FreezeD and FreezeG, no path length": (_recipe(g_reg_every=0, d_reg_every=3), st.Transfer("frozen", freeze_d=1,
                                                                                               freeze_g=1)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_notebook_train_step_equals_the_library_reference(case):
    train_step = notebook_namespace(NOTEBOOK, "step-function")["train_step"]
    recipe, variant = CASES[case]
    nb_losses, nb_state, nb_loop = _run(train_step, recipe, variant)
    lib_losses, lib_state, lib_loop = _run(st.train_step, recipe, variant)
    assert len(nb_losses) == len(lib_losses)
    for got, want in zip(nb_losses, lib_losses):
        assert set(got) == set(want)
        for k in want:
            if want[k] is None:
                assert got[k] is None, k
            else:
                assert got[k] == pytest.approx(want[k], rel=1e-5, abs=1e-6), k
    for k, v in lib_state.items():
        assert torch.allclose(nb_state[k], v, rtol=1e-5, atol=1e-6), k
    assert nb_loop["ada"] == pytest.approx(lib_loop["ada"]) and nb_loop["mean_path_length"] == pytest.approx(
        lib_loop["mean_path_length"], rel=1e-5)
    if variant.augment:
        assert lib_loop["ada"]["p"] > 0  # the case exercises ADA's augmentation, not just its bookkeeping


def _source() -> str:
    cells = json.loads((NOTEBOOKS / NOTEBOOK).read_text())["cells"]
    return "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu"])
def test_the_lesson_resolves_its_profiles_from_the_library(profile):
    assert "resolve_params(globals(), defaults=st.PROFILE_DEFAULTS)" in _source()
    ns = notebook_namespace(NOTEBOOK, "parameters")
    ns["PROFILE"] = profile
    P = resolve_params(ns, defaults=st.PROFILE_DEFAULTS)
    assert P.USE_PRETRAINED is True and P.DATASET == "toyfaces"
    assert P.N_SMALL < P.N_ANIME and P.MONITOR_EVERY <= P.N_STEPS and 0.0 in P.TRUNCATIONS and 1.0 in P.TRUNCATIONS
    recipe = st.Recipe(size=P.IMG_SIZE, channels=P.CHANNELS, style_dim=P.STYLE_DIM, n_mlp=P.N_MLP, batch=P.BATCH_SIZE)
    G, _ = recipe.build()
    assert 1 <= P.FREEZE_G_RESOLUTIONS < G.log_size - 1
    if profile in ("smoke", "cpu"):  # both load the shipped human generator: the cpu run's architecture
        cpu = resolve_params({**ns, "PROFILE": "cpu"}, defaults=st.PROFILE_DEFAULTS)
        assert (P.IMG_SIZE, P.CHANNELS, P.STYLE_DIM, P.N_MLP) == (cpu.IMG_SIZE, cpu.CHANNELS, cpu.STYLE_DIM, cpu.N_MLP)
    variant = st.transfer_variants(P.FREEZE_D_BLOCKS, P.FREEZE_G_RESOLUTIONS, P.N_SMALL)[-1]
    trecipe = st.transfer_recipe(recipe, variant, batch=P.TRANSFER_BATCH_SIZE, lr=P.TRANSFER_LR,
                                 ema_half_life_images=P.TRANSFER_EMA_HALF_LIFE, ada_length=P.ADA_LENGTH)
    assert trecipe.augment and trecipe.g_reg_every == 0 and trecipe.size == P.IMG_SIZE
    # ADA's p can travel at least a fifth of the way to 1 within one transfer run
    assert P.N_STEPS * P.TRANSFER_BATCH_SIZE / P.ADA_LENGTH >= 0.2 or profile == "smoke"
