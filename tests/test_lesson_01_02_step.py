"""The step functions lessons 01 and 02 show their readers (the cells tagged ``step-function``) make the same
updates as the library's tested references, on the same tiny batches from the same seed."""
from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from notebook_cells import notebook_namespace

from anime_lib.models import difference as dv
from anime_lib.models import encoder_decoder as ed
from anime_lib.models.blocks import init_weights
from anime_lib.training import batch_indices

LESSON_01 = "01_difference_vectors.ipynb"
LESSON_02 = "02_encoder_decoder.ipynb"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class FaceSet:
    """A stand-in for a ToySet: ``len()``, ``.tensor(idx)`` in [-1, 1] and ``.counterpart()`` (here: the negative)."""

    def __init__(self, images: torch.Tensor, counterpart: FaceSet | None = None):
        self.images, self._counterpart = images, counterpart

    def __len__(self) -> int:
        return len(self.images)

    def tensor(self, idx=None) -> torch.Tensor:
        return self.images if idx is None else self.images[idx]

    def counterpart(self) -> FaceSet:
        return self._counterpart if self._counterpart is not None else FaceSet(-self.images)


def images(n: int, size: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Weights and buffers (BatchNorm statistics) equal within 1e-6."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.allclose(sa[k].float(), sb[k].float(), atol=1e-6) for k in sa)


# --------------------------------------------------------------------------------------------------
# Lesson 01: the difference-vector update
# --------------------------------------------------------------------------------------------------


def test_lesson_01_update_matches_difference_step():
    ns = notebook_namespace(LESSON_01, "step-function")
    human, anime = images(12, 8, 1), images(12, 8, 2)
    mine, reference = torch.zeros(3, 8, 8), torch.zeros(3, 8, 8)
    for lr in (0.1, 0.5, 1.0):
        got = ns["difference_update"](mine, human, anime, lr)
        expected = dv.difference_step(reference, human, anime, lr)
        assert got["distance"] == pytest.approx(expected["distance"], abs=1e-6)
        assert torch.allclose(mine, reference, atol=1e-6)


def test_lesson_01_vector_step_trains_like_the_reference():
    train = {"human": FaceSet(images(10, 8, 3)), "anime": FaceSet(images(10, 8, 4))}
    vector, snapshots = dv.ImageDifference(8), {"step": [], "delta": []}
    preset = {"train": train, "P": SimpleNamespace(SEED=0, LR=0.2), "batch": 4, "vector": vector,
              "snapshot_every": 2, "snapshots": snapshots, "true_delta": torch.zeros(3, 8, 8)}
    ns = notebook_namespace(LESSON_01, "step-function", preset=preset)
    reference = torch.zeros(3, 8, 8)
    for step in range(5):
        got = ns["vector_step"](step)
        faces_human = train["human"].tensor(batch_indices(step, 4, 10, 0, stream=0))
        faces_anime = train["anime"].tensor(batch_indices(step, 4, 10, 0, stream=1))
        expected = dv.difference_step(reference, faces_human, faces_anime, 0.2)
        assert got["distance"] == pytest.approx(expected["distance"], abs=1e-6)
        assert torch.allclose(vector.delta, reference, atol=1e-6)
    assert snapshots["step"] == [2, 4] and len(snapshots["delta"]) == 2


# --------------------------------------------------------------------------------------------------
# Lesson 02: pixel-loss training and pix2pix
# --------------------------------------------------------------------------------------------------


def _lesson_02(batch_size: int = 4):
    human, anime = images(10, 16, 5), images(10, 16, 6)
    train = {"human": FaceSet(human), "anime": FaceSet(anime)}
    pairs = {"human": FaceSet(human), "anime": FaceSet(anime)}  # counterparts: the negatives
    P = SimpleNamespace(SEED=0, BATCH_SIZE=batch_size, PIXEL_LOSS="l1", LAMBDA_L1=10.0, GAN_LOSS="lsgan")
    preset = {"train": train, "pairs": pairs, "P": P, "device": torch.device("cpu")}
    return notebook_namespace(LESSON_02, "step-function", preset=preset)


def _twins(seed: int = 0):
    torch.manual_seed(seed)
    G = init_weights(ed.EncoderDecoder(width=4, n_down=2))
    D = init_weights(ed.PatchDiscriminator(width=4))
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    adam = lambda m: torch.optim.Adam(m.parameters(), lr=1e-3, betas=(0.5, 0.999))
    return (G, D, adam(G), adam(D)), (G2, D2, adam(G2), adam(D2))


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_lesson_02_translation_step_matches_reference(kind):
    ns = _lesson_02()
    (G, _, opt, _), (G2, _, opt2, _) = _twins()
    x, y = images(4, 16, 7), images(4, 16, 8)
    for _ in range(3):
        got = ns["translation_step"](G, opt, x, y, kind)
        expected = ed.translation_step(G2, opt2, x, y, kind)
        assert got["pixel"] == pytest.approx(expected["pixel"], abs=1e-6)
    assert same_state(G, G2)


def test_lesson_02_pix2pix_step_matches_reference():
    ns = _lesson_02()
    (G, D, opt_G, opt_D), (G2, D2, opt_G2, opt_D2) = _twins(1)
    x, y = images(4, 16, 9), images(4, 16, 10)
    for _ in range(3):
        got = ns["pix2pix_step"](G, D, opt_G, opt_D, x, y, 10.0, "lsgan")
        expected = ed.pix2pix_step(G2, D2, opt_G2, opt_D2, x, y, lambda_l1=10.0, gan_kind="lsgan")
        assert got.keys() == expected.keys()
        for k in expected:
            assert got[k] == pytest.approx(expected[k], abs=1e-6), k
    assert same_state(G, G2) and same_state(D, D2)


def test_lesson_02_training_pairs():
    ns = _lesson_02()
    x, y = ns["training_pairs"]("paired", "human->anime", 3)
    assert torch.equal(y, -x)  # the true counterparts of the same faces
    u1, u2 = ns["training_pairs"]("unpaired", "human->anime", 3), ns["training_pairs"]("unpaired", "human->anime", 3)
    assert torch.equal(u1[0], u2[0]) and torch.equal(u1[1], u2[1])  # chosen by the step number only
    assert torch.equal(u1[0], x)  # the same source faces at step t for every setup
    assert not torch.equal(u1[1], -x)  # the unpaired target is another face


@pytest.mark.parametrize("setup", ["unpaired", "paired", "pix2pix"])
def test_lesson_02_step_function_trains_like_the_reference(setup):
    ns = _lesson_02()
    (G, D, opt_G, opt_D), (G2, D2, opt_G2, opt_D2) = _twins(2)
    step = ns["make_step"](setup, "anime->human", G, opt_G, D, opt_D)
    for t in range(3):
        got = step(t)
        x, y = ns["training_pairs"](setup, "anime->human", t)
        if setup == "pix2pix":
            expected = ed.pix2pix_step(G2, D2, opt_G2, opt_D2, x, y, lambda_l1=10.0, gan_kind="lsgan")
        else:
            expected = ed.translation_step(G2, opt_G2, x, y, "l1")
        for k in expected:
            assert got[k] == pytest.approx(expected[k], abs=1e-6), k
    assert same_state(G, G2) and same_state(D, D2)
