"""CartoonGAN (Chen, Lai and Liu 2018): one generator, one discriminator, a content loss on a trained network.

Read top to bottom like the paper:

* :class:`CartoonGenerator`: a flat 7x7 conv (k7n64s1), two down-convolutions (a stride-2 and a stride-1 3x3
  conv, norm, ReLU each: k3n128s2 + k3n128s1, k3n256s2 + k3n256s1), ``n_blocks`` residual blocks at 4 * ngf
  (8 in the paper), two up-convolutions (a stride-1/2 transposed conv and a stride-1 3x3 conv, norm, ReLU:
  k3n128s1/2 + k3n128s1, k3n64s1/2 + k3n64s1) and a 7x7 conv to RGB with ``tanh``.
  (N, 3, S, S) in [-1, 1] -> (N, 3, S, S) in [-1, 1], S a multiple of 4.
* :class:`CartoonDiscriminator`: the paper's small critic, seven 3x3 convs (two of stride 2), LeakyReLU 0.2;
  one raw logit per patch, (N, 3, S, S) -> (N, 1, S/4, S/4).
* :class:`CartoonGAN`: the two networks as a :class:`~anime_lib.translation.Translator` of one direction,
  human (photo) -> anime (cartoon).
* :class:`Objective`, :func:`content_loss`, :func:`style_loss` and :func:`train_step`: the losses and one
  update, the tested reference of the step function lesson 07 shows in its ``step-function`` cell
  (``tests/test_lesson_07_step.py``). In the **initialisation phase** only the content loss trains G; after it,
  D learns real cartoons -> 1, G(photo) -> 0 and **edge-smoothed cartoons -> 0** (the edge-promoting
  adversarial loss), then G minimises its adversarial term + omega * content (+ a Gram style term, the
  classic alternative of Gatys et al., when ``style > 0``).
* :class:`Recipe` and :func:`fit`: the training recipe (Adam 2e-4 (0.5, 0.999), the first ``init_steps`` steps
  content-only, then the learning rate x0.1 at 50 % and 75 % of the rest) run through :class:`anime_lib.training.Run`.
* **ArtifyGAN**, a student variant: 10 residual blocks and no convolution between them and the decoder; here a
  switch of the same generator (``n_blocks`` and ``conv_after_blocks``), compared by :func:`generator_sizes`
  and :func:`step_seconds`.

The feature network of the content loss is an :class:`anime_lib.perceptual.FeatureExtractor` (VGG19 conv4_4 where
its weights can be downloaded, offline the ToyFaces probe); :func:`content_network` also builds a *randomly
initialised* one of the same kind, which the lesson trains with to show why the network must be trained.

Paper conventions kept: InstanceNorm, ReLU in G, LeakyReLU 0.2 in D, transposed convs, BCE, omega = 10, batch 8;
the weights start from the course's N(0, 0.02) initialisation (the paper does not say). Two switches of lesson 04 (``norm="layer"``, ``upsampling="resize"``) are available
for small images, and the residual blocks are the course's shared :class:`~anime_lib.models.blocks.ResnetBlock`
(reflection padding).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from anime_lib.losses import gram_matrix
from anime_lib.models.blocks import NORMS, UPSAMPLING, ResnetBlock, count_parameters, init_weights, norm_layer, upsample_layer
from anime_lib.translation import Translator

__all__ = [
    "CartoonGenerator",
    "CartoonDiscriminator",
    "CartoonGAN",
    "Objective",
    "content_loss",
    "style_loss",
    "bce",
    "train_step",
    "content_network",
    "kind_of",
    "counterpart_closer",
    "Recipe",
    "Fitted",
    "fit",
    "lr_milestones",
    "generator_sizes",
    "step_seconds",
    "PAPER",
    "ARTIFYGAN_EXTRA_BLOCKS",
    "PROFILE_DEFAULTS",
    "NORMS",
    "UPSAMPLING",
]

#: The paper's sizes (and the training reference's): ngf 64, ndf 32, 8 residual blocks, 256 px, batch 8.
PAPER = {"ngf": 64, "ndf": 32, "n_blocks": 8, "img_size": 256, "batch_size": 8}
#: ArtifyGAN's residual blocks beyond CartoonGAN's (10 against the paper's 8).
ARTIFYGAN_EXTRA_BLOCKS = 2


class CartoonGenerator(nn.Module):
    """Photo (N, 3, S, S) in [-1, 1] -> cartoon (N, 3, S, S) in [-1, 1]; S a multiple of 4.

    ``ngf`` channels at full resolution, 2 * ngf at S/2, 4 * ngf at S/4 where the ``n_blocks`` residual blocks
    work. ``conv_after_blocks``: a 3x3 conv + norm + ReLU at 4 * ngf between the residual blocks and the
    up-convolutions (not in the paper's figure; ArtifyGAN's report says its variant has none).
    ``norm``: "instance" (paper) or "layer"; ``upsampling``: "transpose" (paper) or "resize".
    """

    def __init__(self, ngf: int = 64, n_blocks: int = 8, *, conv_after_blocks: bool = False, norm: str = "instance",
                 upsampling: str = "transpose"):
        super().__init__()
        nrm = lambda c: norm_layer(norm, c)  # noqa: E731  (a fresh module each time)
        self.flat = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), nrm(ngf), nn.ReLU(inplace=True))
        self.down = nn.Sequential(*(layer for c in (ngf, 2 * ngf) for layer in (
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.Conv2d(2 * c, 2 * c, 3, padding=1), nrm(2 * c),
            nn.ReLU(inplace=True))))
        self.blocks = nn.Sequential(*[ResnetBlock(4 * ngf, "relu", norm=norm) for _ in range(n_blocks)])
        self.after_blocks = (nn.Sequential(nn.Conv2d(4 * ngf, 4 * ngf, 3, padding=1), nrm(4 * ngf), nn.ReLU(inplace=True))
                             if conv_after_blocks else nn.Identity())
        self.up = nn.Sequential(*(layer for c in (4 * ngf, 2 * ngf) for layer in (
            upsample_layer(c, c // 2, upsampling), nn.Conv2d(c // 2, c // 2, 3, padding=1), nrm(c // 2),
            nn.ReLU(inplace=True))))
        self.to_rgb = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh())
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"image sides must be multiples of 4, got {tuple(x.shape[-2:])}")
        return self.to_rgb(self.up(self.after_blocks(self.blocks(self.down(self.flat(x))))))


class CartoonDiscriminator(nn.Module):
    """Image (N, 3, S, S) in [-1, 1] -> patch logits (N, 1, S/4, S/4), > 0 means "a real cartoon".

    The paper's layout with ``ndf`` = 32: k3n32s1, LReLU; k3n64s2, LReLU, k3n128s1, norm, LReLU;
    k3n128s2, LReLU, k3n256s1, norm, LReLU; k3n256s1, norm, LReLU; k3n1s1. InstanceNorm, no sigmoid (BCE with logits).
    """

    def __init__(self, ndf: int = 32):
        super().__init__()
        lrelu = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
        conv = lambda cin, cout, stride=1: nn.Conv2d(cin, cout, 3, stride=stride, padding=1)  # noqa: E731
        self.net = nn.Sequential(
            conv(3, ndf), lrelu(),
            conv(ndf, 2 * ndf, 2), lrelu(), conv(2 * ndf, 4 * ndf), norm_layer("instance", 4 * ndf), lrelu(),
            conv(4 * ndf, 4 * ndf, 2), lrelu(), conv(4 * ndf, 8 * ndf), norm_layer("instance", 8 * ndf), lrelu(),
            conv(8 * ndf, 8 * ndf), norm_layer("instance", 8 * ndf), lrelu(),
            conv(8 * ndf, 1),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CartoonGAN(Translator):
    """``G``: photo (human) -> cartoon (anime); ``D`` scores cartoons. All images in [-1, 1].
    ``translate(x, "human->anime")`` runs ``G``; CartoonGAN has no reverse generator."""

    directions = ("human->anime",)

    def __init__(self, ngf: int = 64, ndf: int = 32, n_blocks: int = 8, *, conv_after_blocks: bool = False,
                 norm: str = "instance", upsampling: str = "transpose"):
        super().__init__()
        self.config = dict(ngf=ngf, ndf=ndf, n_blocks=n_blocks, conv_after_blocks=conv_after_blocks, norm=norm,
                           upsampling=upsampling)
        self.G = CartoonGenerator(ngf, n_blocks, conv_after_blocks=conv_after_blocks, norm=norm, upsampling=upsampling)
        self.D = CartoonDiscriminator(ndf)

    def generator(self, direction: str) -> nn.Module:
        self.check_direction(direction)
        return self.G


# --------------------------------------------------------------------------------------------------
# The losses and one update
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """The loss weights of a CartoonGAN step. ``omega``: content weight (paper 10); ``adversarial``: weight of G's
    adversarial term (0 switches D off: no D update at all); ``style``: weight of the Gram style term (0: off);
    ``edge_smoothing``: D also sees edge-smoothed cartoons as fakes (the paper's edge-promoting loss)."""

    omega: float = 10.0
    adversarial: float = 1.0
    style: float = 0.0
    edge_smoothing: bool = True


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Binary cross-entropy of raw logits against a constant target (1 real, 0 fake), mean over every patch."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def content_loss(features: nn.Module, fake: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """|features(G(p)) - features(p)|_1, the mean over every feature value; ``photo``'s side has no gradient."""
    with torch.no_grad():
        target = features(photo)
    return (features(fake) - target).abs().mean()


def style_loss(features: nn.Module, fake: torch.Tensor, cartoon: torch.Tensor) -> torch.Tensor:
    """Gatys' style loss on one feature map: the squared (Frobenius) distance between each fake's Gram matrix and
    the mean Gram matrix of a batch of cartoons (the domain's texture statistics), averaged over the fakes.
    Pairing each fake with one cartoon instead (as AnimeGAN does) has the same expected gradient, with more noise."""
    with torch.no_grad():
        target = gram_matrix(features(cartoon)).mean(0, keepdim=True)
    return (gram_matrix(features(fake)) - target).pow(2).sum((1, 2)).mean()


def train_step(model: CartoonGAN, photo: torch.Tensor, cartoon: torch.Tensor, smoothed: torch.Tensor,
               opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer, features: nn.Module,
               objective: Objective = Objective(), init_phase: bool = False) -> dict[str, float]:
    """One CartoonGAN update on photos, cartoons and the same cartoons edge-smoothed ((N, 3, S, S), [-1, 1]).

    Initialisation phase: G alone, omega * content. Otherwise, when ``objective.adversarial > 0``, first D (BCE:
    real cartoons -> 1, G(photo) -> 0, edge-smoothed cartoons -> 0 when ``edge_smoothing``), then G with D frozen:
    adversarial * BCE(D(G(p)), 1) + omega * content (+ style * Gram style loss). Returns the losses as floats.
    """
    G, D = model.G, model.D
    fake = G(photo)
    losses: dict[str, torch.Tensor] = {"content": content_loss(features, fake, photo)}
    if init_phase:
        loss_G = objective.omega * losses["content"]
    else:
        if objective.adversarial > 0:
            losses["D_real"], losses["D_fake"] = bce(D(cartoon), 1.0), bce(D(fake.detach()), 0.0)
            losses["D_smoothed"] = bce(D(smoothed), 0.0) if objective.edge_smoothing else torch.zeros(())
            opt_D.zero_grad(set_to_none=True)
            (losses["D_real"] + losses["D_fake"] + losses["D_smoothed"]).backward()
            opt_D.step()
            D.requires_grad_(False)
            losses["G_adv"] = bce(D(fake), 1.0)
            D.requires_grad_(True)
        if objective.style > 0:
            losses["style"] = style_loss(features, fake, cartoon)
        loss_G = objective.omega * losses["content"]
        loss_G = loss_G + objective.adversarial * losses.get("G_adv", 0.0) + objective.style * losses.get("style", 0.0)
    opt_G.zero_grad(set_to_none=True)
    loss_G.backward()
    opt_G.step()
    return {k: float(v.detach()) for k, v in losses.items()}


def kind_of(features: nn.Module) -> str:
    """"vgg19" or "probe": which kind of network a :func:`content_network` is (VGG19 may have fallen back to the probe)."""
    return "vgg19" if "VGG19" in getattr(features, "name", "") else "probe"


def content_network(kind: str = "probe", *, random: bool = False, verbose: bool = True) -> nn.Module:
    """The frozen feature network of the content loss (images in [-1, 1] -> feature maps).

    ``kind``: "probe" (offline: the ToyFaces probe's encoder, :func:`anime_lib.perceptual.probe_features`) or
    "vgg19" (VGG19 conv4_4; falls back to the probe where the weights cannot be downloaded, and says so).
    ``random=True``: the same architecture with freshly initialised weights (what a perceptual loss on an
    untrained network measures); seed torch first for a reproducible one. ``.name`` says which network it is.
    """
    from anime_lib import perceptual

    if not random:
        return perceptual.feature_extractor(kind, verbose=verbose)
    if kind == "vgg19":
        from torchvision.models import vgg19

        body = vgg19(weights=None).features[: perceptual.VGG19_CONV4_4 + 1]
        # no ImageNet normalisation: a random network has learned no input statistics to match
        return perceptual.FeatureExtractor(body, lambda x: x, "randomly initialised VGG19, conv4_4 before ReLU")
    if kind != "probe":
        raise ValueError(f"kind must be one of {perceptual.FEATURE_KINDS}, got {kind!r}")
    from anime_lib.probe import Probe

    extractor = perceptual.probe_features(probe=Probe().eval())
    extractor.name = "randomly initialised " + extractor.name
    return extractor


@torch.no_grad()
def counterpart_closer(features: nn.Module, photos: torch.Tensor, counterparts: torch.Tensor, batch: int = 128) -> float:
    """How often ``features`` find a photo's own counterpart (the same face drawn in the other style) closer than
    another photo (another face in the photo's own style): content over style, what a content loss must judge.

    ``photos`` and ``counterparts``: (N, 3, S, S) in [-1, 1], N >= 2; photo i is compared with counterpart i and
    with photo i + 1. Distance: mean |features(a) - features(b)|, as in the content loss; ``nn.Identity()``
    measures raw pixels. Returns the fraction of photos whose own counterpart is the closer one.
    """
    if len(photos) != len(counterparts) or len(photos) < 2:
        raise ValueError(f"need as many counterparts as photos (at least 2), got {len(photos)} and {len(counterparts)}")
    others = photos.roll(1, 0)
    wins = []
    for i in range(0, len(photos), batch):
        f_photo, f_own, f_other = (features(t[i:i + batch]) for t in (photos, counterparts, others))
        d_own = (f_photo - f_own).abs().flatten(1).mean(1)
        d_other = (f_photo - f_other).abs().flatten(1).mean(1)
        wins.append(d_own < d_other)
    return float(torch.cat(wins).float().mean())


# --------------------------------------------------------------------------------------------------
# The training recipe, run through anime_lib.training.Run
# --------------------------------------------------------------------------------------------------

#: Lesson 07's profile defaults (``resolve_params(globals(), defaults=PROFILE_DEFAULTS)``). ``N_STEPS`` counts the
#: steps after the initialisation phase; each run trains ``N_INIT_STEPS + N_STEPS`` steps in all. gpu: the paper's
#: networks, batch and VGG19 on ToyFaces at 64 px (the paper: 256), seven runs short enough for its T4 budget
#: (``benchmarks/gpu_budget.py``).
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "smoke": {"IMG_SIZE": 32, "BATCH_SIZE": 4, "N_TRAIN": 64, "N_EVAL": 64, "N_INIT_STEPS": 2, "N_STEPS": 3, "NGF": 8,
              "NDF": 4, "N_BLOCKS": 1, "ARTIFYGAN_BLOCKS": 3, "NORM": "layer", "UPSAMPLING": "resize", "FEATURES": "probe",
              "LR_DECAY_AT": [0.5, 0.75], "CHECKPOINT_EVERY": 5, "TIMING_REPEATS": 2},
    "cpu": {"IMG_SIZE": 64, "BATCH_SIZE": 4, "N_TRAIN": 2000, "N_EVAL": 500, "N_INIT_STEPS": 80, "N_STEPS": 320,
            "NGF": 16, "NDF": 8, "N_BLOCKS": 3, "ARTIFYGAN_BLOCKS": 5, "NORM": "layer", "UPSAMPLING": "resize",
            "FEATURES": "probe", "LR_DECAY_AT": [], "CHECKPOINT_EVERY": 100, "TIMING_REPEATS": 5},
    "gpu": {"IMG_SIZE": 64, "BATCH_SIZE": 8, "N_TRAIN": 3400, "N_EVAL": 500, "N_INIT_STEPS": 200, "N_STEPS": 600,
            "NGF": 64, "NDF": 32, "N_BLOCKS": 8, "ARTIFYGAN_BLOCKS": 10, "NORM": "instance", "UPSAMPLING": "transpose",
            "FEATURES": "vgg19", "LR_DECAY_AT": [], "CHECKPOINT_EVERY": 200, "TIMING_REPEATS": 10},
}


