"""Lesson 02: a convolutional encoder-decoder that maps a face of one domain to the other.

The same small network is trained three ways, and the comparison is the lesson:

* **unpaired** (the original student setup): each source image is matched with a *random* image of
  the target domain and the network minimises a pixel loss between its output and that image.
  The best any network can do then is to ignore its input and output the pixel-wise average
  (L2) or median (L1) target face, so the outputs drift towards one blurry face without identity;
* **paired** (pix2pix without the GAN term): the target is the true counterpart of the source,
  which ToyFaces can render; this is the upper bound of what the architecture can learn;
* **pix2pix**: paired, plus a conditional PatchGAN discriminator that punishes blur.

:func:`translation_step` and :func:`pix2pix_step` are the tested references of the steps the lesson writes
out in its ``step-function`` cell. Images are tensors (N, 3, H, W) in [-1, 1] everywhere in this module
(``tanh`` outputs), except for :func:`drift_stats`, which measures images in [0, 1] like ``anime_lib.metrics``.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from anime_lib.losses import discriminator_loss, generator_loss
from anime_lib.metrics import pixel_spread, sharpness
from anime_lib.translation import Translator, parse_direction

__all__ = [
    "DownBlock",
    "UpBlock",
    "ConvEncoder",
    "ConvDecoder",
    "EncoderDecoder",
    "PatchDiscriminator",
    "pixel_loss",
    "random_pairs",
    "true_pairs",
    "translation_step",
    "pix2pix_step",
    "average_face",
    "drift_stats",
]


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------


class DownBlock(nn.Module):
    """Halve the resolution: 4x4 conv with stride 2, BatchNorm, LeakyReLU(0.2).

    (N, c_in, H, W) -> (N, c_out, H/2, W/2).
    """

    def __init__(self, c_in: int, c_out: int, norm: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=not norm)
        self.norm = nn.BatchNorm2d(c_out) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.norm(self.conv(x)), 0.2)


class UpBlock(nn.Module):
    """Double the resolution: nearest-neighbour upsampling, 3x3 conv, BatchNorm, ReLU.

    Upsample + conv instead of a transposed conv avoids checkerboard artifacts.
    (N, c_in, H, W) -> (N, c_out, 2H, 2W).
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))))


def _channels(width: int, n: int, max_channels: int) -> list[int]:
    """[width, 2*width, 4*width, ...] (n entries), capped at max_channels."""
    return [min(width * 2**i, max_channels) for i in range(n)]


