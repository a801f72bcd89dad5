"""StyleGAN2 (Karras, Laine, Aittala, Hellsten, Lehtinen and Aila, CVPR 2020) in plain PyTorch.

A generator that paints a face from noise, one resolution at a time. A *mapping network* (8 equalised linear
layers) turns a random z into a style w; a learned 4 x 4 constant is then upsampled block by block to the full
size, each 3x3 convolution *modulated* by w (its weights scaled per input channel by an affine function of w, then
*demodulated*: every output channel rescaled to unit expected variance, which replaces StyleGAN1's AdaIN and its
droplet artefacts). Per-pixel noise adds the random detail (hair strands), and every block adds its RGB image
(``ToRGB``) to the upsampled one of the block below ("skip" generator). The discriminator is a ResNet of
downsampling blocks with a minibatch-standard-deviation feature at 4 x 4. All weights use the *equalised learning
rate*: stored as N(0, 1) and multiplied at run time by 1/sqrt(fan_in), so Adam moves every layer at the same pace.

Read top to bottom:

* :func:`upfirdn2d` (upsample, FIR filter, downsample) in plain ``F.pad``/``F.conv2d``, no compiled extension: it
  runs on the CPU, CUDA and the meta device; :class:`Blur`, :class:`Upsample`, then the layers named after the
  paper's ideas, :class:`PixelNorm` ... :class:`ResBlock`;
* :class:`Generator` and :class:`Discriminator` with the module names, parameter names and tensor layouts of the
  widely used "rosinality" PyTorch port (rosinality/stylegan2-pytorch), so its checkpoints and the converted
  official ones load with ``strict=True`` (the ``noises.*`` buffers may be absent: they are fixed random noise, and a
  missing one is simply resampled). :func:`channel_table` gives the published channels per resolution; a
  ``channels`` mapping (or one int) overrides it for small CPU models;
* :func:`load_rosinality_checkpoint` (``weights_only`` load, ``argparse.Namespace`` the only class allowed) and
  ``Generator.from_state_dict`` / ``Discriminator.from_state_dict``, which read the architecture off the tensors;
* the losses: :func:`d_logistic_loss`, :func:`g_nonsaturating_loss`, :func:`d_r1_loss`, :func:`g_path_length_loss`;
* :class:`AdaptiveAugment` (ADA, Karras et al. 2020b: differentiable augmentations whose probability p follows
  the discriminator's overfitting), :func:`requires_grad`, :func:`freeze_discriminator_blocks` (FreezeD),
  :func:`freeze_generator_layers` (FreezeG) and :func:`blend_generators` (layer swapping, "Toonify").

Reference facts: images are (N, 3, S, S) in [-1, 1] (not clamped by G); S a power of 2; w has ``style_dim`` = 512
entries; a W+ latent is (N, n_latent, style_dim) with n_latent = 2 log2(S) - 2 (conv1 reads w[0], to_rgb1 w[1],
block k reads w[2k+1], w[2k+2] and its ToRGB w[2k+3]). 256 px with channel multiplier 2: 30.0 M parameters in G
(2.1 M of them in the mapping), 28.9 M in D. The G EMA of training is :class:`anime_lib.training.EMA` with
``decay = 0.5 ** (32 / 10_000)`` per batch of 32 (a half-life of 10k images).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import math
import os
import random
from typing import Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from anime_lib.pretrained import WeightsError, load_weights_file

__all__ = [
    "channel_table", "make_kernel", "upfirdn2d", "Blur", "Upsample",
    "PixelNorm", "FusedLeakyReLU", "EqualLinear", "EqualConv2d", "ModulatedConv2d", "NoiseInjection",
    "ConstantInput", "StyledConv", "ToRGB", "ConvLayer", "ResBlock", "Generator", "Discriminator",
    "load_rosinality_checkpoint",
    "d_logistic_loss", "g_nonsaturating_loss", "d_r1_loss", "g_path_length_loss",
    "AdaptiveAugment", "requires_grad", "freeze_discriminator_blocks", "freeze_generator_layers", "blend_generators",
]

BLUR_KERNEL = (1, 3, 3, 1)


def channel_table(channel_multiplier: int = 2) -> dict[int, int]:
    """The published channels per resolution: 512 up to 32 px, then 256, 128, 64, 32, 16 times the multiplier."""
    cm = channel_multiplier
    return {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm, 1024: 16 * cm}


def _channels(size: int, channel_multiplier: int, channels: Mapping[int, int] | int | None) -> dict[int, int]:
    if size < 4 or size & (size - 1):
        raise ValueError(f"size must be a power of 2 and >= 4, got {size}")
    res = [2 ** i for i in range(2, int(math.log2(size)) + 1)]
    if channels is None:
        table = channel_table(channel_multiplier)
        if size not in table:
            raise ValueError(f"no published channels for {size} px: pass channels=")
        return {r: table[r] for r in res}
    if isinstance(channels, int):
        return {r: channels for r in res}
    missing = [r for r in res if r not in channels]
    if missing:
        raise ValueError(f"channels has no entry for resolutions {missing}")
    return {r: int(channels[r]) for r in res}


# ---------------------------------------------------------------------------------------------- FIR filtering


def make_kernel(k: Sequence[float]) -> torch.Tensor:
    """The normalised 2-D filter of a 1-D one: outer(k, k) / sum, e.g. (1, 3, 3, 1) -> 4 x 4 summing to 1."""
    k = torch.tensor(k, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """(N, C, H, W) -> upsample by inserting ``up - 1`` zeros after every pixel, pad (before, after) on both axes
    (negative: crop), convolve each channel with ``kernel`` (k x k, a true convolution), keep every ``down``-th
    pixel. Output side: (H * up + pad0 + pad1 - k) // down + 1. The reference's compiled op, in plain torch."""
    n, c, h, w = x.shape
    if up > 1:
        x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    weight = kernel.flip(0, 1).to(x.dtype)[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, weight, stride=down, groups=c)


