"""DCGAN (Radford, Metz and Chintala 2016) and the image-conditioned DCGAN baseline of the student reports.

Read top to bottom like the paper:

* :class:`UpBlock` / :class:`DownBlock`: the two building bricks, a stride-2 (transposed) convolution
  that doubles / halves the image side, BatchNorm, and ReLU (generator) / LeakyReLU 0.2 (discriminator).
* :class:`Generator`: z (N, 100) ~ N(0, I) -> "project and reshape" to (N, C, 4, 4) -> UpBlocks that halve
  the channels and double the side -> a last transposed conv to RGB and ``tanh``: images in [-1, 1].
* :class:`Discriminator`: the mirror image, from (N, 3, S, S) in [-1, 1] down to 4x4, then one 4x4 conv
  to a single raw logit per image (no sigmoid: the "bce" loss of :mod:`anime_lib.losses` applies it).
* :class:`ImageEncoder` and :class:`ConditionalDCGAN`: the baseline of the original reports, a DCGAN
  generator fed a code computed from a *human image* instead of noise (encoder -> bottleneck -> DCGAN
  decoder), trained only adversarially.
* :func:`adversarial_step`: one DCGAN update (D, then G with the non-saturating loss), the same for both.
  Lesson 03 types the same step into its ``step-function`` cell; ``tests/test_lesson_03_step.py`` checks
  that the two agree.
* Lesson plumbing shared by lesson 03's main part and its deep dive: :data:`PROFILE_DEFAULTS` /
  :data:`DEEP_DIVE_DEFAULTS` (one table of profile defaults for both notebooks), :func:`run_config` (the name and
  settings of the lesson's DCGAN run, identical in both notebooks so the deep dive finds the main part's
  checkpoint), :func:`train_gan` (a :class:`~anime_lib.training.Run` around a step function: Adam, learning-rate
  decay, batches from the step number, snapshots) and, built on it from the lesson's parameters,
  :func:`train_dcgan` / :func:`train_conditional`; :func:`sample_images`, :func:`real_reference` (the real-data
  yardsticks and the diversity noise floor), :func:`phase_means` / :func:`describe_d` (D's view of the game),
  :func:`read_collapse_monitor`, :func:`attribute_gaps` and :func:`input_controls` / :func:`describe_controls`.
  The image statistics of the deep dive's instrument check live in :mod:`anime_lib.metrics` (``speckle``,
  ``degraded_like``), its histogram figure in :mod:`anime_lib.viz` (``histogram_figure``).

Image sides are 4 * 2**k (16, 32, 64, 128, ...). Channel widths follow the paper: ``width`` channels
just before the RGB layer, twice as many at each coarser resolution, capped at ``max_channels``
(64 px, width 64: 512 -> 256 -> 128 -> 64 -> 3, exactly the paper's generator).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from anime_lib.losses import discriminator_accuracy, discriminator_loss, generator_loss, r1_penalty
from anime_lib.models.blocks import eval_mode, init_weights
from anime_lib.ranges import to_unit_range
from anime_lib.translation import Translator, parse_direction

__all__ = [
    "n_upsamplings",
    "stage_channels",
    "UpBlock",
    "DownBlock",
    "Generator",
    "Discriminator",
    "ImageEncoder",
    "ConditionalDCGAN",
    "adversarial_step",
    "sample_images",
    "PROFILE_DEFAULTS",
    "DEEP_DIVE_DEFAULTS",
    "run_config",
    "dcgan_label",
    "GANRun",
    "train_gan",
    "train_dcgan",
    "train_conditional",
    "RealReference",
    "real_reference",
    "phase_means",
    "describe_d",
    "read_collapse_monitor",
    "describe_controls",
    "attribute_gaps",
    "input_controls",
]


def n_upsamplings(img_size: int) -> int:
    """How many stride-2 stages lead from 4x4 to ``img_size`` (64 px -> 4). Sides must be 4 * 2**k, k >= 1."""
    k = math.log2(img_size / 4) if img_size > 0 else -1
    if k < 1 or k != int(k):
        raise ValueError(f"img_size must be 4 * 2**k with k >= 1 (8, 16, 32, 64, 128, ...), got {img_size}")
    return int(k)


def stage_channels(img_size: int, width: int = 64, max_channels: int = 512) -> list[int]:
    """Channels of the hidden feature maps from 4x4 up to img_size/2, coarsest first.

    ``stage_channels(64, 64) == [512, 256, 128, 64]`` (at 4, 8, 16 and 32 px).
    """
    n = n_upsamplings(img_size)
    return [min(width * 2 ** (n - 1 - i), max_channels) for i in range(n)]


class UpBlock(nn.Sequential):
    """(N, c_in, H, W) -> (N, c_out, 2H, 2W): ConvTranspose2d(k4, s2, p1), BatchNorm, ReLU."""

    def __init__(self, c_in: int, c_out: int, batchnorm: bool = True):
        super().__init__(
            nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=not batchnorm),
            nn.BatchNorm2d(c_out) if batchnorm else nn.Identity(),
            nn.ReLU(inplace=True),
        )


class DownBlock(nn.Sequential):
    """(N, c_in, H, W) -> (N, c_out, H/2, W/2): Conv2d(k4, s2, p1), BatchNorm, LeakyReLU(0.2)."""

    def __init__(self, c_in: int, c_out: int, batchnorm: bool = True):
        super().__init__(
            nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=not batchnorm),
            nn.BatchNorm2d(c_out) if batchnorm else nn.Identity(),
            nn.LeakyReLU(0.2, inplace=True),
        )


class Generator(nn.Module):
    """DCGAN generator: z (N, z_dim) or (N, z_dim, 1, 1) -> images (N, 3, img_size, img_size) in [-1, 1].

    ``project`` is the paper's "project and reshape": a 4x4 transposed conv on the 1x1 code, i.e. a
    linear map to a (C, 4, 4) tensor. ``batchnorm=False`` removes every BatchNorm (an ablation: the
    paper credits BatchNorm with keeping the generator from collapsing to a single sample).
    """

    def __init__(self, z_dim: int = 100, img_size: int = 64, width: int = 64, max_channels: int = 512,
                 batchnorm: bool = True):
        super().__init__()
        self.z_dim, self.img_size = z_dim, img_size
        ch = stage_channels(img_size, width, max_channels)
        self.project = nn.Sequential(
            nn.ConvTranspose2d(z_dim, ch[0], 4, stride=1, padding=0, bias=not batchnorm),
            nn.BatchNorm2d(ch[0]) if batchnorm else nn.Identity(),
            nn.ReLU(inplace=True),
        )
        self.blocks = nn.Sequential(*[UpBlock(a, b, batchnorm) for a, b in zip(ch[:-1], ch[1:])])
        self.to_rgb = nn.Sequential(nn.ConvTranspose2d(ch[-1], 3, 4, stride=2, padding=1), nn.Tanh())
        init_weights(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:
            z = z[:, :, None, None]
        return self.to_rgb(self.blocks(self.project(z)))

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes z ~ N(0, I), shape (n, z_dim), on the model's device."""
        z = torch.randn(n, self.z_dim, generator=generator)
        return z.to(next(self.parameters()).device)


