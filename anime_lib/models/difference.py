"""Lesson 01: translation as one difference vector between the two domains.

Two models, from the simplest idea to its natural next step:

* :class:`ImageDifference` - one image-sized vector ``delta`` (the "anime minus human" direction).
  Human -> anime is ``x + delta``, anime -> human is ``x - delta``. It is learned as in the original
  student report: draw a batch from each domain, compare the two mean images and move ``delta`` a
  step ``lr`` towards their difference (:func:`difference_step`).
* :class:`LatentDifference` - the same idea in the latent space of a small convolutional
  autoencoder trained on both domains (:class:`ConvAutoencoder`):
  ``decode(encode(x) + d)`` with ``d = mean(encode(anime)) - mean(encode(human))``.

:func:`difference_step` and :func:`autoencoder_step` are the tested references of the updates the lesson
writes out in its ``step-function`` cell. :func:`eye_region_error` is the lesson's analysis of where a
global shift fails (ToyFaces only: it needs landmarks and counterparts).

Images are tensors (N, 3, H, W) in [-1, 1]; a difference of two such images lies in [-2, 2].
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from anime_lib.models.encoder_decoder import ConvDecoder, ConvEncoder
from anime_lib.translation import Translator, parse_direction

__all__ = [
    "mean_image",
    "mean_difference",
    "difference_step",
    "ImageDifference",
    "ConvAutoencoder",
    "autoencoder_step",
    "encode_all",
    "LatentDifference",
    "eye_mask",
    "eye_region_error",
]

def _sign(direction: str) -> float:
    """+1 for human->anime (add the "anime minus human" vector), -1 for anime->human."""
    src, _ = parse_direction(direction)
    return 1.0 if src == "human" else -1.0


# --------------------------------------------------------------------------------------------------
# The image-space difference vector
# --------------------------------------------------------------------------------------------------


def _chunk(images, start: int, stop: int) -> torch.Tensor:
    """Images start..stop-1 in [-1, 1] from a tensor or from a set with ``.tensor(idx)`` (ToySet, ImageSet)."""
    if isinstance(images, torch.Tensor):
        return images[start:stop].float()
    return images.tensor(slice(start, stop))


@torch.no_grad()
def mean_image(images, chunk: int = 1000) -> torch.Tensor:
    """The mean face of a whole set: (N, 3, H, W) in [-1, 1] -> (3, H, W) in [-1, 1].

    ``images``: a tensor or a dataset with ``len()`` and ``.tensor(idx)`` (ToySet, ImageSet); it is
    read ``chunk`` images at a time, so a large uint8 set never exists as one float tensor.
    """
    n = len(images)
    if n == 0:
        raise ValueError("cannot average an empty set of images")
    total = sum(_chunk(images, i, i + chunk).double().sum(0) for i in range(0, n, chunk))
    return (total / n).float()


def mean_difference(batch_human: torch.Tensor, batch_anime: torch.Tensor) -> torch.Tensor:
    """mean(anime batch) - mean(human batch): (N, C, H, W) and (M, C, H, W) -> (C, H, W).

    Works for images in [-1, 1] (result in [-2, 2]) and equally for latent codes (N, D) -> (D,).
    """
    return batch_anime.float().mean(0) - batch_human.float().mean(0)


@torch.no_grad()
def difference_step(delta: torch.Tensor, batch_human: torch.Tensor, batch_anime: torch.Tensor,
                    lr: float) -> Mapping[str, float]:
    """The original update, in place: ``delta += lr * (mean(anime) - mean(human) - delta)``.

    It is a gradient step on ``0.5 * ||delta - batch difference||^2``, so ``delta`` becomes an
    exponential moving average of the batch differences and settles at the true mean difference
    (up to noise of size about ``sqrt(lr)`` times the batch noise). ``lr`` in (0, 1].
    Returns ``{"distance": mean |batch difference - delta|}`` measured before the step.
    """
    if not 0.0 < lr <= 1.0:
        raise ValueError(f"lr must be in (0, 1], got {lr}")
    error = mean_difference(batch_human, batch_anime).to(delta.device) - delta
    delta.add_(error, alpha=lr)
    return {"distance": error.abs().mean().item()}


class ImageDifference(Translator):
    """Translate by adding one image: ``x + delta`` (human -> anime) or ``x - delta`` (anime -> human).

    ``delta``: a buffer (3, H, W), values in [-2, 2], starting at zero; learned with
    :func:`difference_step`. forward: x (N, 3, H, W) in [-1, 1] -> (N, 3, H, W) in [-1, 1]
    (clipped, because adding a difference can leave the image range); ``strength`` scales delta.
    """

    def __init__(self, size: int = 64, channels: int = 3):
        super().__init__()
        self.register_buffer("delta", torch.zeros(channels, size, size))

    @classmethod
    def from_delta(cls, delta: torch.Tensor) -> ImageDifference:
        """A translator with a given vector (3, H, W) in [-2, 2] (a copy), e.g. a snapshot taken during training."""
        model = cls(delta.shape[-1], delta.shape[0])
        model.delta.copy_(delta.detach())
        return model.to(delta.device)

    def forward(self, x: torch.Tensor, direction: str = "human->anime", strength: float = 1.0) -> torch.Tensor:
        return (x + strength * _sign(direction) * self.delta).clamp(-1, 1)

    def translate(self, x: torch.Tensor, direction: str = "human->anime", strength: float = 1.0) -> torch.Tensor:
        """One batch (N, 3, H, W) in [-1, 1] -> same shape in [-1, 1]; ``strength`` scales delta."""
        self.check_direction(direction)
        return self(x, direction, strength)


# --------------------------------------------------------------------------------------------------
# A difference in a learned feature space
# --------------------------------------------------------------------------------------------------


class ConvAutoencoder(nn.Module):
    """Image -> latent vector -> image: a :class:`ConvEncoder` down to 4x4, a linear layer to
    ``latent_dim`` numbers, and the mirror image back.

    encode: (N, 3, S, S) in [-1, 1] -> (N, latent_dim), unbounded.
    decode: (N, latent_dim) -> (N, 3, S, S) in [-1, 1].
    S is the ``size`` given at construction (a power of two, at least 16).
    """

    def __init__(self, size: int = 64, latent_dim: int = 128, width: int = 16, max_channels: int = 128):
        super().__init__()
        n_down = int(size).bit_length() - 3  # 64 px -> 4 halvings -> 4x4
        if size < 16 or 2 ** (n_down + 2) != size:
            raise ValueError(f"size must be a power of two >= 16, got {size}")
        self.size, self.latent_dim = int(size), int(latent_dim)
        self.encoder = ConvEncoder(3, width, n_down, max_channels)
        c = self.encoder.out_channels
        self.to_latent = nn.Linear(c * 16, latent_dim)
        self.from_latent = nn.Linear(latent_dim, c * 16)
        self.decoder = ConvDecoder(3, width, n_down, max_channels)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_latent(self.encoder(x).flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.from_latent(z)).view(len(z), self.decoder.in_channels, 4, 4)
        return self.decoder(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction: (N, 3, S, S) in [-1, 1] -> (N, 3, S, S) in [-1, 1]."""
        return self.decode(self.encode(x))