@dataclass(frozen=True)
class Recipe:
    """Every setting that shapes a CartoonGAN run: the networks, the objective, the phases and the optimiser.

    ``init_steps``: the first steps train G with the content loss only (paper: 10 epochs); ``lr_decay_at``:
    fractions of the training after that phase where the learning rate is multiplied by ``lr_gamma`` (paper: 0.5 and
    0.75, x0.1; :func:`lr_milestones`);
    ``features``: the name of the content network (:func:`content_network`'s ``.name``), recorded so that a run
    never resumes checkpoints trained with another one; ``data``: a name for the training data.
    """

    img_size: int = 256
    batch_size: int = 8
    ngf: int = 64
    ndf: int = 32
    n_blocks: int = 8
    conv_after_blocks: bool = False
    norm: str = "instance"
    upsampling: str = "transpose"
    omega: float = 10.0
    adversarial: float = 1.0
    style: float = 0.0
    edge_smoothing: bool = True
    init_steps: int = 0
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_decay_at: tuple[float, ...] = (0.5, 0.75)
    lr_gamma: float = 0.1
    features: str = "probe"
    data: str = "default"

    #: parameter names of the lesson whose name is not the field's upper-cased
    PARAMETER_NAMES = {"init_steps": "N_INIT_STEPS", "adversarial": "ADV_WEIGHT"}
    #: fields a lesson sets per run, never from its parameters (STYLE_WEIGHT is for the Gram rows only; FEATURES
    #: names a kind of network, the recipe records the network that was built)
    NOT_PARAMETERS = ("conv_after_blocks", "style", "features", "data")

    @classmethod
    def from_params(cls, P: Any, **changes: Any) -> "Recipe":
        """The recipe from a lesson's resolved parameters (``NGF``, ``OMEGA``, ``N_INIT_STEPS``, ...), then
        ``changes`` (field names): ``Recipe.from_params(P, features=net.name, style=1.0)``."""
        values = {}
        for f in fields(cls):
            name = cls.PARAMETER_NAMES.get(f.name, f.name.upper())
            if f.name not in cls.NOT_PARAMETERS and hasattr(P, name):
                values[f.name] = getattr(P, name)
        if "lr_decay_at" in values:
            values["lr_decay_at"] = tuple(values["lr_decay_at"])
        return replace(cls(**values), **changes)

    @property
    def objective(self) -> Objective:
        return Objective(self.omega, self.adversarial, self.style, self.edge_smoothing)

    def config(self, **extra: Any) -> dict[str, Any]:
        """The settings for :class:`anime_lib.training.Run` (plus ``extra``: dataset, n_train, ...)."""
        values = asdict(self)
        values["lr_decay_at"] = list(values["lr_decay_at"])  # as a checkpoint stores it
        return {**values, **extra}

    def build(self) -> CartoonGAN:
        return CartoonGAN(self.ngf, self.ndf, self.n_blocks, conv_after_blocks=self.conv_after_blocks, norm=self.norm,
                          upsampling=self.upsampling)