class Discriminator(nn.Module):
    """DCGAN discriminator: images (N, 3, S, S) in [-1, 1] -> raw logits (N,) (> 0 means "real").

    No BatchNorm on the first layer (as in the paper); LeakyReLU 0.2 everywhere.
    """

    def __init__(self, img_size: int = 64, width: int = 64, max_channels: int = 512, batchnorm: bool = True):
        super().__init__()
        ch = stage_channels(img_size, width, max_channels)[::-1]  # finest first: 64, 128, 256, 512
        self.from_rgb = nn.Sequential(nn.Conv2d(3, ch[0], 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True))
        self.blocks = nn.Sequential(*[DownBlock(a, b, batchnorm) for a, b in zip(ch[:-1], ch[1:])])
        self.head = nn.Conv2d(ch[-1], 1, 4, stride=1, padding=0)  # (N, C, 4, 4) -> (N, 1, 1, 1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.from_rgb(x))).flatten()


class ImageEncoder(nn.Module):
    """Image (N, 3, S, S) in [-1, 1] -> bottleneck code (N, code_dim), unbounded (the decoder's "z").

    The discriminator's body (conv stack down to 4x4) with a 4x4 conv to ``code_dim`` channels as head.
    """

    def __init__(self, img_size: int = 64, width: int = 64, code_dim: int = 100, max_channels: int = 512):
        super().__init__()
        ch = stage_channels(img_size, width, max_channels)[::-1]
        self.from_rgb = nn.Sequential(nn.Conv2d(3, ch[0], 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True))
        self.blocks = nn.Sequential(*[DownBlock(a, b) for a, b in zip(ch[:-1], ch[1:])])
        self.bottleneck = nn.Conv2d(ch[-1], code_dim, 4, stride=1, padding=0)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(self.blocks(self.from_rgb(x))).flatten(1)


