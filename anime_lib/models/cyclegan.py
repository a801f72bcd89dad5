"""CycleGAN (Zhu, Park, Isola and Efros 2017): two generators and two PatchGAN discriminators.

Read top to bottom like the paper:

* :class:`ResnetBlock`: x + F(x), with F = pad, conv 3x3, InstanceNorm, ReLU, pad, conv 3x3, InstanceNorm.
* :class:`ResnetGenerator`: reflect-pad + 7x7 conv, two stride-2 convs (encoder), ``n_blocks`` residual
  blocks at 4 * ngf channels (the "transformer"), two stride-2 transposed convs (decoder), 7x7 conv and
  ``tanh``. Images (N, 3, S, S) in [-1, 1] -> (N, 3, S, S) in [-1, 1], S a multiple of 4.
* :class:`PatchDiscriminator`: the "70x70 PatchGAN": stride-2 4x4 convs, then two stride-1 ones; one raw
  logit per overlapping patch (no sigmoid), so (N, 3, S, S) -> (N, 1, s, s).
* :class:`CycleGAN`: the four networks. A = human photos, B = anime faces;
  ``G_AB``: human -> anime, ``G_BA``: anime -> human, ``D_A`` judges humans, ``D_B`` anime.
* :func:`generator_objective`, :func:`discriminator_objective` and :func:`train_step`: the full objective
  (LSGAN + lambda_cycle * cycle + lambda_identity * lambda_cycle * identity) and one update of all four
  networks, G first (D frozen), then D on fakes drawn from the image pools. This is the tested reference of
  the step function lesson 04 shows in its ``step-function`` cell (``tests/test_lesson_04_step.py``).
* :class:`Recipe` and :func:`fit`: the training recipe (Adam, constant-then-linear learning rate, image pools,
  an optional EMA of the generators, mixed precision, a mode-collapse monitor) run through
  :class:`anime_lib.training.Run`, so both parts of lesson 04 (and any lesson that trains a CycleGAN
  baseline) train, checkpoint and resume a CycleGAN the same way.

Sizes are scaled to small images with :func:`default_n_blocks` and :func:`default_n_layers`
(9 blocks / 3 D layers at 256 px, as in the paper). Conventions follow the authors' repository:
InstanceNorm without affine parameters, convolutions with bias, N(0, 0.02) initialisation.

Two keyword switches of the generators depart from the paper where the lesson's CPU profile needs it
(the defaults are the paper's): ``norm="layer"`` (GroupNorm with one group instead of InstanceNorm, which
keeps the colour of flat regions) and ``upsampling="resize"`` (nearest resize + 3x3 conv instead of
transposed convs, no checkerboard).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, Mapping

import torch
from torch import nn

from anime_lib.losses import discriminator_loss, generator_loss, reconstruction_loss
from anime_lib.models.blocks import (ACTIVATIONS, NORMS, UPSAMPLING, ImagePool, ResnetBlock, activation_layer,
                                     init_weights, norm_layer, upsample_layer)
from anime_lib.translation import Translator, translate_set

__all__ = [
    "default_n_blocks",
    "default_n_layers",
    "patch_receptive_field",
    "ResnetBlock",
    "ResnetGenerator",
    "PatchDiscriminator",
    "CycleGAN",
    "GeneratorPair",
    "CycleLosses",
    "add_input_noise",
    "generator_objective",
    "discriminator_objective",
    "train_step",
    "backward_step",
    "Recipe",
    "Fitted",
    "fit",
    "fit_supervised",
    "training_monitor",
    "PROFILE_DEFAULTS",
    "DEEP_DIVE_DEFAULTS",
    "ACTIVATIONS",
    "NORMS",
    "UPSAMPLING",
]


def default_n_blocks(img_size: int) -> int:
    """Residual blocks for an image side: 9 at >= 256 px (paper), 6 at 128, 4 at 64, 3 below."""
    if img_size >= 256:
        return 9
    if img_size >= 128:
        return 6
    return 4 if img_size >= 64 else 3


def default_n_layers(img_size: int) -> int:
    """Stride-2 layers of the PatchGAN: 3 (70 px patches) from 128 px up, 2 (34 px) at 48-64 px, 1 (16 px) below.

    The paper's 70 px patch covers about a quarter of a 256 px image side; keeping the patch between a
    quarter and a half of the side keeps D a *local* texture critic on small images.
    """
    if img_size >= 128:
        return 3
    return 2 if img_size >= 48 else 1


def patch_receptive_field(n_layers: int) -> int:
    """Side in pixels of the input patch one output logit of :class:`PatchDiscriminator` sees (3 -> 70)."""
    r = 1
    for _ in range(2):  # the two stride-1 4x4 convs at the end
        r += 3
    for _ in range(n_layers):  # the stride-2 4x4 convs, walked backwards
        r = (r - 1) * 2 + 4
    return r


class ResnetGenerator(nn.Module):
    """Image (N, 3, S, S) in [-1, 1] -> translated image (N, 3, S, S) in [-1, 1]; S a multiple of 4.

    ``ngf`` channels at full resolution, 2 * ngf at S/2, 4 * ngf at S/4 where the ``n_blocks`` residual
    blocks work. ``activation``: "relu" (paper) or "leaky_relu" (slope 0.2, a switch the reports tried).
    ``upsampling``: "transpose" (paper: stride-2 transposed convs) or "resize" (nearest resize + 3x3 conv).
    ``norm``: "instance" (paper) or "layer" (GroupNorm with one group; see :func:`anime_lib.models.blocks.norm_layer`).
    """

    def __init__(self, ngf: int = 64, n_blocks: int = 9, activation: str = "relu", in_channels: int = 3,
                 out_channels: int = 3, upsampling: str = "transpose", *, norm: str = "instance"):
        super().__init__()
        act = lambda: activation_layer(activation)  # noqa: E731  (a fresh module each time)
        nrm = lambda c: norm_layer(norm, c)  # noqa: E731
        self.stem = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7), nrm(ngf), act())
        self.down = nn.Sequential(
            nn.Conv2d(ngf, 2 * ngf, 3, stride=2, padding=1), nrm(2 * ngf), act(),
            nn.Conv2d(2 * ngf, 4 * ngf, 3, stride=2, padding=1), nrm(4 * ngf), act(),
        )
        self.blocks = nn.Sequential(*[ResnetBlock(4 * ngf, activation, norm=norm) for _ in range(n_blocks)])
        self.up = nn.Sequential(
            upsample_layer(4 * ngf, 2 * ngf, upsampling), nrm(2 * ngf), act(),
            upsample_layer(2 * ngf, ngf, upsampling), nrm(ngf), act(),
        )
        self.to_rgb = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh())
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"image sides must be multiples of 4, got {tuple(x.shape[-2:])}")
        return self.to_rgb(self.up(self.blocks(self.down(self.stem(x)))))


class PatchDiscriminator(nn.Module):
    """Image (N, 3, S, S) in [-1, 1] -> patch logits (N, 1, S / 2**n_layers - 2, same), > 0 means "real".

    conv 4x4 s2 + LeakyReLU(0.2) (no norm on the first layer), ``n_layers - 1`` more stride-2 convs with
    InstanceNorm, one stride-1 conv with InstanceNorm, a final stride-1 conv to one channel. Channels
    ndf * min(2**k, 8). Each logit sees a :func:`patch_receptive_field` (n_layers) pixel square.
    """

    def __init__(self, ndf: int = 64, n_layers: int = 3, in_channels: int = 3):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        ch = ndf
        for k in range(1, n_layers + 1):
            out = ndf * min(2 ** k, 8)
            stride = 2 if k < n_layers else 1  # the last of these is the stride-1 block
            layers += [nn.Conv2d(ch, out, 4, stride=stride, padding=1), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2, inplace=True)]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)
        self.n_layers = n_layers
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CycleGAN(Translator):
    """The four networks. A = human, B = anime. ``G_AB(human) -> anime``, ``G_BA(anime) -> human``;
    ``D_A`` scores humans, ``D_B`` anime faces. All images in [-1, 1].
    ``translate(x, "human->anime")`` runs ``G_AB``, ``translate(x, "anime->human")`` runs ``G_BA``."""

    def __init__(self, img_size: int = 64, ngf: int = 64, ndf: int = 64, n_blocks: int | None = None,
                 n_layers: int | None = None, activation: str = "relu", *, upsampling: str = "transpose",
                 norm: str = "instance"):
        super().__init__()
        n_blocks = default_n_blocks(img_size) if n_blocks is None else n_blocks
        n_layers = default_n_layers(img_size) if n_layers is None else n_layers
        self.config = dict(img_size=img_size, ngf=ngf, ndf=ndf, n_blocks=n_blocks, n_layers=n_layers, activation=activation)
        # recorded only where they differ from the paper, so configs (and checkpoints) of paper models stay as they were
        if upsampling != "transpose":
            self.config["upsampling"] = upsampling
        if norm != "instance":
            self.config["norm"] = norm
        self.G_AB = ResnetGenerator(ngf, n_blocks, activation, upsampling=upsampling, norm=norm)
        self.G_BA = ResnetGenerator(ngf, n_blocks, activation, upsampling=upsampling, norm=norm)
        self.D_A = PatchDiscriminator(ndf, n_layers)
        self.D_B = PatchDiscriminator(ndf, n_layers)

    def generator(self, direction: str) -> nn.Module:
        self.check_direction(direction)
        return self.G_AB if direction == "human->anime" else self.G_BA

    def generators(self) -> list[nn.Parameter]:
        return [*self.G_AB.parameters(), *self.G_BA.parameters()]

    def discriminators(self) -> list[nn.Parameter]:
        return [*self.D_A.parameters(), *self.D_B.parameters()]


class GeneratorPair(Translator):
    """Two generators used as a translator: ``G_AB`` human -> anime, ``G_BA`` anime -> human (for example the
    EMA copies of a :class:`CycleGAN`'s generators)."""

    def __init__(self, G_AB: nn.Module, G_BA: nn.Module):
        super().__init__()
        self.G_AB, self.G_BA = G_AB, G_BA

    def generator(self, direction: str) -> nn.Module:
        self.check_direction(direction)
        return self.G_AB if direction == "human->anime" else self.G_BA


def add_input_noise(x: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """x in [-1, 1] plus Gaussian noise of standard deviation ``std`` (in the same units), clipped to [-1, 1].

    The reports' INPUT_NOISE switch: noise on what a generator *reads*; the cycle target stays clean.
    """
    if std <= 0:
        return x
    noise = torch.randn(x.shape, generator=generator, device=x.device if generator is None else generator.device)
    return (x + std * noise.to(x.device, x.dtype)).clamp(-1, 1)


@dataclass
class CycleLosses:
    """The terms of the generator objective for one batch (0-d tensors), and the images they used."""

    total: torch.Tensor
    gan_AB: torch.Tensor
    gan_BA: torch.Tensor
    cycle_A: torch.Tensor
    cycle_B: torch.Tensor
    idt_A: torch.Tensor
    idt_B: torch.Tensor
    fake_A: torch.Tensor
    fake_B: torch.Tensor


def generator_objective(model: CycleGAN, real_A: torch.Tensor, real_B: torch.Tensor, lambda_cycle: float = 10.0,
                        lambda_identity: float = 0.5, input_noise: float = 0.0, gan_kind: str = "lsgan",
                        noise_generator: torch.Generator | None = None) -> CycleLosses:
    """The generators' objective on a batch of humans ``real_A`` and anime faces ``real_B`` ((N, 3, S, S), [-1, 1]).

    L_G = L_gan(G_AB, D_B) + L_gan(G_BA, D_A)
          + lambda_cycle * (|G_BA(G_AB(a)) - a|_1 + |G_AB(G_BA(b)) - b|_1)
          + lambda_identity * lambda_cycle * (|G_BA(a) - a|_1 + |G_AB(b) - b|_1)

    ``lambda_identity`` is relative to ``lambda_cycle`` as in the paper (0.5 -> weight 5); with 0 the
    identity forward passes are skipped. ``input_noise`` adds noise to what each generator reads.
    """
    noisy_A = add_input_noise(real_A, input_noise, noise_generator)
    noisy_B = add_input_noise(real_B, input_noise, noise_generator)
    fake_B = model.G_AB(noisy_A)
    fake_A = model.G_BA(noisy_B)
    gan_AB = generator_loss(model.D_B(fake_B), gan_kind)
    gan_BA = generator_loss(model.D_A(fake_A), gan_kind)
    cycle_A = reconstruction_loss(model.G_BA(fake_B), real_A)
    cycle_B = reconstruction_loss(model.G_AB(fake_A), real_B)
    if lambda_identity > 0:
        idt_A = reconstruction_loss(model.G_BA(noisy_A), real_A)  # a human is already human: leave it alone
        idt_B = reconstruction_loss(model.G_AB(noisy_B), real_B)
    else:
        idt_A = idt_B = torch.zeros((), device=real_A.device)
    total = gan_AB + gan_BA + lambda_cycle * (cycle_A + cycle_B) + lambda_identity * lambda_cycle * (idt_A + idt_B)
    return CycleLosses(total, gan_AB, gan_BA, cycle_A, cycle_B, idt_A, idt_B, fake_A, fake_B)


def discriminator_objective(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, gan_kind: str = "lsgan") -> torch.Tensor:
    """0.5 * [(D(real) - 1)^2 + D(fake)^2] for LSGAN; ``fake`` should come detached from the image pool."""
    return discriminator_loss(D(real), D(fake.detach()), gan_kind)


def train_step(model: CycleGAN, real_A: torch.Tensor, real_B: torch.Tensor, opt_G: torch.optim.Optimizer,
               opt_D: torch.optim.Optimizer, pool_A: ImagePool, pool_B: ImagePool, lambda_cycle: float = 10.0,
               lambda_identity: float = 0.5, input_noise: float = 0.0, gan_kind: str = "lsgan",
               autocast=None, scaler: torch.amp.GradScaler | None = None,
               noise_generator: torch.Generator | None = None) -> dict[str, float]:
    """One CycleGAN update of all four networks; returns the losses as floats.

    1. Generators: minimise :func:`generator_objective` with both discriminators frozen.
    2. Discriminators: D_A on real humans vs. fake humans from ``pool_A``, D_B on real anime vs. ``pool_B``.
       The pools (size 0 = off) return a mix of the newest fakes and older ones, all detached.

    ``opt_G`` holds both generators' parameters, ``opt_D`` both discriminators'. ``autocast``: a
    zero-argument callable returning a context manager (mixed precision on a GPU); ``scaler``: a
    GradScaler for float16.
    """
    ctx = autocast if autocast is not None else contextlib.nullcontext
    model.D_A.requires_grad_(False)
    model.D_B.requires_grad_(False)
    with ctx():
        g = generator_objective(model, real_A, real_B, lambda_cycle, lambda_identity, input_noise, gan_kind,
                                noise_generator)
    opt_G.zero_grad(set_to_none=True)
    backward_step(g.total, opt_G, scaler)
    model.D_A.requires_grad_(True)
    model.D_B.requires_grad_(True)

    pooled_A = pool_A.query(g.fake_A.detach().float())
    pooled_B = pool_B.query(g.fake_B.detach().float())
    with ctx():
        loss_D_A = discriminator_objective(model.D_A, real_A, pooled_A, gan_kind)
        loss_D_B = discriminator_objective(model.D_B, real_B, pooled_B, gan_kind)
    opt_D.zero_grad(set_to_none=True)
    backward_step(loss_D_A + loss_D_B, opt_D, scaler)
    if scaler is not None:
        scaler.update()
    losses = {"G_gan_AB": g.gan_AB, "G_gan_BA": g.gan_BA, "cycle_A": g.cycle_A, "cycle_B": g.cycle_B,
              "idt_A": g.idt_A, "idt_B": g.idt_B, "D_A": loss_D_A, "D_B": loss_D_B}
    return {k: float(v.detach()) for k, v in losses.items()}


def backward_step(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler=None) -> None:
    """``loss.backward(); opt.step()``, through the GradScaler when there is one (float16 on older GPUs)."""
    if scaler is None:
        loss.backward()
        opt.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(opt)


# --------------------------------------------------------------------------------------------------
# The training recipe, run through anime_lib.training.Run
# --------------------------------------------------------------------------------------------------

#: Lesson 04's profile defaults (``resolve_params(globals(), defaults=PROFILE_DEFAULTS)``), one table for both
#: of its notebooks, so that the deep dive builds exactly the main part's model (and finds its checkpoints).
#: The other settings of the main model (loss weights, pool, optimiser) default to :class:`Recipe`'s values,
#: which are the main part's parameter defaults (``tests/test_lesson_04_step.py`` checks both).
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "smoke": {"IMG_SIZE": 32, "BATCH_SIZE": 8, "N_TRAIN": 256, "N_EVAL": 128, "N_STEPS": 16, "PRETRAINED_STEPS": 8,
              "NGF": 8, "NDF": 8, "N_LAYERS_D": 2, "NORM": "layer", "UPSAMPLING": "resize", "EMA_DECAY": 0.9,
              "USE_AMP": False, "N_MONITOR": 64, "MONITOR_EVERY": 8, "CHECKPOINT_EVERY": 8},
    "cpu": {"IMG_SIZE": 64, "BATCH_SIZE": 8, "N_TRAIN": 4000, "N_EVAL": 500, "N_STEPS": 500, "PRETRAINED_STEPS": 5000,
            "NGF": 16, "NDF": 32, "N_LAYERS_D": 2, "NORM": "layer", "UPSAMPLING": "resize", "EMA_DECAY": 0.995,
            "USE_AMP": False, "N_MONITOR": 200, "MONITOR_EVERY": 100, "CHECKPOINT_EVERY": 100},
    "gpu": {"IMG_SIZE": 128, "BATCH_SIZE": 4, "N_TRAIN": 3400, "N_EVAL": 500, "N_STEPS": 2800, "PRETRAINED_STEPS": 0,
            "NGF": 64, "NDF": 64, "NORM": "instance", "UPSAMPLING": "transpose", "EMA_DECAY": 0.995, "USE_AMP": True,
            "N_MONITOR": 256, "MONITOR_EVERY": 200, "CHECKPOINT_EVERY": 200},
}
#: The deep dive's defaults: the main part's plus the length of each ablation run.
DEEP_DIVE_DEFAULTS: dict[str, dict[str, Any]] = {
    profile: {**values, "ABLATION_STEPS": steps}
    for (profile, values), steps in zip(PROFILE_DEFAULTS.items(), (4, 120, 500))
}


@dataclass(frozen=True)
class Recipe:
    """Every setting that shapes a CycleGAN run: the networks, the loss weights and the optimiser.

    ``lambda_identity`` is relative to ``lambda_cycle`` (paper: 0.5); ``pool_size`` 0 switches the pools
    off; ``decay_start``: fraction of the steps at constant learning rate before the linear decay to 0;
    ``ema_decay`` 0 keeps no EMA of the generators; ``data``: a name for the training data (recorded in the
    run's settings, so a run on other data never resumes this one's checkpoints).
    """

    img_size: int = 64
    batch_size: int = 1
    ngf: int = 64
    ndf: int = 64
    n_blocks: int | None = None
    n_layers: int | None = None
    activation: str = "relu"
    norm: str = "instance"
    upsampling: str = "transpose"
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    input_noise: float = 0.0
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    decay_start: float = 0.5
    ema_decay: float = 0.0
    data: str = "default"

    #: parameter names of the lesson whose name is not the field's upper-cased
    PARAMETER_NAMES = {"n_layers": "N_LAYERS_D"}

    @classmethod
    def from_params(cls, P: Any, **changes: Any) -> "Recipe":
        """The recipe from a lesson's resolved parameters (``NGF``, ``LAMBDA_CYCLE``, ``N_LAYERS_D``, ...),
        then ``changes`` (field names): ``Recipe.from_params(P, pool_size=0)``."""
        values = {}
        for f in fields(cls):
            name = cls.PARAMETER_NAMES.get(f.name, f.name.upper())
            if hasattr(P, name):
                values[f.name] = getattr(P, name)
        return replace(cls(**values), **changes)

    def config(self, **extra: Any) -> dict[str, Any]:
        """The settings for :class:`anime_lib.training.Run` (plus ``extra``: dataset, n_train, ...)."""
        return {**asdict(self), **extra}

    def build(self) -> CycleGAN:
        return CycleGAN(self.img_size, self.ngf, self.ndf, self.n_blocks, self.n_layers, self.activation,
                        norm=self.norm, upsampling=self.upsampling)


@dataclass
class Fitted:
    """What :func:`fit` returns. ``final``: the translator to show and measure (the EMA generators when the
    recipe keeps an EMA, else ``model``). ``log``: the monitor's readings (``step``, one list per reading,
    ``monitor_seconds``). ``train_seconds``: training time over every session, without the monitor's."""

    model: CycleGAN
    final: Translator
    result: Any
    log: dict[str, Any]
    emas: dict[str, Any] | None
    train_seconds: float = 0.0


def training_monitor(faces: Any, probe=None) -> Callable[[nn.Module], dict[str, float]]:
    """A function ``G -> readings`` that translates fixed test ``faces`` human -> anime (a ToyFaces set of
    humans, with ground truth) and measures them like the lesson's table (:func:`evaluation.measure_translations`):
    ``realism``, ``attr_preservation``, ``gt_l1``, ``toy_fid`` and ``diversity``. Read every few hundred steps
    it draws where training goes; diversity rising while realism stays high is the sign of mode collapse.
    (On a few hundred faces toy_fid reads higher than on the full test split: compare readings with each other.)"""
    from anime_lib import metrics as M
    from anime_lib.evaluation import measure_translations

    probe = probe if probe is not None else M.get_probe()
    keys = ("realism", "attr_preservation", "gt_l1", "toy_fid", "diversity")

    def read(G: nn.Module) -> dict[str, float]:
        row = measure_translations(translate_set(G, faces, "human->anime"), faces, "human->anime", method="monitor",
                                   probe=probe)
        return {k: float(row[k]) for k in keys}

    read.readings = keys  # what it returns: fit() records it in the run's settings
    return read


def fit(run: Any, recipe: Recipe, train_A: torch.Tensor, train_B: torch.Tensor, n_steps: int, *,
        step: Callable[..., Mapping[str, float]] | None = None, device: torch.device | str = "cpu", amp=None,
        monitor: Callable[[nn.Module], Mapping[str, float]] | None = None, monitor_every: int | None = None,
        checkpoint_every: int | None = 500) -> Fitted:
    """Train a CycleGAN with ``recipe`` for ``n_steps`` through ``run`` (a :class:`anime_lib.training.Run`
    created just before, with ``config=recipe.config(...)``); a re-run resumes from its checkpoints.

    ``train_A`` / ``train_B``: (N, 3, S, S) in [-1, 1], humans and anime faces (unpaired). ``step``: the
    update of all four networks with the signature of :func:`train_step` (default: :func:`train_step`);
    the batch of each step comes from the step number (:func:`anime_lib.training.batch_indices`), then the
    learning-rate schedules and the EMAs move. ``amp``: :func:`anime_lib.training.pick_amp`'s settings
    (None: full precision). ``monitor(G_AB)`` runs every ``monitor_every`` steps; its readings are
    checkpointed with the run, and their names (its ``readings`` attribute, see :func:`training_monitor`) join
    the run's settings as ``monitor_readings``. Everything that changes while training (weights, optimisers, schedules,
    pools, EMAs, noise generator, monitor log, GradScaler) is in the run's checkpoints.
    """
    from anime_lib.training import EMA, autocast_context, batch_indices, linear_decay_lambda

    differ = [k for k, v in recipe.config().items() if k not in run.config or run.config[k] != v]
    if differ:
        raise ValueError(f"run {run.name!r} was not created with this recipe: its config lacks or differs in "
                         f"{differ}; create it with Run(..., config=recipe.config(...))")
    step = step or train_step
    seed = run.seed
    device = torch.device(device)
    model = recipe.build().to(device, memory_format=torch.channels_last)
    opt_G = torch.optim.Adam(model.generators(), lr=recipe.lr, betas=(recipe.beta1, recipe.beta2))
    opt_D = torch.optim.Adam(model.discriminators(), lr=recipe.lr, betas=(recipe.beta1, recipe.beta2))
    n_constant = int(n_steps * recipe.decay_start)
    schedule = linear_decay_lambda(n_constant, n_steps - n_constant)  # one "epoch" of the schedule is one step
    sched_G = torch.optim.lr_scheduler.LambdaLR(opt_G, schedule)
    sched_D = torch.optim.lr_scheduler.LambdaLR(opt_D, schedule)
    gen = torch.Generator().manual_seed(seed)  # pools and input noise
    pool_A, pool_B = ImagePool(recipe.pool_size, gen), ImagePool(recipe.pool_size, gen)
    emas = {g: EMA(getattr(model, g), recipe.ema_decay) for g in ("G_AB", "G_BA")} if recipe.ema_decay else None
    scaler = torch.amp.GradScaler(device.type) if amp is not None and amp.use_grad_scaler else None
    if amp is not None and amp.enabled:
        autocast = lambda: autocast_context(device, True, amp.dtype)  # noqa: E731
    else:
        autocast = contextlib.nullcontext
    log: dict[str, Any] = {"step": [], "monitor_seconds": 0.0}
    if monitor is not None and monitor_every:
        # the readings are part of the run's settings: a checkpoint whose log holds other readings (written by an
        # older version of the course) starts over, instead of resuming into a log the lesson cannot draw
        run.config["monitor_readings"] = list(getattr(monitor, "readings", ()))
    dev_A, dev_B = train_A.to(device), train_B.to(device)

    def step_fn(i: int) -> Mapping[str, float]:
        a = dev_A[batch_indices(i, recipe.batch_size, len(dev_A), seed, stream=0).to(device)]
        b = dev_B[batch_indices(i, recipe.batch_size, len(dev_B), seed, stream=1).to(device)]
        losses = step(model, a, b, opt_G, opt_D, pool_A, pool_B, recipe.lambda_cycle, recipe.lambda_identity,
                      recipe.input_noise, autocast=autocast, scaler=scaler, noise_generator=gen)
        sched_G.step()
        sched_D.step()
        for g, ema in (emas or {}).items():
            ema.update(getattr(model, g))  # shadow = d * shadow + (1 - d) * weights
        return losses

    def read_monitor(done: int) -> None:
        t0 = time.perf_counter()
        log["step"].append(done)
        for k, v in monitor(model.G_AB).items():  # type: ignore[misc]
            log.setdefault(k, []).append(float(v))
        log["monitor_seconds"] += time.perf_counter() - t0

    save: dict[str, Any] = {"model": model, "opt_G": opt_G, "opt_D": opt_D, "sched_G": sched_G, "sched_D": sched_D,
                            "pool_A": pool_A, "pool_B": pool_B, "gen": gen, "monitor": log}
    save.update({f"ema_{g}": ema for g, ema in (emas or {}).items()})
    if scaler is not None:
        save["scaler"] = scaler
    result = run.train(step_fn, n_steps, save=save, checkpoint_every=checkpoint_every,
                       sample_fn=read_monitor if monitor is not None and monitor_every else None,
                       sample_every=monitor_every if monitor is not None else None)
    model.eval()
    final = GeneratorPair(emas["G_AB"].module, emas["G_BA"].module) if emas else model
    return Fitted(model, final, result, log, emas, result.train_seconds - log["monitor_seconds"])


def fit_supervised(run: Any, recipe: Recipe, source: torch.Tensor, targets: torch.Tensor, n_steps: int, *,
                   device: torch.device | str = "cpu", checkpoint_every: int | None = 500, stream: int = 2):
    """The supervised ceiling of lesson 04: the ``G_AB`` of ``recipe`` trained alone on true pairs, an L1 loss
    between ``G_AB(source)`` and ``targets`` (the ground-truth counterparts, both (N, 3, S, S) in [-1, 1];
    lesson 02's paired step), with the batch size, Adam settings and schedule of :func:`fit`. Returns
    ``(G_AB, RunResult)``; ``run`` checkpoints and resumes it like any other run."""
    from anime_lib.models.encoder_decoder import translation_step
    from anime_lib.training import batch_indices, linear_decay_lambda

    device = torch.device(device)
    G = recipe.build().G_AB.to(device, memory_format=torch.channels_last)
    opt = torch.optim.Adam(G.parameters(), lr=recipe.lr, betas=(recipe.beta1, recipe.beta2))
    n_constant = int(n_steps * recipe.decay_start)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_decay_lambda(n_constant, n_steps - n_constant))
    src, tgt = source.to(device), targets.to(device)

    def step_fn(i: int) -> Mapping[str, float]:
        idx = batch_indices(i, recipe.batch_size, len(src), run.seed, stream=stream).to(device)
        losses = translation_step(G, opt, src[idx], tgt[idx])
        sched.step()
        return losses

    result = run.train(step_fn, n_steps, save={"G": G, "opt": opt, "sched": sched}, checkpoint_every=checkpoint_every)
    G.eval()
    return G, result