@dataclass
class Fitted:
    """What :func:`fit` returns: the trained ``model``, the run's ``result``, ``train_seconds`` (every session) and
    ``init_G``: a copy of the generator as the initialisation phase left it (None when the run had no such phase)."""

    model: CartoonGAN
    result: Any
    train_seconds: float
    init_G: CartoonGenerator | None = None


def lr_milestones(n_steps: int, fractions: tuple[float, ...] = (0.5, 0.75), init_steps: int = 0) -> list[int]:
    """The steps where the learning rate is multiplied by the recipe's ``lr_gamma``: ``fractions`` of the training
    after the initialisation phase (paper: at 50 % and 75 % of it), counted from step 0 of the whole run."""
    span = n_steps - init_steps
    return sorted({init_steps + int(span * f) for f in fractions if 0 < int(span * f) < span})


def fit(run: Any, recipe: Recipe, photos: torch.Tensor, cartoons: torch.Tensor, smoothed: torch.Tensor,
        n_steps: int, features: nn.Module, *, step: Callable[..., Mapping[str, float]] | None = None,
        device: torch.device | str = "cpu", checkpoint_every: int | None = 500) -> Fitted:
    """Train a CartoonGAN with ``recipe`` for ``n_steps`` in all (the first ``recipe.init_steps`` content-only)
    through ``run`` (a :class:`anime_lib.training.Run` created just before with ``config=recipe.config(...)``);
    a re-run resumes from its checkpoints.

    ``photos``: (N, 3, S, S) human faces; ``cartoons``: anime faces; ``smoothed``: the same anime faces
    edge-smoothed (:func:`anime_lib.data.stylise.edge_smooth_tensor`), all in [-1, 1]. ``features``: the frozen
    content network (its ``.name`` must be ``recipe.features``). ``step``: the update, with the signature of
    :func:`train_step` (default :func:`train_step`). The batch of each step comes from the step number (photos
    stream 0; cartoons and their smoothed copies share stream 1).
    """
    from anime_lib.training import batch_indices

    differ = [k for k, v in recipe.config().items() if k not in run.config or run.config[k] != v]
    if differ:
        raise ValueError(f"run {run.name!r} was not created with this recipe: its config lacks or differs in "
                         f"{differ}; create it with Run(..., config=recipe.config(...))")
    if getattr(features, "name", recipe.features) != recipe.features:
        raise ValueError(f"the recipe names the content network {recipe.features!r}, but {features.name!r} was given")
    step = step or train_step
    device = torch.device(device)
    model = recipe.build().to(device, memory_format=torch.channels_last)  # the same arithmetic, faster kernels
    features = features.to(device)
    opt_G = torch.optim.Adam(model.G.parameters(), lr=recipe.lr, betas=(recipe.beta1, recipe.beta2))
    opt_D = torch.optim.Adam(model.D.parameters(), lr=recipe.lr, betas=(recipe.beta1, recipe.beta2))
    milestones = lr_milestones(n_steps, recipe.lr_decay_at, recipe.init_steps)
    dev_A, dev_B, dev_S = photos.to(device), cartoons.to(device), smoothed.to(device)
    objective = recipe.objective

    def step_fn(i: int) -> Mapping[str, float]:
        lr = recipe.lr * recipe.lr_gamma ** sum(i >= m for m in milestones)  # from the step number: resumes exactly
        for group in (*opt_G.param_groups, *opt_D.param_groups):
            group["lr"] = lr
        a = batch_indices(i, recipe.batch_size, len(dev_A), run.seed, stream=0).to(device)
        b = batch_indices(i, recipe.batch_size, len(dev_B), run.seed, stream=1).to(device)
        losses = step(model, dev_A[a], dev_B[b], dev_S[b], opt_G, opt_D, features, objective,
                      init_phase=i < recipe.init_steps)
        return {**losses, "lr": lr}

    init_state: dict[str, torch.Tensor] = {}  # G's weights at the end of the initialisation phase

    def keep_init(done: int) -> None:
        if done == recipe.init_steps:
            init_state.update({k: v.detach().clone() for k, v in model.G.state_dict().items()})

    save = {"model": model, "opt_G": opt_G, "opt_D": opt_D, "init_G": init_state}
    result = run.train(step_fn, n_steps, save=save, checkpoint_every=checkpoint_every,
                       sample_fn=keep_init if 0 < recipe.init_steps <= n_steps else None, sample_every=recipe.init_steps)
    model.eval()
    init_G = None
    if init_state:
        init_G = recipe.build().G.to(device)
        init_G.load_state_dict(init_state)
        init_G.eval()
    return Fitted(model, result, result.train_seconds, init_G)


