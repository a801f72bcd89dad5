"""Lesson 03's step function, as typed in the notebook's `step-function` cell, agrees with the library's reference
(`anime_lib.models.dcgan.adversarial_step`): same losses and same updated weights on the same batch and seed. And the
deep dive builds the same DCGAN run as the main part, so it finds the main part's checkpoint."""
from __future__ import annotations

import copy

import pytest
import torch

from anime_lib.models import dcgan
from notebook_cells import notebook_namespace


def _nets(conditional: bool):
    torch.manual_seed(0)
    G = dcgan.ConditionalDCGAN(16, 8, 8) if conditional else dcgan.Generator(8, 16, 8)
    return G, dcgan.Discriminator(16, 8)


@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.parametrize("r1_gamma", [0.0, 1.0])
def test_notebook_step_matches_the_library(conditional, r1_gamma):
    notebook_step = notebook_namespace("03_dcgan.ipynb", "step-function")["adversarial_step"]
    torch.manual_seed(1)
    real = torch.rand(6, 3, 16, 16) * 2 - 1
    g_input = torch.rand(6, 3, 16, 16) * 2 - 1 if conditional else torch.randn(6, 8)
    results = []
    for step in (notebook_step, dcgan.adversarial_step):
        G, D = _nets(conditional)
        opt_G = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
        opt_D = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
        logs = [step(G, D, opt_G, opt_D, g_input, real, r1_gamma=r1_gamma) for _ in range(2)]
        results.append((logs, copy.deepcopy(G.state_dict()), copy.deepcopy(D.state_dict())))
    (nb_logs, nb_G, nb_D), (lib_logs, lib_G, lib_D) = results
    for a, b in zip(nb_logs, lib_logs):
        assert a.keys() == b.keys()
        assert all(abs(a[k] - b[k]) <= 1e-6 for k in a), (a, b)
    for x, y in ((nb_G, lib_G), (nb_D, lib_D)):
        assert all(torch.allclose(x[k].float(), y[k].float(), atol=1e-6, rtol=0) for k in x)


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu"])
def test_deep_dive_builds_the_main_parts_dcgan_run(profile, tmp_path, monkeypatch):
    monkeypatch.setenv("ANIME_LIB_PROFILE", profile)
    runs = []
    for notebook in ("03_dcgan.ipynb", "03_dcgan_deep_dive.ipynb"):
        ns = notebook_namespace(notebook, "parameters")
        ns.update(PROFILE=profile, OUT_DIR=str(tmp_path / notebook))
        ns = notebook_namespace(notebook, "setup", preset=ns)
        P = ns["P"]
        runs.append(dcgan.run_config(P, 100) + (P.N_STEPS, P.SEED))
    assert runs[0] == runs[1]
