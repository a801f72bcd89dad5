"""U-GAT-IT (Kim, Kim, Kang and Lee 2020), the "light" variant, scaled to small images.

U-GAT-IT is a CycleGAN (two generators, cycle and identity losses, LSGAN) with two extra ideas:

* **CAM attention** (:class:`CAM`): an auxiliary classifier on the pooled encoder features. Its weight
  vector says which feature channels tell the domains apart; the features are rescaled by those weights,
  and the channel sum of the result is a *heatmap* of where the network looks. Generators and
  discriminators both carry one. The generator's classifier is trained to answer "does this input need
  translating?" (source domain 1, target domain 0); a discriminator's CAM logit is one more real/fake score.
* **AdaLIN** (:class:`AdaLIN`): a normalisation that mixes InstanceNorm and LayerNorm with a learned ratio
  ``rho`` per channel, ``rho * IN(x) + (1 - rho) * LN(x)``, scaled and shifted by ``gamma, beta``
  predicted from the image by an MLP. IN keeps the input's local contrast (small shape changes), LN
  normalises over all channels together (large, global style changes); the model picks per layer.
  :func:`clip_rho_` keeps every ``rho`` in [0, 1] after each optimiser step.

Read top to bottom:

* :class:`AdaLIN`, :class:`LIN`, :func:`clip_rho_`, :func:`rho_values`;
* :class:`CAM`, the attention head shared by G and D;
* :class:`UGATITGenerator`: encoder (7x7 conv, ``n_down`` stride-2 convs, residual blocks with
  InstanceNorm), CAM, an MLP (light: on the average-pooled features) predicting gamma/beta, decoder of
  residual blocks with AdaLIN, ``n_down`` x (nearest upsample, conv, LIN, ReLU), 7x7 conv, tanh.
  ``forward(x) -> (image, cam_logit (N, 2), heatmap (N, 1, S / 2**n_down, same))``;
* :class:`UGATITDiscriminator`: spectral-norm stride-2 convs, CAM, a patch-logit conv;
  ``forward(x) -> (patch logits, cam_logit (N, 2), heatmap)``; a *global* and a *local* one per domain,
  with depths from :func:`default_d_layers`;
* :class:`UGATIT` (the six networks, a :class:`~anime_lib.translation.Translator`: ``translate(x, direction)``
  gives the image, ``extras(x, direction)`` the generator's CAM logits and heatmap),
  :func:`generator_objective`, :func:`discriminator_objective`, :func:`train_step` (the tested reference of
  lesson 06's step-function cell), :func:`fit` (a resumable run of a step with lesson 06's optimiser and schedule);
* reading a trained model: :func:`upsample_heatmap`, :func:`discriminator_attention`,
  :func:`attention_summary`, :func:`centre_share`, :func:`heatmap_overlay`, :func:`attention_grid`, :func:`rho_table`, :func:`plot_rho`;
* sizes: :func:`generator_sizes`, :func:`depth_table`.

Conventions follow the authors' code: convolutions of G without bias, InstanceNorm without affine
parameters, PyTorch's default initialisation, no image pool.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from anime_lib.models.blocks import eval_mode
from anime_lib.ranges import to_unit_range
from anime_lib.translation import Translator, translate_set

__all__ = [
    "default_n_res",
    "default_d_layers",
    "d_receptive_field",
    "AdaLIN",
    "LIN",
    "clip_rho_",
    "rho_values",
    "CAM",
    "ResnetBlock",
    "ResnetAdaLINBlock",
    "UGATITGenerator",
    "UGATITDiscriminator",
    "UGATIT",
    "LossWeights",
    "UGATITLosses",
    "generator_objective",
    "discriminator_objective",
    "train_step",
    "fit",
    "upsample_heatmap",
    "mlp_input_size",
    "discriminator_attention",
    "centre_share",
    "attention_summary",
    "heatmap_overlay",
    "attention_grid",
    "rho_table",
    "plot_rho",
    "generator_sizes",
    "depth_table",
]


# --------------------------------------------------------------------------------------------------
# Sizes scaled to the image
# --------------------------------------------------------------------------------------------------


def default_n_res(img_size: int) -> int:
    """Residual blocks in the encoder (and as many AdaLIN blocks in the decoder): 4 from 128 px up
    (the paper, at 256 px), 3 at 64 px, 2 below."""
    if img_size >= 128:
        return 4
    return 3 if img_size >= 64 else 2


def d_receptive_field(n_down: int) -> int:
    """Side in pixels of the input square one patch logit of :class:`UGATITDiscriminator` sees.

    The discriminator has ``n_down`` stride-2 4x4 convs, then two stride-1 4x4 convs (the last block and
    the logit conv); walk them backwards: r -> r + 3 for a stride-1 conv, r -> 2 (r - 1) + 4 for a stride-2 one.
    """
    r = 1 + 3 + 3
    for _ in range(n_down):
        r = (r - 1) * 2 + 4
    return r


def default_d_layers(img_size: int) -> tuple[int, int]:
    """(global, local) stride-2 layers of the two discriminators for an image side.

    The paper (256 px) uses 5 and 3: one global logit sees 286 px (the whole face), one local logit 70 px
    (about a quarter of the side, the PatchGAN patch). Five stride-2 convs on a 32 px image would leave a
    1x1 map that cannot even be reflect-padded, so the rule keeps the *meaning* instead of the count:
    the global D gets just enough layers that a logit sees the whole image, the local D two fewer
    (at least one). 256 px -> (5, 3), 128 -> (4, 2), 64 -> (3, 1), 32 -> (2, 1).
    """
    n_global = 1
    while d_receptive_field(n_global) < img_size:
        n_global += 1
    return n_global, max(1, n_global - 2)


# --------------------------------------------------------------------------------------------------
# AdaLIN and LIN
# --------------------------------------------------------------------------------------------------


def _instance_and_layer_norm(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(IN(x), LN(x)) of a (N, C, H, W) tensor, both without affine parameters (biased variance)."""
    in_mean = x.mean(dim=(2, 3), keepdim=True)
    in_var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
    ln_mean = x.mean(dim=(1, 2, 3), keepdim=True)
    ln_var = x.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
    return (x - in_mean) / torch.sqrt(in_var + eps), (x - ln_mean) / torch.sqrt(ln_var + eps)


