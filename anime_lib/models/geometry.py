"""Geometry-aware CycleGAN: a face-angle input channel, landmark consistency and local discriminators.

Built on :mod:`anime_lib.models.cyclegan` (same ResNet generator and PatchGAN, A = human, B = anime,
images in [-1, 1]). Read top to bottom:

* :func:`roll_from_landmarks`: the roll angle (degrees, positive = clockwise on screen) of the eye line
  of five landmarks (left eye, right eye, nose tip, mouth corners; pixels, x right, y down).
* :func:`angle_map`: the roll as an image, the 4th input channel. Each pixel holds its coordinate along
  the face's vertical axis (forehead -> chin), so the stripes of equal value run parallel to the eye line.
  Not a constant plane: the generator's first InstanceNorm subtracts the mean of every channel, which
  erases a constant input completely (:func:`instancenorm_response` measures it).
* :func:`with_channel`: image (N, 3, S, S) + map (N, 1, S, S) -> (N, 4, S, S).
* :class:`AngleResnetGenerator`: the ResNet generator that reads the angle map again deeper down
  (``angle_injection``): concatenated, resized, to the input of every residual block ("blocks") and also of
  both decoder stages ("all"), so the conditioning is not diluted after the stem.
* :class:`GeometryCycleGAN`: the CycleGAN networks with ``angle_channel`` (both generators read 4
  channels: the fix of the channel mismatch), optionally conditional global discriminators
  (image + angle map) and local discriminators on eye / nose / mouth patches (Wu et al. 2019).
* :func:`normalise_landmarks`, :func:`part_centres`, :func:`crop_patches`: landmarks in [-1, 1]
  (grid_sample convention) and differentiable patches cut out around the face parts;
  :func:`part_patches`: every part's patches at once (for figures).
* :class:`LandmarkRegressor` and :func:`train_regressor`: R_B, a small CNN that reads the five
  landmarks of a face of one domain; frozen, it scores the landmarks of translations
  (:func:`regressor_errors`: how precisely it reads test faces).
* :class:`ShapeTransfer`: where a source face's landmarks should land in the other style (anime eyes sit
  lower and wider than human ones): each face keeps its roll and its own deviations from its domain's
  mean shape, and the mean shape is swapped (:meth:`ShapeTransfer.mean_shift_px`: the swap per landmark).
* :class:`FaceGeometry` and :func:`geometry_batch`: the images, rolls and landmarks of a set, and one
  training batch of both domains cut from them.
* :func:`geometry_generator_objective` and :func:`geometry_train_step`: the objective and one update (the
  tested reference of the step function that lesson 05 shows in its notebook), with
  :func:`angle_maps`, :func:`discriminator_input` and :func:`local_discriminator_step`;
  :func:`optimisers_and_pools`: the optimisers, schedules and image pools of one training run;
  :func:`variant_step`: the step function a ``training.Run`` calls (batch from the step number, stage 2).
* :func:`landmark_error_px` and :func:`tilted_roll_error`: the lesson's two geometry measurements;
  :func:`tilted_roll_errors` adds the second to the rows of ``evaluation.evaluate`` / ``reference_rows``.
* :func:`rolls_from_detector`: roll angles of real photos (Haar eyes) or anime faces (animeface).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anime_lib.losses import discriminator_loss, generator_loss, reconstruction_loss
from anime_lib.models.blocks import ImagePool, activation_layer, init_weights, norm_layer, upsample_layer
from anime_lib.models.cyclegan import PatchDiscriminator, ResnetGenerator, default_n_blocks, default_n_layers
from anime_lib.translation import Translator

__all__ = [
    "PARTS",
    "LANDMARK_NAMES",
    "roll_from_landmarks",
    "angle_map",
    "roll_from_angle_map",
    "with_channel",
    "instancenorm_response",
    "ANGLE_INJECTIONS",
    "AngleResnetBlock",
    "AngleResnetGenerator",
    "normalise_landmarks",
    "part_centres",
    "crop_patches",
    "part_patches",
    "LandmarkRegressor",
    "train_regressor",
    "regressor_errors",
    "ShapeTransfer",
    "GeometryCycleGAN",
    "GeometryBatch",
    "GeometryWeights",
    "angle_maps",
    "discriminator_input",
    "local_discriminator_step",
    "optimisers_and_pools",
    "variant_step",
    "FaceGeometry",
    "geometry_batch",
    "landmark_error_px",
    "tilted_roll_error",
    "tilted_roll_errors",
    "GeometryLosses",
    "geometry_generator_objective",
    "geometry_train_step",
    "rolls_from_detector",
]

PARTS = ("eyes", "nose", "mouth")
LANDMARK_NAMES = ("left eye", "right eye", "nose", "mouth left", "mouth right")  # the order of the five landmarks


# ----------------------------------------------------------------------------------------------- the angle


def roll_from_landmarks(landmarks: torch.Tensor) -> torch.Tensor:
    """(N, >=2, 2) landmarks (left eye first, right eye second; x right, y down) -> roll (N,) in degrees.

    ``atan2(dy, dx)`` of the eye line: positive = the face turned clockwise on screen (right eye lower),
    the ToyFaces and Haar-eye convention.
    """
    lm = torch.as_tensor(landmarks, dtype=torch.float32)
    d = lm[:, 1] - lm[:, 0]
    return torch.rad2deg(torch.atan2(d[:, 1], d[:, 0]))


def angle_map(roll_degrees: torch.Tensor, size: int) -> torch.Tensor:
    """Roll angles (N,) in degrees -> (N, 1, size, size) maps in [-1, 1].

    Pixel (x, y) (pixel centres, image coordinates in [-1, 1], y down) holds
    ``(-sin(roll) * x + cos(roll) * y) / sqrt(2)``: its position along the face's vertical axis. An
    upright face gets a plain top-to-bottom ramp; a tilted face gets the same ramp turned by its roll.
    """
    roll = torch.as_tensor(roll_degrees, dtype=torch.float32).reshape(-1, 1, 1)
    th = torch.deg2rad(roll)
    c = (torch.arange(size, dtype=torch.float32, device=roll.device) + 0.5) / size * 2 - 1  # on the rolls' device
    y, x = torch.meshgrid(c, c, indexing="ij")
    m = (-torch.sin(th) * x + torch.cos(th) * y) / math.sqrt(2)
    return m.unsqueeze(1)


def roll_from_angle_map(maps: torch.Tensor) -> torch.Tensor:
    """Read the roll (degrees) back from :func:`angle_map` maps (N, 1, S, S): the direction of the ramp."""
    m = maps[:, 0]
    gx = (m[:, :, -1] - m[:, :, 0]).mean(1)  # d/dx ~ -sin(roll)
    gy = (m[:, -1, :] - m[:, 0, :]).mean(1)  # d/dy ~ cos(roll)
    return torch.rad2deg(torch.atan2(-gx, gy))


def with_channel(images: torch.Tensor, maps: torch.Tensor | None) -> torch.Tensor:
    """(N, 3, S, S) images and (N, 1, S, S) maps -> (N, 4, S, S); ``maps=None`` returns the images."""
    if maps is None:
        return images
    if maps.shape[0] != images.shape[0] or maps.shape[-2:] != images.shape[-2:]:
        raise ValueError(f"map {tuple(maps.shape)} does not fit images {tuple(images.shape)}")
    return torch.cat([images, maps.to(images.device, images.dtype)], 1)


@torch.no_grad()
def instancenorm_response(channel: torch.Tensor, out_channels: int = 8, seed: int = 0) -> float:
    """How much of an input channel survives a conv 7x7 + InstanceNorm stem (the generator's first layer).

    ``channel``: (N, 1, S, S). Returns the mean absolute activation after a random conv (no bias) and
    InstanceNorm. A constant plane gives 0: the norm subtracts each channel's mean, so a generator cannot
    see an angle written as one constant value.
    """
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out_channels, 1, 7, 7, generator=g) * 0.02
    x = F.pad(channel.float(), (3, 3, 3, 3), mode="reflect")
    y = F.instance_norm(F.conv2d(x, w), eps=1e-5)
    return float(y.abs().mean())


# ----------------------------------------------------------------------------------------------- landmarks and patches


def normalise_landmarks(landmarks_px: torch.Tensor, size: int) -> torch.Tensor:
    """Pixel landmarks (x right, y down, pixel edges at 0 and ``size``) -> [-1, 1] (grid_sample's
    align_corners=False convention)."""
    return torch.as_tensor(landmarks_px, dtype=torch.float32) / size * 2 - 1


def part_centres(landmarks: torch.Tensor) -> dict[str, torch.Tensor]:
    """(N, 5, 2) landmarks -> centres (N, 2) of the eyes (mid-point of both), the nose tip and the mouth."""
    return {"eyes": landmarks[:, :2].mean(1), "nose": landmarks[:, 2], "mouth": landmarks[:, 3:5].mean(1)}


def crop_patches(images: torch.Tensor, centres: torch.Tensor, patch: int) -> torch.Tensor:
    """Square patches ``patch`` px wide centred at ``centres`` ((N, 2) in [-1, 1]) of (N, C, S, S) images.

    Bilinear and differentiable in the images (so a local discriminator's gradient reaches the
    generator); regions outside the image are zero (-> mid-grey in [-1, 1] units).
    """
    n, _, h, w = images.shape
    theta = torch.zeros(n, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = patch / w
    theta[:, 1, 1] = patch / h
    theta[:, :, 2] = centres.to(images.device, images.dtype)
    grid = F.affine_grid(theta, (n, images.shape[1], patch, patch), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def part_patches(images: torch.Tensor, landmarks: torch.Tensor, patch: int, size: int | None = None
                 ) -> dict[str, torch.Tensor]:
    """The patches a local discriminator judges: for each part of :data:`PARTS`, the ``patch`` px crops
    (N, C, patch, patch) of ``images`` at their ``landmarks`` ((N, 5, 2) in [-1, 1]); enlarged to ``size`` px
    (nearest neighbour, for figures) when ``size`` is given."""
    crops = {k: crop_patches(images, c, patch) for k, c in part_centres(landmarks).items()}
    return crops if size is None else {k: F.interpolate(v, size=size) for k, v in crops.items()}


class LandmarkRegressor(nn.Module):
    """Face image (N, 3, S, S) in [-1, 1] -> five landmarks (N, 5, 2) in [-1, 1].

    Three stride-2 4x4 convs with LeakyReLU (no normalisation: position must not be normalised away),
    then a linear layer on the flattened S/8 x S/8 map, so the network keeps track of *where* things are.
    """

    def __init__(self, img_size: int = 32, width: int = 16, n_points: int = 5):
        super().__init__()
        if img_size % 8:
            raise ValueError(f"img_size must be a multiple of 8, got {img_size}")
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
        )
        self.head = nn.Linear(4 * w * (img_size // 8) ** 2, 2 * n_points)
        self.n_points = n_points

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1)).view(-1, self.n_points, 2)


def train_regressor(images: torch.Tensor, landmarks: torch.Tensor, steps: int = 300, batch: int = 32,
                    lr: float = 1e-3, width: int = 16, seed: int = 0, device: torch.device | str = "cpu"
                    ) -> tuple[LandmarkRegressor, list[float]]:
    """Fit a :class:`LandmarkRegressor` on ``images`` (N, 3, S, S) in [-1, 1] and their landmarks
    (N, 5, 2) in [-1, 1] with Adam on the mean squared error; returns it frozen in eval mode and the loss
    per step."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    R = LandmarkRegressor(images.shape[-1], width, landmarks.shape[1]).to(device)
    opt = torch.optim.Adam(R.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(images), (min(batch, len(images)),), generator=g)
        loss = F.mse_loss(R(images[idx].to(device)), landmarks[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    R.eval().requires_grad_(False)
    return R, losses


def regressor_errors(R: nn.Module, images: torch.Tensor, landmarks: torch.Tensor) -> dict[str, Any]:
    """How far the landmarks that the regressor ``R`` finds in ``images`` (N, 3, S, S) in [-1, 1] lie from
    ``landmarks`` (N, 5, 2) in [-1, 1]: the number of faces, the mean distance in pixels and the mean error of the
    roll of the eye line, in degrees. On real test faces with their own landmarks: how precisely ``R`` reads its
    domain; on translations with the landmarks a :class:`ShapeTransfer` puts them at: what the landmark loss
    minimises, read on test faces."""
    with torch.no_grad():
        found = R(images.to(next(R.parameters()).device)).cpu()
    return {"faces": len(found), "landmark error (px)": landmark_error_px(found, landmarks, images.shape[-1]),
            "roll error from its eyes (deg)": float((roll_from_landmarks(found) - roll_from_landmarks(landmarks))
                                                    .abs().mean())}


def _rotate(points: torch.Tensor, roll_degrees: torch.Tensor) -> torch.Tensor:
    """Rotate (N, K, 2) points about the origin by ``roll`` (N,) degrees, clockwise on screen (y down)."""
    th = torch.deg2rad(roll_degrees).view(-1, 1)
    c, s = torch.cos(th), torch.sin(th)
    x, y = points[..., 0], points[..., 1]
    return torch.stack([c * x - s * y, s * x + c * y], -1)


@dataclass
class ShapeTransfer:
    """Where the landmarks of a face should be after translation to the other style.

    ``mean_src`` / ``mean_dst``: the mean upright landmark layout (5, 2) of each domain in [-1, 1],
    fitted on *unpaired* landmarks with :meth:`fit` (each face levelled by its own eye-line roll about the
    image centre). ``__call__`` levels a source face, swaps the mean shape, and turns the result back by
    the same roll: the face keeps its tilt and its own deviations (a wide face stays wide).
    """

    mean_src: torch.Tensor
    mean_dst: torch.Tensor

    @staticmethod
    def upright(landmarks: torch.Tensor) -> torch.Tensor:
        return _rotate(landmarks, -roll_from_landmarks(landmarks))

    @classmethod
    def fit(cls, landmarks_src: torch.Tensor, landmarks_dst: torch.Tensor) -> "ShapeTransfer":
        return cls(cls.upright(landmarks_src).mean(0), cls.upright(landmarks_dst).mean(0))

    def __call__(self, landmarks: torch.Tensor) -> torch.Tensor:
        roll = roll_from_landmarks(landmarks)
        shift = (self.mean_dst - self.mean_src).to(landmarks.device, landmarks.dtype)
        return _rotate(_rotate(landmarks, -roll) + shift, roll)

    def reverse(self) -> "ShapeTransfer":
        return ShapeTransfer(self.mean_dst, self.mean_src)

    def mean_shift_px(self, size: int) -> list[dict[str, Any]]:
        """The swap of the mean shape, landmark by landmark (:data:`LANDMARK_NAMES`), in pixels of ``size`` px
        images (upright faces, x right, y down): one row per landmark with ``dx (px)`` and ``dy (px)``."""
        shift = ((self.mean_dst - self.mean_src) * size / 2).tolist()
        return [{"landmark": n, "dx (px)": dx, "dy (px)": dy} for n, (dx, dy) in zip(LANDMARK_NAMES, shift)]


# ----------------------------------------------------------------------------------------------- the model

ANGLE_INJECTIONS = ("input", "blocks", "all")


class AngleResnetBlock(nn.Module):
    """(N, C, H, W) features and (N, 1, H, W) angle map -> ``x + F([x, m])``: the residual block of
    :class:`~anime_lib.models.cyclegan.ResnetBlock` whose first 3x3 conv also reads the map."""

    def __init__(self, channels: int, map_channels: int = 1):
        super().__init__()
        self.conv1 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(channels + map_channels, channels, 3))
        self.rest = nn.Sequential(norm_layer("instance", channels), activation_layer("relu"), nn.ReflectionPad2d(1),
                                  nn.Conv2d(channels, channels, 3), norm_layer("instance", channels))

    def forward(self, x: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        return x + self.rest(self.conv1(torch.cat([x, maps], 1)))


class AngleResnetGenerator(nn.Module):
    """[image, angle map] (N, 4, S, S) -> image (N, 3, S, S): the lesson-04 ResNet generator (same stem,
    encoder, widths and tanh output) that reads the map *again* where the face is drawn.

    With a map only at the input, the stem's conv + InstanceNorm mixes it into 16 image features, and two
    stride-2 convs later little of the tilt is left for the residual blocks that shape the face.
    ``inject="blocks"``: the map, average-pooled to S/4, is concatenated to the input of every residual
    block (one extra input channel per block); ``inject="all"``: also to the input of both decoder stages
    (at S/4 and S/2), so the layers that place the eyes and the mouth see the ramp at their own resolution.
    The first conv (the stem) reads 4 channels, as in the plain angle model.
    """

    def __init__(self, ngf: int = 64, n_blocks: int = 9, inject: str = "all", upsampling: str = "transpose"):
        super().__init__()
        if inject not in ("blocks", "all"):
            raise ValueError(f"inject must be 'blocks' or 'all', got {inject!r}")
        self.inject = inject
        base = ResnetGenerator(ngf, n_blocks, in_channels=4, upsampling=upsampling)
        self.stem, self.down, self.to_rgb = base.stem, base.down, base.to_rgb
        self.blocks = nn.ModuleList([AngleResnetBlock(4 * ngf) for _ in range(n_blocks)])
        extra = 1 if inject == "all" else 0
        self.up = nn.ModuleList([
            nn.Sequential(upsample_layer(4 * ngf + extra, 2 * ngf, upsampling), norm_layer("instance", 2 * ngf),
                          activation_layer("relu")),
            nn.Sequential(upsample_layer(2 * ngf + extra, ngf, upsampling), norm_layer("instance", ngf),
                          activation_layer("relu")),
        ])
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 4:
            raise ValueError(f"this generator reads [image, angle map]: 4 channels, got {x.shape[1]}")
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"image sides must be multiples of 4, got {tuple(x.shape[-2:])}")
        maps = x[:, 3:]
        h = self.down(self.stem(x))
        m = F.adaptive_avg_pool2d(maps, h.shape[-2:])
        for block in self.blocks:
            h = block(h, m)
        for up in self.up:
            if self.inject == "all":
                h = torch.cat([h, F.adaptive_avg_pool2d(maps, h.shape[-2:])], 1)
            h = up(h)
        return self.to_rgb(h)


class GeometryCycleGAN(Translator):
    """CycleGAN (A = human, B = anime) with optional geometry.

    ``angle_channel``: both generators read image + angle map (4 channels) and write 3, so every path
    (translation, cycle, identity) feeds a 4-channel tensor: the cure for the channel mismatch.
    ``conditional_d``: the global discriminators also read the angle map (4 channels), so a fake whose
    tilt disagrees with its map can be caught. ``local_d``: one small PatchGAN per face part and domain
    (``D_local_A`` / ``D_local_B``, keys :data:`PARTS`) judging ``patch`` px crops.
    ``angle_injection`` (with ``angle_channel``): where the generators read the map: "input" (the 4th input
    channel only, a plain :class:`ResnetGenerator`), "blocks" or "all" (also deeper, see
    :class:`AngleResnetGenerator`). Recorded in ``config``.
    """

    def __init__(self, img_size: int = 32, ngf: int = 16, ndf: int = 16, n_blocks: int | None = None,
                 n_layers: int | None = None, angle_channel: bool = False, conditional_d: bool = False,
                 local_d: bool = False, patch: int | None = None, angle_injection: str = "input"):
        super().__init__()
        if conditional_d and not angle_channel:
            raise ValueError("conditional_d needs angle_channel=True (the discriminators read the angle map)")
        if angle_injection not in ANGLE_INJECTIONS:
            raise ValueError(f"angle_injection must be one of {ANGLE_INJECTIONS}, got {angle_injection!r}")
        if angle_injection != "input" and not angle_channel:
            raise ValueError("angle_injection needs angle_channel=True (the generators read the angle map)")
        n_blocks = default_n_blocks(img_size) if n_blocks is None else n_blocks
        n_layers = default_n_layers(img_size) if n_layers is None else n_layers
        patch = img_size // 2 if patch is None else patch
        self.config = dict(img_size=img_size, ngf=ngf, ndf=ndf, n_blocks=n_blocks, n_layers=n_layers,
                           angle_channel=angle_channel, conditional_d=conditional_d, local_d=local_d, patch=patch,
                           angle_injection=angle_injection)
        g_in = 4 if angle_channel else 3
        d_in = 4 if conditional_d else 3
        if angle_injection == "input":
            self.G_AB = ResnetGenerator(ngf, n_blocks, in_channels=g_in)
            self.G_BA = ResnetGenerator(ngf, n_blocks, in_channels=g_in)
        else:
            self.G_AB = AngleResnetGenerator(ngf, n_blocks, inject=angle_injection)
            self.G_BA = AngleResnetGenerator(ngf, n_blocks, inject=angle_injection)
        self.D_A = PatchDiscriminator(ndf, n_layers, in_channels=d_in)
        self.D_B = PatchDiscriminator(ndf, n_layers, in_channels=d_in)
        if local_d:
            self.D_local_A = nn.ModuleDict({p: PatchDiscriminator(ndf, 1) for p in PARTS})
            self.D_local_B = nn.ModuleDict({p: PatchDiscriminator(ndf, 1) for p in PARTS})

    @property
    def angle_channel(self) -> bool:
        return self.config["angle_channel"]

    def generator(self, direction: str) -> nn.Module:
        self.check_direction(direction)
        return self.G_AB if direction == "human->anime" else self.G_BA

    def translate(self, x: torch.Tensor, direction: str = "human->anime",
                  roll: torch.Tensor | None = None) -> torch.Tensor:
        """One batch (N, 3, S, S) in [-1, 1] -> (N, 3, S, S) in [-1, 1]. ``roll`` (N,) in degrees: the faces'
        roll angles, needed (and only used) when the generators read the angle map."""
        G = self.generator(direction)
        if not self.angle_channel:
            return G(x)
        if roll is None:
            raise ValueError("this model's generators read an angle map: pass roll= (degrees, one per image)")
        return G(with_channel(x, angle_map(torch.as_tensor(roll, dtype=torch.float32), x.shape[-1]).to(x.device)))

    def generators(self) -> list[nn.Parameter]:
        return [*self.G_AB.parameters(), *self.G_BA.parameters()]

    def discriminators(self) -> list[nn.Parameter]:
        return [*self.D_A.parameters(), *self.D_B.parameters()]

    def local_discriminators(self) -> list[nn.Parameter]:
        if not self.config["local_d"]:
            return []
        return [*self.D_local_A.parameters(), *self.D_local_B.parameters()]


@dataclass
class GeometryLosses:
    """The terms of the generator objective (0-d tensors) and the fakes they used."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]
    fake_A: torch.Tensor
    fake_B: torch.Tensor
    centres_fake_A: dict[str, torch.Tensor] | None = None
    centres_fake_B: dict[str, torch.Tensor] | None = None


@dataclass
class GeometryBatch:
    """One training batch: images in [-1, 1], roll angles (degrees) and, where known, landmarks in [-1, 1]."""

    a: torch.Tensor
    b: torch.Tensor
    roll_a: torch.Tensor | None = None
    roll_b: torch.Tensor | None = None
    lm_a: torch.Tensor | None = None
    lm_b: torch.Tensor | None = None


@dataclass
class GeometryWeights:
    """Loss weights: cycle, identity (relative to cycle, as in the paper), landmark consistency, local D."""

    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    lambda_landmark: float = 0.0
    lambda_local: float = 0.0


@dataclass
class FaceGeometry:
    """The geometry of one set of faces: images (N, 3, S, S) in [-1, 1], roll (N,) in degrees, landmarks
    (N, 5, 2) in [-1, 1] or None, and ``found`` (N,) bool: where the roll was measured (always on ToyFaces)."""

    images: torch.Tensor
    roll: torch.Tensor
    landmarks: torch.Tensor | None
    found: torch.Tensor

    @classmethod
    def of(cls, dataset) -> "FaceGeometry":
        """ToyFaces sets (with ``.landmarks``): the roll of the eye line of their exact landmarks, as a detector
        would read it. Other sets (real photos, ``.images`` uint8 and ``.domain``): the roll from
        :func:`rolls_from_detector` (0 where no eyes are found), no landmarks."""
        images = dataset.tensor()
        if hasattr(dataset, "landmarks"):
            lm = normalise_landmarks(dataset.landmarks, images.shape[-1])
            return cls(images, roll_from_landmarks(lm), lm, torch.ones(len(images), dtype=torch.bool))
        roll, found = rolls_from_detector(dataset.images, dataset.domain)
        return cls(images, roll, None, found)


def geometry_batch(a: FaceGeometry, b: FaceGeometry, idx_a: torch.Tensor, idx_b: torch.Tensor,
                   device: torch.device | str = "cpu") -> GeometryBatch:
    """The rows ``idx_a`` of the human set ``a`` and ``idx_b`` of the anime set ``b`` as one
    :class:`GeometryBatch` on ``device`` (landmarks None where the sets have none)."""
    def lm(g: FaceGeometry, idx: torch.Tensor) -> torch.Tensor | None:
        return None if g.landmarks is None else g.landmarks[idx].to(device)

    return GeometryBatch(a.images[idx_a].to(device), b.images[idx_b].to(device), a.roll[idx_a].to(device),
                         b.roll[idx_b].to(device), lm(a, idx_a), lm(b, idx_b))


def _maps(model: GeometryCycleGAN, roll: torch.Tensor | None, images: torch.Tensor) -> torch.Tensor | None:
    if not model.angle_channel:
        return None
    if roll is None:
        raise ValueError("this model reads an angle channel: pass the roll angles")
    return angle_map(roll, images.shape[-1]).to(images.device, images.dtype)


def angle_maps(model: GeometryCycleGAN, batch: GeometryBatch) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The angle maps (N, 1, S, S) of both images of ``batch`` (m_a, m_b); (None, None) for a model whose
    generators read no angle map (``with_channel(x, None)`` then returns ``x``)."""
    return _maps(model, batch.roll_a, batch.a), _maps(model, batch.roll_b, batch.b)


def discriminator_input(model: GeometryCycleGAN, images: torch.Tensor, maps: torch.Tensor | None) -> torch.Tensor:
    """What a global discriminator reads: [images, maps] when it is conditional (``conditional_d``), else images."""
    return with_channel(images, maps) if model.config["conditional_d"] else images



def geometry_generator_objective(model: GeometryCycleGAN, batch: GeometryBatch, w: GeometryWeights,
                                 R_A: nn.Module | None = None, R_B: nn.Module | None = None,
                                 transfer_AB: ShapeTransfer | None = None, use_local: bool = False
                                 ) -> GeometryLosses:
    """The generators' objective.

    With m(x) the angle map of x (or nothing) and [x, m] the 4-channel input:

    L = L_gan(D_B([G([a, m_a]), m_a])) + L_gan(D_A([F([b, m_b]), m_b]))
        + lambda_cycle * (|F([G([a, m_a]), m_a]) - a|_1 + |G([F([b, m_b]), m_b]) - b|_1)
        + lambda_identity * lambda_cycle * (|F([a, m_a]) - a|_1 + |G([b, m_b]) - b|_1)
        + lambda_landmark * (|R_B(G(a)) - T_AB(l_a)|^2 + |R_A(F(b)) - T_BA(l_b)|^2)
        + lambda_local * mean over parts of L_gan(D_local(crop(G(a), T_AB(l_a)))) (and for F)

    The translation keeps the source's roll, so the reconstruction reads the *source's* map, and the
    identity paths read each image with its own map: every generator call gets 4 channels.
    """
    a, b = batch.a, batch.b
    m_a, m_b = angle_maps(model, batch)
    fake_B = model.G_AB(with_channel(a, m_a))
    fake_A = model.G_BA(with_channel(b, m_b))
    zero = torch.zeros((), device=a.device)
    t = {"G_gan_AB": generator_loss(model.D_B(discriminator_input(model, fake_B, m_a))),
         "G_gan_BA": generator_loss(model.D_A(discriminator_input(model, fake_A, m_b))),
         "cycle_A": reconstruction_loss(model.G_BA(with_channel(fake_B, m_a)), a),
         "cycle_B": reconstruction_loss(model.G_AB(with_channel(fake_A, m_b)), b)}
    if w.lambda_identity > 0:
        t["idt_A"] = reconstruction_loss(model.G_BA(with_channel(a, m_a)), a)
        t["idt_B"] = reconstruction_loss(model.G_AB(with_channel(b, m_b)), b)
    else:
        t["idt_A"] = t["idt_B"] = zero
    total = t["G_gan_AB"] + t["G_gan_BA"] + w.lambda_cycle * (t["cycle_A"] + t["cycle_B"]) \
        + w.lambda_identity * w.lambda_cycle * (t["idt_A"] + t["idt_B"])

    target_B = target_A = None
    if (w.lambda_landmark > 0 or use_local) and transfer_AB is not None:
        if batch.lm_a is None or batch.lm_b is None:
            raise ValueError("landmark loss and local discriminators need the landmarks of both batches")
        target_B = transfer_AB(batch.lm_a)            # where the anime face's landmarks should be
        target_A = transfer_AB.reverse()(batch.lm_b)  # and the human face's
    if w.lambda_landmark > 0:
        if R_A is None or R_B is None or target_B is None:
            raise ValueError("the landmark loss needs R_A, R_B and transfer_AB")
        t["landmark_AB"] = F.mse_loss(R_B(fake_B), target_B)
        t["landmark_BA"] = F.mse_loss(R_A(fake_A), target_A)
        total = total + w.lambda_landmark * (t["landmark_AB"] + t["landmark_BA"])
    centres_B = centres_A = None
    if use_local:
        if not model.config["local_d"] or target_B is None:
            raise ValueError("local discriminators need a model built with local_d=True, landmarks and transfer_AB")
        centres_B, centres_A = part_centres(target_B), part_centres(target_A)
        p = model.config["patch"]
        t["local_AB"] = torch.stack([generator_loss(model.D_local_B[k](crop_patches(fake_B, centres_B[k], p)))
                                     for k in PARTS]).mean()
        t["local_BA"] = torch.stack([generator_loss(model.D_local_A[k](crop_patches(fake_A, centres_A[k], p)))
                                     for k in PARTS]).mean()
        total = total + w.lambda_local * (t["local_AB"] + t["local_BA"])
    return GeometryLosses(total, t, fake_A, fake_B, centres_A, centres_B)


def _stack_parts(images: torch.Tensor, centres: dict[str, torch.Tensor], patch: int) -> torch.Tensor:
    """Crops of every part stacked along the channels: (N, 3 * len(PARTS), patch, patch)."""
    return torch.cat([crop_patches(images, centres[k], patch) for k in PARTS], 1)


def _local_d_loss(Ds: nn.ModuleDict, real_parts: torch.Tensor, fake_parts: torch.Tensor) -> torch.Tensor:
    losses = [discriminator_loss(Ds[k](real_parts[:, 3 * i:3 * i + 3]), Ds[k](fake_parts[:, 3 * i:3 * i + 3].detach()))
              for i, k in enumerate(PARTS)]
    return torch.stack(losses).mean()


def geometry_train_step(model: GeometryCycleGAN, batch: GeometryBatch, opt_G: torch.optim.Optimizer,
                        opt_D: torch.optim.Optimizer, pool_A: ImagePool, pool_B: ImagePool, w: GeometryWeights,
                        R_A: nn.Module | None = None, R_B: nn.Module | None = None,
                        transfer_AB: ShapeTransfer | None = None, use_local: bool = False,
                        opt_local: torch.optim.Optimizer | None = None, pool_local_A: ImagePool | None = None,
                        pool_local_B: ImagePool | None = None) -> dict[str, float]:
    """One update: generators with every discriminator frozen, then the global discriminators on pooled
    fakes (with their angle maps when conditional), then (``use_local``) the local discriminators on
    pooled part crops: real parts are cut at the real landmarks, fake parts at the transferred ones."""
    frozen = [model.D_A, model.D_B] + ([model.D_local_A, model.D_local_B] if model.config["local_d"] else [])
    for D in frozen:
        D.requires_grad_(False)
    g = geometry_generator_objective(model, batch, w, R_A, R_B, transfer_AB, use_local)
    opt_G.zero_grad(set_to_none=True)
    g.total.backward()
    opt_G.step()
    for D in frozen:
        D.requires_grad_(True)

    m_a, m_b = angle_maps(model, batch)
    # the fake B came from a (so it carries a's map), the fake A from b
    pooled_B = pool_B.query(discriminator_input(model, g.fake_B.detach(), m_a))
    pooled_A = pool_A.query(discriminator_input(model, g.fake_A.detach(), m_b))
    loss_D_A = discriminator_loss(model.D_A(discriminator_input(model, batch.a, m_a)), model.D_A(pooled_A))
    loss_D_B = discriminator_loss(model.D_B(discriminator_input(model, batch.b, m_b)), model.D_B(pooled_B))
    opt_D.zero_grad(set_to_none=True)
    (loss_D_A + loss_D_B).backward()
    opt_D.step()
    out = {k: float(v.detach()) for k, v in g.terms.items()}
    out.update(D_A=float(loss_D_A.detach()), D_B=float(loss_D_B.detach()))
    if use_local:
        out.update(local_discriminator_step(model, batch, g.fake_A, g.fake_B, g.centres_fake_A, g.centres_fake_B,
                                            opt_local, pool_local_A, pool_local_B))
    return out


def local_discriminator_step(model: GeometryCycleGAN, batch: GeometryBatch, fake_A: torch.Tensor, fake_B: torch.Tensor,
                             centres_fake_A: dict[str, torch.Tensor], centres_fake_B: dict[str, torch.Tensor],
                             opt_local: torch.optim.Optimizer | None, pool_local_A: ImagePool | None,
                             pool_local_B: ImagePool | None) -> dict[str, float]:
    """One update of the local (eye / nose / mouth) discriminators: real parts are cut at the real landmarks,
    fake parts at the transferred ones (``centres_fake_*``, from the generator objective) and pooled, all parts
    of an image stacked along the channels so the pool keeps them together. Returns D_local_A, D_local_B."""
    if opt_local is None or pool_local_A is None or pool_local_B is None:
        raise ValueError("use_local needs opt_local and the two local pools")
    p = model.config["patch"]
    with torch.no_grad():
        real_parts_A = _stack_parts(batch.a, part_centres(batch.lm_a), p)
        real_parts_B = _stack_parts(batch.b, part_centres(batch.lm_b), p)
        fake_parts_A = pool_local_A.query(_stack_parts(fake_A.detach(), centres_fake_A, p))
        fake_parts_B = pool_local_B.query(_stack_parts(fake_B.detach(), centres_fake_B, p))
    loss_local_A = _local_d_loss(model.D_local_A, real_parts_A, fake_parts_A)
    loss_local_B = _local_d_loss(model.D_local_B, real_parts_B, fake_parts_B)
    opt_local.zero_grad(set_to_none=True)
    (loss_local_A + loss_local_B).backward()
    opt_local.step()
    return {"D_local_A": float(loss_local_A.detach()), "D_local_B": float(loss_local_B.detach())}


def optimisers_and_pools(model: GeometryCycleGAN, lr: float, betas: tuple[float, float],
                         lr_lambda: Callable[[int], float], pool_size: int, seed: int) -> dict[str, Any]:
    """Everything a training run of ``model`` updates besides the model, by the names a checkpoint saves them
    under: Adam ``opt_G``, ``opt_D`` (and ``opt_L`` for the local discriminators), LambdaLR schedules
    ``sched_G`` / ``sched_D``, the image pools ``pool_A``, ``pool_B``, ``pool_local_A``, ``pool_local_B`` and
    the ``torch.Generator`` ``gen`` (seeded with ``seed``) they draw from. The local discriminators have no
    scheduler: they join late, so the training step sets their learning rate itself."""
    out: dict[str, Any] = {"opt_G": torch.optim.Adam(model.generators(), lr=lr, betas=betas),
                           "opt_D": torch.optim.Adam(model.discriminators(), lr=lr, betas=betas)}
    if model.config["local_d"]:
        out["opt_L"] = torch.optim.Adam(model.local_discriminators(), lr=lr, betas=betas)
    out["sched_G"] = torch.optim.lr_scheduler.LambdaLR(out["opt_G"], lr_lambda)
    out["sched_D"] = torch.optim.lr_scheduler.LambdaLR(out["opt_D"], lr_lambda)
    out["gen"] = torch.Generator().manual_seed(seed)
    out.update({f"pool_{k}": ImagePool(pool_size, out["gen"]) for k in ("A", "B", "local_A", "local_B")})
    return out


def variant_step(train_step: Callable[..., dict[str, float]], model: GeometryCycleGAN, o: dict[str, Any],
                 human: FaceGeometry, anime: FaceGeometry, w: GeometryWeights, batch_size: int, seed: int,
                 lr: float, lr_lambda: Callable[[int], float], local_start: int | None = None,
                 R_A: nn.Module | None = None, R_B: nn.Module | None = None,
                 transfer_AB: ShapeTransfer | None = None, device: torch.device | str = "cpu"
                 ) -> Callable[[int], dict[str, float]]:
    """The step function a ``training.Run`` calls to train one variant, ``step -> losses``:

    1. the batch of step ``step``: :func:`anime_lib.training.batch_indices` (stream 0 for ``human``, 1 for
       ``anime``), so a resumed run sees the batches an uninterrupted one would;
    2. from ``local_start`` on (None: never) the local discriminators join (stage 2), at the learning rate the
       schedule gives at that step (``lr * lr_lambda(step)``; they have no scheduler of their own);
    3. ``train_step`` (the notebook's, or :func:`geometry_train_step`) with the optimisers and pools of ``o``
       (:func:`optimisers_and_pools`), the weights ``w``, the regressors and the shape transfer;
    4. both schedulers step.
    """
    from anime_lib.training import batch_indices  # a training recipe; the model definitions above need none of it

    def step_fn(step: int) -> dict[str, float]:
        ia = batch_indices(step, batch_size, len(human.images), seed, stream=0)
        ib = batch_indices(step, batch_size, len(anime.images), seed, stream=1)
        use_local = local_start is not None and step >= local_start
        for group in o["opt_L"].param_groups if use_local else []:
            group["lr"] = lr * lr_lambda(step)
        losses = train_step(model, geometry_batch(human, anime, ia, ib, device), o["opt_G"], o["opt_D"],
                            o["pool_A"], o["pool_B"], w, R_A, R_B, transfer_AB, use_local, o.get("opt_L"),
                            o["pool_local_A"], o["pool_local_B"])
        o["sched_G"].step()
        o["sched_D"].step()
        return losses

    return step_fn


# ----------------------------------------------------------------------------------------------- measurements


def landmark_error_px(predicted: torch.Tensor, target: torch.Tensor, size: int) -> float:
    """Mean distance in pixels between (N, 5, 2) landmarks in [-1, 1] of ``size`` px images."""
    return float(((predicted - target) * size / 2).norm(dim=-1).mean())


def tilted_roll_error(fake: torch.Tensor, source, tilted: torch.Tensor, probe=None) -> float | None:
    """Mean |roll the probe reads - source roll| (degrees) of the translations ``fake`` (N, 3, S, S) in
    [-1, 1] of the ToyFaces set ``source``, on the rows ``tilted`` only; None when there are none."""
    from anime_lib import metrics
    from anime_lib.ranges import to_unit_range

    if len(tilted) == 0:
        return None
    idx = torch.as_tensor(tilted).cpu()
    return metrics.roll_error(to_unit_range(fake[idx]), source.records.subset(idx.numpy()), probe)


def tilted_roll_errors(rows: list[dict[str, Any]], outputs: dict[str, dict[str, torch.Tensor]], test_sets,
                       tilted: dict[str, torch.Tensor], probe=None) -> list[dict[str, Any]]:
    """Add ``roll_error_tilted`` (:func:`tilted_roll_error` on the rows ``tilted[source domain]``) to every row of
    ``rows``: rows of ``evaluation.evaluate`` read their translations from ``outputs[method][direction]`` (what
    ``evaluate(..., outputs=)`` filled), the reference rows of ``evaluation.reference_rows`` use the source itself
    ("identity ...") or its ground-truth counterpart ("ground truth ..."). ``test_sets``: domain -> ToySet
    (``dom.test``). Returns ``rows``, changed in place."""
    for row in rows:
        src_domain = row["direction"].split("->")[0]
        src = test_sets[src_domain]
        if row["method"] in outputs:
            fake = outputs[row["method"]][row["direction"]]
        elif row["method"].startswith("identity"):
            fake = src.tensor()
        elif row["method"].startswith("ground truth"):
            fake = src.counterpart().tensor()
        else:
            raise KeyError(f"no translations of {row['method']!r} in outputs")
        row["roll_error_tilted"] = tilted_roll_error(fake, src, tilted[src_domain], probe)
    return rows


# ----------------------------------------------------------------------------------------------- real photos


def rolls_from_detector(images_uint8: torch.Tensor, domain: str,
                        work_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll angles (degrees) of real face crops (N, 3, H, W) uint8 and a mask of where eyes were found.

    Photos ("human"): OpenCV Haar face + eye cascades (:func:`anime_lib.data.faces.detect_face`);
    anime ("anime"): the optional ``animeface`` detector. Crops are enlarged to ``work_size`` px first
    (the cascades need faces of at least 24 px). Where no eyes are found the roll is 0 and the mask False.
    """
    from PIL import Image

    from anime_lib.data import faces

    detect = faces.detect_face if domain == "human" else faces.detect_anime_face
    rolls = np.zeros(len(images_uint8), dtype=np.float32)
    found = np.zeros(len(images_uint8), dtype=bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NoEyesWarning / no animeface: counted in `found` instead
        for i, img in enumerate(images_uint8):
            arr = np.ascontiguousarray(img.permute(1, 2, 0).numpy())
            pil = Image.fromarray(arr, "RGB").resize((work_size, work_size), Image.BICUBIC)
            box = detect(pil)
            if box is not None and box.eyes_found:
                rolls[i], found[i] = box.roll_degrees, True
    return torch.from_numpy(rolls), torch.from_numpy(found)
