"""AnimeGANv2 (Chen, Liu and Chen; AnimeGAN 2020, v2 2021): one fast generator that paints a photo as anime.

AnimeGAN is a *stylisation* network: no cycle, no second generator. A photo goes in, its anime version comes
out, and four losses say what "anime version" means: keep the photo's content (feature maps), take the
anime images' texture (Gram matrices of their *greyscale* versions, so the texture comes without their
colours), keep the photo's colours (YUV), and stay smooth (total variation). A discriminator, shown real
anime faces, the generator's fakes, greyscale anime and edge-smoothed greyscale anime, supplies the rest: crisp
lines and flat colours in the anime manner.

Read top to bottom:

* :class:`ConvNormLReLU`: [pad, conv (no bias), GroupNorm(1, C), LeakyReLU 0.2], the generator's unit.
* :class:`InvertedResBlock`: MobileNetV2's block (1x1 expansion x2, depthwise 3x3 with bias, 1x1 projection,
  GroupNorm; a skip connection when the channels match).
* :class:`Generator`: blocks A-E and ``out_layer`` with the module names and tensor shapes of the widely used
  PyTorch port (bryandlee/animegan2-pytorch), so its public face-portrait weights (face_paint_512_v2 and the
  others, :data:`PUBLIC_WEIGHTS`) load with ``strict=True`` into ``Generator()``; ``width`` < 1 narrows every
  layer for training on a CPU (the full layout stays the default). (N, 3, H, W) in [-1, 1] -> the same.
* :class:`Discriminator`: the paper's critic (3x3 convs with spectral norm, LayerNorm as GroupNorm(1, C),
  LeakyReLU 0.2), one logit per patch.
* :class:`AnimeGAN`: G and D, a :class:`~anime_lib.translation.Translator` for ``"human->anime"`` only.
* the losses: :func:`greyscale`, :func:`content_loss`, :func:`style_loss`, :func:`colour_loss`, and
  :func:`generator_objective` / :func:`discriminator_objective` with the paper's weights (:class:`LossWeights`);
* :func:`init_step` (the initialisation phase: content loss only) and :func:`train_step` (one adversarial
  update, D then G): the tested references of lesson 08's ``step-function`` cell;
* :func:`anime_targets` (greyscale and edge-smoothed greyscale anime, made once before training),
  :func:`freeze` (the fine-tuning recipe: chosen generator blocks frozen), :class:`Recipe`,
  :data:`PROFILE_DEFAULTS`, and :func:`fit_init` / :func:`fit`, which run both phases through
  :class:`anime_lib.training.Run` (checkpoints, resume);
* the public weights: :func:`load_public_generator` (verified download, ``weights_only`` load, strict). The port
  feeds them aligned face crops in [-1, 1] (:func:`anime_lib.data.faces.load_face` makes one from any photo).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from anime_lib.losses import gram_matrix, rgb_to_yuv, total_variation
from anime_lib.pretrained import WEIGHTS
from anime_lib.translation import Translator

__all__ = [
    "PUBLIC_WEIGHTS",
    "BLOCKS",
    "ConvNormLReLU",
    "InvertedResBlock",
    "Generator",
    "Discriminator",
    "AnimeGAN",
    "LossWeights",
    "greyscale",
    "content_loss",
    "style_loss",
    "colour_loss",
    "generator_objective",
    "discriminator_objective",
    "init_step",
    "train_step",
    "anime_targets",
    "freeze",
    "Recipe",
    "fit_init",
    "fit",
    "PROFILE_DEFAULTS",
    "load_public_generator",
]

#: The public weights of the PyTorch port (plain state_dicts), registered in :data:`anime_lib.pretrained.WEIGHTS` as
#: ``"animegan2/<name>"`` with their URLs: face_paint_512_v2 (the port's default), face_paint_512_v1, celeba_distill,
#: paprika.
PUBLIC_WEIGHTS = tuple(n.split("/", 1)[1] for n in WEIGHTS if n.startswith("animegan2/"))
#: The generator's blocks, input to output (names of the port); :func:`freeze` takes these.
BLOCKS = ("block_a", "block_b", "block_c", "block_d", "block_e", "out_layer")


def _ch(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


class ConvNormLReLU(nn.Sequential):
    """[0] pad, [1] conv (no bias unless ``bias``), [2] GroupNorm(1, C) (LayerNorm over C, H, W with a per-channel
    scale and shift), [3] LeakyReLU 0.2. ``padding``: an int (reflect on every side) or (left, right, top, bottom);
    the stride-2 convs pad only right and bottom by one, so an even side exactly halves."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1,
                 padding: int | tuple[int, int, int, int] = 1, groups: int = 1, bias: bool = False):
        super().__init__(
            nn.ReflectionPad2d(padding),
            nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=0, groups=groups, bias=bias),
            nn.GroupNorm(1, out_ch),
            nn.LeakyReLU(0.2, inplace=True),
        )