class AdaLIN(nn.Module):
    """Adaptive Layer-Instance Normalisation: (N, C, H, W), gamma (N, C), beta (N, C) -> (N, C, H, W).

    ``out = (rho * IN(x) + (1 - rho) * LN(x)) * gamma + beta`` with a learned ``rho`` per channel
    (initialised at 0.9, kept in [0, 1] by :func:`clip_rho_`); gamma and beta come from the generator's MLP.
    """

    def __init__(self, channels: int, eps: float = 1e-5, rho_init: float = 0.9):
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.full((1, channels, 1, 1), float(rho_init)))

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        x_in, x_ln = _instance_and_layer_norm(x, self.eps)
        mixed = self.rho * x_in + (1 - self.rho) * x_ln
        return mixed * gamma[:, :, None, None] + beta[:, :, None, None]


class LIN(nn.Module):
    """Layer-Instance Normalisation of the up-sampling blocks: AdaLIN with its own learned gamma and beta
    (initialised to 1 and 0) and ``rho`` starting at 0, i.e. plain LayerNorm at initialisation."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_in, x_ln = _instance_and_layer_norm(x, self.eps)
        return (self.rho * x_in + (1 - self.rho) * x_ln) * self.gamma + self.beta


@torch.no_grad()
def clip_rho_(module: nn.Module, low: float = 0.0, high: float = 1.0) -> nn.Module:
    """The "rho clipper": clamp the ``rho`` of every AdaLIN / LIN inside ``module`` to [low, high], in place.

    Gradient steps may push rho outside [0, 1], where the mix would extrapolate beyond IN or LN; the
    authors clip after every generator update. Returns ``module``.
    """
    for m in module.modules():
        if isinstance(m, (AdaLIN, LIN)):
            m.rho.clamp_(low, high)
    return module


@torch.no_grad()
def rho_values(module: nn.Module) -> dict[str, float]:
    """Mean rho of each AdaLIN / LIN layer inside ``module``, keyed by the layer's name, in forward order."""
    return {name: float(m.rho.mean()) for name, m in module.named_modules() if isinstance(m, (AdaLIN, LIN))}


# --------------------------------------------------------------------------------------------------
# The CAM attention head
# --------------------------------------------------------------------------------------------------


class CAM(nn.Module):
    """Class-activation-map attention: (N, C, h, w) -> (features (N, C, h, w), cam_logit (N, 2), heatmap (N, 1, h, w)).

    Global average pooling and global max pooling each feed a bias-free ``Linear(C -> 1)``: two logits of
    an auxiliary domain classifier. Their weight vectors ``w`` (one number per channel) rescale the feature
    map, ``x * w``, so the channels that decide the class are amplified; the two rescaled maps are
    concatenated, a 1x1 conv brings them back to C channels, then ``activation``. The heatmap is the
    channel sum of the result: large where the decisive features sit. ``sn`` wraps the two classifiers
    and the 1x1 conv in spectral norm (discriminators).
    """

    def __init__(self, channels: int, activation: nn.Module, sn: bool = False):
        super().__init__()
        wrap = spectral_norm if sn else (lambda m: m)
        self.gap_fc = wrap(nn.Linear(channels, 1, bias=False))
        self.gmp_fc = wrap(nn.Linear(channels, 1, bias=False))
        self.conv1x1 = nn.Conv2d(2 * channels, channels, 1)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        gap_logit = self.gap_fc(x.mean(dim=(2, 3)))
        gmp_logit = self.gmp_fc(x.amax(dim=(2, 3)))
        gap_weighted = x * self.gap_fc.weight[0][None, :, None, None]
        gmp_weighted = x * self.gmp_fc.weight[0][None, :, None, None]
        cam_logit = torch.cat([gap_logit, gmp_logit], dim=1)
        features = self.activation(self.conv1x1(torch.cat([gap_weighted, gmp_weighted], dim=1)))
        heatmap = features.sum(dim=1, keepdim=True)
        return features, cam_logit, heatmap


