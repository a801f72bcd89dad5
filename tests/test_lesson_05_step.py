"""Lesson 05's step function, as the notebook shows it, against the library's tested reference.

The notebook keeps the geometry-aware CycleGAN objective and training step in its cell tagged ``step-function``
(where a student reads and edits them); ``anime_lib.models.geometry`` keeps the reference
(``geometry_generator_objective``, ``geometry_train_step``). On the same tiny batch, from the same seed, both
must give the same losses and the same updated weights, for every variant the lesson trains.
"""
from __future__ import annotations

import copy

import pytest
import torch

from anime_lib.data import toyfaces as tf
from anime_lib.models import geometry as geo
from notebook_cells import assert_same_updates, notebook_namespace

NOTEBOOK = "05_geometry_cyclegan.ipynb"
SIZE = 32


@pytest.fixture(scope="module")
def cell():
    return notebook_namespace(NOTEBOOK, "step-function")


def _batch(n: int = 4) -> tuple[geo.GeometryBatch, geo.ShapeTransfer]:
    human = geo.FaceGeometry.of(tf.toyfaces("human", n=n, size=SIZE, split="test", cache=False))
    anime = geo.FaceGeometry.of(tf.toyfaces("anime", n=n, size=SIZE, split="test", cache=False))
    idx = torch.arange(n)
    return geo.geometry_batch(human, anime, idx, idx), geo.ShapeTransfer.fit(human.landmarks, anime.landmarks)


def _regressor(seed: int) -> geo.LandmarkRegressor:
    torch.manual_seed(seed)
    return geo.LandmarkRegressor(SIZE, 4).eval().requires_grad_(False)


VARIANTS = {
    "plain": ({}, {}),
    "angle channel, conditional D, deep map": ({"angle_channel": True, "conditional_d": True, "angle_injection": "all"}, {}),
    "no identity": ({"angle_channel": True}, {"lambda_identity": 0.0}),
    "landmark loss": ({}, {"lambda_landmark": 100.0}),
    "landmark loss + local D": ({"local_d": True, "patch": 12}, {"lambda_landmark": 100.0, "lambda_local": 1.0}),
}


def _setup(switches, seed=0):
    torch.manual_seed(seed)
    model = geo.GeometryCycleGAN(SIZE, 4, 4, 1, 2, **switches)
    return model, geo.optimisers_and_pools(model, 2e-4, (0.5, 0.999), lambda step: 1.0, 3, seed)


def _run(step, model, o, batch, w, R_A, R_B, T, use_local):
    return step(model, batch, o["opt_G"], o["opt_D"], o["pool_A"], o["pool_B"], w, R_A, R_B, T, use_local,
                o.get("opt_L"), o["pool_local_A"], o["pool_local_B"])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_notebook_step_function_matches_the_library(cell, variant):
    switches, weights = VARIANTS[variant]
    w = geo.GeometryWeights(**weights)
    batch, T = _batch()
    R_A, R_B = _regressor(1), _regressor(2)
    use_local = bool(switches.get("local_d"))
    results = {}
    for name, step in (("notebook", cell["train_step"]), ("library", geo.geometry_train_step)):
        model, o = _setup(switches)
        # three steps, so the image pools start returning stored fakes and the optimisers' moments matter
        losses = [_run(step, model, o, batch, w, R_A, R_B, T, use_local) for _ in range(3)]
        results[name] = (losses, copy.deepcopy(model.state_dict()))
    assert_same_updates(results)
    if use_local:
        assert {"local_AB", "D_local_A"} <= results["notebook"][0][0].keys()


def test_notebook_objective_matches_the_library_terms(cell):
    batch, T = _batch()
    R_A, R_B = _regressor(1), _regressor(2)
    w = geo.GeometryWeights(lambda_landmark=10.0, lambda_local=1.0)
    model, _ = _setup({"angle_channel": True, "conditional_d": True, "local_d": True, "patch": 12})
    total, terms, fake_A, fake_B, centres = cell["generator_objective"](model, batch, w, R_A, R_B, T, True)
    ref = geo.geometry_generator_objective(model, batch, w, R_A, R_B, T, True)
    assert float(total) == pytest.approx(float(ref.total), abs=1e-6)
    assert terms.keys() == ref.terms.keys()
    assert all(float(terms[k]) == pytest.approx(float(ref.terms[k]), abs=1e-6) for k in terms)
    assert torch.allclose(fake_B, ref.fake_B) and torch.allclose(fake_A, ref.fake_A)
    assert all(torch.allclose(centres["B"][k], ref.centres_fake_B[k]) for k in geo.PARTS)
