"""Losses shared by the lessons: adversarial objectives, reconstruction, identity.

Adversarial losses take the discriminator's raw outputs ("logits", any shape: one per image or one per
patch) and are averaged over every element.

- "bce"   (DCGAN, Goodfellow et al.): D maximises log D(x) + log(1 - D(G(z))); G uses the
  non-saturating form, maximising log D(G(z)).
- "lsgan" (Mao et al., used by CycleGAN): D minimises (D(x) - 1)^2 + D(G(z))^2; G minimises (D(G(z)) - 1)^2.
- "hinge" (SAGAN, StyleGAN-era practice): D minimises relu(1 - D(x)) + relu(1 + D(G(z))); G minimises -D(G(z)).

:func:`r1_penalty` (Mescheder et al. 2018) is a regulariser for D, not a loss of its own: the squared gradient
of D's output with respect to *real* images, which keeps D from growing steep cliffs around the data.

Style and colour terms (Gatys et al.; CartoonGAN, AnimeGAN): :func:`gram_matrix` of feature maps,
:func:`rgb_to_yuv` (brightness Y and the two colour-difference channels U, V) and :func:`total_variation`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

GAN_KINDS = ("bce", "lsgan", "hinge")


def _check(kind: str) -> None:
    if kind not in GAN_KINDS:
        raise ValueError(f"unknown GAN loss {kind!r}; choose one of {GAN_KINDS}")


def gan_loss(logits: torch.Tensor, target_is_real: bool, kind: str = "lsgan") -> torch.Tensor:
    """Loss pushing ``logits`` toward "real" (``target_is_real``) or "fake".

    Use it for the generator with ``target_is_real=True`` on fakes, and for the discriminator on
    reals (True) and fakes (False). For "hinge" the generator form is -mean(logits).
    """
    _check(kind)
    if kind == "bce":
        target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
        return F.binary_cross_entropy_with_logits(logits, target)
    if kind == "lsgan":
        return F.mse_loss(logits, torch.full_like(logits, 1.0 if target_is_real else 0.0))
    # hinge
    return F.relu(1 - logits).mean() if target_is_real else F.relu(1 + logits).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "lsgan") -> torch.Tensor:
    """D's loss on a batch of reals and (detached) fakes; LSGAN is halved as in the CycleGAN paper."""
    loss = gan_loss(real_logits, True, kind) + gan_loss(fake_logits, False, kind)
    return loss * 0.5 if kind == "lsgan" else loss


def generator_loss(fake_logits: torch.Tensor, kind: str = "lsgan") -> torch.Tensor:
    """G's adversarial loss: make D call its fakes real (non-saturating for "bce")."""
    _check(kind)
    if kind == "hinge":
        return -fake_logits.mean()
    return gan_loss(fake_logits, True, kind)


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1: the mean over images of ||d sum(D(x)) / dx||^2, for ``real`` that had ``requires_grad`` set before
    ``real_logits = D(real)``. Differentiable (D's step adds ``gamma / 2 * r1_penalty``); 0 for a flat D.
    With BatchNorm in D (train mode) the images of a batch share statistics, so each image's gradient also
    carries a small part from the others' logits; without it, it is exactly that image's own gradient.
    """
    if not real.requires_grad:
        raise ValueError("r1_penalty needs the real batch to require gradients before D sees it: "
                         "real = real.detach().requires_grad_(True); real_logits = D(real)")
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def reconstruction_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L1 distance, the cycle and identity loss of CycleGAN (images in [-1, 1])."""
    return (x - y).abs().mean()


def discriminator_accuracy(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "lsgan") -> float:
    """Fraction of reals and fakes D classifies correctly (threshold 0 for bce/hinge, 0.5 for lsgan)."""
    t = 0.5 if kind == "lsgan" else 0.0
    right = torch.cat([(real_logits > t).flatten(), (fake_logits <= t).flatten()]).float()
    return float(right.mean())


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) feature maps -> (N, C, C) Gram matrices F F^T / (C * H * W): how strongly each pair of
    channels fires together, summed over every position, so *where* things are is forgotten and only the
    texture statistics (the "style", Gatys et al. 2016) remain. Normalised as in AnimeGAN."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


#: RGB -> YUV (BT.601, as tf.image.rgb_to_yuv): rows give Y, U, V from (R, G, B) in [0, 1].
RGB_TO_YUV = torch.tensor([[0.299, 0.587, 0.114],
                           [-0.14714119, -0.28886916, 0.43601035],
                           [0.61497538, -0.51496512, -0.10001026]])


def rgb_to_yuv(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [-1, 1] (model range) -> (N, 3, H, W) YUV: Y (brightness) in [0, 1], U and V
    (blue and red minus brightness) in about [-0.44, 0.44] and [-0.62, 0.62]."""
    rgb01 = (images + 1) / 2
    return torch.einsum("yc,nchw->nyhw", RGB_TO_YUV.to(images), rgb01)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between vertical and between horizontal neighbours (summed), for (N, C, H, W):
    0 for a flat image, large for noise. As a loss term it suppresses high-frequency speckle."""
    dh = images[..., 1:, :] - images[..., :-1, :]
    dw = images[..., :, 1:] - images[..., :, :-1]
    return dh.pow(2).mean() + dw.pow(2).mean()