# --------------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------------


class ResnetBlock(nn.Module):
    """Encoder block (N, C, H, W) -> same: x + [pad, conv3 (no bias), IN, ReLU, pad, conv3, IN](x)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=False), nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=False), nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetAdaLINBlock(nn.Module):
    """Decoder block: x + [pad, conv3, AdaLIN(gamma, beta), ReLU, pad, conv3, AdaLIN(gamma, beta)](x)."""

    def __init__(self, channels: int):
        super().__init__()
        self.pad1, self.conv1 = nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=False)
        self.norm1 = AdaLIN(channels)
        self.pad2, self.conv2 = nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=False)
        self.norm2 = AdaLIN(channels)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(self.pad1(x)), gamma, beta))
        return x + self.norm2(self.conv2(self.pad2(h)), gamma, beta)


class UGATITGenerator(nn.Module):
    """Image (N, 3, S, S) in [-1, 1] -> (image (N, 3, S, S) in [-1, 1], cam_logit (N, 2), heatmap (N, 1, s, s)).

    ``s = S / 2**n_down``. Channels: ``ngf`` at full size, doubling at each of the ``n_down`` stride-2 convs
    (C = ngf * 2**n_down where the ``n_res`` residual blocks, the CAM head and the AdaLIN blocks work).
    ``light=True`` feeds the MLP the average-pooled features (C numbers); ``light=False`` (the paper's full
    model) feeds it the whole flattened map (C * s * s numbers), which needs ``img_size``.
    """

    def __init__(self, ngf: int = 64, n_res: int = 4, img_size: int = 256, light: bool = True, n_down: int = 2):
        super().__init__()
        self.n_down, self.light, self.img_size = n_down, light, img_size
        enc: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, bias=False), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        ch = ngf
        for _ in range(n_down):
            enc += [nn.ReflectionPad2d(1), nn.Conv2d(ch, 2 * ch, 3, stride=2, bias=False), nn.InstanceNorm2d(2 * ch), nn.ReLU(True)]
            ch *= 2
        enc += [ResnetBlock(ch) for _ in range(n_res)]
        self.encoder = nn.Sequential(*enc)
        self.cam = CAM(ch, nn.ReLU(True))

        mlp_in = ch if light else ch * (img_size // 2 ** n_down) ** 2
        self.mlp = nn.Sequential(nn.Linear(mlp_in, ch, bias=False), nn.ReLU(True), nn.Linear(ch, ch, bias=False), nn.ReLU(True))
        self.gamma = nn.Linear(ch, ch, bias=False)
        self.beta = nn.Linear(ch, ch, bias=False)

        self.decoder_blocks = nn.ModuleList(ResnetAdaLINBlock(ch) for _ in range(n_res))
        up: list[nn.Module] = []
        for _ in range(n_down):
            up += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                   nn.Conv2d(ch, ch // 2, 3, bias=False), LIN(ch // 2), nn.ReLU(True)]
            ch //= 2
        up += [nn.ReflectionPad2d(3), nn.Conv2d(ch, 3, 7, bias=False), nn.Tanh()]
        self.up = nn.Sequential(*up)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        step = 2 ** self.n_down
        if x.shape[-1] % step or x.shape[-2] % step:
            raise ValueError(f"image sides must be multiples of {step}, got {tuple(x.shape[-2:])}")
        features, cam_logit, heatmap = self.cam(self.encoder(x))
        if self.light:
            style = features.mean(dim=(2, 3))
        else:
            if features.shape[-1] * step != self.img_size:
                raise ValueError(f"the full MLP was built for {self.img_size} px images, got {x.shape[-1]} px")
            style = features.flatten(1)
        style = self.mlp(style)
        gamma, beta = self.gamma(style), self.beta(style)
        h = features
        for block in self.decoder_blocks:
            h = block(h, gamma, beta)
        return self.up(h), cam_logit, heatmap


# --------------------------------------------------------------------------------------------------
# Discriminator
# --------------------------------------------------------------------------------------------------


class UGATITDiscriminator(nn.Module):
    """Image (N, 3, S, S) -> (patch logits (N, 1, S / 2**n_down - 2, same), cam_logit (N, 2), heatmap).

    ``n_down`` spectral-norm stride-2 4x4 convs (channels ndf, 2 ndf, 4 ndf, ...) with LeakyReLU 0.2 and
    reflect padding, one stride-1 4x4 conv doubling the channels again, the CAM head (spectral norm,
    LeakyReLU), and a stride-1 4x4 conv to one logit per patch (no sigmoid: LSGAN). Each logit sees a
    :func:`d_receptive_field` (n_down) pixel square. No normalisation layers: spectral norm alone.
    """

    def __init__(self, ndf: int = 64, n_down: int = 5):
        super().__init__()
        if n_down < 1:
            raise ValueError(f"n_down must be >= 1, got {n_down}")
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), spectral_norm(nn.Conv2d(3, ndf, 4, stride=2)), nn.LeakyReLU(0.2, True)]
        ch = ndf
        for _ in range(n_down - 1):
            layers += [nn.ReflectionPad2d(1), spectral_norm(nn.Conv2d(ch, 2 * ch, 4, stride=2)), nn.LeakyReLU(0.2, True)]
            ch *= 2
        layers += [nn.ReflectionPad2d(1), spectral_norm(nn.Conv2d(ch, 2 * ch, 4, stride=1)), nn.LeakyReLU(0.2, True)]
        ch *= 2
        self.body = nn.Sequential(*layers)
        self.cam = CAM(ch, nn.LeakyReLU(0.2, True), sn=True)
        self.head = nn.Sequential(nn.ReflectionPad2d(1), spectral_norm(nn.Conv2d(ch, 1, 4, stride=1, bias=False)))
        self.n_down = n_down

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features, cam_logit, heatmap = self.cam(self.body(x))
        return self.head(features), cam_logit, heatmap


# --------------------------------------------------------------------------------------------------
# The six networks and the objective
# --------------------------------------------------------------------------------------------------


class UGATIT(Translator):
    """A = human, B = anime. ``G_AB``: human -> anime, ``G_BA``: anime -> human; per domain a global and a
    local discriminator: ``D_A_global``, ``D_A_local`` judge humans, ``D_B_global``, ``D_B_local`` anime."""

    def __init__(self, img_size: int = 256, ngf: int = 64, ndf: int = 64, n_res: int | None = None,
                 n_global: int | None = None, n_local: int | None = None, light: bool = True):
        super().__init__()
        g_default, l_default = default_d_layers(img_size)
        n_res = default_n_res(img_size) if n_res is None else n_res
        n_global = g_default if n_global is None else n_global
        n_local = l_default if n_local is None else n_local
        self.config = dict(img_size=img_size, ngf=ngf, ndf=ndf, n_res=n_res, n_global=n_global, n_local=n_local,
                           light=light)
        self.G_AB = UGATITGenerator(ngf, n_res, img_size, light)
        self.G_BA = UGATITGenerator(ngf, n_res, img_size, light)
        self.D_A_global = UGATITDiscriminator(ndf, n_global)
        self.D_A_local = UGATITDiscriminator(ndf, n_local)
        self.D_B_global = UGATITDiscriminator(ndf, n_global)
        self.D_B_local = UGATITDiscriminator(ndf, n_local)

    def generator(self, direction: str) -> nn.Module:
        self.check_direction(direction)
        return self.G_AB if direction == "human->anime" else self.G_BA

    def translate(self, x: torch.Tensor, direction: str = "human->anime") -> torch.Tensor:
        """One batch (N, 3, S, S) in [-1, 1] -> (N, 3, S, S) in [-1, 1] (the attention comes from :meth:`extras`)."""
        return self.generator(direction)(x)[0]

    def extras(self, x: torch.Tensor, direction: str = "human->anime") -> dict[str, torch.Tensor]:
        """The generator's CAM attention for the batch: ``cam_logit`` (N, 2), the auxiliary classifier's logits
        (source vs target domain), and ``heatmap`` (N, 1, S, S) in [0, 1], upsampled to the image size."""
        _, cam_logit, heatmap = self.generator(direction)(x)
        return {"cam_logit": cam_logit, "heatmap": upsample_heatmap(heatmap, x.shape[-1])}

    def discriminators_of(self, domain: str) -> tuple[UGATITDiscriminator, UGATITDiscriminator]:
        """(global, local) discriminators of domain "A" or "B"."""
        return (self.D_A_global, self.D_A_local) if domain == "A" else (self.D_B_global, self.D_B_local)

    def generators(self) -> list[nn.Parameter]:
        return [*self.G_AB.parameters(), *self.G_BA.parameters()]

    def discriminators(self) -> list[nn.Parameter]:
        return [p for d in (self.D_A_global, self.D_A_local, self.D_B_global, self.D_B_local) for p in d.parameters()]


@dataclass(frozen=True)
class LossWeights:
    """The paper's weights: adversarial 1, cycle 10, identity 10, CAM 1000."""

    adv: float = 1.0
    cycle: float = 10.0
    identity: float = 10.0
    cam: float = 1000.0


