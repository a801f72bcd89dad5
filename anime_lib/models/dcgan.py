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

Image sides are 4 * 2**k (16, 32, 64, 128, ...). Channel widths follow the paper: ``width`` channels
just before the RGB layer, twice as many at each coarser resolution, capped at ``max_channels``
(64 px, width 64: 512 -> 256 -> 128 -> 64 -> 3, exactly the paper's generator).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from anime_lib.losses import discriminator_accuracy, discriminator_loss, generator_loss, r1_penalty
from anime_lib.models.blocks import init_weights
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