# --------------------------------------------------------------------------------------------------
# Size and speed: CartoonGAN against ArtifyGAN
# --------------------------------------------------------------------------------------------------


def generator_sizes(ngf: int, n_blocks: int, extra_blocks: int = ARTIFYGAN_EXTRA_BLOCKS, *, norm: str = "instance",
                    upsampling: str = "transpose") -> list[dict[str, Any]]:
    """Generator parameter counts of CartoonGAN, CartoonGAN with a conv after its residual blocks, and ArtifyGAN
    (``extra_blocks`` more blocks, no conv after them): at width ``ngf`` with ``n_blocks``, ``norm`` and
    ``upsampling`` ("this lesson"), and at the paper's sizes and layers ("paper")."""
    rows = []
    for label, width, blocks, layers in (("this lesson", ngf, n_blocks, dict(norm=norm, upsampling=upsampling)),
                                         ("paper", PAPER["ngf"], PAPER["n_blocks"], {})):
        variants = {"CartoonGAN": (blocks, False), "CartoonGAN + conv after the blocks": (blocks, True),
                    "ArtifyGAN": (blocks + extra_blocks, False)}
        for name, (nb, conv_after) in variants.items():
            n = count_parameters(CartoonGenerator(width, nb, conv_after_blocks=conv_after, **layers))
            rows.append({"sizes": label, "generator": name, "ngf": width, "residual blocks": nb,
                         "conv after blocks": conv_after, "parameters": n})
    return rows