class ConditionalDCGAN(Translator):
    """The reports' image-conditioned DCGAN: source image (N, 3, S, S) in [-1, 1] -> target-style image,
    same shape, in [-1, 1]: ``decoder(encoder(x))``, where the decoder is a DCGAN :class:`Generator`.

    Trained with the adversarial loss alone, nothing in the objective mentions the input: any realistic
    target-domain image is an optimal answer for every x. That gap is what CycleGAN's cycle loss closes.
    """

    def __init__(self, img_size: int = 64, width: int = 64, code_dim: int = 100, max_channels: int = 512,
                 direction: str = "human->anime"):
        super().__init__()
        parse_direction(direction)
        self.directions = (direction,)  # one network, trained for one direction
        self.encoder = ImageEncoder(img_size, width, code_dim, max_channels)
        self.decoder = Generator(code_dim, img_size, width, max_channels)

    def generator(self, direction: str) -> nn.Module:
        self.check_direction(direction)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def adversarial_step(G: nn.Module, D: nn.Module, opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer,
                     g_input: torch.Tensor, real: torch.Tensor, kind: str = "bce",
                     r1_gamma: float = 0.0) -> dict[str, float]:
    """One DCGAN update: first D on a real and a fake batch, then G against the updated D.

    ``g_input``: noise z (Generator) or source images (ConditionalDCGAN); ``real``: target images in [-1, 1].
    D minimises  -[log D(x) + log(1 - D(G(z)))];  G minimises  -log D(G(z))  (the non-saturating loss).
    ``r1_gamma`` > 0 adds ``r1_gamma / 2 * R1`` to D's loss (:func:`anime_lib.losses.r1_penalty`, not part of
    the DCGAN paper) and reports R1 as ``r1``.
    Returns the losses and D's view of the batch: ``d_acc`` (fraction of reals and fakes D classifies
    right), ``D_x`` (mean probability D gives reals) and ``D_G_z`` (mean probability it gives fakes,
    before its update).
    """
    if r1_gamma < 0:
        raise ValueError(f"r1_gamma must be >= 0, got {r1_gamma}")
    fake = G(g_input)
    if r1_gamma:
        real = real.detach().requires_grad_(True)
    real_logits = D(real)
    fake_logits = D(fake.detach())
    loss_D = discriminator_loss(real_logits, fake_logits, kind)
    r1 = None
    if r1_gamma:
        r1 = r1_penalty(real_logits, real)
        loss_D = loss_D + 0.5 * r1_gamma * r1
    opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    opt_D.step()

    D.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
    loss_G = generator_loss(D(fake), kind)
    opt_G.zero_grad(set_to_none=True)
    loss_G.backward()
    opt_G.step()
    D.requires_grad_(True)
    with torch.no_grad():
        return {
            "loss_D": float(loss_D),
            "loss_G": float(loss_G),
            "d_acc": discriminator_accuracy(real_logits, fake_logits, kind),
            "D_x": float(torch.sigmoid(real_logits).mean()),
            "D_G_z": float(torch.sigmoid(fake_logits).mean()),
            **({} if r1 is None else {"r1": float(r1)}),
        }


