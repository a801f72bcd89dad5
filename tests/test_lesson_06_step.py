"""Lesson 06's step-function cell (the U-GAT-IT objective and one update, as a student reads and edits it) gives
the same losses and the same updated weights as the library's tested reference, ``anime_lib.models.ugatit.train_step``."""
from __future__ import annotations

import copy

import pytest
import torch

from anime_lib.models import ugatit as ug
from notebook_cells import notebook_namespace

NOTEBOOK = "06_ugatit.ipynb"


@pytest.fixture(scope="module")
def lesson_step():
    return notebook_namespace(NOTEBOOK, "step-function")["train_step"]


def _setup(optimizer: str):
    torch.manual_seed(0)
    model = ug.UGATIT(img_size=16, ngf=4, ndf=4, n_res=1)
    twin = copy.deepcopy(model)

    def opts(m):
        if optimizer == "adam":
            return (torch.optim.Adam(m.generators(), lr=1e-3, betas=(0.5, 0.999), weight_decay=1e-4),
                    torch.optim.Adam(m.discriminators(), lr=1e-3, betas=(0.5, 0.999), weight_decay=1e-4))
        # large SGD steps push rho outside [0, 1]: the clipper must act the same in both
        return torch.optim.SGD(m.generators(), lr=1.0), torch.optim.SGD(m.discriminators(), lr=1e-2)

    g = torch.Generator().manual_seed(1)
    batches = [(torch.rand(2, 3, 16, 16, generator=g) * 2 - 1, torch.rand(2, 3, 16, 16, generator=g) * 2 - 1)
               for _ in range(3)]
    return (model, *opts(model)), (twin, *opts(twin)), batches


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("weights", [ug.LossWeights(), ug.LossWeights(adv=0.5, cycle=3.0, identity=0.0, cam=0.0)],
                         ids=["paper", "other"])
def test_notebook_step_matches_the_library(lesson_step, optimizer, weights):
    (model, opt_G, opt_D), (twin, t_opt_G, t_opt_D), batches = _setup(optimizer)
    for a, b in batches:
        ours = lesson_step(model, a, b, opt_G, opt_D, weights)
        ref = ug.train_step(twin, a, b, t_opt_G, t_opt_D, weights)
        assert list(ours) == list(ref)  # the same loss names, in the same order (the lesson's loss curves use them)
        for name in ref:
            assert ours[name] == pytest.approx(ref[name], rel=1e-6, abs=1e-6), name
    ref_state = twin.state_dict()
    for key, value in model.state_dict().items():
        assert torch.allclose(value, ref_state[key], rtol=1e-6, atol=1e-6), key
    assert all(p.requires_grad for p in model.parameters())  # the discriminators are unfrozen again
    rhos = torch.cat([m.rho.detach().flatten() for m in model.modules() if isinstance(m, (ug.AdaLIN, ug.LIN))])
    assert float(rhos.min()) >= 0 and float(rhos.max()) <= 1


def test_the_step_function_cell_is_self_contained():
    ns = notebook_namespace(NOTEBOOK, "step-function")
    assert callable(ns["train_step"]) and "ugat" not in ns  # defines the step, trains nothing