@dataclass
class UGATITLosses:
    """The generator objective's terms for one batch (0-d tensors) and the fakes they used."""

    total: torch.Tensor
    adv_AB: torch.Tensor   # G_AB's adversarial loss against D_B (global + local, patch + CAM logits)
    adv_BA: torch.Tensor
    cycle_A: torch.Tensor
    cycle_B: torch.Tensor
    idt_A: torch.Tensor
    idt_B: torch.Tensor
    cam_AB: torch.Tensor   # G_AB's CAM classifier: real_A -> 1 (translate me), real_B -> 0 (leave me)
    cam_BA: torch.Tensor
    fake_A: torch.Tensor
    fake_B: torch.Tensor


def _lsgan(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.mse_loss(logits, torch.full_like(logits, target))


def _adversarial(discriminators, images: torch.Tensor, target: float) -> torch.Tensor:
    """Sum over the (global, local) discriminators of the LSGAN terms on patch and CAM logits against ``target``
    (1: "real", 0: "fake")."""
    total = images.new_zeros(())
    for D in discriminators:
        logits, cam_logit, _ = D(images)
        total = total + _lsgan(logits, target) + _lsgan(cam_logit, target)
    return total


def _cam_bce(logit: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logit, torch.full_like(logit, target))


def generator_objective(model: UGATIT, real_A: torch.Tensor, real_B: torch.Tensor,
                        weights: LossWeights = LossWeights()) -> UGATITLosses:
    """The generators' objective on humans ``real_A`` and anime faces ``real_B`` ((N, 3, S, S), [-1, 1]).

    For the direction A -> B (and symmetrically B -> A):
      adv_AB  = sum over D in (D_B_global, D_B_local) of (D(G_AB(a)) - 1)^2 + (D_cam(G_AB(a)) - 1)^2
      cycle_A = |G_BA(G_AB(a)) - a|_1,  idt_B = |G_AB(b) - b|_1
      cam_AB  = BCE(cam_AB(a), 1) + BCE(cam_AB(b), 0)
    total = adv * (adv_AB + adv_BA) + cycle * (cycle_A + cycle_B) + identity * (idt_A + idt_B)
            + cam * (cam_AB + cam_BA)
    """
    fake_B, cam_fake_B, _ = model.G_AB(real_A)
    fake_A, cam_fake_A, _ = model.G_BA(real_B)
    rec_A, _, _ = model.G_BA(fake_B)
    rec_B, _, _ = model.G_AB(fake_A)
    idt_A, cam_idt_A, _ = model.G_BA(real_A)  # a human fed to the anime -> human generator: leave it alone
    idt_B, cam_idt_B, _ = model.G_AB(real_B)
    adv_AB = _adversarial(model.discriminators_of("B"), fake_B, 1.0)
    adv_BA = _adversarial(model.discriminators_of("A"), fake_A, 1.0)
    cycle_A, cycle_B = (rec_A - real_A).abs().mean(), (rec_B - real_B).abs().mean()
    idt_loss_A, idt_loss_B = (idt_A - real_A).abs().mean(), (idt_B - real_B).abs().mean()
    cam_AB = _cam_bce(cam_fake_B, 1.0) + _cam_bce(cam_idt_B, 0.0)
    cam_BA = _cam_bce(cam_fake_A, 1.0) + _cam_bce(cam_idt_A, 0.0)
    total = (weights.adv * (adv_AB + adv_BA) + weights.cycle * (cycle_A + cycle_B)
             + weights.identity * (idt_loss_A + idt_loss_B) + weights.cam * (cam_AB + cam_BA))
    return UGATITLosses(total, adv_AB, adv_BA, cycle_A, cycle_B, idt_loss_A, idt_loss_B, cam_AB, cam_BA, fake_A, fake_B)


def discriminator_objective(discriminators, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Sum over (global, local) of the LSGAN losses on patch and CAM logits: reals -> 1, (detached) fakes -> 0.

    As in the authors' code there is no factor 1/2 (CycleGAN halves its D loss).
    """
    return _adversarial(discriminators, real, 1.0) + _adversarial(discriminators, fake.detach(), 0.0)


def train_step(model: UGATIT, real_A: torch.Tensor, real_B: torch.Tensor, opt_G: torch.optim.Optimizer,
               opt_D: torch.optim.Optimizer, weights: LossWeights = LossWeights()) -> dict[str, float]:
    """One update of all six networks; returns the losses as floats.

    1. Generators: minimise :func:`generator_objective` with the four discriminators frozen, then clip
       every rho to [0, 1] (:func:`clip_rho_`).
    2. Discriminators: ``adv`` * :func:`discriminator_objective` per domain, on this step's fakes (detached).

    The authors update D first on fresh fakes and then G with a second set of generator passes; updating
    G first and reusing its fakes for D (as lesson 04's CycleGAN does) is the same game and saves two
    generator forward passes per step.
    """
    discs = [model.D_A_global, model.D_A_local, model.D_B_global, model.D_B_local]
    for D in discs:
        D.requires_grad_(False)
    g = generator_objective(model, real_A, real_B, weights)
    opt_G.zero_grad(set_to_none=True)
    g.total.backward()
    opt_G.step()
    clip_rho_(model.G_AB)
    clip_rho_(model.G_BA)
    for D in discs:
        D.requires_grad_(True)

    loss_D_A = weights.adv * discriminator_objective(model.discriminators_of("A"), real_A, g.fake_A)
    loss_D_B = weights.adv * discriminator_objective(model.discriminators_of("B"), real_B, g.fake_B)
    opt_D.zero_grad(set_to_none=True)
    (loss_D_A + loss_D_B).backward()
    opt_D.step()
    losses = {"G_adv_AB": g.adv_AB, "G_adv_BA": g.adv_BA, "cycle_A": g.cycle_A, "cycle_B": g.cycle_B,
              "idt_A": g.idt_A, "idt_B": g.idt_B, "cam_AB": g.cam_AB, "cam_BA": g.cam_BA,
              "D_A": loss_D_A, "D_B": loss_D_B}
    return {k: float(v.detach()) for k, v in losses.items()}


def fit(run, model: UGATIT, train_A: torch.Tensor, train_B: torch.Tensor, n_steps: int, *,
        weights: LossWeights = LossWeights(), lr: float = 1e-4, betas: tuple[float, float] = (0.5, 0.999),
        weight_decay: float = 1e-4, decay_start: float = 0.5, batch_size: int = 1, step=None,
        device: torch.device | str = "cpu", checkpoint_every: int | None = 500):
    """Train ``model`` for ``n_steps`` through ``run`` (a :class:`anime_lib.training.Run` created just before the
    model was built, so its seed made the weights; its ``config`` should name every setting passed here) with
    lesson 06's settings: Adam (``lr``, ``betas``, ``weight_decay``) for the generators and for the
    discriminators, the learning rate constant for ``decay_start`` of the steps and then linearly down to 0, and
    ``step`` (default :func:`train_step`; the lesson passes its step-function cell's) called as
    ``step(model, real_A, real_B, opt_G, opt_D, weights)``. ``train_A`` / ``train_B``: humans and anime faces,
    (N, 3, S, S) in [-1, 1], unpaired; each step's batches come from the step number
    (:func:`anime_lib.training.batch_indices`, streams 0 and 1), so a re-run resumes exactly from the run's
    checkpoints. Returns the run's :class:`anime_lib.training.RunResult`; ``model`` holds the trained weights.
    """
    from anime_lib.training import batch_indices, linear_decay_lambda

    step = step or train_step
    device = torch.device(device)
    model.to(device)
    opt_G, opt_D = (torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)
                    for params in (model.generators(), model.discriminators()))
    n_constant = int(n_steps * decay_start)
    decay = linear_decay_lambda(n_constant, n_steps - n_constant)  # one "epoch" of the schedule is one step
    sched_G, sched_D = (torch.optim.lr_scheduler.LambdaLR(opt, decay) for opt in (opt_G, opt_D))
    dev_A, dev_B = train_A.to(device), train_B.to(device)

    def step_fn(i: int) -> dict[str, float]:
        a = dev_A[batch_indices(i, batch_size, len(dev_A), run.seed, stream=0).to(device)]
        b = dev_B[batch_indices(i, batch_size, len(dev_B), run.seed, stream=1).to(device)]
        losses = step(model, a, b, opt_G, opt_D, weights)
        sched_G.step()
        sched_D.step()
        return losses

    return run.train(step_fn, n_steps, checkpoint_every=checkpoint_every,
                     save={"model": model, "opt_G": opt_G, "opt_D": opt_D, "sched_G": sched_G, "sched_D": sched_D})


# --------------------------------------------------------------------------------------------------
# Inference helpers
# --------------------------------------------------------------------------------------------------


def upsample_heatmap(heatmap: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 1, h, w) heatmap -> (N, 1, size, size) in [0, 1]: bilinear resize, then min-max per image
    (the heatmap's scale is arbitrary; only where it is large matters)."""
    h = F.interpolate(heatmap.float(), size=(size, size), mode="bilinear", align_corners=False)
    lo = h.amin(dim=(1, 2, 3), keepdim=True)
    hi = h.amax(dim=(1, 2, 3), keepdim=True)
    return (h - lo) / (hi - lo).clamp_min(1e-8)


def mlp_input_size(ngf: int, img_size: int, light: bool, n_down: int = 2) -> int:
    """Numbers fed to the gamma/beta MLP: C (light) or C * (S / 2**n_down)**2 (full), C = ngf * 2**n_down."""
    ch = ngf * 2 ** n_down
    return ch if light else ch * (img_size // 2 ** n_down) ** 2



@torch.no_grad()
def discriminator_attention(D: UGATITDiscriminator, images: torch.Tensor, batch: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Where a discriminator looks: images (N, 3, S, S) in [-1, 1] -> (heatmap (N, 1, S, S) in [0, 1],
    cam_logit (N, 2)), on the CPU, in eval mode (spectral-norm vectors are not updated), without gradients."""
    device = next(D.parameters()).device
    maps, logits = [], []
    with eval_mode(D):
        for i in range(0, len(images), batch):
            x = images[i:i + batch].to(device)
            _, cam_logit, heatmap = D(x)
            maps.append(upsample_heatmap(heatmap, x.shape[-1]).cpu())
            logits.append(cam_logit.float().cpu())
    return torch.cat(maps), torch.cat(logits)


def centre_share(maps: torch.Tensor) -> float:
    """Mean share of heatmap mass (N, 1, S, S), values >= 0, inside the central square of half the side:
    a quarter of the area, so 0.25 means no preference for the middle of the image over its border."""
    s = maps.shape[-1]
    lo, hi = s // 4, s - s // 4
    return float((maps[..., lo:hi, lo:hi].sum((1, 2, 3)) / maps.sum((1, 2, 3)).clamp_min(1e-8)).mean())


def attention_summary(model: UGATIT, source: torch.Tensor, other: torch.Tensor, direction: str,
                      batch: int = 128) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """The attention of one direction on test faces ``source`` (its source domain) and ``other`` (real faces of
    its target domain), both (N, 3, S, S) in [-1, 1].

    Returns ``maps``: ``fake`` (the translations), ``G`` (the generator's heatmap over its input) and
    ``D_global``, ``D_local`` (the target domain's discriminators over the translation), all on the CPU,
    heatmaps (N, 1, S, S) in [0, 1]; and ``row``: how often each CAM classifier is right and the
    :func:`centre_share` of each heatmap. The generator's classifier is right when it calls a source face
    "translate me" (mean logit > 0) and a target-domain face "leave me" (< 0); the global discriminator's
    when it scores real target faces above 0.5 and translations at most 0.5 (its LSGAN targets are 1 and 0).
    Both accuracies are the mean of the two halves: 0.5 is chance.
    """
    fake, g = translate_set(model, source, direction, batch=batch, with_extras=True)
    _, g_other = translate_set(model, other, direction, batch=batch, with_extras=True)
    D_global, D_local = model.discriminators_of("B" if direction == "human->anime" else "A")
    dg_maps, dg_fake = discriminator_attention(D_global, fake, batch)
    dl_maps, _ = discriminator_attention(D_local, fake, batch)
    _, dg_real = discriminator_attention(D_global, other, batch)
    g_acc = 0.5 * (float((g["cam_logit"].mean(1) > 0).float().mean()) + float((g_other["cam_logit"].mean(1) < 0).float().mean()))
    d_acc = 0.5 * (float((dg_real.mean(1) > 0.5).float().mean()) + float((dg_fake.mean(1) <= 0.5).float().mean()))
    maps = {"fake": fake, "G": g["heatmap"], "D_global": dg_maps, "D_local": dl_maps}
    row = {"direction": direction, "G CAM accuracy": g_acc, "global D CAM accuracy": d_acc,
           "G centre share": centre_share(g["heatmap"]), "global D centre share": centre_share(dg_maps),
           "local D centre share": centre_share(dl_maps)}
    return maps, row


def heatmap_overlay(images: torch.Tensor, maps: torch.Tensor, alpha: float = 0.5, cmap: str = "jet") -> torch.Tensor:
    """images (N, 3, S, S) in [-1, 1] and heatmaps (N, 1, S, S) in [0, 1] -> blend (N, 3, S, S) in [0, 1]
    (red: high attention, blue: low, with the default colour map)."""
    import matplotlib

    colours = torch.from_numpy(matplotlib.colormaps[cmap](maps[:, 0].cpu().numpy())[..., :3]).permute(0, 3, 1, 2).float()
    return (1 - alpha) * to_unit_range(images.clamp(-1, 1)) + alpha * colours


def attention_grid(inputs: torch.Tensor, maps: dict[str, torch.Tensor]) -> torch.Tensor:
    """The attention figure of one direction, five rows of ``n = len(inputs)`` images in [0, 1]: the inputs
    ((n, 3, S, S) in [-1, 1]), the generator's heatmap over them, the translations, and the global and local
    discriminators' heatmaps over the translations (``maps`` from :func:`attention_summary`, first n used)."""
    n = len(inputs)
    fake = maps["fake"][:n]
    return torch.cat([to_unit_range(inputs.clamp(-1, 1)), heatmap_overlay(inputs, maps["G"][:n]),
                      to_unit_range(fake.clamp(-1, 1)), heatmap_overlay(fake, maps["D_global"][:n]),
                      heatmap_overlay(fake, maps["D_local"][:n])])


@torch.no_grad()
def rho_table(G: UGATITGenerator) -> list[dict[str, float | str]]:
    """One row per AdaLIN / LIN layer of ``G``, in forward order: its name, kind, start value of rho (0.9 for
    AdaLIN, 0 for LIN), the mean, min and max of its rho over channels, and the share of rho values sitting
    exactly on a bound of [0, 1] (held there by the rho clipper)."""
    rows, n_lin = [], 0
    for name, m in G.named_modules():
        if not isinstance(m, (AdaLIN, LIN)):
            continue
        r = m.rho.detach().flatten().cpu()
        if isinstance(m, LIN):
            n_lin += 1
            name = f"up-sampling block {n_lin} (LIN)"
        else:
            name = name.replace("decoder_blocks.", "AdaLIN block ").replace(".norm", ", norm ")
        rows.append({"layer": name, "kind": type(m).__name__, "start": 0.9 if isinstance(m, AdaLIN) else 0.0,
                     "mean": float(r.mean()), "min": float(r.min()), "max": float(r.max()),
                     "at 0 or 1": float(((r == 0) | (r == 1)).float().mean())})
    return rows


def plot_rho(rows: list[dict], ax=None, title: str | None = None):
    """Bars of :func:`rho_table` rows: the mean rho per layer (blue AdaLIN, orange LIN), whiskers from the
    smallest to the largest rho over channels, a black tick at the start value. Returns the Figure."""
    import numpy as np
    from matplotlib.figure import Figure

    if ax is None:
        ax = Figure(figsize=(6, 3.4), layout="constrained").subplots()
    pos = np.arange(len(rows))
    means = np.array([r["mean"] for r in rows])
    err = np.clip([[r["mean"] - r["min"] for r in rows], [r["max"] - r["mean"] for r in rows]], 0, None)  # float rounding
    ax.bar(pos, means, yerr=err, capsize=3, color=["tab:blue" if r["kind"] == "AdaLIN" else "tab:orange" for r in rows])
    ax.scatter(pos, [r["start"] for r in rows], marker="_", s=200, color="black", label="start value", zorder=3)
    ax.set_xticks(pos, [r["layer"] for r in rows], rotation=30, ha="right", fontsize=7)
    ax.set(ylim=(-0.05, 1.05), ylabel="rho (1 = IN, 0 = LN)", title=title or "AdaLIN (blue), LIN (orange)")
    ax.legend(fontsize="small")
    return ax.figure


def generator_sizes(img_size: int, ngf: int, n_res: int | None = None) -> list[dict[str, int | str]]:
    """Parameters of the light and the full generator at ``img_size`` / ``ngf`` and at the paper's size (256 px,
    ngf 64, 4 blocks), with the weights of each MLP's first layer (where the two differ). Built on the meta
    device: nothing is allocated, so the paper's full model can be counted on any machine."""
    n_res = default_n_res(img_size) if n_res is None else n_res
    rows = []
    for label, size, width, blocks in ((f"this lesson ({img_size} px, ngf {ngf})", img_size, ngf, n_res),
                                       ("paper (256 px, ngf 64)", 256, 64, 4)):
        with torch.device("meta"):
            light, full = (UGATITGenerator(width, blocks, size, light=flag) for flag in (True, False))
        rows.append({"generator": label, "light": sum(p.numel() for p in light.parameters()),
                     "full": sum(p.numel() for p in full.parameters()),
                     "light MLP layer 1": light.mlp[0].weight.numel(), "full MLP layer 1": full.mlp[0].weight.numel()})
    return rows


def depth_table(sizes=(32, 64, 128, 256)) -> list[dict[str, int]]:
    """For each image side: the stride-2 layers of the global and local discriminators
    (:func:`default_d_layers`) and the side of the square one of their logits sees (:func:`d_receptive_field`)."""
    rows = []
    for size in sizes:
        n_global, n_local = default_d_layers(size)
        rows.append({"image side": size, "global layers": n_global, "global sees (px)": d_receptive_field(n_global),
                     "local layers": n_local, "local sees (px)": d_receptive_field(n_local)})
    return rows