def step_seconds(recipes: Mapping[str, Recipe], features: nn.Module, *, repeats: int = 5,
                 device: torch.device | str = "cpu", seed: int = 0) -> dict[str, float]:
    """Median wall seconds of one adversarial-phase :func:`train_step` of each recipe's model, on random batches
    of its ``batch_size`` at its ``img_size``. The recipes take turns (one step each per round, after a warm-up
    round), so a machine that slows down in the middle slows every recipe alike."""
    device = torch.device(device)
    torch.manual_seed(seed)
    features = features.to(device)
    setups = {}
    for name, r in recipes.items():
        model = r.build().to(device, memory_format=torch.channels_last)  # as fit trains it
        opts = [torch.optim.Adam(m.parameters(), lr=r.lr, betas=(r.beta1, r.beta2)) for m in (model.G, model.D)]
        batch = [torch.rand(r.batch_size, 3, r.img_size, r.img_size, device=device) * 2 - 1 for _ in range(3)]
        setups[name] = (model, opts, batch, r.objective)
    times: dict[str, list[float]] = {name: [] for name in recipes}
    for round_ in range(repeats + 1):
        for name, (model, (opt_G, opt_D), batch, objective) in setups.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            train_step(model, *batch, opt_G, opt_D, features, objective)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if round_:  # round 0 warms up (allocations, kernel selection)
                times[name].append(time.perf_counter() - t0)
    return {name: float(torch.tensor(t).median()) for name, t in times.items()}