def autoencoder_step(model: ConvAutoencoder, optimizer: torch.optim.Optimizer, batch_human: torch.Tensor,
                     batch_anime: torch.Tensor) -> Mapping[str, float]:
    """One gradient step of L1 reconstruction on a batch of each domain (images in [-1, 1]).

    Returns ``{"recon": mean L1 over both batches}``.
    """
    model.train()
    x = torch.cat([batch_human, batch_anime])
    loss = (model(x) - x).abs().mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"recon": loss.item()}


@torch.no_grad()
def encode_all(model: ConvAutoencoder, images, batch: int = 256) -> torch.Tensor:
    """Latent codes of many images in eval mode: (N, 3, S, S) in [-1, 1] -> (N, latent_dim) on the CPU.

    ``images``: a tensor or a dataset with ``.tensor(idx)`` (read ``batch`` images at a time).
    """
    model.eval()
    device = next(model.parameters()).device
    codes = [model.encode(_chunk(images, i, i + batch).to(device)).cpu() for i in range(0, len(images), batch)]
    return torch.cat(codes)


class LatentDifference(Translator):
    """Translate by adding one vector in the autoencoder's latent space: ``decode(encode(x) +- d)``.

    ``d``: a buffer (latent_dim,) = mean latent of anime faces - mean latent of human faces
    (set it with :meth:`fit`). forward: x (N, 3, S, S) in [-1, 1] -> (N, 3, S, S) in [-1, 1].
    """

    def __init__(self, autoencoder: ConvAutoencoder):
        super().__init__()
        self.autoencoder = autoencoder
        self.register_buffer("d", torch.zeros(autoencoder.latent_dim))

    @torch.no_grad()
    def fit(self, images_human, images_anime) -> "LatentDifference":
        """Set ``d`` from the mean codes of two image sets (tensors (N, 3, S, S) in [-1, 1] or datasets
        with ``.tensor(idx)``); returns self."""
        z_human = encode_all(self.autoencoder, images_human)
        z_anime = encode_all(self.autoencoder, images_anime)
        self.d.copy_(mean_difference(z_human, z_anime))
        return self

    def forward(self, x: torch.Tensor, direction: str = "human->anime", strength: float = 1.0) -> torch.Tensor:
        z = self.autoencoder.encode(x)
        return self.autoencoder.decode(z + strength * _sign(direction) * self.d)

    def translate(self, x: torch.Tensor, direction: str = "human->anime", strength: float = 1.0) -> torch.Tensor:
        """One batch (N, 3, S, S) in [-1, 1] -> same shape in [-1, 1]; ``strength`` scales d."""
        self.check_direction(direction)
        return self(x, direction, strength)