class Blur(nn.Module):
    """FIR low-pass filter: (N, C, H, W) -> (N, C, H + pad0 + pad1 - k + 1, ...). Buffer ``kernel`` (k x k), times
    ``upsample_factor ** 2`` after a zero-inserting upsampling (to keep the brightness)."""

    def __init__(self, kernel: Sequence[float], pad: tuple[int, int], upsample_factor: int = 1):
        super().__init__()
        self.register_buffer("kernel", make_kernel(kernel) * upsample_factor ** 2)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """(N, C, H, W) -> (N, C, 2H, 2W): zero insertion and the FIR filter (buffer ``kernel``, times factor**2)."""

    def __init__(self, kernel: Sequence[float], factor: int = 2):
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel) * factor ** 2)
        p = len(kernel) - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


# ---------------------------------------------------------------------------------------------- layers


class PixelNorm(nn.Module):
    """(N, D) -> (N, D) with unit mean square per row: z is put on the sphere before the mapping network."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class FusedLeakyReLU(nn.Module):
    """x + bias (per channel, parameter ``bias`` [C]), LeakyReLU 0.2, times sqrt(2) (keeps the variance); any
    (N, C, ...) shape."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.view(1, -1, *([1] * (x.ndim - 2)))
        return F.leaky_relu(x + bias, 0.2) * math.sqrt(2)


class EqualLinear(nn.Module):
    """(N, in_dim) -> (N, out_dim), equalised: ``weight`` [out, in] ~ N(0, 1) / lr_mul, used times
    lr_mul / sqrt(in_dim); ``bias`` (init ``bias_init``) used times lr_mul. ``activate``: a fused leaky ReLU."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale, self.lr_mul, self.activate = lr_mul / math.sqrt(in_dim), lr_mul, activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.lr_mul
        if self.activate:
            return F.leaky_relu(F.linear(x, self.weight * self.scale) + bias, 0.2) * math.sqrt(2)
        return F.linear(x, self.weight * self.scale, bias)


class EqualConv2d(nn.Module):
    """(N, in, H, W) -> (N, out, H', W'): a conv whose ``weight`` [out, in, k, k] ~ N(0, 1) is used times
    1/sqrt(in * k * k); optional ``bias`` [out]."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, padding: int = 0, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale, self.stride, self.padding = 1 / math.sqrt(in_ch * kernel_size ** 2), stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class ModulatedConv2d(nn.Module):
    """(N, in, H, W) and w (N, style_dim) -> (N, out, H, W), or (N, out, 2H, 2W) with ``upsample``.

    style s = ``modulation``(w) (an EqualLinear, bias init 1: s starts near 1); weight (N, out, in, k, k) =
    scale * ``weight`` [1, out, in, k, k] * s[in]; demodulated, each (image, output channel) filter is divided by
    sqrt(sum of its squares + 1e-8), so unit-variance inputs give unit-variance outputs whatever the style's scale.
    One grouped conv runs the N different filters. Upsampling: a stride-2 transposed conv, then :class:`Blur`."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False, blur_kernel: Sequence[float] = BLUR_KERNEL):
        super().__init__()
        self.in_ch, self.out_ch, self.kernel_size = in_ch, out_ch, kernel_size
        self.demodulate, self.upsample = demodulate, upsample
        if upsample:
            p = (len(blur_kernel) - 2) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)
        self.scale, self.padding = 1 / math.sqrt(in_ch * kernel_size ** 2), kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        k = self.kernel_size
        weight = self.scale * self.weight * self.modulation(style).view(n, 1, c, 1, 1)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        x = x.reshape(1, n * c, h, w)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(n * c, self.out_ch, k, k)
            out = F.conv_transpose2d(x, weight, stride=2, groups=n)
            return self.blur(out.view(n, self.out_ch, *out.shape[-2:]))
        out = F.conv2d(x, weight.reshape(n * self.out_ch, c, k, k), padding=self.padding, groups=n)
        return out.view(n, self.out_ch, *out.shape[-2:])


class NoiseInjection(nn.Module):
    """image (N, C, H, W) + ``weight`` [1] (init 0) * noise (N or 1, 1, H, W; fresh N(0, 1) when None)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, image: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            n, _, h, w = image.shape
            noise = image.new_empty(n, 1, h, w).normal_()
        return image + self.weight * noise