# --------------------------------------------------------------------------------------------------
# Lesson 03's plumbing: shared by the main part and the deep dive
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def sample_images(G: nn.Module, n: int, seed: int = 0, batch: int = 250) -> torch.Tensor:
    """n samples of an unconditional generator from seeded codes z ~ N(0, I), in eval mode and without
    gradients: (n, 3, S, S) in [-1, 1] on the CPU. The same seed gives the same z, hence the same faces."""
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(int(seed)))
    device = next(G.parameters()).device
    with eval_mode(G):
        return torch.cat([G(z[i:i + batch].to(device)).float().cpu() for i in range(0, n, batch)])


#: The DCGAN paper's settings, the same in every profile (the main part's parameters cell types them in; the deep
#: dive, which leaves the DCGAN's settings out of its parameters cell, takes them from here).
PAPER_SETTINGS: dict[str, Any] = {"Z_DIM": 100, "LR_G": 2e-4, "LR_D": 2e-4, "BETA1": 0.5, "R1_GAMMA": 0.0,
                                  "DECAY_START": 0.5}
_DCGAN_DEFAULTS: dict[str, dict[str, Any]] = {
    "smoke": {"N_STEPS": 60, "NGF": 16, "NDF": 16, "N_SNAPSHOTS": 1},
    "cpu": {"IMG_SIZE": 32, "BATCH_SIZE": 32, "N_TRAIN": 4000, "N_EVAL": 1000, "N_STEPS": 4000, "NGF": 32, "NDF": 32,
            "N_SNAPSHOTS": 4},
    "gpu": {"IMG_SIZE": 64, "BATCH_SIZE": 128, "N_EVAL": 1000, "N_STEPS": 2400, "NGF": 64, "NDF": 64, "N_SNAPSHOTS": 8},
}
#: Lesson 03's profile defaults (``resolve_params(globals(), defaults=dcgan.PROFILE_DEFAULTS)``): the DCGAN's
#: (one table for both notebooks, so the deep dive builds exactly the main part's run and finds its checkpoint)
#: plus the conditional DCGAN's training length and directions. gpu: the paper's 64 px, widths and batch on ToyFaces,
#: for as many steps as its T4 budget allows (``benchmarks/gpu_budget.py``).
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    profile: {**PAPER_SETTINGS, **values, "COND_FRACTION": fraction, "BOTH_DIRECTIONS": profile == "gpu"}
    for (profile, values), fraction in zip(_DCGAN_DEFAULTS.items(), (0.5, 0.25, 0.5))
}
#: The deep dive's defaults: the same DCGAN, plus the length of the collapse-prone ablation run.
DEEP_DIVE_DEFAULTS: dict[str, dict[str, Any]] = {
    profile: {**PAPER_SETTINGS, **values, "ABLATION_FRACTION": fraction}
    for (profile, values), fraction in zip(_DCGAN_DEFAULTS.items(), (0.5, 0.5, 0.5))
}


def run_config(P: Any, n_train: int) -> tuple[str, dict[str, Any]]:
    """The run name and the settings that define lesson 03's DCGAN, from the lesson's parameters ``P``.

    Both notebooks of the lesson build their :class:`~anime_lib.training.Run` from this, so the deep dive
    finds the main part's finished checkpoint (same name, same settings) instead of training again. R1 and a
    learning-rate schedule other than the default get their own run name, so the plain run stays on disk.
    """
    name = "dcgan" + (f"_r1-{P.R1_GAMMA:g}" if P.R1_GAMMA else "") + \
        (f"_decay{P.DECAY_START:g}" if P.DECAY_START != 0.5 else "")
    config = {"dataset": str(P.DATASET), "img_size": P.IMG_SIZE, "n_train": int(n_train), "batch_size": P.BATCH_SIZE,
              "z_dim": P.Z_DIM, "ngf": P.NGF, "ndf": P.NDF, "lr_g": P.LR_G, "lr_d": P.LR_D, "beta1": P.BETA1,
              "decay_start": P.DECAY_START, "r1_gamma": P.R1_GAMMA, "n_snapshots": P.N_SNAPSHOTS,
              "snapshot_n": min(P.N_EVAL, 500)}
    return name, config


def dcgan_label(r1_gamma: float = 0.0) -> str:
    """The method name of lesson 03's DCGAN in tables and metrics.json: ``"DCGAN"`` or ``"DCGAN + R1 (gamma 1)"``."""
    return "DCGAN" if not r1_gamma else f"DCGAN + R1 (gamma {r1_gamma:g})"