class ConvEncoder(nn.Module):
    """Image -> feature map: ``n_down`` DownBlocks, channels ``width, 2*width, ...``.

    (N, 3, H, W) in [-1, 1] -> (N, out_channels, H / 2**n_down, W / 2**n_down), unbounded.
    H and W must be divisible by 2**n_down.
    """

    def __init__(self, in_channels: int = 3, width: int = 16, n_down: int = 3, max_channels: int = 256):
        super().__init__()
        if n_down < 1:
            raise ValueError(f"n_down must be >= 1, got {n_down}")
        chans = _channels(width, n_down, max_channels)
        # no normalisation on the first block (as in DCGAN / pix2pix): keep the input's colours intact
        blocks = [DownBlock(in_channels, chans[0], norm=False)]
        blocks += [DownBlock(a, b) for a, b in zip(chans[:-1], chans[1:])]
        self.blocks = nn.Sequential(*blocks)
        self.n_down = n_down
        self.out_channels = chans[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2**self.n_down
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(f"image size {tuple(x.shape[-2:])} is not divisible by 2**n_down = {factor}")
        return self.blocks(x)


class ConvDecoder(nn.Module):
    """Feature map -> image: ``n_up`` UpBlocks halving the channels, then a 3x3 conv and tanh.

    (N, in_channels, h, w) -> (N, 3, h * 2**n_up, w * 2**n_up) in [-1, 1].
    The mirror image of :class:`ConvEncoder` with the same ``width``, ``n`` and ``max_channels``.
    """

    def __init__(self, out_channels: int = 3, width: int = 16, n_up: int = 3, max_channels: int = 256):
        super().__init__()
        chans = _channels(width, n_up, max_channels)[::-1] + [width]
        self.in_channels = chans[0]
        self.blocks = nn.Sequential(*[UpBlock(a, b) for a, b in zip(chans[:-1], chans[1:])])
        self.to_rgb = nn.Conv2d(width, out_channels, 3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.to_rgb(self.blocks(h)))


class EncoderDecoder(Translator):
    """The translator of lesson 02: ``decoder(encoder(x))``, no skip connections.

    (N, 3, H, W) in [-1, 1] -> (N, 3, H, W) in [-1, 1]; H and W divisible by 2**n_down.
    Everything the output shows about the input has to pass the bottleneck of
    (encoder.out_channels, H / 2**n_down, W / 2**n_down) numbers. One network translates one way:
    ``direction`` names it (``translate(x, direction)``).
    """

    def __init__(self, width: int = 16, n_down: int = 3, max_channels: int = 256, direction: str = "human->anime"):
        super().__init__()
        parse_direction(direction)
        self.directions = (direction,)
        self.encoder = ConvEncoder(3, width, n_down, max_channels)
        self.decoder = ConvDecoder(3, width, n_down, max_channels)

    def generator(self, direction: str) -> nn.Module:
        self.check_direction(direction)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN (pix2pix): scores (source, image) pairs patch by patch.

    source, image: (N, 3, H, W) in [-1, 1] -> logits (N, 1, H/4 - 2, W/4 - 2), one per patch,
    no sigmoid (use ``anime_lib.losses``). Two stride-2 convs, then two stride-1 convs.
    """

    def __init__(self, width: int = 16, in_channels: int = 6):
        super().__init__()
        self.net = nn.Sequential(
            DownBlock(in_channels, width, norm=False),
            DownBlock(width, 2 * width),
            nn.Conv2d(2 * width, 4 * width, 4, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(4 * width),
            nn.LeakyReLU(0.2),
            nn.Conv2d(4 * width, 1, 4, stride=1, padding=1),
        )

    def forward(self, source: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([source, image], dim=1))


# --------------------------------------------------------------------------------------------------
# Training pairs and steps
# --------------------------------------------------------------------------------------------------


def pixel_loss(output: torch.Tensor, target: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Mean pixel loss between two image batches in [-1, 1]: "l1" (mean |.|) or "l2" (mean squared)."""
    if kind == "l1":
        return (output - target).abs().mean()
    if kind == "l2":
        return ((output - target) ** 2).mean()
    raise ValueError(f"pixel loss must be 'l1' or 'l2', got {kind!r}")


def random_pairs(n_source: int, n_target: int, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The original unpaired setup: ``batch`` source indices and, independently, ``batch`` target indices.

    Returns two int64 tensors of shape (batch,). The target of a source face is any face of the
    other domain, so nothing ties an output to its input.
    """
    idx_source = torch.randint(n_source, (batch,), generator=generator)
    idx_target = torch.randint(n_target, (batch,), generator=generator)
    return idx_source, idx_target


def true_pairs(n: int, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Paired setup: the same ``batch`` indices for the source set and its counterpart set.

    Returns (idx, idx), int64 tensors of shape (batch,).
    """
    idx = torch.randint(n, (batch,), generator=generator)
    return idx, idx


def translation_step(model: nn.Module, optimizer: torch.optim.Optimizer, source: torch.Tensor,
                     target: torch.Tensor, loss: str = "l1") -> Mapping[str, float]:
    """One gradient step of ``pixel_loss(model(source), target)``; returns ``{"pixel": loss value}``.

    source, target: (N, 3, H, W) in [-1, 1]. Unpaired and paired training differ only in which
    ``target`` is passed (a random target face or the true counterpart).
    """
    model.train()
    value = pixel_loss(model(source), target, loss)
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    optimizer.step()
    return {"pixel": value.item()}


def pix2pix_step(generator: nn.Module, discriminator: nn.Module, opt_g: torch.optim.Optimizer,
                 opt_d: torch.optim.Optimizer, source: torch.Tensor, target: torch.Tensor,
                 lambda_l1: float = 100.0, gan_kind: str = "lsgan") -> Mapping[str, float]:
    """One pix2pix step on true pairs: update D on (source, target) vs (source, G(source)), then G.

    G minimises ``generator_loss(D(source, G(source))) + lambda_l1 * L1(G(source), target)``.
    source, target: (N, 3, H, W) in [-1, 1]. Returns the losses ``gan``, ``pixel`` and ``d``.
    """
    generator.train()
    discriminator.train()
    fake = generator(source)

    # discriminator: real pairs -> "real", generated pairs (detached) -> "fake"
    d_loss = discriminator_loss(discriminator(source, target), discriminator(source, fake.detach()), gan_kind)
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()

    # generator: fool D (its gradients reach only G's optimizer) and stay close to the counterpart
    g_gan = generator_loss(discriminator(source, fake), gan_kind)
    g_pixel = pixel_loss(fake, target, "l1")
    g_loss = g_gan + lambda_l1 * g_pixel
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"gan": g_gan.item(), "pixel": g_pixel.item(), "d": d_loss.item()}


# --------------------------------------------------------------------------------------------------
# The drift to the average face
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def average_face(images, loss: str = "l1", limit: int = 1000) -> torch.Tensor:
    """The best constant output for the unpaired objective: the pixel-wise median (L1) or mean (L2) face.

    ``images``: (N, 3, S, S) in [-1, 1] or a set with ``.tensor(idx)``; the first ``limit`` faces are used.
    Returns (3, S, S) in [-1, 1].
    """
    if loss not in ("l1", "l2"):
        raise ValueError(f"pixel loss must be 'l1' or 'l2', got {loss!r}")
    n = min(limit, len(images))
    x = images[:n].float() if isinstance(images, torch.Tensor) else images.tensor(slice(0, n))
    return x.median(dim=0).values if loss == "l1" else x.mean(dim=0)


def drift_stats(images01: torch.Tensor, average01: torch.Tensor) -> dict[str, float]:
    """Three numbers that need no ground truth, for images (N, 3, S, S) in [0, 1]:

    ``sharpness`` (:func:`anime_lib.metrics.sharpness`: blur lowers it), ``spread``
    (:func:`anime_lib.metrics.pixel_spread`: one face for every input scores 0) and ``to_average``, the mean
    absolute distance from ``average01`` (3, S, S) in [0, 1], the average target face.
    """
    return {"sharpness": sharpness(images01), "spread": pixel_spread(images01),
            "to_average": float((images01 - average01.to(images01)).abs().mean())}