# --------------------------------------------------------------------------------------------------
# Where a global shift fails: the eye regions (ToyFaces: landmarks and counterparts)
# --------------------------------------------------------------------------------------------------


def eye_mask(source_set, radius: float) -> torch.Tensor:
    """(N, 1, S, S) bool: pixels within ``radius`` px of an eye landmark of each face or of its counterpart.

    ``source_set``: a ToySet (it has ``landmarks`` (N, 5, 2) in pixels, eyes first, and ``counterpart()``).
    """
    size = source_set.size
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    mask = torch.zeros(len(source_set), 1, size, size, dtype=torch.bool)
    for faces in (source_set, source_set.counterpart()):
        eyes = faces.landmarks[:, :2]  # (N, 2 eyes, xy)
        for k in range(2):
            d2 = (xx - eyes[:, k, 0, None, None]) ** 2 + (yy - eyes[:, k, 1, None, None]) ** 2
            mask |= (d2 <= radius**2).unsqueeze(1)
    return mask


def eye_region_error(fake01: torch.Tensor, source_set, radius: float) -> tuple[float, float, float]:
    """Mean |fake - ground truth| inside and outside the eye regions, and the share of pixels inside.

    ``fake01``: translations (N, 3, S, S) in [0, 1] of the N faces of ``source_set`` (a ToySet);
    ``radius``: of the discs around the eye landmarks (:func:`eye_mask`), in pixels.
    Returns ``(error around the eyes, error elsewhere, share of the pixels around the eyes)``.
    """
    mask = eye_mask(source_set, radius).expand_as(fake01)
    err = (fake01 - source_set.counterpart().unit()).abs()
    return err[mask].mean().item(), err[~mask].mean().item(), mask[:, 0].float().mean().item()