class InvertedResBlock(nn.Module):
    """(N, in_ch, H, W) -> (N, out_ch, H, W): ``layers`` = 1x1 ConvNormLReLU to ``expansion * in_ch`` channels,
    depthwise 3x3 ConvNormLReLU (with bias), 1x1 conv to ``out_ch`` (no bias), GroupNorm; plus the input when
    ``in_ch == out_ch``. Cheap: the 3x3 work is one filter per channel (MobileNetV2, Sandler et al. 2018)."""

    def __init__(self, in_ch: int, out_ch: int, expansion: int = 2):
        super().__init__()
        mid = int(round(in_ch * expansion))
        self.use_skip = in_ch == out_ch
        self.layers = nn.Sequential(
            ConvNormLReLU(in_ch, mid, kernel_size=1, padding=0),
            ConvNormLReLU(mid, mid, groups=mid, bias=True),
            nn.Conv2d(mid, out_ch, 1, bias=False),
            nn.GroupNorm(1, out_ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return x + out if self.use_skip else out


class Generator(nn.Module):
    """AnimeGANv2's generator: photo (N, 3, H, W) in [-1, 1] -> anime (N, 3, H, W) in [-1, 1]; H, W even.

    A: 7x7 conv, stride-2 conv (1/2 side), conv. B: stride-2 conv (1/4), conv. C: conv, four inverted-residual
    blocks at 256 channels, conv back to 128. Bilinear resize to 1/2, D: two convs. Resize to the input size,
    E: two convs and a 7x7 conv. ``out_layer``: 1x1 conv and tanh. Resizing and then convolving, instead of
    transposed convolutions, leaves no checkerboard.

    ``width`` multiplies every channel count (1.0: the published layout, about 2.14 M parameters, whose public
    weights load with ``strict=True``). ``align_corners``: how the bilinear resizes place their samples (the
    port's default, True).
    """

    def __init__(self, width: float = 1.0, align_corners: bool = True):
        super().__init__()
        c32, c64, c128, c256 = (_ch(c, width) for c in (32, 64, 128, 256))
        self.width, self.align_corners = float(width), bool(align_corners)
        down = (0, 1, 0, 1)  # stride 2: pad right and bottom only
        self.block_a = nn.Sequential(ConvNormLReLU(3, c32, 7, padding=3), ConvNormLReLU(c32, c64, stride=2, padding=down),
                                     ConvNormLReLU(c64, c64))
        self.block_b = nn.Sequential(ConvNormLReLU(c64, c128, stride=2, padding=down), ConvNormLReLU(c128, c128))
        self.block_c = nn.Sequential(ConvNormLReLU(c128, c128), InvertedResBlock(c128, c256),
                                     *[InvertedResBlock(c256, c256) for _ in range(3)], ConvNormLReLU(c256, c128))
        self.block_d = nn.Sequential(ConvNormLReLU(c128, c128), ConvNormLReLU(c128, c128))
        self.block_e = nn.Sequential(ConvNormLReLU(c128, c64), ConvNormLReLU(c64, c64), ConvNormLReLU(c64, c32, 7, padding=3))
        self.out_layer = nn.Sequential(nn.Conv2d(c32, 3, 1, bias=False), nn.Tanh())

    def _resize(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=self.align_corners)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f"image sides must be even, got {tuple(x.shape[-2:])}")
        h = self.block_a(x)
        half = h.shape[-2:]
        h = self.block_c(self.block_b(h))
        h = self.block_d(self._resize(h, half))
        h = self.block_e(self._resize(h, x.shape[-2:]))
        return self.out_layer(h)


class Discriminator(nn.Module):
    """Image (N, 3, S, S) in [-1, 1] -> patch logits (N, 1, S / 2**(n_layers - 1), same); > 0.5 leans "real anime".

    3x3 conv to ndf/2 + LeakyReLU; ``n_layers - 1`` times a stride-2 conv + LeakyReLU and a stride-1 conv + LayerNorm
    + LeakyReLU (ndf 64, 3 layers: 32 -> 64 -> 128 -> 128 -> 256 channels); a last conv + LayerNorm + LeakyReLU,
    then a 3x3 conv to one logit.
    Every conv has spectral norm (weights scaled to spectral norm 1, which keeps D smooth) and no bias.
    """

    def __init__(self, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")

        def conv(i: int, o: int, stride: int = 1) -> nn.Module:
            return spectral_norm(nn.Conv2d(i, o, 3, stride=stride, padding=1, bias=False))

        ch = max(1, ndf // 2)  # the paper's bookkeeping: ch doubles per stage, the maps carry 2 * ch after each
        layers: list[nn.Module] = [conv(3, ch), nn.LeakyReLU(0.2, inplace=True)]
        maps = ch
        for _ in range(1, n_layers):
            layers += [conv(maps, 2 * ch, 2), nn.LeakyReLU(0.2, inplace=True),
                       conv(2 * ch, 4 * ch), nn.GroupNorm(1, 4 * ch), nn.LeakyReLU(0.2, inplace=True)]
            maps, ch = 4 * ch, 2 * ch
        layers += [conv(maps, 2 * ch), nn.GroupNorm(1, 2 * ch), nn.LeakyReLU(0.2, inplace=True), conv(2 * ch, 1)]
        self.net = nn.Sequential(*layers)
        self.n_layers = n_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class AnimeGAN(Translator):
    """The generator ``G`` (photo -> anime) and the discriminator ``D``. ``translate(x, "human->anime")`` runs G;
    there is no reverse direction (AnimeGAN has no second generator)."""

    directions = ("human->anime",)

    def __init__(self, width: float = 1.0, ndf: int = 64, n_layers_d: int = 3):
        super().__init__()
        self.config = dict(width=width, ndf=ndf, n_layers_d=n_layers_d)
        self.G = Generator(width)
        self.D = Discriminator(ndf, n_layers_d)

    def generator(self, direction: str) -> nn.Module:
        self.check_direction(direction)
        return self.G


# ---------------------------------------------------------------------------------------------- losses


@dataclass(frozen=True)
class LossWeights:
    """The paper's weights (AnimeGANv2 defaults): adversarial 300 for G and D, content 1.5, style 2.5, colour 10,
    total variation 1; inside D's loss real 1.7, fake 1.7, greyscale 1.7, edge-smoothed greyscale 1.0."""

    adv: float = 300.0
    content: float = 1.5
    style: float = 2.5
    colour: float = 10.0
    tv: float = 1.0
    d_real: float = 1.7
    d_fake: float = 1.7
    d_grey: float = 1.7
    d_smooth: float = 1.0


def greyscale(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [-1, 1] -> its greyscale (BT.601 luma) repeated in 3 channels, still in [-1, 1]."""
    w = torch.tensor([0.299, 0.587, 0.114], device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * w).sum(1, keepdim=True).expand(-1, 3, -1, -1).contiguous()


def content_loss(features: nn.Module, fake: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """L1 between the feature maps of the fake and of its photo: the anime version keeps the photo's content."""
    with torch.no_grad():
        target = features(photo)
    return (features(fake) - target).abs().mean()


def style_loss(features: nn.Module, fake: torch.Tensor, anime_grey: torch.Tensor) -> torch.Tensor:
    """L1 between Gram matrices of the fake's features and of *greyscale* anime images' features: the texture
    of anime without its colours (the colours are the photo's, :func:`colour_loss`). The batches may differ
    (unpaired): each fake is compared with the anime image at the same position."""
    with torch.no_grad():
        target = gram_matrix(features(anime_grey))
    return (gram_matrix(features(fake)) - target).abs().mean()


def colour_loss(fake: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """In YUV: L1 on the brightness Y plus Huber (smooth L1, delta 1) on the colour channels U and V, against
    the photo (both in [-1, 1]): the anime version keeps the photo's colours."""
    f, p = rgb_to_yuv(fake), rgb_to_yuv(photo)
    return (f[:, 0] - p[:, 0]).abs().mean() + F.huber_loss(f[:, 1], p[:, 1]) + F.huber_loss(f[:, 2], p[:, 2])


def _lsgan(logits: torch.Tensor, target: float) -> torch.Tensor:
    return (logits - target).pow(2).mean()


def generator_objective(model: AnimeGAN, features: nn.Module, photo: torch.Tensor, anime_grey: torch.Tensor,
                        w: LossWeights = LossWeights(), fake: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """G's loss terms on photos and greyscale anime images ((N, 3, S, S), [-1, 1]) and their weighted sum ``total``:

    adv * (D(G(x)) - 1)^2 + content * |phi(G(x)) - phi(x)|_1 + style * |Gram phi(G(x)) - Gram phi(grey(a))|_1
    + colour * YUV(G(x), x) + tv * TV(G(x)).  ``fake``: G(photo) when it is computed already.
    """
    fake = model.G(photo) if fake is None else fake
    terms = {"G_adv": _lsgan(model.D(fake), 1.0), "content": content_loss(features, fake, photo),
             "style": style_loss(features, fake, anime_grey), "colour": colour_loss(fake, photo),
             "tv": total_variation(fake)}
    terms["total"] = (w.adv * terms["G_adv"] + w.content * terms["content"] + w.style * terms["style"]
                      + w.colour * terms["colour"] + w.tv * terms["tv"])
    return terms


def discriminator_objective(D: nn.Module, anime: torch.Tensor, fake: torch.Tensor, anime_grey: torch.Tensor,
                            smooth_grey: torch.Tensor, w: LossWeights = LossWeights()) -> torch.Tensor:
    """adv * [1.7 (D(a) - 1)^2 + 1.7 D(G(x))^2 + 1.7 D(grey(a))^2 + 1.0 D(smooth(grey(a)))^2] (LSGAN, means).

    Greyscale anime counts as fake, so D cannot accept an image for its texture alone: anime has its colours.
    Edge-smoothed anime counts as fake, so crisp lines are what makes an image anime.
    """
    return w.adv * (w.d_real * _lsgan(D(anime), 1.0) + w.d_fake * _lsgan(D(fake.detach()), 0.0)
                    + w.d_grey * _lsgan(D(anime_grey), 0.0) + w.d_smooth * _lsgan(D(smooth_grey), 0.0))


def init_step(G: nn.Module, photo: torch.Tensor, opt: torch.optim.Optimizer, features: nn.Module,
              w: LossWeights = LossWeights()) -> dict[str, float]:
    """One step of the initialisation phase: G learns to reproduce the content of its photo (content loss only),
    so the adversarial phase starts from a generator that already keeps the face."""
    loss = w.content * content_loss(features, G(photo), photo)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {"init_content": float(loss.detach()) / w.content}


def train_step(model: AnimeGAN, photo: torch.Tensor, anime: torch.Tensor, anime_grey: torch.Tensor,
               smooth_grey: torch.Tensor, opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer,
               features: nn.Module, w: LossWeights = LossWeights()) -> dict[str, float]:
    """One adversarial update, in the order of the authors' code: D on real, fake, greyscale and edge-smoothed
    greyscale anime, then G (D frozen) on the same fakes. Photos and anime faces are unpaired batches of the same
    size in [-1, 1]; ``anime_grey`` and ``smooth_grey`` belong to ``anime`` (:func:`anime_targets`)."""
    fake = model.G(photo)
    loss_D = discriminator_objective(model.D, anime, fake, anime_grey, smooth_grey, w)
    opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    opt_D.step()
    model.D.requires_grad_(False)
    terms = generator_objective(model, features, photo, anime_grey, w, fake=fake)
    opt_G.zero_grad(set_to_none=True)
    terms["total"].backward()
    opt_G.step()
    model.D.requires_grad_(True)
    out = {k: float(v.detach()) for k, v in terms.items() if k != "total"}
    out["D"] = float(loss_D.detach()) / w.adv
    return out


def anime_targets(anime: torch.Tensor, kernel: int = 5, batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """The discriminator's two extra "fake" sets, made once before training: greyscale anime and edge-smoothed
    greyscale anime ((N, 3, S, S) in [-1, 1] each; the three channels are views of one, so a set costs a third of
    its size). ``kernel``: the edge zone and blur size (CartoonGAN's 5 px at 256 px; scale it down for small images)."""
    from anime_lib.data.stylise import edge_smooth_tensor

    grey, smooth = [], []
    for i in range(0, len(anime), batch):
        part = anime[i:i + batch]
        grey.append(greyscale(part)[:, :1])
        smooth.append(greyscale(edge_smooth_tensor(part, kernel))[:, :1])
    return tuple(torch.cat(t).expand(-1, 3, -1, -1) for t in (grey, smooth))


def freeze(G: Generator, blocks: Iterable[str]) -> list[nn.Parameter]:
    """Freeze the named blocks of ``G`` (``requires_grad`` off) and return the parameters left to train: the
    fine-tuning recipe of one student report (early blocks frozen, small learning rates). ``blocks``: names from
    :data:`BLOCKS`, e.g. ("block_a", "block_b")."""
    blocks = tuple(blocks)
    unknown = [b for b in blocks if b not in BLOCKS]
    if unknown:
        raise ValueError(f"unknown generator blocks {unknown}; choose from {BLOCKS}")
    for name in BLOCKS:
        getattr(G, name).requires_grad_(name not in blocks)
    return [p for p in G.parameters() if p.requires_grad]


# ---------------------------------------------------------------------------------------------- recipe

#: Lesson 08's profile defaults. cpu: 64 px, a quarter-width generator, learning rates 10x the paper's (which are
#: meant for about 50,000 steps) and an adversarial weight of 10 (the paper's 300 balances the authors' VGG19, which
#: reads 0-255 pixel values and has far larger feature maps than the probe); gpu: the paper's generator and loss
#: weights, and the fine-tuning recipe applied to the public face_paint_512_v2 weights, on ToyFaces at 128 px (the
#: paper: 256) with batch 4 (the paper: 12), runs short enough for its T4 budget (``benchmarks/gpu_budget.py``)
#: and so, like cpu, learning rates 10x the paper's.
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "smoke": {"IMG_SIZE": 32, "BATCH_SIZE": 4, "N_TRAIN": 128, "N_EVAL": 96, "N_INIT_STEPS": 3, "N_STEPS": 6,
              "WIDTH": 0.25, "NDF": 16, "N_LAYERS_D": 2, "FEATURES": "probe", "ADV_WEIGHT": 10.0, "G_LR": 2e-4,
              "D_LR": 4e-4, "EDGE_KERNEL": 3, "FINETUNE_STEPS": 4, "FINETUNE_START": "init",
              "DOWNLOAD_WEIGHTS": False, "CHECKPOINT_EVERY": 3},
    "cpu": {"IMG_SIZE": 64, "BATCH_SIZE": 4, "N_TRAIN": 4000, "N_EVAL": 500, "N_INIT_STEPS": 300, "N_STEPS": 1000,
            "WIDTH": 0.25, "NDF": 16, "N_LAYERS_D": 3, "FEATURES": "probe", "ADV_WEIGHT": 10.0, "G_LR": 2e-4,
            "D_LR": 4e-4, "EDGE_KERNEL": 3, "FINETUNE_STEPS": 1000, "FINETUNE_START": "init",
            "DOWNLOAD_WEIGHTS": True, "CHECKPOINT_EVERY": 100},
    "gpu": {"IMG_SIZE": 128, "BATCH_SIZE": 4, "N_TRAIN": 3400, "N_EVAL": 500, "N_INIT_STEPS": 400, "N_STEPS": 1800,
            "WIDTH": 1.0, "NDF": 64, "N_LAYERS_D": 3, "FEATURES": "vgg19", "ADV_WEIGHT": 300.0, "G_LR": 2e-4,
            "D_LR": 4e-4, "EDGE_KERNEL": 3, "FINETUNE_STEPS": 400, "FINETUNE_START": "face_paint_512_v2",
            "DOWNLOAD_WEIGHTS": True, "CHECKPOINT_EVERY": 500},
}


@dataclass(frozen=True)
class Recipe:
    """Every setting that shapes an AnimeGAN run: networks, loss weights, learning rates, where G starts, frozen blocks.

    ``features``: "probe" or "vgg19" (:mod:`anime_lib.perceptual`). ``start``: "init" (the generator of the
    initialisation phase) or the name of public weights (:data:`PUBLIC_WEIGHTS`, full width only). ``freeze``:
    generator blocks kept fixed. ``data``: a name for the training data. The defaults are the paper's.
    """

    img_size: int = 256
    batch_size: int = 12
    width: float = 1.0
    ndf: int = 64
    n_layers_d: int = 3
    features: str = "vgg19"
    adv_weight: float = 300.0
    con_weight: float = 1.5
    sty_weight: float = 2.5
    color_weight: float = 10.0
    tv_weight: float = 1.0
    init_lr: float = 2e-4
    g_lr: float = 2e-5
    d_lr: float = 4e-5
    beta1: float = 0.5
    beta2: float = 0.999
    edge_kernel: int = 5
    start: str = "init"
    freeze: tuple[str, ...] = ()

    @classmethod
    def from_params(cls, P: Any, **changes: Any) -> "Recipe":
        """The recipe from a lesson's resolved parameters (``WIDTH``, ``ADV_WEIGHT``, ``G_LR`` ...; a field whose
        upper-cased name is a parameter), then ``changes`` (field names)."""
        values = {f.name: getattr(P, f.name.upper()) for f in fields(cls) if hasattr(P, f.name.upper())}
        return replace(cls(**values), **changes)

    def finetuned(self, start: str, freeze: Iterable[str], lr_scale: float) -> "Recipe":
        """The fine-tuning recipe of one student report: start from ``start``, keep the ``freeze`` blocks fixed and
        train the rest with both learning rates multiplied by ``lr_scale``."""
        return replace(self, start=start, freeze=tuple(freeze), g_lr=self.g_lr * lr_scale, d_lr=self.d_lr * lr_scale)

    def weights(self) -> LossWeights:
        return LossWeights(adv=self.adv_weight, content=self.con_weight, style=self.sty_weight,
                           colour=self.color_weight, tv=self.tv_weight)

    def config(self, **extra: Any) -> dict[str, Any]:
        """The settings for :class:`anime_lib.training.Run` (lists instead of tuples, as checkpoints store them)."""
        return {**{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}, **extra}

    def build(self) -> AnimeGAN:
        return AnimeGAN(self.width, self.ndf, self.n_layers_d)


def fit_init(run: Any, recipe: Recipe, photos: torch.Tensor, n_steps: int, features: nn.Module, *, step=None,
             device: torch.device | str = "cpu", checkpoint_every: int | None = 100):
    """The initialisation phase through ``run`` (a :class:`anime_lib.training.Run` made just before): a fresh
    ``Generator(recipe.width)`` trained with ``step`` (default :func:`init_step`) on batches of ``photos``
    ((N, 3, S, S) in [-1, 1]) picked from the step number, Adam at ``recipe.init_lr``. Returns ``(G, RunResult)``."""
    from anime_lib.training import batch_indices

    device = torch.device(device)
    G = Generator(recipe.width).to(device)
    opt = torch.optim.Adam(G.parameters(), lr=recipe.init_lr, betas=(recipe.beta1, recipe.beta2))
    step, w, features = step or init_step, recipe.weights(), features.to(device)

    def step_fn(i: int) -> Mapping[str, float]:
        idx = batch_indices(i, recipe.batch_size, len(photos), run.seed, stream=2).to(photos.device)
        return step(G, photos[idx].to(device), opt, features, w)

    result = run.train(step_fn, n_steps, save={"G": G, "opt": opt}, checkpoint_every=checkpoint_every)
    return G.eval(), result


def fit(run: Any, recipe: Recipe, photos: torch.Tensor, anime: torch.Tensor, targets: tuple[torch.Tensor, torch.Tensor],
        n_steps: int, features: nn.Module, start: Mapping[str, torch.Tensor] | None = None, *, step=None,
        device: torch.device | str = "cpu", checkpoint_every: int | None = 100):
    """The adversarial phase through ``run``: ``recipe.build()``, G loaded from ``start`` (a generator state_dict:
    the initialisation phase's or public weights), the ``recipe.freeze`` blocks frozen, Adam at ``g_lr`` / ``d_lr``,
    ``step`` (default :func:`train_step`) on unpaired batches of ``photos`` and ``anime`` picked from the step number,
    with ``targets`` = :func:`anime_targets` (anime). Returns ``(AnimeGAN, RunResult)``; a re-run resumes."""
    from anime_lib.training import batch_indices

    device = torch.device(device)
    model = recipe.build().to(device)
    if start is not None:
        model.G.load_state_dict(start)
    opt_G = torch.optim.Adam(freeze(model.G, recipe.freeze), lr=recipe.g_lr, betas=(recipe.beta1, recipe.beta2))
    opt_D = torch.optim.Adam(model.D.parameters(), lr=recipe.d_lr, betas=(recipe.beta1, recipe.beta2))
    step, w, features = step or train_step, recipe.weights(), features.to(device)
    grey, smooth = targets

    def step_fn(i: int) -> Mapping[str, float]:  # the sets stay where they are (CPU RAM); each batch moves
        a = batch_indices(i, recipe.batch_size, len(photos), run.seed, stream=0).to(photos.device)
        b = batch_indices(i, recipe.batch_size, len(anime), run.seed, stream=1).to(anime.device)
        return step(model, photos[a].to(device), *(t[b].to(device) for t in (anime, grey, smooth)), opt_G, opt_D,
                    features, w)

    result = run.train(step_fn, n_steps, save={"model": model, "opt_G": opt_G, "opt_D": opt_D},
                       checkpoint_every=checkpoint_every)
    return model.eval(), result


# ---------------------------------------------------------------------------------------------- public weights


def load_public_generator(name: str = "face_paint_512_v2", download: bool = True) -> Generator:
    """The full-size :class:`Generator` with the public weights ``name`` (:data:`PUBLIC_WEIGHTS`), registered in
    :data:`anime_lib.pretrained.WEIGHTS` as ``"animegan2/<name>"``: downloaded once into the cache folder, its size
    and hash checked, read with ``weights_only=True`` and loaded with ``strict=True`` (a file of another layout is
    refused by name). Raises :class:`anime_lib.pretrained.WeightsError` when it cannot be had (offline)."""
    from anime_lib.pretrained import WeightsError, load_weights_file, weights_path

    path = weights_path(f"animegan2/{name}", download=download)
    state = load_weights_file(path, what=f"AnimeGANv2 weights {name!r}")
    G = Generator()
    try:
        G.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise WeightsError(f"AnimeGANv2 weights {name!r} ({path}) do not fit the generator's layout: "
                           f"{str(exc).splitlines()[0]}") from None
    return G.eval()

