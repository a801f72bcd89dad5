"""The StyleGAN2 training recipe (Karras et al. 2020, config F; the rosinality/stylegan2-pytorch loop), as small
functions over the networks of :mod:`anime_lib.models.stylegan2`.

Images are (N, 3, S, S) in [-1, 1] everywhere. One iteration (:func:`train_step`) is

* **D step**: L_D = E softplus(-D(x)) + E softplus(D(G(z))) (the logistic loss), real and fake images shown through
  the same ADA augmentation when ``recipe.augment`` is on (whose probability p then follows D's overfitting);
* **lazy R1** every ``d_reg_every`` steps: (gamma / 2) E ||grad_x D(x)||^2 on real images, weighted by
  ``d_reg_every`` (it stands for the ``d_reg_every`` steps that skip it);
* **G step**: L_G = E softplus(-D(G(z))) (non-saturating), z a pair of latents with probability ``mixing`` (style
  mixing: the W+ latent switches from w1 to w2 at a random layer);
* **lazy path length** every ``g_reg_every`` steps on ``batch // path_batch_shrink`` images:
  w_pl E (||J_w^T y|| - mu)^2, y ~ N(0, I) / sqrt(S^2), mu a running mean (decay 0.01), weighted by ``g_reg_every``;
* **EMA** of G: g_ema <- beta g_ema + (1 - beta) G, beta = 0.5 ** (images per step / 10,000) (half-life 10k images).

Lazy regularisation changes Adam's hyperparameters (paper, appendix B): an optimiser updated on k - 1 ordinary
steps plus one regularisation step per k uses lr * c and betas ** c with c = k / (k + 1) (:meth:`Recipe.optimisers`).

Read top to bottom: :class:`Recipe` (the paper's defaults; ``build`` and ``optimisers``), :func:`new_state` (what
the loop carries besides the weights: mu and ADA's counters, a plain dict that a :class:`anime_lib.training.Run`
checkpoints and refills in place), :func:`mixing_noise`, :func:`train_step`, :func:`fit` (through a Run: resumable,
batches from the step number), and the distributed helpers (:func:`distributed`, :func:`average_gradients`,
:func:`broadcast_module`, :func:`module_digest`).

**Several processes** (``torchrun --nproc_per_node K``, ``torch.distributed`` initialised by the caller): each rank
draws its own batch and its own z (the rank is part of the batch stream and of the per-step seed), so one step
trains on K x ``batch`` images. Gradients are synchronised the way ``DistributedDataParallel`` does it (gradient
averaging: an all-reduce of the sum, divided by K, after every backward), but by hand
(:func:`average_gradients`) rather than by wrapping G and D in DistributedDataParallel: R1 and the path length are
double backward passes (``autograd.grad(create_graph=True)``), which DDP's reducer does not support, lazy steps run
forward passes that DDP's bucket bookkeeping would have to be told about, and the same module is used frozen (as
the other network's opponent) and trained within one step. Averaging the gradients of identical replicas after
each backward and then taking the same Adam step everywhere keeps the replicas identical, which is all DDP
guarantees too. ADA's p is updated from D's outputs on every rank's reals (all-gathered) and the path-length mean
mu is averaged, so both stay the same on every rank. Only rank 0 writes checkpoints and shows progress; every rank
resumes from the same checkpoint. A time budget is refused (ranks could stop at different steps).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import random
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from anime_lib.models.stylegan2 import (AdaptiveAugment, Discriminator, Generator, d_logistic_loss, d_r1_loss,
                                        g_nonsaturating_loss, g_path_length_loss)

__all__ = ["Recipe", "new_state", "mixing_noise", "train_step", "fit", "distributed", "average_gradients",
           "broadcast_module", "module_digest", "sample", "PROFILE_DEFAULTS", "pretrain_config", "Transfer",
           "transfer_variants", "transfer_recipe", "fine_tune", "mixing_grid", "draw"]


@dataclass
class Recipe:
    """StyleGAN2's training settings, the paper's (config F) by default, plus a small architecture for ToyFaces.

    Architecture (:meth:`build`): ``size`` px (power of 2), ``channels`` at every resolution, ``style_dim``,
    ``n_mlp`` mapping layers, ``lr_mlp`` (the mapping's learning-rate multiplier, 0.01).
    Optimisation: Adam ``lr`` 0.002, ``betas`` (0, 0.99), corrected for lazy regularisation (:meth:`optimisers`);
    ``batch`` images per step (per process). Regularisation: R1 ``r1_gamma`` 10 every ``d_reg_every`` 16 D steps;
    path length weight ``path_length_weight`` 2 every ``g_reg_every`` 4 G steps on ``batch // path_batch_shrink``
    images, mu's decay ``path_length_decay`` 0.01. ``mixing`` 0.9: probability of style mixing.
    ``ema_half_life_images`` 10,000. ADA: ``augment`` (off), ``ada_target`` 0.6 (for E sign D(x)),
    ``ada_length`` 500k images for p to go from 0 to 1, ``ada_every`` 4 (steps between p updates)."""

    size: int = 32
    channels: int = 64
    style_dim: int = 64
    n_mlp: int = 8
    lr_mlp: float = 0.01
    batch: int = 8
    lr: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 10.0
    path_length_weight: float = 2.0
    path_batch_shrink: int = 2
    path_length_decay: float = 0.01
    d_reg_every: int = 16
    g_reg_every: int = 4
    mixing: float = 0.9
    ema_half_life_images: int = 10_000
    augment: bool = False
    ada_target: float = 0.6
    ada_length: int = 500_000
    ada_every: int = 4

    def build(self) -> tuple[Generator, Discriminator]:
        """A fresh (G, D) of this architecture (random, from the current torch seed)."""
        G = Generator(self.size, self.style_dim, self.n_mlp, lr_mlp=self.lr_mlp, channels=self.channels)
        return G, Discriminator(self.size, channels=self.channels)

    def ema_decay(self, world_size: int = 1) -> float:
        """beta = 0.5 ** (images per step / half-life): batch * world_size images per step."""
        return 0.5 ** (self.batch * world_size / self.ema_half_life_images)

    def optimisers(self, G: nn.Module, D: nn.Module) -> tuple[torch.optim.Adam, torch.optim.Adam]:
        """Adam for G and D over their trainable parameters (frozen ones, FreezeD/FreezeG, stay out), with the lazy
        regularisation correction c = every / (every + 1): lr * c, betas ** c (g: ``g_reg_every``, d: ``d_reg_every``)."""
        out = []
        for model, every in ((G, self.g_reg_every), (D, self.d_reg_every)):
            c = every / (every + 1) if every else 1.0
            params = [p for p in model.parameters() if p.requires_grad]
            out.append(torch.optim.Adam(params, lr=self.lr * c, betas=(self.betas[0] ** c, self.betas[1] ** c)))
        return out[0], out[1]

    def config(self) -> dict[str, Any]:
        """The settings as plain values (for a Run's ``config``)."""
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


def new_state(recipe: Recipe) -> dict[str, Any]:
    """What the loop carries besides weights and optimisers, as plain values (checkpointed by a Run, refilled in
    place): ``mean_path_length`` (mu, starts at 0) and ``ada`` (p and the counters of the sign statistic)."""
    return {"mean_path_length": 0.0, "ada": {"p": 0.0, "signs": 0.0, "count": 0, "calls": 0}}


def _ada_of(state: Mapping[str, Any], recipe: Recipe) -> AdaptiveAugment:
    return AdaptiveAugment.from_state(state["ada"], recipe.ada_target, recipe.ada_length, recipe.ada_every)


def _store_ada(state: dict[str, Any], ada: AdaptiveAugment) -> None:
    state["ada"] = ada.state()


def mixing_noise(batch: int, style_dim: int, prob: float, device: torch.device | str) -> list[torch.Tensor]:
    """One z (batch, style_dim) ~ N(0, I), or two (style mixing) with probability ``prob``."""
    if prob > 0 and random.random() < prob:
        return list(torch.randn(2, batch, style_dim, device=device).unbind(0))
    return [torch.randn(batch, style_dim, device=device)]


# ---------------------------------------------------------------------------------------------- distributed


def distributed() -> tuple[int, int]:
    """(rank, world size) of an initialised ``torch.distributed`` group; (0, 1) otherwise."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def average_gradients(params: list[nn.Parameter]) -> None:
    """What DistributedDataParallel does after a backward: every gradient becomes its mean over the ranks (one
    all-reduce of the flattened gradients). A no-op in one process. Every rank must pass the same parameters,
    with gradients in the same places."""
    rank, world = distributed()
    if world == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank (a no-op in one process)."""
    if distributed()[1] == 1:
        return
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            torch.distributed.broadcast(t.data, src)


def module_digest(module: nn.Module) -> str:
    """SHA-256 (16 hex digits) of a module's state dict (names and float32 bytes): equal digests, equal weights."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _all_gather(x: torch.Tensor) -> torch.Tensor:
    if distributed()[1] == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(distributed()[1])]
    torch.distributed.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def _trainable(opt: torch.optim.Optimizer) -> list[nn.Parameter]:
    return [p for group in opt.param_groups for p in group["params"]]


def _set_grad(params: list[nn.Parameter], flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)


def _backward_and_step(loss: torch.Tensor, opt: torch.optim.Optimizer, params: list[nn.Parameter]) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    average_gradients(params)
    opt.step()


# ---------------------------------------------------------------------------------------------- one step


def train_step(G: Generator, D: Discriminator, g_ema: Any, opt_G: torch.optim.Optimizer,
               opt_D: torch.optim.Optimizer, real: torch.Tensor, step: int, recipe: Recipe,
               state: dict[str, Any]) -> dict[str, float | None]:
    """One StyleGAN2 iteration on ``real`` ((B, 3, S, S) in [-1, 1], on G's device); see the module docstring.

    ``g_ema``: an :class:`anime_lib.training.EMA` of G (updated at the end). ``opt_G``/``opt_D`` from
    :meth:`Recipe.optimisers`: only their parameters are trained (so FreezeD/FreezeG stay frozen). ``state``
    (:func:`new_state`) is updated in place: mu of the path length, ADA's p and counters. R1 runs when
    ``step % d_reg_every == 0``, the path length when ``step % g_reg_every == 0``.

    Returns floats: d_loss, g_loss, r1 and path_length (None off their lazy steps; path_length is the mean
    ||J_w^T y||), ada_p, real_score and fake_score (mean D logits on the D step's real and fake images)."""
    device, batch = real.device, real.shape[0]
    g_params, d_params = _trainable(opt_G), _trainable(opt_D)
    ada = _ada_of(state, recipe)
    augment = ada.augment if recipe.augment else (lambda x: x)

    # D: logistic loss on (augmented) real and fake images
    _set_grad(g_params, False)
    _set_grad(d_params, True)
    fake, _ = G(mixing_noise(batch, G.style_dim, recipe.mixing, device))
    fake_pred, real_pred = D(augment(fake)), D(augment(real))
    d_loss = d_logistic_loss(real_pred, fake_pred)
    _backward_and_step(d_loss, opt_D, d_params)
    if recipe.augment:
        ada.update(_all_gather(real_pred.detach()))  # every rank sees every rank's reals: the same p everywhere
    out: dict[str, float | None] = {"d_loss": float(d_loss.detach()), "g_loss": None, "r1": None, "path_length": None,
                                    "ada_p": float(ada.p), "real_score": float(real_pred.detach().mean()),
                                    "fake_score": float(fake_pred.detach().mean())}

    # lazy R1: gamma / 2 * E ||grad_x D(x)||^2, times d_reg_every
    if recipe.d_reg_every and step % recipe.d_reg_every == 0:
        x = real.detach().requires_grad_(True)
        pred = D(augment(x))
        r1 = d_r1_loss(pred, x)
        # 0 * pred[0]: every D parameter gets a (zero) gradient, so Adam moves all of them, as in the reference
        _backward_and_step(recipe.r1_gamma / 2 * r1 * recipe.d_reg_every + 0 * pred[0, 0], opt_D, d_params)
        out["r1"] = float(r1.detach())

    # G: non-saturating loss, style mixing
    _set_grad(g_params, True)
    _set_grad(d_params, False)
    fake, _ = G(mixing_noise(batch, G.style_dim, recipe.mixing, device))
    g_loss = g_nonsaturating_loss(D(augment(fake)))
    _backward_and_step(g_loss, opt_G, g_params)
    out["g_loss"] = float(g_loss.detach())

    # lazy path length: w_pl * E (||J_w^T y|| - mu)^2, times g_reg_every
    if recipe.g_reg_every and step % recipe.g_reg_every == 0:
        n = max(1, batch // recipe.path_batch_shrink)
        fake, latents = G(mixing_noise(n, G.style_dim, recipe.mixing, device), return_latents=True)
        penalty, mu, lengths = g_path_length_loss(fake, latents, state["mean_path_length"], recipe.path_length_decay)
        loss = recipe.path_length_weight * recipe.g_reg_every * penalty + 0 * fake[0, 0, 0, 0]
        _backward_and_step(loss, opt_G, g_params)
        mu = mu.reshape(1).float()
        if distributed()[1] > 1:  # mu + decay (mean over all ranks' a - mu): the average of the ranks' updates
            torch.distributed.all_reduce(mu)
            mu /= distributed()[1]
        state["mean_path_length"] = float(mu)
        out["path_length"] = float(lengths.detach().mean())
    _set_grad(d_params, True)

    g_ema.update(G)
    _store_ada(state, ada)
    return out


# ---------------------------------------------------------------------------------------------- the run


class _ReadOnlyCheckpointer:
    """The checkpointer of ranks > 0: reads rank 0's checkpoints, never writes or deletes."""

    def __init__(self, inner: Any):
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def save(self, step: int, state: Mapping[str, Any]):
        return self._inner.path_for(step)

    def prepare(self, config: Mapping[str, Any], resume: bool = True, name: str | None = None) -> bool:
        latest = self._inner.load_latest()
        return bool(resume and latest is not None and latest.get("config") == dict(config))


def _seed_step(seed: int, rank: int, step: int) -> None:
    """Seed torch (CPU and CUDA) and Python's ``random`` from (seed, rank, step): each rank its own z and noise,
    and a resumed run draws what an uninterrupted one would."""
    s = (int(seed) * 1_000_003 + int(rank) * 7919 + int(step)) % (2 ** 63)
    torch.manual_seed(s)
    random.seed(s)


def fit(run: Any, G: Generator, D: Discriminator, images: torch.Tensor, n_steps: int, recipe: Recipe, *,
        checkpoint_every: int | None = 500, seed: int | None = None, progress: bool = True,
        time_budget_s: float | None = None, log_every: int = 10, g_ema: Any = None,
        state: dict[str, Any] | None = None, step: Callable[..., Mapping[str, Any]] | None = None,
        monitor: Callable[[Generator], Mapping[str, float]] | None = None,
        monitor_every: int | None = None) -> tuple[Generator, Any]:
    """Train G and D with :func:`train_step` through ``run`` (a :class:`anime_lib.training.Run` made before G and D)
    for ``n_steps`` steps on ``images`` ((N, 3, S, S) in [-1, 1], any device; each batch moves to G's device),
    ``recipe.batch`` images per step picked by :func:`anime_lib.training.batch_indices` from the step number (seed
    ``seed``, default the run's; stream = the rank). Checkpoints hold G, D, g_ema (an EMA, made here unless given),
    opt_G, opt_D (made here with :meth:`Recipe.optimisers`) and ``loop_state`` (``state``, :func:`new_state`; not
    named "state", which :func:`anime_lib.training.restore` takes itself); a re-run resumes
    exactly. Returns (g_ema's module, the RunResult).

    ``step``: the iteration to run (default :func:`train_step`; a lesson passes its own copy, same signature).
    ``monitor(g_ema's module)`` -> {name: float} runs every ``monitor_every`` steps (and after the last one); its
    readings go into ``state["monitor"]`` (``{"step": [...], name: [...]}``), so they are checkpointed, resumed and
    shipped with the run (a learning curve of toy_fid against steps, say).

    Under an initialised ``torch.distributed`` group (see the module docstring): rank 0's weights are broadcast
    first, each rank draws its own batches and noise, gradients are averaged after every backward, only rank 0
    writes checkpoints and prints (the others read the same checkpoint to resume), all ranks end together.
    ``time_budget_s`` is refused there (ranks could stop at different steps)."""
    from anime_lib.training import EMA, batch_indices

    rank, world = distributed()
    if world > 1 and time_budget_s is not None:
        raise ValueError("fit under torch.distributed cannot take a time budget: the ranks could stop at different "
                         "steps and deadlock; give n_steps instead")
    if monitor is not None and not monitor_every:
        raise ValueError("a monitor needs monitor_every (steps between readings)")
    one_step = train_step if step is None else step
    seed = run.seed if seed is None else int(seed)
    device = next(G.parameters()).device
    for m in (G, D):
        broadcast_module(m)
    g_ema = g_ema if g_ema is not None else EMA(G, recipe.ema_decay(world))
    opt_G, opt_D = recipe.optimisers(G, D)
    state = state if state is not None else new_state(recipe)
    G.train(), D.train()

    def step_fn(i: int) -> Mapping[str, Any]:
        if world > 1:
            _seed_step(seed, rank, i)
        idx = batch_indices(i, recipe.batch, len(images), seed, stream=rank).to(images.device)
        out = one_step(G, D, g_ema, opt_G, opt_D, images[idx].to(device), i, recipe, state)
        if monitor is not None and ((i + 1) % monitor_every == 0 or i + 1 == n_steps) and rank == 0:
            readings = monitor(g_ema.module)
            log = state.setdefault("monitor", {"step": []})
            log["step"].append(i + 1)
            for name, value in readings.items():
                log.setdefault(name, []).append(float(value))
        return out

    save = {"G": G, "D": D, "g_ema": g_ema, "opt_G": opt_G, "opt_D": opt_D, "loop_state": state}
    quiet = contextlib.nullcontext()
    if world > 1:
        if rank == 0:  # rank 0 alone decides whether the checkpoints can be resumed (and deletes them if not)
            run.checkpointer.prepare({**run.config, "n_steps": int(n_steps)}, resume=run.resume, name=run.name)
        else:
            run.checkpointer = _ReadOnlyCheckpointer(run.checkpointer)
            quiet = contextlib.redirect_stdout(io.StringIO())
        torch.distributed.barrier()
    with quiet:
        result = run.train(step_fn, n_steps, save=save, checkpoint_every=checkpoint_every,
                           time_budget_s=time_budget_s, log_every=log_every, progress=progress and rank == 0)
    if world > 1:
        torch.distributed.barrier()  # rank 0 has written its last checkpoint
    return g_ema.module, result


def sample(g_ema: Generator, n: int, batch: int = 64, seed: int = 0, truncation: float = 1.0) -> torch.Tensor:
    """``n`` samples of ``g_ema`` in [0, 1] (clamped), (n, 3, S, S) on the CPU, from z drawn with ``seed``."""
    device = next(g_ema.parameters()).device
    g = torch.Generator().manual_seed(int(seed))
    out = []
    with torch.no_grad():
        mean_w = None
        if truncation < 1:  # the centre truncation pulls towards, once for all batches (from the same seed)
            mean_w = g_ema.style(torch.randn(4096, g_ema.style_dim, generator=torch.Generator().manual_seed(
                int(seed) + 1)).to(device)).mean(0, keepdim=True)
        for start in range(0, n, batch):
            z = torch.randn(min(batch, n - start), g_ema.style_dim, generator=g).to(device)
            img, _ = g_ema([z], truncation=truncation, truncation_latent=mean_w)
            out.append(img.clamp(-1, 1).add(1).div(2).cpu())
    return torch.cat(out)



# ---------------------------------------------------------------------------------------------- lesson 09

#: Lesson 09's profile defaults (``resolve_params(globals(), defaults=stylegan2_training.PROFILE_DEFAULTS)``).
#: smoke and cpu share the shipped human generator's architecture (32 px, 64 channels, style_dim 64, 8 mapping
#: layers), so both load it; gpu trains its own at 64 px. The transfer runs are short, so they change three of the
#: pre-training settings (see :func:`transfer_recipe`): no path-length term, an EMA half-life of a few hundred
#: images, and an ADA horizon (``ADA_LENGTH`` images for p to go from 0 to 1) that p can move within the run.
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "smoke": {"IMG_SIZE": 32, "CHANNELS": 64, "STYLE_DIM": 64, "N_MLP": 8, "BATCH_SIZE": 8, "N_TRAIN": 4000,
              "PRETRAIN_STEPS": 20, "N_EVAL": 48, "N_ANIME": 200, "N_SMALL": 50, "N_STEPS": 4,
              "TRANSFER_BATCH_SIZE": 4, "MONITOR_EVERY": 2, "ADA_LENGTH": 4000},
    "cpu": {"IMG_SIZE": 32, "CHANNELS": 64, "STYLE_DIM": 64, "N_MLP": 8, "BATCH_SIZE": 8, "N_TRAIN": 4000,
            "PRETRAIN_STEPS": 20_000, "N_EVAL": 500, "N_ANIME": 2000, "N_SMALL": 100, "N_STEPS": 200,
            "TRANSFER_BATCH_SIZE": 4, "MONITOR_EVERY": 50, "ADA_LENGTH": 4000},
    "gpu": {"IMG_SIZE": 64, "CHANNELS": 128, "STYLE_DIM": 128, "N_MLP": 8, "BATCH_SIZE": 32, "N_TRAIN": 8000,
            "PRETRAIN_STEPS": 6000, "N_EVAL": 1000, "N_ANIME": 4000, "N_SMALL": 200, "N_STEPS": 1000,
            "TRANSFER_BATCH_SIZE": 16, "MONITOR_EVERY": 100, "ADA_LENGTH": 20_000},
}
for _values in PROFILE_DEFAULTS.values():
    _values.update({"TRANSFER_LR": 0.002, "TRANSFER_EMA_HALF_LIFE": 200 if _values["TRANSFER_BATCH_SIZE"] <= 8 else 1000,
                    "FREEZE_D_BLOCKS": 1, "FREEZE_G_RESOLUTIONS": 2, "TRUNCATIONS": [1.0, 0.7, 0.5, 0.0]})


def pretrain_config(recipe: Recipe, domain: str, n_train: int, world_size: int = 1) -> dict[str, Any]:
    """The settings of a ``stylegan2_<domain>`` pre-training run (``python -m anime_lib.pretrain stylegan2`` and
    lesson 09 build their Run from this, so the lesson recognises the shipped run as its own)."""
    return {**recipe.config(), "domain": domain, "n_train": int(n_train), "world_size": int(world_size)}


@dataclass(frozen=True)
class Transfer:
    """One way to move a pre-trained StyleGAN2 to a new domain (lesson 09's rows).

    ``small``: train on the small target set (``N_SMALL`` faces) instead of the full one; ``augment``: ADA;
    ``freeze_d``: FreezeD (Mo et al. 2020), only the last ``freeze_d`` blocks of D (and its final layers) train;
    ``freeze_g``: FreezeG, only the top ``freeze_g`` resolutions of G train (the mapping and the coarse layers
    keep the source's weights). None: everything trains."""

    name: str
    small: bool = False
    augment: bool = False
    freeze_d: int | None = None
    freeze_g: int | None = None


def transfer_variants(freeze_d_blocks: int, freeze_g_resolutions: int, n_small: int) -> list[Transfer]:
    """Lesson 09's variants: plain fine-tuning, FreezeD, FreezeG (on the full target set), then the small set
    without and with ADA."""
    return [Transfer("fine-tune"), Transfer("FreezeD", freeze_d=freeze_d_blocks),
            Transfer("FreezeG", freeze_g=freeze_g_resolutions),
            Transfer(f"small set ({n_small}), no ADA", small=True),
            Transfer(f"small set ({n_small}) + ADA", small=True, augment=True)]


def transfer_recipe(recipe: Recipe, variant: Transfer, *, batch: int, lr: float, ema_half_life_images: int,
                    ada_length: int) -> Recipe:
    """The pre-training ``recipe`` adapted to a short transfer run: ``batch``, ``lr``, ADA per ``variant`` with the
    horizon ``ada_length``, the EMA half-life ``ema_half_life_images`` (10k images would leave the EMA at the
    source model for a run of a few hundred steps), and no path-length term (``g_reg_every`` 0: it keeps the
    source's mapping smooth, and it costs a double backward pass a short run cannot afford)."""
    return replace(recipe, batch=batch, lr=lr, ema_half_life_images=ema_half_life_images, augment=variant.augment,
                   ada_length=ada_length, g_reg_every=0)


def fine_tune(run: Any, source_G: Generator, source_D: Discriminator, images: torch.Tensor, n_steps: int,
              recipe: Recipe, variant: Transfer, **fit_kwargs: Any) -> tuple[Generator, Any]:
    """Transfer: copies of ``source_G`` (the source's EMA generator) and ``source_D``, frozen per ``variant``
    (:func:`~anime_lib.models.stylegan2.freeze_discriminator_blocks`,
    :func:`~anime_lib.models.stylegan2.freeze_generator_layers`; the frozen parameters stay out of the optimisers),
    trained on ``images`` with :func:`fit` through ``run`` (``fit_kwargs``: ``step``, ``monitor``, ...). The
    sources are left unchanged. Returns (the transferred EMA generator, the RunResult)."""
    from anime_lib.models.stylegan2 import freeze_discriminator_blocks, freeze_generator_layers, requires_grad

    G, D = requires_grad(copy.deepcopy(source_G).train()), requires_grad(copy.deepcopy(source_D).train())
    if variant.freeze_d is not None:
        freeze_discriminator_blocks(D, variant.freeze_d)
    if variant.freeze_g is not None:
        freeze_generator_layers(G, variant.freeze_g)
    g_ema, result = fit(run, G, D, images, n_steps, recipe, **fit_kwargs)
    return g_ema.eval(), result


def mixing_grid(G: Generator, z_coarse: torch.Tensor, z_fine: torch.Tensor, crossover: int) -> torch.Tensor:
    """Style mixing: every pair (i, j) drawn with ``z_coarse[i]``'s w in the first ``crossover`` layers of W+ and
    ``z_fine[j]``'s after, as (len(z_coarse), len(z_fine), 3, S, S) in [-1, 1] (clamped; fixed noise maps; CPU)."""
    with torch.no_grad():
        rows = []
        for zc in z_coarse:
            zc = zc.expand(len(z_fine), -1)
            img, _ = G([zc, z_fine], inject_index=crossover, randomize_noise=False)
            rows.append(img.clamp(-1, 1).cpu())
    return torch.stack(rows)


def draw(G: Generator, z: torch.Tensor | Sequence[torch.Tensor], batch: int = 64, **kwargs: Any) -> torch.Tensor:
    """``G``'s images for the latents ``z`` in [0, 1] (clamped), with its fixed noise maps (``randomize_noise``
    False: the same z gives the same image, in every generator that shares the maps), on the CPU. ``z``: one
    (N, style_dim) tensor, or two for style mixing (``inject_index=k``: the first's w in layers 0..k-1).
    ``kwargs`` go to the generator (``inject_index``, ``truncation``, ``truncation_latent``, ``input_is_latent``)."""
    zs = [z] if isinstance(z, torch.Tensor) else list(z)
    out = []
    with torch.no_grad():
        for start in range(0, len(zs[0]), batch):
            img, _ = G([t[start:start + batch] for t in zs], randomize_noise=False, **kwargs)
            out.append(img.clamp(-1, 1).add(1).div(2).cpu())
    return torch.cat(out)
