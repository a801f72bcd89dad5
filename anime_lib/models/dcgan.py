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
* Lesson plumbing shared by lesson 03's main part and its deep dive: :func:`run_config` (the name and settings
  of the lesson's DCGAN run, identical in both notebooks so the deep dive finds the main part's checkpoint),
  :func:`train_gan` (a :class:`~anime_lib.training.Run` around a step function: Adam, learning-rate decay,
  batches from the step number, snapshots), :func:`sample_images`, :func:`phase_means`, and the measurements of
  the lesson's figures (:func:`input_controls`, :func:`speckle`, :func:`degraded_like`, :func:`histogram_figure`).

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
import torch.nn.functional as F
from torch import nn

from anime_lib.losses import discriminator_accuracy, discriminator_loss, generator_loss, r1_penalty
from anime_lib.models.blocks import eval_mode, init_weights
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
    "run_config",
    "GANRun",
    "train_gan",
    "phase_means",
    "speckle",
    "input_controls",
    "degraded_like",
    "histogram_figure",
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
            snaps["images"].append((G(snapshot_input.to(device)).float().cpu() + 1) / 2)
        if diversity_n:
            from anime_lib import metrics

            samples = (sample_images(G, diversity_n, seed=seed + 1) + 1) / 2
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


def speckle(images01: torch.Tensor) -> float:
    """High-frequency residual of images in [0, 1] (N, 3, H, W): the std of each image minus its 3x3 median
    (flat cartoon regions give about 0, noisy samples more)."""
    p = F.pad(images01, (1, 1, 1, 1), mode="replicate").unfold(2, 3, 1).unfold(3, 3, 1)
    return float((images01 - p.reshape(*images01.shape, 9).median(-1).values).std())


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


def degraded_like(real01: torch.Tensor, samples01: torch.Tensor, seed: int = 0) -> tuple[float, dict[str, torch.Tensor]]:
    """Real faces ([0, 1]) degraded the way generator samples are: Gaussian noise of the strength ``sigma`` at which
    they carry the samples' :func:`speckle` (found on 250 faces), a 3x3 blur, and twice that noise.
    Returns ``(sigma, {name: images})``, the names saying what was done."""
    noise = torch.randn(real01.shape, generator=torch.Generator().manual_seed(seed))
    sigmas = np.linspace(0, 0.2, 21)
    levels = [speckle((real01[:250] + s * noise[:250]).clamp(0, 1)) for s in sigmas]
    sigma = float(np.interp(speckle(samples01), levels, sigmas))
    k = torch.tensor([1.0, 2.0, 1.0]) / 4
    blurred = F.conv2d(F.pad(real01, (1, 1, 1, 1), mode="replicate"), (k[:, None] * k).expand(3, 1, 3, 3).contiguous(),
                       groups=3)
    return sigma, {f"real + noise {sigma:.3f}": (real01 + sigma * noise).clamp(0, 1), "real, blurred 3x3": blurred,
                   f"real + noise {2 * sigma:.3f} (twice)": (real01 + 2 * sigma * noise).clamp(0, 1)}


def histogram_figure(hists: dict[str, dict[str, np.ndarray]], classes: dict[str, Sequence[str]]):
    """A 3x3 grid of bar charts: for each attribute, the fraction of images in each class, one bar per set."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 9), layout="constrained")
    width = 0.8 / len(hists)
    for ax, attr in zip(fig.subplots(3, 3).flat, classes):
        xs = np.arange(len(classes[attr]))
        for k, (name, h) in enumerate(hists.items()):
            ax.bar(xs + (k - (len(hists) - 1) / 2) * width, h[attr], width=width, label=name)
        ax.set_xticks(xs, classes[attr], rotation=30, fontsize=8)
        ax.set_title(attr + (" (degrees)" if attr == "roll" else ""), fontsize=10)
    fig.axes[0].set_ylabel("fraction of images")
    fig.axes[0].legend(fontsize=8)
    return fig
