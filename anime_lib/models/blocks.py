"""Building blocks shared by the model families: initialisation, normalisation / activation / upsampling
layers, the residual block, the image pool of old fakes and an eval-mode context.

Every model file imports its parts from here (never from another model file's private names, and never
from :mod:`anime_lib.training`), so a model can be read, tested and reused on its own. Images are in
[-1, 1] everywhere in this module.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

import torch
from torch import nn

__all__ = [
    "NORMS",
    "ACTIVATIONS",
    "UPSAMPLING",
    "init_weights",
    "norm_layer",
    "activation_layer",
    "upsample_layer",
    "ResnetBlock",
    "ImagePool",
    "eval_mode",
    "count_parameters",
]

NORMS = ("instance", "layer")
ACTIVATIONS = ("relu", "leaky_relu")
UPSAMPLING = ("transpose", "resize")

_NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm, nn.GroupNorm, nn.LayerNorm)
_WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear)


def init_weights(module: nn.Module, std: float = 0.02) -> nn.Module:
    """DCGAN/pix2pix initialisation, in place: conv and linear weights ~ N(0, std), biases 0,
    affine normalisation weights ~ N(1, std) and biases 0. Returns ``module``.

    Works with spectral norm (both the old hook and the parametrization version): the raw weight is set.
    """
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, _WEIGHTED):
                nn.init.normal_(_raw_weight(m), 0.0, std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, _NORM_TYPES):
                if getattr(m, "weight", None) is not None:
                    nn.init.normal_(m.weight, 1.0, std)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
    return module


def _raw_weight(m: nn.Module) -> torch.Tensor:
    parametrizations = getattr(m, "parametrizations", None)
    if parametrizations is not None and "weight" in parametrizations:
        return parametrizations.weight.original
    if hasattr(m, "weight_orig"):  # torch.nn.utils.spectral_norm (hook version)
        return m.weight_orig
    return m.weight


def norm_layer(name: str, channels: int) -> nn.Module:
    """A generator's normalisation layer for ``channels`` feature maps.

    "instance": InstanceNorm2d without affine parameters (CycleGAN paper), each channel of each image
    normalised on its own, which maps a flat image of any colour to zeros. "layer": GroupNorm(1, C), all
    channels of an image normalised together, so the balance between channels (the colour of a flat region)
    survives; it has a learned per-channel scale and shift."""
    if name == "instance":
        return nn.InstanceNorm2d(channels)
    if name == "layer":
        return nn.GroupNorm(1, channels)
    raise ValueError(f"norm must be one of {NORMS}, got {name!r}")


def activation_layer(name: str) -> nn.Module:
    """"relu" (the papers) or "leaky_relu" (slope 0.2), a fresh module each call."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2, inplace=True)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


def upsample_layer(in_ch: int, out_ch: int, upsampling: str) -> nn.Module:
    """Double the resolution: the paper's ConvTranspose2d(k3, s2, p1, output_padding 1) ("transpose"), or a
    nearest-neighbour resize followed by a reflect-padded 3x3 conv ("resize"), which cannot produce the
    checkerboard pattern that overlapping transposed-conv kernels leave (Odena et al. 2016)."""
    if upsampling == "transpose":
        return nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1)
    if upsampling == "resize":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1), nn.Conv2d(in_ch, out_ch, 3))
    raise ValueError(f"upsampling must be one of {UPSAMPLING}, got {upsampling!r}")


class ResnetBlock(nn.Module):
    """(N, C, H, W) -> (N, C, H, W): ``x + F(x)`` with reflect padding, so borders stay natural."""

    def __init__(self, channels: int, activation: str = "relu", *, norm: str = "instance"):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), norm_layer(norm, channels),
            activation_layer(activation),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), norm_layer(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ImagePool:
    """The CycleGAN history buffer of generated images (Shrivastava et al. 2017).

    The discriminator is shown a mix of the newest fakes and older ones, which damps oscillation.
    Per image of the batch: while the pool holds fewer than ``size`` images, store it and return it;
    once full, with probability 1/2 return a random stored image and put the new one in its place,
    otherwise return the new image. Everything returned is detached. ``size=0`` disables the pool.
    """

    def __init__(self, size: int = 50, generator: torch.Generator | None = None):
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self.size = int(size)
        self.generator = generator
        self.images: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, C, H, W) -> (N, C, H, W), detached (unless ``size == 0``: returned unchanged)."""
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator).item() < 0.5:
                idx = int(torch.randint(self.size, (), generator=self.generator).item())
                out.append(self.images[idx])
                self.images[idx] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    __call__ = query

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"size": self.size, "images": list(self.images)}
        if self.generator is not None:
            state["generator"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.size = int(state["size"])
        self.images = [t.clone() for t in state["images"]]
        if self.generator is not None and "generator" in state:
            self.generator.set_state(state["generator"])


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``with eval_mode(G): ...`` runs the block with ``model`` in eval mode and gives it back in the mode
    it had (train or eval), also when the block raises."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