class ConstantInput(nn.Module):
    """The learned start of every image: ``input`` [1, C, 4, 4] repeated to (N, C, 4, 4) for a batch of N latents."""

    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.input.repeat(latent.shape[0], 1, 1, 1)


class StyledConv(nn.Module):
    """``conv`` (ModulatedConv2d), ``noise`` (NoiseInjection), ``activate`` (FusedLeakyReLU, holding the bias)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_dim: int, upsample: bool = False,
                 blur_kernel: Sequence[float] = BLUR_KERNEL):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, kernel_size, style_dim, upsample=upsample, blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_ch)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    """(N, C, H, W) -> RGB (N, 3, H, W): a modulated 1x1 conv without demodulation, + ``bias`` [1, 3, 1, 1], + the
    previous RGB image ``skip`` (N, 3, H/2, W/2) upsampled (buffer ``upsample.kernel``)."""

    def __init__(self, in_ch: int, style_dim: int, upsample: bool = True, blur_kernel: Sequence[float] = BLUR_KERNEL):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        return out if skip is None else out + self.upsample(skip)


class ConvLayer(nn.Sequential):
    """The discriminator's unit: [Blur if ``downsample``] EqualConv2d (stride 2 if ``downsample``, bias only when
    not ``activate``) [FusedLeakyReLU (with the bias) if ``activate``]. (N, in, H, W) -> (N, out, H or H/2, ...)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, downsample: bool = False,
                 blur_kernel: Sequence[float] = BLUR_KERNEL, bias: bool = True, activate: bool = True):
        layers: list[nn.Module] = []
        stride, padding = 1, kernel_size // 2
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        layers.append(EqualConv2d(in_ch, out_ch, kernel_size, stride, padding, bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_ch))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """(N, in, H, W) -> (N, out, H/2, W/2): (conv2(conv1(x)) + skip(x)) / sqrt(2); ``conv1`` 3x3 in -> in,
    ``conv2`` blur + 3x3 stride 2, ``skip`` blur + 1x1 stride 2 without bias or activation."""

    def __init__(self, in_ch: int, out_ch: int, blur_kernel: Sequence[float] = BLUR_KERNEL):
        super().__init__()
        self.conv1 = ConvLayer(in_ch, in_ch, 3)
        self.conv2 = ConvLayer(in_ch, out_ch, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(in_ch, out_ch, 1, downsample=True, blur_kernel=blur_kernel, bias=False, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


# ---------------------------------------------------------------------------------------------- the networks


class Generator(nn.Module):
    """z or w (N, style_dim) -> image (N, 3, size, size), roughly in [-1, 1] (not clamped).

    ``style``: PixelNorm + ``n_mlp`` EqualLinear (lr_mul ``lr_mlp``, fused leaky ReLU), the mapping z -> w.
    ``input`` (4 x 4 constant), ``conv1`` and ``to_rgb1`` at 4 px; then per resolution 8 ... size two StyledConvs
    in ``convs`` (the first, even index, upsamples) and one ToRGB in ``to_rgbs``. ``noises.noise_j``: fixed noise
    maps (1, 1, res, res), used with ``randomize_noise=False``. ``channels`` (resolution -> channels, or one int)
    replaces :func:`channel_table` for small models. ``latent_avg``: a non-persistent buffer (not in the
    state_dict), the mean w when the checkpoint brought one (None otherwise); truncation uses it by default.
    """

    def __init__(self, size: int, style_dim: int = 512, n_mlp: int = 8, channel_multiplier: int = 2,
                 blur_kernel: Sequence[float] = BLUR_KERNEL, lr_mlp: float = 0.01,
                 channels: Mapping[int, int] | int | None = None):
        super().__init__()
        self.size, self.style_dim, self.n_mlp = size, style_dim, n_mlp
        self.channels = _channels(size, channel_multiplier, channels)
        self.log_size = int(math.log2(size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.n_latent = self.log_size * 2 - 2
        self.style = nn.Sequential(PixelNorm(), *[EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activate=True)
                                                  for _ in range(n_mlp)])
        c4 = self.channels[4]
        self.input = ConstantInput(c4)
        self.conv1 = StyledConv(c4, c4, 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(c4, style_dim, upsample=False)
        self.convs, self.to_rgbs, self.noises = nn.ModuleList(), nn.ModuleList(), nn.Module()
        for j in range(self.num_layers):
            res = 2 ** ((j + 5) // 2)
            self.noises.register_buffer(f"noise_{j}", torch.randn(1, 1, res, res))
        in_ch = c4
        for i in range(3, self.log_size + 1):
            out_ch = self.channels[2 ** i]
            self.convs.append(StyledConv(in_ch, out_ch, 3, style_dim, upsample=True, blur_kernel=blur_kernel))
            self.convs.append(StyledConv(out_ch, out_ch, 3, style_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(out_ch, style_dim, blur_kernel=blur_kernel))
            in_ch = out_ch
        self.register_buffer("latent_avg", None, persistent=False)

    def get_latent(self, z: torch.Tensor) -> torch.Tensor:
        """The mapping network: z (N, style_dim) -> w (N, style_dim)."""
        return self.style(z)

    @torch.no_grad()
    def mean_latent(self, n: int) -> torch.Tensor:
        """The mean w of ``n`` random z, (1, style_dim): the centre that truncation pulls towards."""
        z = torch.randn(n, self.style_dim, device=self.input.input.device)
        return self.style(z).mean(0, keepdim=True)

    def forward(self, styles: Sequence[torch.Tensor] | torch.Tensor, return_latents: bool = False,
                inject_index: int | None = None, truncation: float = 1.0, truncation_latent: torch.Tensor | None = None,
                input_is_latent: bool = False, noise: Sequence[torch.Tensor | None] | None = None,
                randomize_noise: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``styles``: one or two (N, style_dim) z (or w with ``input_is_latent``), or one W+ (N, n_latent,
        style_dim) with ``input_is_latent``. Two: style mixing, w1 for layers < ``inject_index`` (random in
        [1, n_latent) when None), w2 from there. ``truncation`` psi < 1: w = w_avg + psi (w - w_avg), w_avg =
        ``truncation_latent`` (else ``latent_avg``). ``noise``: one map per layer (None entries: fresh noise);
        else fresh noise, or the ``noises`` buffers when ``randomize_noise`` is False.
        Returns (image (N, 3, size, size), the W+ latent (N, n_latent, style_dim) if ``return_latents`` else None)."""
        styles = [styles] if isinstance(styles, torch.Tensor) else list(styles)
        if not input_is_latent:
            styles = [self.style(s) for s in styles]
        if noise is None:
            noise = ([None] * self.num_layers if randomize_noise
                     else [getattr(self.noises, f"noise_{j}") for j in range(self.num_layers)])
        if truncation < 1:
            avg = truncation_latent if truncation_latent is not None else self.latent_avg
            if avg is None:
                raise ValueError("truncation < 1 needs truncation_latent (e.g. G.mean_latent(4096))")
            styles = [avg + truncation * (s - avg) for s in styles]
        if len(styles) == 1:
            s = styles[0]
            latent = s if s.ndim == 3 else s.unsqueeze(1).repeat(1, self.n_latent, 1)
        else:
            if inject_index is None:
                inject_index = random.randint(1, self.n_latent - 1)
            latent = torch.cat([styles[0].unsqueeze(1).repeat(1, inject_index, 1),
                                styles[1].unsqueeze(1).repeat(1, self.n_latent - inject_index, 1)], 1)
        if latent.shape[1] != self.n_latent:
            raise ValueError(f"a W+ latent needs {self.n_latent} styles, got shape {tuple(latent.shape)}")
        out = self.conv1(self.input(latent), latent[:, 0], noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        for k, to_rgb in enumerate(self.to_rgbs):
            out = self.convs[2 * k](out, latent[:, 2 * k + 1], noise[2 * k + 1])
            out = self.convs[2 * k + 1](out, latent[:, 2 * k + 2], noise[2 * k + 2])
            skip = to_rgb(out, latent[:, 2 * k + 3], skip)
        return skip, (latent if return_latents else None)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], lr_mlp: float = 0.01,
                        what: str = "the state dict") -> Generator:
        """A Generator built from the shapes in a rosinality-format ``state`` and loaded (strict, except that missing
        ``noises.*`` buffers are resampled: they are random noise, nothing is lost). Size, style_dim, n_mlp, the
        channel multiplier (or a channels mapping) and the blur kernel's length come from the tensors; lr_mlp
        cannot (it only rescales stored weights): pass it if it was not 0.01. Raises WeightsError."""
        with _format_errors(state, what):
            n_mlp, n_blocks = _count(state, "style.{}.weight", start=1), _count(state, "to_rgbs.{}.conv.weight")
            size, style_dim = 2 ** (n_blocks + 2), _need(state, "style.1.weight", what).shape[1]
            chans = {4: _need(state, "input.input", what).shape[1]}
            chans.update({2 ** (k + 3): state[f"to_rgbs.{k}.conv.weight"].shape[2] for k in range(n_blocks)})
            blur = _blur_kernel(_need(state, "convs.0.conv.blur.kernel", what)) if n_blocks else BLUR_KERNEL
        model = cls(size, style_dim, n_mlp, blur_kernel=blur, lr_mlp=lr_mlp, **_multiplier_or_channels(size, chans))
        _load_checked(model, state, what)
        return model


class Discriminator(nn.Module):
    """image (N, 3, size, size) in [-1, 1] -> one logit per image (N, 1), > 0 leans "real".

    ``convs``: ConvLayer 1x1 from RGB, then ResBlocks halving the side down to 4 px; the minibatch standard
    deviation (groups of up to 4 images, one feature) adds a channel; ``final_conv`` 3x3, ``final_linear``
    (EqualLinear C4*16 -> C4 with leaky ReLU, then C4 -> 1)."""

    def __init__(self, size: int, channel_multiplier: int = 2, blur_kernel: Sequence[float] = BLUR_KERNEL,
                 channels: Mapping[int, int] | int | None = None):
        super().__init__()
        self.size, self.channels = size, _channels(size, channel_multiplier, channels)
        in_ch = self.channels[size]
        convs: list[nn.Module] = [ConvLayer(3, in_ch, 1)]
        for i in range(int(math.log2(size)), 2, -1):
            out_ch = self.channels[2 ** (i - 1)]
            convs.append(ResBlock(in_ch, out_ch, blur_kernel))
            in_ch = out_ch
        self.convs = nn.Sequential(*convs)
        self.stddev_group, self.stddev_feat = 4, 1
        c4 = self.channels[4]
        self.final_conv = ConvLayer(in_ch + 1, c4, 3)
        self.final_linear = nn.Sequential(EqualLinear(c4 * 16, c4, activate=True), EqualLinear(c4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.convs(x)
        n, c, h, w = out.shape
        group = min(n, self.stddev_group)
        while n % group:  # the reference needs n divisible by min(n, 4); a smaller divisor otherwise
            group -= 1
        f = self.stddev_feat
        std = out.view(group, -1, f, c // f, h, w).var(0, unbiased=False).add(1e-8).sqrt()
        std = std.mean(dim=(2, 3, 4), keepdim=True).squeeze(2).repeat(group, 1, h, w)
        out = self.final_conv(torch.cat([out, std], 1))
        return self.final_linear(out.view(n, -1))

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], what: str = "the state dict") -> Discriminator:
        """A Discriminator built from the shapes in a rosinality-format ``state`` and loaded strictly."""
        with _format_errors(state, what):
            n_blocks = _count(state, "convs.{}.conv1.0.weight", start=1)
            size = 2 ** (n_blocks + 2)
            chans = {size: _need(state, "convs.0.0.weight", what).shape[0]}
            chans.update({size >> j: _need(state, f"convs.{j}.conv2.1.weight", what).shape[0]
                          for j in range(1, n_blocks + 1)})
            blur = _blur_kernel(_need(state, "convs.1.conv2.0.kernel", what)) if n_blocks else BLUR_KERNEL
        model = cls(size, blur_kernel=blur, **_multiplier_or_channels(size, chans))
        _load_checked(model, state, what)
        return model


# ---------------------------------------------------------------------------------------------- checkpoints


@contextlib.contextmanager
def _format_errors(state: Mapping[str, torch.Tensor], what: str) -> Iterator[None]:
    """Reading the architecture off ``state``: a value that is not a tensor, or of too few dimensions, becomes a
    WeightsError naming the key."""
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{what}: {key!r} is a {type(value).__name__}, not a tensor")
    try:
        yield
    except IndexError:
        raise WeightsError(f"{what}: its tensors do not have the shapes of the rosinality StyleGAN2 format") from None


def _count(state: Mapping[str, torch.Tensor], pattern: str, start: int = 0) -> int:
    n = start
    while pattern.format(n) in state:
        n += 1
    return n - start


def _need(state: Mapping[str, torch.Tensor], key: str, what: str) -> torch.Tensor:
    if key not in state:
        raise WeightsError(f"{what} has no {key!r}: not a rosinality StyleGAN2 state dict")
    return state[key]


def _blur_kernel(kernel: torch.Tensor) -> Sequence[float]:
    """The 1-D filter of a stored 2-D one (proportional to its row sums); only its length shapes the model, since
    the stored values are loaded as they are."""
    if kernel.shape[0] == len(BLUR_KERNEL):
        return BLUR_KERNEL
    row = kernel.sum(1)
    return tuple(float(v) for v in row / row[0])


def _multiplier_or_channels(size: int, chans: Mapping[int, int]) -> dict:
    cm = chans[64] // 256 if size >= 64 and chans[64] % 256 == 0 else 2
    if cm >= 1 and all(channel_table(cm)[r] == c for r, c in chans.items()):
        return {"channel_multiplier": cm}
    return {"channels": dict(chans)}


def _load_checked(model: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Load ``state`` strictly into ``model`` (missing ``noises.*`` allowed), or raise WeightsError naming the
    first missing, extra or differently shaped key."""
    expected = model.state_dict()
    for key, ref in expected.items():
        if key not in state:
            if key.startswith("noises."):
                continue
            raise WeightsError(f"{what} has no {key!r} (a {type(model).__name__} of {model.size} px needs it)")
        if state[key].shape != ref.shape:
            raise WeightsError(f"{what}: {key!r} has shape {tuple(state[key].shape)}, expected {tuple(ref.shape)}")
    extra = [k for k in state if k not in expected]
    if extra:
        raise WeightsError(f"{what} has keys a {type(model).__name__} of {model.size} px does not: "
                           f"{', '.join(map(repr, extra[:5]))}{' ...' if len(extra) > 5 else ''}")
    model.load_state_dict(dict(state), strict=not any(k.startswith("noises.") and k not in state for k in expected))


def load_rosinality_checkpoint(path: str | os.PathLike, which: str = "g_ema",
                               lr_mlp: float = 0.01) -> Generator | Discriminator:
    """The ``which`` network ("g_ema", "g" or "d") of a rosinality-format file, read with ``weights_only=True``.

    Trained files hold {g, d, g_ema, g_optim, d_optim, args, ada_aug_p}; ``args`` is an ``argparse.Namespace``, the
    one class allowed (never a full unpickle). Converted official files hold {g_ema, latent_avg}: ``latent_avg``
    (style_dim,) becomes the returned Generator's ``latent_avg`` (a non-persistent buffer, the default centre of
    truncation); a bare generator state dict is accepted too. Every failure is a WeightsError naming the file."""
    if which not in ("g_ema", "g", "d"):
        raise ValueError(f"which must be 'g_ema', 'g' or 'd', got {which!r}")
    what = "StyleGAN2 checkpoint"
    allow = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5; older ones refuse the Namespace
    with allow([argparse.Namespace]) if allow else contextlib.nullcontext():
        obj = load_weights_file(path, what=what, advice="use a checkpoint of rosinality/stylegan2-pytorch")
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{what} {path} holds a {type(obj).__name__}, not a dict of state dicts")
    if which in obj:
        state = obj[which]
    elif which != "d" and "input.input" in obj:
        state = obj
    else:
        raise WeightsError(f"{what} {path} has no {which!r} (it has {', '.join(map(repr, obj)) or 'nothing'})")
    if not isinstance(state, Mapping):
        raise WeightsError(f"{what} {path}: {which!r} is a {type(state).__name__}, not a state dict")
    label = f"{what} {path} [{which!r}]"
    if which == "d":
        return Discriminator.from_state_dict(state, what=label)
    G = Generator.from_state_dict(state, lr_mlp=lr_mlp, what=label)
    avg = obj.get("latent_avg") if state is not obj else None
    if avg is not None:
        if not isinstance(avg, torch.Tensor) or avg.numel() != G.style_dim:
            raise WeightsError(f"{what} {path}: 'latent_avg' is not a tensor of {G.style_dim} values")
        G.latent_avg = avg.reshape(G.style_dim).float()
    return G


# ---------------------------------------------------------------------------------------------- losses


def d_logistic_loss(real_pred: torch.Tensor, fake_pred: torch.Tensor) -> torch.Tensor:
    """D's logistic loss: mean softplus(-D(x)) + mean softplus(D(G(z))) = -log sigmoid(D(x)) - log(1 - sigmoid(D(G(z))))."""
    return F.softplus(-real_pred).mean() + F.softplus(fake_pred).mean()


def g_nonsaturating_loss(fake_pred: torch.Tensor) -> torch.Tensor:
    """G's non-saturating loss: mean softplus(-D(G(z))) = -log sigmoid(D(G(z)))."""
    return F.softplus(-fake_pred).mean()


def d_r1_loss(real_pred: torch.Tensor, real_img: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): mean over images of ||grad_x D(x)||^2 on real images (``real_img`` must require
    grad; the graph is kept so the penalty can be backpropagated). The trainer multiplies it by gamma / 2."""
    (grad,) = torch.autograd.grad(real_pred.sum(), real_img, create_graph=True)
    return grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()


def g_path_length_loss(fake_img: torch.Tensor, latents: torch.Tensor, mean_path_length: float | torch.Tensor,
                       decay: float = 0.01) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Path length regularisation: J_w^T y for y ~ N(0, I) / sqrt(H W), a = ||J_w^T y|| (averaged over the W+
    entries), penalty = mean (a - mu)^2 with mu the running mean, mu <- mu + decay (mean a - mu). ``latents``
    (N, n_latent, style_dim) must be in ``fake_img``'s graph (``return_latents=True``).
    Returns (penalty, the new mu (detached), the path lengths a (N,))."""
    noise = torch.randn_like(fake_img) / math.sqrt(fake_img.shape[2] * fake_img.shape[3])
    (grad,) = torch.autograd.grad((fake_img * noise).sum(), latents, create_graph=True)
    sq = grad.pow(2).sum(-1)
    lengths = (sq.mean(1) if sq.ndim > 1 else sq).sqrt()
    mean = mean_path_length + decay * (lengths.mean() - mean_path_length)
    return (lengths - mean).pow(2).mean(), mean.detach(), lengths


# ---------------------------------------------------------------------------------------------- ADA


class AdaptiveAugment:
    """ADA's differentiable augmentations (a subset), each applied to each image with probability ``p``: horizontal
    flip, integer translation (up to size/8, reflect padding), 90-degree rotation, isotropic scaling (log2-normal,
    std 0.2) with a rotation (uniform angle) by ``grid_sample`` with reflection, brightness (+ N(0, 0.2)), contrast
    (x log2-normal std 0.5 about the image mean), saturation (x log2-normal std 1 about the grey). Images are
    square, in [-1, 1]; show D real and fake images through the same ``augment``.

    ``update(real_pred)`` collects sign(D(real)); every ``interval`` calls r_t = their mean and
    p += sign(r_t - target) * images / ada_length, clamped to [0, 1] (the heuristic: D too sure of the reals ->
    more augmentation)."""

    def __init__(self, p: float = 0.0, target: float = 0.6, ada_length: int = 500_000, interval: int = 4):
        self.p, self.target, self.ada_length, self.interval = float(p), target, ada_length, interval
        self._signs, self._count, self._calls = 0.0, 0, 0

    def state(self) -> dict[str, float | int]:
        """p and the counters of the sign statistic as plain values (to checkpoint; :meth:`from_state` reads them)."""
        return {"p": float(self.p), "signs": float(self._signs), "count": int(self._count), "calls": int(self._calls)}

    @classmethod
    def from_state(cls, state: Mapping[str, float | int], target: float = 0.6, ada_length: int = 500_000,
                   interval: int = 4) -> AdaptiveAugment:
        """An AdaptiveAugment that continues from :meth:`state`'s values."""
        ada = cls(float(state["p"]), target, ada_length, interval)
        ada._signs, ada._count, ada._calls = float(state["signs"]), int(state["count"]), int(state["calls"])
        return ada

    def update(self, real_pred: torch.Tensor) -> float:
        """Accumulate D's logits on real images; returns p (adjusted every ``interval`` calls)."""
        self._signs += float(torch.sign(real_pred.detach()).sum())
        self._count += real_pred.numel()
        self._calls += 1
        if self._calls >= self.interval:
            r_t = self._signs / max(self._count, 1)
            step = math.copysign(1.0, r_t - self.target) if r_t != self.target else 0.0
            self.p = min(1.0, max(0.0, self.p + step * self._count / self.ada_length))
            self._signs, self._count, self._calls = 0.0, 0, 0
        return self.p

    def _mask(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.rand(x.shape[0], 1, 1, 1, device=x.device) < self.p)

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) -> (N, 3, S, S), differentiable in ``images``; the input itself when p = 0."""
        if self.p <= 0:
            return images
        x = images
        n, _, h, w = x.shape
        x = torch.where(self._mask(x), x.flip(3), x)
        m = min(h, w) // 8
        if m > 0:  # integer translation: crop a reflect-padded copy at a random offset
            shift = torch.randint(-m, m + 1, (n, 2), device=x.device) * self._mask(x).view(n, 1)
            padded = F.pad(x, [m, m, m, m], mode="reflect")
            iy = (torch.arange(h, device=x.device) + m)[None] - shift[:, :1]
            ix = (torch.arange(w, device=x.device) + m)[None] - shift[:, 1:]
            x = padded[torch.arange(n, device=x.device)[:, None, None], :, iy[:, :, None], ix[:, None, :]]
            x = x.permute(0, 3, 1, 2)
        turns, x0 = torch.randint(1, 4, (n, 1, 1, 1), device=x.device) * self._mask(x), x
        for k in (1, 2, 3):  # 90-degree rotations
            x = torch.where(turns == k, torch.rot90(x0, k, dims=(2, 3)), x)
        mask = self._mask(x)
        if bool(mask.any()):  # isotropic scaling and rotation
            s = torch.exp2(torch.randn(n, device=x.device) * 0.2)
            a = (torch.rand(n, device=x.device) * 2 - 1) * math.pi
            row0 = torch.stack([a.cos() / s, -a.sin() / s, torch.zeros_like(s)], 1)
            row1 = torch.stack([a.sin() / s, a.cos() / s, torch.zeros_like(s)], 1)
            grid = F.affine_grid(torch.stack([row0, row1], 1).to(x.dtype), list(x.shape), align_corners=False)
            x = torch.where(mask, F.grid_sample(x, grid, padding_mode="reflection", align_corners=False), x)
        x = x + torch.randn(n, 1, 1, 1, device=x.device) * 0.2 * self._mask(x)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = torch.where(self._mask(x), (x - mean) * torch.exp2(torch.randn(n, 1, 1, 1, device=x.device) * 0.5) + mean, x)
        grey = x.mean(dim=1, keepdim=True)
        return torch.where(self._mask(x), (x - grey) * torch.exp2(torch.randn(n, 1, 1, 1, device=x.device)) + grey, x)


# ---------------------------------------------------------------------------------------------- fine-tuning


def requires_grad(module: nn.Module, flag: bool = True) -> nn.Module:
    """Turn gradients of every parameter of ``module`` on or off; returns ``module``."""
    for p in module.parameters():
        p.requires_grad_(flag)
    return module


def freeze_discriminator_blocks(D: Discriminator, n_trainable_blocks: int) -> list[str]:
    """FreezeD (Mo et al. 2020): train only the last ``n_trainable_blocks`` entries of ``D.convs`` (0: none) and
    ``final_conv`` and ``final_linear``; freeze the rest. Returns the trainable parameter names."""
    first = len(D.convs) - n_trainable_blocks
    names = []
    for name, p in D.named_parameters():
        parts = name.split(".")
        p.requires_grad_(parts[0] != "convs" or int(parts[1]) >= first)
        if p.requires_grad:
            names.append(name)
    return names


def _resolution(name: str) -> int | None:
    """The resolution a Generator parameter or buffer belongs to (None: the mapping network)."""
    parts = name.split(".")
    if parts[0] in ("input", "conv1", "to_rgb1"):
        return 4
    if parts[0] == "convs":
        return 2 ** (int(parts[1]) // 2 + 3)
    if parts[0] == "to_rgbs":
        return 2 ** (int(parts[1]) + 3)
    if parts[0] == "noises":
        return 2 ** ((int(parts[1].split("_")[1]) + 5) // 2)
    return None


def freeze_generator_layers(G: Generator, n_trainable_resolutions: int) -> list[str]:
    """FreezeG: train only the top ``n_trainable_resolutions`` resolutions (their ``convs``, noise weights and
    ``to_rgbs``; counting 4 px, whose ``input``/``conv1``/``to_rgb1`` train only when all log2(size) - 1 do); the
    mapping network always stays frozen. Returns the trainable parameter names (matched on exact indices)."""
    if not 0 <= n_trainable_resolutions <= G.log_size - 1:
        raise ValueError(f"n_trainable_resolutions must be in [0, {G.log_size - 1}], got {n_trainable_resolutions}")
    lowest = G.size >> (n_trainable_resolutions - 1) if n_trainable_resolutions else G.size * 2
    names = []
    for name, p in G.named_parameters():
        res = _resolution(name)
        p.requires_grad_(res is not None and res >= lowest)
        if p.requires_grad:
            names.append(name)
    return names


def blend_generators(G_low: Generator, G_high: Generator, swap_resolution: int, mapping_from: str = "high") -> Generator:
    """Layer swapping (Pinkney and Adler 2020, "Toonify"): a new Generator whose layers (and noise maps) at
    resolutions <= ``swap_resolution`` come from ``G_low`` (coarse structure: pose, face shape; typically the model
    fine-tuned on anime faces) and above from ``G_high`` (fine texture; typically the photo model it was tuned from).
    ``mapping_from`` ("high" or "low") picks the mapping network (and ``latent_avg``): "high" by default, the photo
    model in that recipe, so a w found by inverting a photo in it means the same in the blend."""
    if mapping_from not in ("high", "low"):
        raise ValueError(f"mapping_from must be 'high' or 'low', got {mapping_from!r}")
    low, high = G_low.state_dict(), G_high.state_dict()
    if {k: v.shape for k, v in low.items()} != {k: v.shape for k, v in high.items()}:
        raise ValueError("blend_generators needs two generators of the same architecture")
    out = copy.deepcopy(G_high)
    mapping = G_high if mapping_from == "high" else G_low
    sources = {None: mapping.state_dict()}
    blended = {}
    for key in high:
        res = _resolution(key)
        src = sources[None] if res is None else low if res <= swap_resolution else high
        blended[key] = src[key].clone()
    out.load_state_dict(blended)
    out.latent_avg = None if mapping.latent_avg is None else mapping.latent_avg.clone()
    return out
