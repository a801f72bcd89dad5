"""Frozen feature maps for content and style losses (CartoonGAN, AnimeGAN and later lessons).

The papers compare images through the feature maps of an ImageNet VGG19 (``conv4_4``, before its ReLU):
``|VGG(G(x)) - VGG(x)|_1`` keeps the *content* of a photo while its pixels change, and Gram matrices of
the same maps describe a *style* (textures, strokes) without saying where anything is.

VGG19's weights are a download (torchvision), which works in Colab but not offline. Offline the course uses
the ToyFaces probe's encoder instead (:mod:`anime_lib.probe`): a frozen CNN trained to read every attribute of
a face, so its middle layers carry the content of a ToyFace as VGG's carry the content of a photo. On real
photos the probe knows nothing: there VGG19 is the one to use, and :func:`feature_extractor` says so.

Every extractor maps images (N, 3, H, W) in [-1, 1] to feature maps (N, C, h, w), stays in eval mode (its
BatchNorm statistics never move) and has no trainable parameters; gradients flow through it to the images.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FeaturesUnavailable", "FeatureExtractor", "probe_features", "vgg19_features", "feature_extractor",
           "FEATURE_KINDS", "PROBE_LAYER", "VGG19_CONV4_4"]

FEATURE_KINDS = ("probe", "vgg19")
#: The probe block whose output (before its ReLU) is the default feature map: 64 channels at 1/4 of the side.
PROBE_LAYER = 4
#: Index of conv4_4 in ``torchvision.models.vgg19().features`` (the feature map ends there, before its ReLU).
VGG19_CONV4_4 = 25
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class FeaturesUnavailable(RuntimeError):
    """The weights of a feature network cannot be had here (VGG19 offline)."""


class FeatureExtractor(nn.Module):
    """A frozen network cut at one layer: images (N, 3, H, W) in [-1, 1] -> feature maps (N, C, h, w).

    ``prepare`` turns [-1, 1] images into what ``body`` expects (resizing, ImageNet normalisation).
    ``train()`` leaves it in eval mode, so a model that holds it can switch modes freely.
    """

    def __init__(self, body: nn.Module, prepare: Callable[[torch.Tensor], torch.Tensor], name: str):
        super().__init__()
        self.body = body.eval()
        self.prepare = prepare
        self.name = name
        for p in self.body.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "FeatureExtractor":
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.prepare(x))

    def extra_repr(self) -> str:
        return self.name


def probe_features(layer: int = PROBE_LAYER, probe=None) -> FeatureExtractor:
    """The ToyFaces probe's encoder up to block ``layer`` (0-7), before that block's ReLU.

    The probe reads 64 px faces: other sizes are resized to 64 px (bilinear) first. Block 4 gives 64 channels at
    16 x 16; later blocks are coarser and more about attributes, earlier ones more about pixels. A private copy
    of the probe is used, so moving the extractor to a GPU leaves the metrics' probe where it is.
    """
    from anime_lib import metrics as M
    from anime_lib.probe import PROBE_SIZE

    probe = probe if probe is not None else M.get_probe()
    n_blocks = len(probe.encoder) // 3  # conv, BatchNorm, ReLU per block
    if not 0 <= layer < n_blocks:
        raise ValueError(f"layer must be a probe block in 0..{n_blocks - 1}, got {layer}")
    body = copy.deepcopy(probe.encoder[: 3 * layer + 2])

    def prepare(x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (PROBE_SIZE, PROBE_SIZE):
            x = F.interpolate(x, size=(PROBE_SIZE, PROBE_SIZE), mode="bilinear", align_corners=False)
        return x  # the probe's encoder reads [-1, 1] itself

    return FeatureExtractor(body, prepare, f"ToyFaces probe, block {layer} before ReLU")


def vgg19_features(layer: int = VGG19_CONV4_4) -> FeatureExtractor:
    """ImageNet VGG19 up to ``layer`` of its ``features`` (default conv4_4, before its ReLU), from torchvision's
    download (Colab, or any machine with the network). Raises :class:`FeaturesUnavailable` when the weights cannot
    be had (offline) or torchvision is missing."""
    try:
        from torchvision.models import VGG19_Weights, vgg19
    except ImportError as exc:
        raise FeaturesUnavailable(f"torchvision is not installed ({exc}); pip install torchvision") from None
    try:
        net = vgg19(weights=VGG19_Weights.IMAGENET1K_V1)
    except Exception as exc:  # no network, a proxy page, a truncated file ...
        raise FeaturesUnavailable(f"VGG19's ImageNet weights could not be downloaded ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    mean = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)

    def prepare(x: torch.Tensor) -> torch.Tensor:
        return ((x + 1) / 2 - mean.to(x)) / std.to(x)

    return FeatureExtractor(net.features[: layer + 1], prepare, f"VGG19 features[:{layer + 1}] (conv4_4 before ReLU)")


def feature_extractor(kind: str = "probe", *, verbose: bool = True) -> FeatureExtractor:
    """``"probe"`` (offline, ToyFaces) or ``"vgg19"`` (the papers' choice; needs the download). When VGG19 cannot
    be had, this says so plainly and returns the probe's features, which only know ToyFaces."""
    if kind not in FEATURE_KINDS:
        raise ValueError(f"kind must be one of {FEATURE_KINDS}, got {kind!r}")
    if kind == "vgg19":
        try:
            return vgg19_features()
        except FeaturesUnavailable as exc:
            if verbose:
                print(f"VGG19 is not available here: {exc}. Using the ToyFaces probe's features instead; they know "
                      "ToyFaces only, so content and style losses on real photos mean little with them.")
    return probe_features()