@dataclass
class GANRun:
    """What :func:`train_gan` returns: the trained networks (G in eval mode), the runner's result
    (``history``, ``train_seconds``, ``steps_done``, ...) and the snapshots: ``{"step": [...], "images": [...]
    (G's output for the fixed inputs, [0, 1], CPU), "diversity": [...] (fresh samples; empty if not tracked)}``."""

    G: nn.Module
    D: nn.Module
    result: Any
    snaps: dict[str, list]


def train_gan(run: Any, G: nn.Module, D: nn.Module, real_set: Any, n_steps: int,
              make_input: Callable[[int], torch.Tensor], *, batch_size: int, lr_g: float = 2e-4, lr_d: float = 2e-4,
              beta1: float = 0.5, decay_start: float = 1.0, r1_gamma: float = 0.0, seed: int = 0,
              step: Callable[..., dict[str, float]] = adversarial_step, device: torch.device | str = "cpu",
              snapshot_input: torch.Tensor | None = None, n_snapshots: int = 0, diversity_n: int = 0,
              diversity_domain: str = "anime") -> GANRun:
    """Train ``G`` against ``D`` with ``step`` (an :func:`adversarial_step`) under ``run`` (a Run: resume,
    checkpoints, seeds, clock) and return a :class:`GANRun`.

    ``real_set``: the target-domain training set (``.tensor(indices)`` in [-1, 1]); each step's batch comes
    from the step number (:func:`~anime_lib.training.batch_indices`), so a resumed run sees the same data.
    ``make_input(step)``: G's input (noise, or a batch of source images). Adam(lr, (beta1, 0.999)); both rates
    stay constant for the first ``decay_start`` of the steps, then fall linearly towards 0 (1.0: constant).
    Snapshots (``n_snapshots`` > 0): G's output for ``snapshot_input`` before training and every
    ``n_steps // n_snapshots`` steps, plus the diversity of ``diversity_n`` fresh samples when > 0.
    """
    from anime_lib.training import batch_indices, linear_decay_lambda

    if not 0.0 <= decay_start <= 1.0:
        raise ValueError(f"decay_start is a fraction of the steps, 0 to 1 (1.0: no decay), got {decay_start}")
    G, D = G.to(device), D.to(device)
    opt_G = torch.optim.Adam(G.parameters(), lr=lr_g, betas=(beta1, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=lr_d, betas=(beta1, 0.999))
    n_constant = int(n_steps * decay_start)
    lr_factor = linear_decay_lambda(n_constant, n_steps - n_constant)
    snaps: dict[str, list] = {"step": [], "images": [], "diversity": []}

    def take_snapshot(i: int) -> None:
        with torch.no_grad(), eval_mode(G):
            snaps["images"].append(to_unit_range(G(snapshot_input.to(device))))
        if diversity_n:
            from anime_lib import metrics

            samples = to_unit_range(sample_images(G, diversity_n, seed=seed + 1))
            snaps["diversity"].append(metrics.diversity(samples, diversity_domain))
        snaps["step"].append(i)

    def step_fn(i: int) -> dict[str, float]:
        for opt, lr in ((opt_G, lr_g), (opt_D, lr_d)):  # from the step number: a resumed run gets the same rates
            for group in opt.param_groups:
                group["lr"] = lr * lr_factor(i)
        if i == 0 and n_snapshots:
            take_snapshot(0)  # the untrained generator
        real = real_set.tensor(batch_indices(i, batch_size, len(real_set), seed)).to(device)
        return step(G, D, opt_G, opt_D, make_input(i), real, r1_gamma=r1_gamma)

    every = max(1, n_steps // max(1, n_snapshots))
    result = run.train(step_fn, n_steps, save={"G": G, "D": D, "opt_G": opt_G, "opt_D": opt_D, "snaps": snaps},
                       checkpoint_every=max(50, n_steps // 4), sample_fn=take_snapshot if n_snapshots else None,
                       sample_every=every if n_snapshots else None)
    if n_snapshots and (not snaps["step"] or snaps["step"][-1] != result.steps_done):
        take_snapshot(result.steps_done)
    G.eval()
    return GANRun(G=G, D=D, result=result, snaps=snaps)


def train_dcgan(run: Any, P: Any, real_set: Any, n_steps: int | None = None, *, device: torch.device | str = "cpu",
                step: Callable[..., dict[str, float]] = adversarial_step, batchnorm: bool = True,
                lr_d: float | None = None, snapshots: bool = True, diversity: bool = False) -> GANRun:
    """Lesson 03's DCGAN from its parameters ``P``, trained under ``run`` with ``step`` (:func:`train_gan`).

    The paper's :class:`Generator` and :class:`Discriminator` at ``P.IMG_SIZE`` with widths ``P.NGF`` / ``P.NDF``
    (``batchnorm=False``: the ablation without BatchNorm), Adam(``P.LR_G``, ``lr_d`` or ``P.LR_D``, beta1
    ``P.BETA1``), batches of ``P.BATCH_SIZE`` noise vectors z ~ N(0, I) against real faces, ``P.DECAY_START``,
    ``P.R1_GAMMA``, ``n_steps`` (default ``P.N_STEPS``). ``snapshots``: ``P.N_SNAPSHOTS`` snapshots of G's output
    for 8 fixed z (seed ``P.SEED + 7``) and, with ``diversity``, the diversity of ``min(P.N_EVAL, 500)`` fresh
    samples (the ``snapshot_n`` of :func:`run_config`)."""
    fixed_z = torch.randn(8, P.Z_DIM, generator=torch.Generator().manual_seed(P.SEED + 7))
    return train_gan(run, Generator(P.Z_DIM, P.IMG_SIZE, P.NGF, batchnorm=batchnorm),
                     Discriminator(P.IMG_SIZE, P.NDF, batchnorm=batchnorm), real_set,
                     P.N_STEPS if n_steps is None else n_steps,
                     lambda i: torch.randn(P.BATCH_SIZE, P.Z_DIM, device=device), r1_gamma=P.R1_GAMMA,
                     snapshot_input=fixed_z if snapshots else None, n_snapshots=P.N_SNAPSHOTS if snapshots else 0,
                     diversity_n=min(P.N_EVAL, 500) if snapshots and diversity else 0, device=device, step=step,
                     **_adam_settings(P, lr_d))


def train_conditional(run: Any, P: Any, source_set: Any, target_set: Any, n_steps: int, direction: str, *,
                      device: torch.device | str = "cpu",
                      step: Callable[..., dict[str, float]] = adversarial_step) -> GANRun:
    """The reports' image-conditioned DCGAN (:class:`ConditionalDCGAN` for ``direction``, widths and code size from
    ``P``) against a DCGAN :class:`Discriminator`, trained like the DCGAN (:func:`train_gan`, same Adam and schedule,
    no R1) on **unpaired** data: each step's source batch is drawn independently of its target batch
    (:func:`~anime_lib.training.batch_indices` stream 1)."""
    from anime_lib.training import batch_indices

    def source_batch(i: int) -> torch.Tensor:
        return source_set.tensor(batch_indices(i, P.BATCH_SIZE, len(source_set), P.SEED, stream=1)).to(device)

    return train_gan(run, ConditionalDCGAN(P.IMG_SIZE, P.NGF, P.Z_DIM, direction=direction),
                     Discriminator(P.IMG_SIZE, P.NDF), target_set, n_steps, source_batch, device=device, step=step,
                     **_adam_settings(P))


def _adam_settings(P: Any, lr_d: float | None = None) -> dict[str, Any]:
    return {"batch_size": P.BATCH_SIZE, "lr_g": P.LR_G, "lr_d": P.LR_D if lr_d is None else lr_d, "beta1": P.BETA1,
            "decay_start": P.DECAY_START, "seed": P.SEED}


@dataclass
class RealReference:
    """Lesson 03's yardsticks from real anime faces (ToyFaces): what a perfect generator would score.

    ``real``: the test faces ([0, 1]); ``second``: a second real set of the same size (ToyFaces split "extra");
    ``metrics``: :func:`~anime_lib.metrics.evaluate_generator` of the test faces (realism, toy_fid, diversity);
    ``floor``: the diversity distance of each real set, whose mean :attr:`div_floor` is the noise floor of the
    diversity figure at this size (finite sets differ by chance); ``one_face``: the diversity of one face repeated
    as often (total collapse)."""

    real: torch.Tensor
    second: torch.Tensor
    metrics: dict[str, float]
    floor: tuple[float, float]
    one_face: float

    @property
    def div_floor(self) -> float:
        return float(np.mean(self.floor))

    def floor_at(self, n: int) -> float:
        """The noise floor for sets of ``n`` faces (the first ``n`` of each real set): smaller sets, higher floor."""
        from anime_lib import metrics

        return float(np.mean([metrics.diversity(x[:n], "anime") for x in (self.real, self.second)]))

    def read_diversity(self, value: float) -> str:
        """A diversity distance read against the references: its ratio to the noise floor, and total collapse."""
        return (f"{value:.3f}, {value / self.div_floor:.1f} times the noise floor of two real sets "
                f"({self.div_floor:.3f}); one face repeated scores {self.one_face:.3f}")


def real_reference(test_anime: Any, seed: int = 0) -> RealReference:
    """The :class:`RealReference` of a ToyFaces anime test set (a ToySet): its metrics, a second real set of the
    same size and image side, the diversity noise floor and the one-face (collapse) figure."""
    from anime_lib import metrics
    from anime_lib.data import toyfaces

    real = test_anime.unit()
    n, size = len(real), int(real.shape[-1])
    second = toyfaces.toyfaces("anime", n=n, size=size, split="extra", seed=seed).unit()
    scores = metrics.evaluate_generator(real, "anime")
    floor = (scores["diversity"], metrics.diversity(second, "anime"))
    return RealReference(real=real, second=second, metrics=scores, floor=floor,
                         one_face=metrics.diversity(real[:1].expand(n, -1, -1, -1), "anime"))


def phase_means(history: Any, n_phases: int = 4) -> list[tuple[int, int, dict[str, float]]]:
    """The mean of each logged number over ``n_phases`` equal parts of training (a LossHistory):
    ``[(first step, last step, {name: mean}), ...]``."""
    h = history.as_dict()
    steps = np.asarray(h["step"])
    rows = []
    for part in np.array_split(np.arange(len(steps)), n_phases):
        if len(part):
            rows.append((int(steps[part[0]]), int(steps[part[-1]]),
                         {k: float(np.nanmean(np.asarray(h[k], dtype=float)[part])) for k in history.names}))
    return rows


def describe_d(phase: dict[str, float]) -> str:
    """D's view of the game in one phase of :func:`phase_means`, as a sentence fragment: its accuracy, D(x), D(G(z))
    (at the equilibrium 50%, 0.50, 0.50), both losses and R1 when it was logged."""
    return (f"D accuracy {100 * phase['d_acc']:.0f}%, D(x) = {phase['D_x']:.2f}, D(G(z)) = {phase['D_G_z']:.2f} "
            f"(equilibrium: 50%, 0.50, 0.50), loss_D {phase['loss_D']:.2f}, loss_G {phase['loss_G']:.2f}"
            + (f", R1 {phase['r1']:.3f}" if "r1" in phase else ""))


def read_collapse_monitor(steps: Sequence[int], values: Sequence[float], jump: float = 0.1) -> list[str]:
    """Readings of a diversity-over-training curve (``steps``, the diversity distance at each snapshot; the first
    snapshot is the untrained generator): whether it still moved in the second half of training (how far one
    measurement can be trusted), and the worst partial collapse, a trained snapshot more than ``jump`` less varied
    than the best earlier one. With too few snapshots for either, one line says so."""
    lines = []
    late = [v for s, v in zip(steps, values) if s >= steps[-1] / 2]
    if len(late) > 1 and all(b <= a for a, b in zip(late, late[1:])):
        lines.append(f"Over the second half it fell at every snapshot, {late[0]:.3f} to {late[-1]:.3f}: G's mix of "
                     "faces was still moving towards that of real data at the end.")
    elif len(late) > 1:
        lines.append(f"Over the second half it moved between {min(late):.3f} and {max(late):.3f}, not steadily down: "
                     f"the mix of faces still drifts, so one measurement is only good to about "
                     f"+-{(max(late) - min(late)) / 2:.3f} here.")
    trained = np.asarray(values[1:], dtype=float)
    rises = trained[1:] - np.minimum.accumulate(trained)[:-1]
    if len(rises) and rises.max() > jump:
        worst = int(rises.argmax()) + 2
        lines.append(f"At step {steps[worst]} the samples were much less varied ({values[worst]:.3f}, "
                     f"{rises.max():.3f} worse than earlier): a partial collapse; compare that row of the main part's "
                     "snapshot figure.")
    elif len(trained) > 1:
        lines.append(f"No snapshot was more than {jump:g} less varied than an earlier one: no collapse was caught at "
                     "these snapshots.")
    return lines or [f"{len(trained)} snapshot(s) after the untrained one: too few for a reading of the curve "
                     "(raise N_SNAPSHOTS)."]


def describe_controls(row: dict[str, Any]) -> str:
    """A reading of one translation direction measured with :func:`input_controls` (a row of
    :func:`~anime_lib.evaluation.evaluate` updated with them): are the outputs closer to their own input's attributes
    than to a shuffled input's, how much of the gap between a real face of someone else (ignoring the input) and the
    true counterpart they close, and whether they vary as much as the true translations."""
    own, shuffled, chance, ceiling = (row[k] for k in ("attr_preservation", "attr_vs_shuffled", "attr_someone_else",
                                                       "attr_ground_truth"))
    closer = ("no closer to their own input than to a random one" if own - shuffled <= 0.02 else
              "only slightly closer to their own input than to a random one" if own - shuffled < 0.1 else
              "clearly closer to their own input than to a random one")
    gap = (own - chance) / max(ceiling - chance, 1e-9)
    return (f"the outputs agree with their own input's attributes {own:.3f} of the time and with a shuffled input's "
            f"{shuffled:.3f}: they are {closer}. A real target face of someone else scores {chance:.3f}, the true "
            f"counterpart {ceiling:.3f}; "
            + (f"the {row['method']} closes none of the gap between the two." if gap <= 0.02 else
               f"the {row['method']} closes {100 * gap:.0f}% of the gap between the two.")
            + f" Its outputs differ from their mean image by {row['output_spread']:.3f} (mean pixel L1) where the true "
            f"translations differ from theirs by {row['gt_spread']:.3f}"
            + (": the outputs vary much less than the faces they should show."
               if row["output_spread"] < 0.5 * row["gt_spread"] else "."))


def attribute_gaps(hist: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, float]:
    """Per attribute, the total-variation distance between two sets' attribute histograms
    (:func:`~anime_lib.metrics.attribute_histograms`): half the summed absolute difference of the class fractions,
    0 = the same mix, 1 = no class in common. The diversity figure is the mean of these against real data."""
    return {a: 0.5 * float(np.abs(np.asarray(hist[a]) - np.asarray(reference[a])).sum()) for a in hist}


def input_controls(fake01: torch.Tensor, source: Any, seed: int = 0) -> dict[str, float]:
    """Does a translator use its input? Controls for translations ``fake01`` ([0, 1]) of the ToySet ``source``:
    ``attr_vs_shuffled`` (the outputs scored against another input's attributes), ``attr_someone_else`` (a true
    counterpart of another input: perfect faces that ignore the input), ``attr_ground_truth`` (the true counterparts:
    the ceiling), and the pixel spread of the outputs and of the true counterparts (``output_spread``, ``gt_spread``)."""
    from anime_lib import metrics

    perm = np.random.default_rng(seed).permutation(len(source))
    gt = source.counterpart().unit()
    return {"attr_vs_shuffled": metrics.attr_preservation(fake01, source.records.subset(perm)),
            "attr_someone_else": metrics.attr_preservation(gt[perm], source.records),
            "attr_ground_truth": metrics.attr_preservation(gt, source.records),
            "output_spread": metrics.pixel_spread(fake01), "gt_spread": metrics.pixel_spread(gt)}
