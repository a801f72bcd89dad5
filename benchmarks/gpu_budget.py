"""Expected training minutes of every lesson's gpu profile on a T4-class GPU (the budget: 15 minutes per lesson).

    python benchmarks/gpu_budget.py [--only 04,05] [--json PATH] [--count-on meta|cpu] [--count-batch N]
                                    [--no-timing] [--timed-steps 5] [--warmup 2]

For every model a lesson trains in its gpu profile, with ``USE_PRETRAINED = False`` (everything a student who
trains gets), the script takes the lesson's gpu settings as they are today, where they live: the library's
tables (``cyclegan.PROFILE_DEFAULTS`` / ``DEEP_DIVE_DEFAULTS``, ``dcgan.PROFILE_DEFAULTS`` / ``DEEP_DIVE_DEFAULTS``,
``cartoongan.PROFILE_DEFAULTS``, ``animegan.PROFILE_DEFAULTS``) or the ``defaults={...}`` of the notebook's own
``resolve_params`` call (lessons 01, 02, 05, 06), resolved with the notebook's ``parameters`` cell exactly as
the notebook resolves them (:func:`gpu_params`). Which models a lesson trains, and for how many steps, follows
the notebook's code (:func:`lesson_jobs`): e.g. lesson 05 trains every variant plus the seed check, lesson 02 one
model per direction and setup, lessons 07 and 08 an initialisation phase before the adversarial one. The gpu
profile trains on ToyFaces, so what only runs there (lesson 02's paired models, lesson 05's landmark regressors and
landmark variants, the deep dives' ground-truth runs) is counted too; with ``DATASET`` set to a real dataset in a
notebook's parameters cell it is left out, as the notebook leaves it out.

It counts the floating-point operations of ONE training step of the library's reference step function
(``cyclegan.train_step``, ``geometry.geometry_train_step``, ``ugatit.train_step``, ``cartoongan.train_step``,
``animegan.train_step`` / ``init_step``, ``dcgan.adversarial_step``, ``encoder_decoder.translation_step``,
``difference.autoencoder_step``) at the gpu settings (image size, widths, batch) with
:func:`anime_lib.machine_speed.training_step_flops` (``torch.utils.flop_counter.FlopCounterMode``: convolutions
and matrix products, forward and backward; elementwise work is not counted). By default the models and
batches live on PyTorch's ``meta`` device: the count depends only on the shapes, so the full batch is counted
exactly without computing it (about a minute for all the lessons on one CPU thread, mostly building the networks).
``--count-on cpu`` counts with real arithmetic on the CPU instead (slow at these sizes; ``--count-batch 1``
counts one image per domain and scales linearly to the lesson's batch, which is exact for every step here: no
counted operation mixes the images of a batch). The content networks of lessons 07 and 08 (VGG19 up to conv4_4)
get random weights: the count does not depend on them, and nothing is downloaded.

Minutes = FLOP per step x steps / an assumed sustained throughput of a T4 (:data:`T4_SUSTAINED_FP32`,
:data:`T4_SUSTAINED_AMP`; why these values: see their comments), in full precision and in mixed precision. The
"> 15 min" flag of a notebook's total uses the precision the lesson trains in (mixed only where the lesson turns
AMP on: lesson 04's ``USE_AMP``). Where CUDA is available the script also runs ``--warmup`` untimed and
``--timed-steps`` timed real steps of every model at the lesson's batch on the GPU (synchronised; mixed precision
where the lesson uses it) and prints the minutes measured on that GPU beside the T4 estimate.

Only the training steps are counted: not loading and preparing the data, evaluation, monitors, snapshots,
checkpoints or figures, which a lesson also spends its minutes on. The step functions' inputs are random images.
"""
from __future__ import annotations

import argparse
import ast
import functools
import importlib
import inspect
import json
import platform
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from anime_lib import notebook_meta
from anime_lib.config import Params, resolve_params
from anime_lib.machine_speed import training_step_flops

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

#: Peak rates of an NVIDIA T4 (datasheet): 8.1 TFLOP/s in float32, 65 TFLOP/s in float16 on its tensor cores.
T4_PEAK_FP32 = 8.1e12
T4_PEAK_FP16_TENSOR = 65e12
#: Assumed SUSTAINED rates of a T4 training these small-batch convolutional GANs (batch 4-16 at 64-256 px, lots of
#: normalisation, activations and Adam updates between the convolutions; the T4's 70 W limit also pulls its clock
#: below the boost clock the peaks assume). Anchor: NVIDIA's DeepLearningExamples table for ResNet-50 v1.5
#: *inference* on a T4 (PyTorch) gives 363-428 images/s in float32 at batch 8-256, i.e. 3.0-3.5 TFLOP/s at 8.2 GFLOP
#: per image (37-43 % of peak), and 650-1190 images/s in mixed precision at batch 8-128, i.e. 5.3-9.8 TFLOP/s
#: (8-15 % of the tensor-core peak). Training at batch 4-16 does worse than inference at large batch (weight
#: gradients, the optimiser, more memory traffic), so we assume a bit less than the small-batch end of those ranges:
T4_SUSTAINED_FP32 = 2.5e12  # 31 % of the float32 peak
T4_SUSTAINED_AMP = 6.0e12  # 9 % of the float16 tensor-core peak, 2.4x the float32 assumption
#: Minutes a lesson may train on a T4-class GPU in the gpu profile.
BUDGET_MINUTES = 15.0


def minutes(flops_per_step: float, steps: int, flops_per_second: float) -> float:
    """Minutes that ``steps`` steps of ``flops_per_step`` take at a sustained ``flops_per_second``."""
    if flops_per_second <= 0:
        raise ValueError(f"the throughput must be positive, got {flops_per_second}")
    return flops_per_step * steps / flops_per_second / 60.0


# --------------------------------------------------------------------------------------------------
# The lessons' gpu settings, read where they live
# --------------------------------------------------------------------------------------------------


def _path(notebook: str | Path) -> Path:
    """``notebook``: a path, or a file name in notebooks/."""
    return Path(notebook) if Path(notebook).is_absolute() or Path(notebook).exists() else NOTEBOOKS / notebook


def _code_cells(notebook: str | Path) -> list[dict[str, Any]]:
    return [c for c in notebook_meta.read_notebook(_path(notebook)).cells if c.cell_type == "code"]


def _python(source: str) -> ast.Module:
    """A cell's source as Python, IPython magics and shell lines (``%matplotlib``, ``!pip``) left out."""
    return ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))


def profile_defaults(notebook: str | Path) -> dict[str, dict[str, Any]] | None:
    """The ``defaults=`` of the notebook's ``resolve_params(globals(), defaults=...)``: a dict literal typed in the
    notebook, or a library table named through one of the notebook's imports (``cg.PROFILE_DEFAULTS`` after
    ``from anime_lib.models import cyclegan as cg``). None when the call passes no defaults."""
    modules: dict[str, str] = {}  # the notebook's names for modules
    calls = []
    for cell in _code_cells(notebook):
        for node in ast.walk(_python(cell.source)):
            if isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    modules[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    modules[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.Call) and \
                    getattr(node.func, "id", getattr(node.func, "attr", None)) == "resolve_params":
                calls.append(node)
    if len(calls) != 1:
        raise LookupError(f"{Path(notebook).name}: expected one resolve_params call, found {len(calls)}")
    value = next((k.value for k in calls[0].keywords if k.arg == "defaults"), None)
    if value is None:
        return None
    if isinstance(value, ast.Dict):
        return ast.literal_eval(value)
    parts = []
    while isinstance(value, ast.Attribute):
        parts.insert(0, value.attr)
        value = value.value
    if not isinstance(value, ast.Name) or value.id not in modules or not parts:
        raise LookupError(f"{Path(notebook).name}: cannot read defaults={ast.unparse(value)!r}")
    obj: Any = importlib.import_module(modules[value.id])
    for attr in parts:
        obj = getattr(obj, attr)
    return obj


def gpu_params(notebook: str | Path, profile: str = "gpu") -> Params:
    """The notebook's parameters as it resolves them in ``profile``: its ``parameters`` cell (as shipped, with
    ``PROFILE = profile``) over its profile defaults (:func:`profile_defaults`)."""
    ns: dict[str, Any] = {}
    path = _path(notebook)
    source = notebook_meta.parameters_cell(path).source  # the one cell tagged parameters
    exec(compile(source, f"{path.name}[parameters]", "exec"), ns)
    ns["PROFILE"] = profile
    return resolve_params({k: v for k, v in ns.items() if k != "__builtins__"}, defaults=profile_defaults(notebook))


# --------------------------------------------------------------------------------------------------
# One training step of each kind of model: builders (batch, device, settings) -> a function doing one step
# --------------------------------------------------------------------------------------------------


def _images(batch: int, size: int, device: torch.device, channels: int = 3) -> torch.Tensor:
    return torch.rand(batch, channels, size, size, device=device) * 2 - 1


def _adam(params, lr: float = 2e-4, betas=(0.5, 0.999), **kw) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=betas, **kw)


def _amp(device: torch.device, amp: bool):
    """(autocast factory, GradScaler or None) for a lesson that trains with mixed precision on ``device``."""
    import contextlib

    from anime_lib.training import autocast_context, pick_amp

    settings = pick_amp(device) if amp else None
    if settings is None or not settings.enabled:
        return contextlib.nullcontext, None
    scaler = torch.amp.GradScaler(device.type) if settings.use_grad_scaler else None
    return (lambda: autocast_context(device, True, settings.dtype)), scaler


@functools.lru_cache(maxsize=None)
def _features(kind: str, device: str) -> torch.nn.Module:
    """Lessons 07 and 08's frozen content network (``cartoongan.content_network``), with random weights."""
    from anime_lib.models.cartoongan import content_network

    torch.manual_seed(0)
    return content_network(kind, random=True, verbose=False).to(device)


def difference_vector_step(batch: int, device: torch.device, *, size: int, lr: float) -> Callable[[], Any]:
    """Lesson 01's difference-vector update (``difference.difference_step``): means of ``batch`` faces per domain."""
    from anime_lib.models import difference as dv

    delta = torch.zeros(3, size, size, device=device)
    human, anime = _images(batch, size, device), _images(batch, size, device)
    return lambda: dv.difference_step(delta, human, anime, lr)


def autoencoder_step(batch: int, device: torch.device, *, size: int, latent_dim: int, lr: float) -> Callable[[], Any]:
    """Lesson 01's ``difference.autoencoder_step``: L1 reconstruction of ``batch`` faces of each domain."""
    from anime_lib.models import difference as dv
    from anime_lib.models.blocks import init_weights

    model = init_weights(dv.ConvAutoencoder(size, latent_dim)).to(device)
    opt = _adam(model.parameters(), lr, (0.9, 0.999))
    human, anime = _images(batch, size, device), _images(batch, size, device)
    return lambda: dv.autoencoder_step(model, opt, human, anime)


def encoder_decoder_step(batch: int, device: torch.device, *, size: int, width: int, n_down: int, lr: float,
                         loss: str, direction: str) -> Callable[[], Any]:
    """Lesson 02's unpaired / paired model: ``encoder_decoder.translation_step``."""
    from anime_lib.models import encoder_decoder as ed
    from anime_lib.models.blocks import init_weights

    model = init_weights(ed.EncoderDecoder(width, n_down, 8 * width, direction=direction)).to(device)
    opt = _adam(model.parameters(), lr)
    x, y = _images(batch, size, device), _images(batch, size, device)
    return lambda: ed.translation_step(model, opt, x, y, loss)


def pix2pix_step(batch: int, device: torch.device, *, size: int, width: int, n_down: int, lr: float,
                 lambda_l1: float, gan_kind: str, direction: str) -> Callable[[], Any]:
    """Lesson 02's pix2pix (ToyFaces only): ``encoder_decoder.pix2pix_step``."""
    from anime_lib.models import encoder_decoder as ed
    from anime_lib.models.blocks import init_weights

    G = init_weights(ed.EncoderDecoder(width, n_down, 8 * width, direction=direction)).to(device)
    D = init_weights(ed.PatchDiscriminator(width)).to(device)
    opt_G, opt_D = _adam(G.parameters(), lr), _adam(D.parameters(), lr)
    x, y = _images(batch, size, device), _images(batch, size, device)
    return lambda: ed.pix2pix_step(G, D, opt_G, opt_D, x, y, lambda_l1, gan_kind)


def dcgan_step(batch: int, device: torch.device, *, size: int, z_dim: int, ngf: int, ndf: int, lr_g: float,
               lr_d: float, beta1: float, r1_gamma: float, batchnorm: bool = True) -> Callable[[], Any]:
    """Lesson 03's DCGAN (and the deep dive's ablation): ``dcgan.adversarial_step`` on noise z."""
    from anime_lib.models import dcgan

    G = dcgan.Generator(z_dim, size, ngf, batchnorm=batchnorm).to(device)
    D = dcgan.Discriminator(size, ndf, batchnorm=batchnorm).to(device)
    opt_G, opt_D = _adam(G.parameters(), lr_g, (beta1, 0.999)), _adam(D.parameters(), lr_d, (beta1, 0.999))
    z, real = torch.randn(batch, z_dim, device=device), _images(batch, size, device)
    return lambda: dcgan.adversarial_step(G, D, opt_G, opt_D, z, real, r1_gamma=r1_gamma)


def conditional_dcgan_step(batch: int, device: torch.device, *, size: int, z_dim: int, ngf: int, ndf: int,
                           lr_g: float, lr_d: float, beta1: float, direction: str) -> Callable[[], Any]:
    """Lesson 03's conditional DCGAN: ``dcgan.adversarial_step`` with source images as G's input."""
    from anime_lib.models import dcgan

    G = dcgan.ConditionalDCGAN(size, ngf, z_dim, direction=direction).to(device)
    D = dcgan.Discriminator(size, ndf).to(device)
    opt_G, opt_D = _adam(G.parameters(), lr_g, (beta1, 0.999)), _adam(D.parameters(), lr_d, (beta1, 0.999))
    source, real = _images(batch, size, device), _images(batch, size, device)
    return lambda: dcgan.adversarial_step(G, D, opt_G, opt_D, source, real)


def cyclegan_step(batch: int, device: torch.device, *, recipe: Any, amp: bool = False,
                  channels_last: bool = True) -> Callable[[], Any]:
    """Lessons 04 and 06's CycleGAN: ``cyclegan.train_step`` with the recipe's networks (channels_last as
    ``cyclegan.fit`` trains them; lesson 06 keeps the default layout), pools and loss weights; mixed precision
    where the lesson turns it on."""
    from anime_lib.models import cyclegan as cg
    from anime_lib.models.blocks import ImagePool

    model = recipe.build().to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    opt_G = _adam(model.generators(), recipe.lr, (recipe.beta1, recipe.beta2))
    opt_D = _adam(model.discriminators(), recipe.lr, (recipe.beta1, recipe.beta2))
    gen = torch.Generator().manual_seed(0)
    pool_A, pool_B = ImagePool(recipe.pool_size, gen), ImagePool(recipe.pool_size, gen)
    autocast, scaler = _amp(device, amp)
    a, b = _images(batch, recipe.img_size, device), _images(batch, recipe.img_size, device)
    return lambda: cg.train_step(model, a, b, opt_G, opt_D, pool_A, pool_B, recipe.lambda_cycle,
                                 recipe.lambda_identity, recipe.input_noise, autocast=autocast, scaler=scaler,
                                 noise_generator=gen)


def supervised_step(batch: int, device: torch.device, *, recipe: Any) -> Callable[[], Any]:
    """Lesson 04 deep dive's supervised ceiling (ToyFaces only): ``cyclegan.fit_supervised``'s step on G_AB."""
    from anime_lib.models.encoder_decoder import translation_step

    G = recipe.build().G_AB.to(device, memory_format=torch.channels_last)
    opt = _adam(G.parameters(), recipe.lr, (recipe.beta1, recipe.beta2))
    x, y = _images(batch, recipe.img_size, device), _images(batch, recipe.img_size, device)
    return lambda: translation_step(G, opt, x, y)


def geometry_step(batch: int, device: torch.device, *, size: int, ngf: int, ndf: int, n_blocks: int | None,
                  n_layers: int | None, patch: int | None, lr: float, betas: tuple[float, float], pool: int,
                  lambda_cycle: float, lambda_identity: float, switches: tuple[tuple[str, Any], ...],
                  lambda_landmark: float = 0.0, lambda_local: float = 0.0, use_local: bool = False
                  ) -> Callable[[], Any]:
    """Lesson 05's variants: ``geometry.geometry_train_step`` (channels_last, as the lesson). With ``lambda_landmark``
    the landmark loss reads the fakes with two frozen landmark regressors (ToyFaces only); with ``use_local`` (stage 2
    of a model built with ``("local_d", True)``) the local discriminators join, as from the lesson's LOCAL_D_START."""
    from anime_lib.models import geometry as geo

    model = geo.GeometryCycleGAN(size, ngf, ndf, n_blocks, n_layers, patch=patch, **dict(switches))
    model = model.to(device, memory_format=torch.channels_last)
    o = geo.optimisers_and_pools(model, lr, betas, lambda step: 1.0, pool, 0)
    w = geo.GeometryWeights(lambda_cycle, lambda_identity, lambda_landmark, lambda_local if use_local else 0.0)
    rolls = [((torch.rand(batch) * 2 - 1) * 30).to(device) for _ in range(2)]  # on the device, as geometry_batch does
    landmarks, R_A, R_B, transfer = [None, None], None, None, None
    if lambda_landmark > 0 or use_local:
        landmarks = [(torch.rand(batch, 5, 2) * 1.2 - 0.6).to(device) for _ in range(2)]
        transfer = geo.ShapeTransfer(torch.rand(5, 2) - 0.5, torch.rand(5, 2) - 0.5)
    if lambda_landmark > 0:  # the notebook's regressors: trained before, frozen (geo.train_regressor returns them so)
        R_A, R_B = (geo.LandmarkRegressor(size).to(device).eval().requires_grad_(False) for _ in range(2))
    data = geo.GeometryBatch(_images(batch, size, device), _images(batch, size, device), *rolls, *landmarks)
    return lambda: geo.geometry_train_step(model, data, o["opt_G"], o["opt_D"], o["pool_A"], o["pool_B"], w, R_A, R_B,
                                           transfer, use_local, o.get("opt_L"), o["pool_local_A"], o["pool_local_B"])


def landmark_regressor_step(batch: int, device: torch.device, *, size: int, lr: float = 1e-3) -> Callable[[], Any]:
    """Lesson 05's landmark regressors (ToyFaces only): one step of ``geometry.train_regressor`` (mean squared error
    of the five landmarks, Adam), at its default width and batch."""
    import torch.nn.functional as F

    from anime_lib.models import geometry as geo

    R = geo.LandmarkRegressor(size).to(device)
    opt = torch.optim.Adam(R.parameters(), lr=lr)
    x, landmarks = _images(batch, size, device), torch.rand(batch, 5, 2, device=device) * 2 - 1

    def step() -> None:
        loss = F.mse_loss(R(x), landmarks)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def ugatit_step(batch: int, device: torch.device, *, size: int, ngf: int, ndf: int, n_res: int | None,
                n_global: int | None, n_local: int | None, light: bool, weights: Any, lr: float,
                betas: tuple[float, float], weight_decay: float) -> Callable[[], Any]:
    """Lesson 06's U-GAT-IT: ``ugatit.train_step``."""
    from anime_lib.models import ugatit as ug

    model = ug.UGATIT(size, ngf, ndf, n_res, n_global, n_local, light).to(device)
    opt_G = _adam(model.generators(), lr, betas, weight_decay=weight_decay)
    opt_D = _adam(model.discriminators(), lr, betas, weight_decay=weight_decay)
    a, b = _images(batch, size, device), _images(batch, size, device)
    return lambda: ug.train_step(model, a, b, opt_G, opt_D, weights)


def cartoongan_step(batch: int, device: torch.device, *, recipe: Any, features: str,
                    init_phase: bool) -> Callable[[], Any]:
    """Lesson 07's CartoonGAN / ArtifyGAN and their ablations: ``cartoongan.train_step`` (channels_last, as
    ``cartoongan.fit``), content network ``features`` ("vgg19" or "probe")."""
    from anime_lib.models import cartoongan as cn

    model = recipe.build().to(device, memory_format=torch.channels_last)
    net = _features(features, str(device))
    opt_G = _adam(model.G.parameters(), recipe.lr, (recipe.beta1, recipe.beta2))
    opt_D = _adam(model.D.parameters(), recipe.lr, (recipe.beta1, recipe.beta2))
    photo, cartoon, smoothed = (_images(batch, recipe.img_size, device) for _ in range(3))
    return lambda: cn.train_step(model, photo, cartoon, smoothed, opt_G, opt_D, net, recipe.objective,
                                 init_phase=init_phase)


def animegan_init_step(batch: int, device: torch.device, *, recipe: Any) -> Callable[[], Any]:
    """Lesson 08's initialisation phase: ``animegan.init_step`` (content loss only)."""
    from anime_lib.models import animegan as ag

    G = ag.Generator(recipe.width).to(device)
    opt = _adam(G.parameters(), recipe.init_lr, (recipe.beta1, recipe.beta2))
    net, photo = _features(recipe.features, str(device)), _images(batch, recipe.img_size, device)
    return lambda: ag.init_step(G, photo, opt, net, recipe.weights())


def animegan_step(batch: int, device: torch.device, *, recipe: Any) -> Callable[[], Any]:
    """Lesson 08's adversarial phase and fine-tuning: ``animegan.train_step`` (the recipe's frozen blocks frozen)."""
    from anime_lib.models import animegan as ag

    model = recipe.build().to(device)
    opt_G = _adam(ag.freeze(model.G, recipe.freeze), recipe.g_lr, (recipe.beta1, recipe.beta2))
    opt_D = _adam(model.D.parameters(), recipe.d_lr, (recipe.beta1, recipe.beta2))
    net = _features(recipe.features, str(device))
    photo, anime, grey, smooth = (_images(batch, recipe.img_size, device) for _ in range(4))
    return lambda: ag.train_step(model, photo, anime, grey, smooth, opt_G, opt_D, net, recipe.weights())


# --------------------------------------------------------------------------------------------------
# What each lesson trains in its gpu profile
# --------------------------------------------------------------------------------------------------


@dataclass
class Job:
    """``steps`` training steps of one model of a lesson: ``builder(batch, device, **settings)`` makes the step.
    A job without a builder is a row that trains nothing (or is not modelled); ``note`` says why."""

    lesson: str
    model: str
    img_size: int
    batch: int
    steps: int
    builder: Callable[..., Callable[[], Any]] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    amp: bool = False
    note: str = ""

    def build(self, device: torch.device | str, batch: int | None = None) -> Callable[[], Any]:
        """One training step of this model on ``device`` at ``batch`` (default: the lesson's), on random data."""
        if self.builder is None:
            raise ValueError(f"{self.lesson} {self.model}: nothing to build ({self.note})")
        torch.manual_seed(0)
        return self.builder(self.batch if batch is None else batch, torch.device(device), **self.settings)

    @property
    def key(self) -> str:
        """Jobs with the same key run the same step (a seed check, a second direction): counted and timed once."""
        name = getattr(self.builder, "__name__", None)
        settings = {k: v for k, v in self.settings.items() if k != "direction"}  # a direction changes no shape
        return f"{name}|{self.batch}|{self.amp}|{sorted(settings.items())!r}"


#: The training notebooks: lesson id -> notebook.
LESSONS = {
    "01": "01_difference_vectors.ipynb",
    "02": "02_encoder_decoder.ipynb",
    "03": "03_dcgan.ipynb",
    "03 deep dive": "03_dcgan_deep_dive.ipynb",
    "04": "04_cyclegan.ipynb",
    "04 deep dive": "04_cyclegan_deep_dive.ipynb",
    "05": "05_geometry_cyclegan.ipynb",
    "06": "06_ugatit.ipynb",
    "07": "07_cartoongan.ipynb",
    "08": "08_animeganv2.ipynb",
}
DIRECTIONS = ("human->anime", "anime->human")


def _slug(direction: str) -> str:
    src, dst = direction.split("->")
    return f"{src}2{dst}"


def _toyfaces(P: Params) -> bool:
    """ToyFaces (every profile's default) has ground truth and landmarks; a real dataset such as selfie2anime has
    neither."""
    return str(P.DATASET) == "toyfaces"


def _jobs_01(P: Params) -> list[Job]:
    batch = min(P.BATCH_SIZE, P.N_TRAIN)  # the notebook: min(BATCH_SIZE, len(train[d]))
    ae_batch = min(P.AE_BATCH_SIZE, P.N_TRAIN)
    ae_steps = P.N_STEPS if P.AE_STEPS is None else P.AE_STEPS  # the notebook: AE_STEPS None -> N_STEPS
    return [Job("01", "difference vector (pixels)", P.IMG_SIZE, batch, P.N_STEPS, difference_vector_step,
                dict(size=P.IMG_SIZE, lr=P.LR), note="batch means only: no counted operation"),
            Job("01", f"autoencoder (latent {P.LATENT_DIM})", P.IMG_SIZE, ae_batch, ae_steps, autoencoder_step,
                dict(size=P.IMG_SIZE, latent_dim=P.LATENT_DIM, lr=P.AE_LR), note="batch: faces per domain")]


def _jobs_02(P: Params) -> list[Job]:
    gt = _toyfaces(P)
    setups = ["unpaired"] + ((["paired"] + (["pix2pix"] if P.TRAIN_PIX2PIX else [])) if gt else [])
    jobs = []
    for direction in DIRECTIONS:
        for setup in setups:
            common = dict(size=P.IMG_SIZE, width=P.WIDTH, n_down=P.N_DOWN, lr=P.LR, direction=direction)
            if setup == "pix2pix":
                builder, settings = pix2pix_step, dict(common, lambda_l1=P.LAMBDA_L1, gan_kind=P.GAN_LOSS)
            else:
                builder, settings = encoder_decoder_step, dict(common, loss=P.PIXEL_LOSS)
            jobs.append(Job("02", f"{setup}_{_slug(direction)}", P.IMG_SIZE, P.BATCH_SIZE, P.N_STEPS, builder,
                            settings))
    if not gt:
        jobs[-1].note = f"{P.DATASET} has no true pairs: paired and pix2pix are ToyFaces only"
    return jobs


def _dcgan_settings(P: Params) -> dict[str, Any]:
    return dict(size=P.IMG_SIZE, z_dim=P.Z_DIM, ngf=P.NGF, ndf=P.NDF, lr_g=P.LR_G, lr_d=P.LR_D, beta1=P.BETA1)


def _jobs_03(P: Params) -> list[Job]:
    jobs = [Job("03", "DCGAN", P.IMG_SIZE, P.BATCH_SIZE, P.N_STEPS, dcgan_step,
                dict(_dcgan_settings(P), r1_gamma=P.R1_GAMMA))]
    if P.DATASET != "anime_faces":  # anime_faces has no human domain: no conditional DCGAN
        n_cond = max(1, int(round(P.N_STEPS * P.COND_FRACTION)))
        for direction in ["human->anime"] + (["anime->human"] if P.BOTH_DIRECTIONS else []):
            jobs.append(Job("03", f"conditional DCGAN {_slug(direction)}", P.IMG_SIZE, P.BATCH_SIZE, n_cond,
                            conditional_dcgan_step, dict(_dcgan_settings(P), direction=direction)))
    return jobs


def _jobs_03_deep_dive(P: Params) -> list[Job]:
    if not _toyfaces(P):
        return [Job("03 deep dive", "(nothing: the notebook stops)", P.IMG_SIZE, P.BATCH_SIZE, 0,
                    note=f"DATASET {P.DATASET!r}: it needs ToyFaces (its probe) and raises SystemExit")]
    n_ablation = max(1, int(round(P.N_STEPS * P.ABLATION_FRACTION)))
    batchnorm, lr_d = {"no_batchnorm": (False, P.LR_D), "strong_d": (True, 10 * P.LR_D)}[P.ABLATION]
    return [Job("03 deep dive", "DCGAN (lesson 03's run, resumed)", P.IMG_SIZE, P.BATCH_SIZE, 0,
                note="trained by 03; N_STEPS more if 03 did not run first"),
            Job("03 deep dive", f"DCGAN ablation {P.ABLATION}", P.IMG_SIZE, P.BATCH_SIZE, n_ablation, dcgan_step,
                dict(_dcgan_settings(P), lr_d=lr_d, r1_gamma=P.R1_GAMMA, batchnorm=batchnorm))]


def _jobs_04(P: Params) -> list[Job]:
    from anime_lib.models import cyclegan as cg

    recipe = cg.Recipe.from_params(P)
    return [Job("04", "CycleGAN", P.IMG_SIZE, P.BATCH_SIZE, P.N_STEPS, cyclegan_step,
                dict(recipe=recipe, amp=bool(P.USE_AMP)), amp=bool(P.USE_AMP))]


def _jobs_04_deep_dive(P: Params) -> list[Job]:
    from anime_lib.models import cyclegan as cg

    amp = bool(P.USE_AMP)
    jobs = [Job("04 deep dive", "CycleGAN (lesson 04's run, resumed)", P.IMG_SIZE, P.BATCH_SIZE, 0, amp=amp,
                note="trained by 04; N_STEPS more if 04 did not run first")]
    if P.ABLATION_STEPS:
        variants = {"short run": {}, "no image pool": {"pool_size": 0}, "no identity loss": {"lambda_identity": 0.0}}
        if (P.NORM, P.UPSAMPLING) != ("instance", "transpose"):
            variants["paper generator"] = {"norm": "instance", "upsampling": "transpose"}
        if _toyfaces(P):
            variants["balanced anime domain"] = {}
        for label, change in variants.items():
            recipe = cg.Recipe.from_params(P, ema_decay=0.0, **change)
            jobs.append(Job("04 deep dive", f"CycleGAN ablation: {label}", P.IMG_SIZE, P.BATCH_SIZE, P.ABLATION_STEPS,
                            cyclegan_step, dict(recipe=recipe, amp=amp), amp=amp))
    if _toyfaces(P) and P.SUPERVISED_CEILING:
        jobs.append(Job("04 deep dive", "supervised ceiling (G_AB on true pairs)", P.IMG_SIZE, P.BATCH_SIZE,
                        P.N_STEPS, supervised_step, dict(recipe=cg.Recipe.from_params(P, ema_decay=0.0))))
    return jobs


def _jobs_05(P: Params) -> list[Job]:
    angle = (("angle_channel", True), ("conditional_d", P.CONDITIONAL_D), ("angle_injection", P.ANGLE_INJECTION))
    variants: dict[str, tuple] = {"CycleGAN (plain)": (), "CycleGAN + angle channel": angle}
    if P.SEED_CHECK:  # the same networks again with SEED + 1
        variants[f"CycleGAN (plain), seed {P.SEED + 1}"] = ()
        variants[f"CycleGAN + angle channel, seed {P.SEED + 1}"] = angle
    common = dict(size=P.IMG_SIZE, ngf=P.NGF, ndf=P.NDF, n_blocks=P.N_BLOCKS, n_layers=P.N_LAYERS_D,
                  patch=P.PATCH_SIZE, lr=P.LR, betas=(P.BETA1, P.BETA2), pool=P.POOL_SIZE,
                  lambda_cycle=P.LAMBDA_CYCLE, lambda_identity=P.LAMBDA_IDENTITY)
    jobs = [Job("05", name, P.IMG_SIZE, P.BATCH_SIZE, P.N_STEPS, geometry_step, dict(common, switches=switches))
            for name, switches in variants.items()]
    if _toyfaces(P):  # landmarks: two regressors (geo.train_regressor, batch 32), then the landmark / local-D variants
        from anime_lib.models.geometry import train_regressor

        regressor_batch = inspect.signature(train_regressor).parameters["batch"].default
        landmark = dict(common, lambda_landmark=P.LAMBDA_LANDMARK, lambda_local=P.LAMBDA_LOCAL)
        stage_1 = int(P.N_STEPS * P.LOCAL_D_START)  # the local discriminators join after this many steps
        jobs += [Job("05", "landmark regressors (2)", P.IMG_SIZE, regressor_batch, 2 * P.REGRESSOR_STEPS,
                     landmark_regressor_step, dict(size=P.IMG_SIZE), note="ToyFaces only"),
                 Job("05", "CycleGAN + landmark loss", P.IMG_SIZE, P.BATCH_SIZE, P.N_STEPS, geometry_step,
                     dict(landmark, switches=()), note="ToyFaces only"),
                 Job("05", "CycleGAN + landmark loss + local D: stage 1", P.IMG_SIZE, P.BATCH_SIZE, stage_1,
                     geometry_step, dict(landmark, switches=(("local_d", True),)), note="ToyFaces only"),
                 Job("05", "CycleGAN + landmark loss + local D: stage 2", P.IMG_SIZE, P.BATCH_SIZE,
                     P.N_STEPS - stage_1, geometry_step, dict(landmark, switches=(("local_d", True),), use_local=True),
                     note="ToyFaces only; from LOCAL_D_START on")]
    return jobs


def _jobs_06(P: Params) -> list[Job]:
    from anime_lib.models import cyclegan as cg
    from anime_lib.models import ugatit as ug

    weights = ug.LossWeights(adv=P.ADV_WEIGHT, cycle=P.CYCLE_WEIGHT, identity=P.IDENTITY_WEIGHT, cam=P.CAM_WEIGHT)
    jobs = [Job("06", "U-GAT-IT" + (" (light)" if P.LIGHT else ""), P.IMG_SIZE, P.BATCH_SIZE, P.N_STEPS, ugatit_step,
                dict(size=P.IMG_SIZE, ngf=P.NGF, ndf=P.NDF, n_res=P.N_RES, n_global=P.N_LAYERS_GLOBAL,
                     n_local=P.N_LAYERS_LOCAL, light=P.LIGHT, weights=weights, lr=P.LR, betas=(P.BETA1, P.BETA2),
                     weight_decay=P.WEIGHT_DECAY))]
    if P.TRAIN_CYCLEGAN:  # cg.CycleGAN(IMG_SIZE, NGF, NDF) with lesson 04's loss weights, lr 2e-4 and pools of 50
        recipe = cg.Recipe(img_size=P.IMG_SIZE, batch_size=P.BATCH_SIZE, ngf=P.NGF, ndf=P.NDF)
        jobs.append(Job("06", "CycleGAN (same budget)", P.IMG_SIZE, P.BATCH_SIZE, P.N_STEPS, cyclegan_step,
                        dict(recipe=recipe, channels_last=False)))
    return jobs


def _jobs_07(P: Params) -> list[Job]:
    from anime_lib.models import cartoongan as cn

    recipe = cn.Recipe.from_params(P)
    runs = {"CartoonGAN": recipe}
    if P.TRAIN_ABLATION:
        runs.update({"ArtifyGAN": replace(recipe, n_blocks=P.ARTIFYGAN_BLOCKS),
                     "CartoonGAN, Gram style loss": replace(recipe, adversarial=0.0, style=P.STYLE_WEIGHT),
                     "CartoonGAN, adversarial + Gram": replace(recipe, style=P.STYLE_WEIGHT),
                     "CartoonGAN, no edge smoothing": replace(recipe, edge_smoothing=False),
                     "CartoonGAN, no initialisation phase": replace(recipe, init_steps=0)})
    n_total, jobs = P.N_INIT_STEPS + P.N_STEPS, []
    for name, r in runs.items():  # each run: r.init_steps content-only steps, then the rest of n_total
        if r.init_steps:
            jobs.append(Job("07", f"{name}: init phase", P.IMG_SIZE, P.BATCH_SIZE, r.init_steps, cartoongan_step,
                            dict(recipe=r, features=P.FEATURES, init_phase=True)))
        jobs.append(Job("07", f"{name}: adversarial", P.IMG_SIZE, P.BATCH_SIZE, n_total - r.init_steps,
                        cartoongan_step, dict(recipe=r, features=P.FEATURES, init_phase=False)))
    jobs.append(Job("07", "init phase, random content network", P.IMG_SIZE, P.BATCH_SIZE, P.N_INIT_STEPS,
                    cartoongan_step, dict(recipe=recipe, features=P.FEATURES, init_phase=True)))
    for name, r in (("CartoonGAN", recipe), ("ArtifyGAN", replace(recipe, n_blocks=P.ARTIFYGAN_BLOCKS))):
        jobs.append(Job("07", f"step timing (section 8): {name}", P.IMG_SIZE, P.BATCH_SIZE, P.TIMING_REPEATS + 1,
                        cartoongan_step, dict(recipe=r, features=P.FEATURES, init_phase=False)))
    return jobs


def _jobs_08(P: Params) -> list[Job]:
    from anime_lib.models import animegan as ag

    recipe = ag.Recipe.from_params(P)
    jobs = [Job("08", "init phase (content only)", P.IMG_SIZE, P.BATCH_SIZE, P.N_INIT_STEPS, animegan_init_step,
                dict(recipe=recipe)),
            Job("08", "AnimeGANv2 adversarial", P.IMG_SIZE, P.BATCH_SIZE, P.N_STEPS, animegan_step,
                dict(recipe=recipe))]
    if P.FINETUNE_STEPS:
        ft = recipe.finetuned(P.FINETUNE_START, P.FINETUNE_FREEZE, P.FINETUNE_LR_SCALE)
        jobs.append(Job("08", f"fine-tuning ({', '.join(ft.freeze) or 'nothing'} frozen)", P.IMG_SIZE, P.BATCH_SIZE,
                        P.FINETUNE_STEPS, animegan_step, dict(recipe=ft)))
    return jobs


_JOBS = {"01": _jobs_01, "02": _jobs_02, "03": _jobs_03, "03 deep dive": _jobs_03_deep_dive, "04": _jobs_04,
         "04 deep dive": _jobs_04_deep_dive, "05": _jobs_05, "06": _jobs_06, "07": _jobs_07, "08": _jobs_08}


def lesson_jobs(lesson: str, profile: str = "gpu") -> list[Job]:
    """What ``lesson`` (a key of :data:`LESSONS`) trains in ``profile``, from its resolved parameters."""
    return _JOBS[lesson](gpu_params(LESSONS[lesson], profile))


def all_jobs(only: list[str] | None = None, profile: str = "gpu") -> list[Job]:
    """Every lesson's jobs (``only``: lesson ids or their prefixes, "04" selects 04 and its deep dive)."""
    lessons = [k for k in LESSONS if not only or any(k.startswith(o.strip()) for o in only)]
    return [job for lesson in lessons for job in lesson_jobs(lesson, profile)]


# --------------------------------------------------------------------------------------------------
# Counting, timing, the table
# --------------------------------------------------------------------------------------------------


def count_flops(job: Job, count_on: str = "meta", count_batch: int | None = None) -> int:
    """FLOP of one training step of ``job`` at its batch: counted on ``count_on`` ("meta": shapes only, or "cpu") at
    ``count_batch`` (default: the job's batch) and scaled linearly to the job's batch."""
    b = job.batch if count_batch is None else min(count_batch, job.batch)
    return round(training_step_flops(job.build(count_on, b)) * job.batch / b)


def seconds_per_step(step: Callable[[], Any], device: torch.device | str, warmup: int = 2, steps: int = 5) -> float:
    """Median wall seconds of ``steps`` calls of ``step`` after ``warmup`` untimed ones (synchronised on CUDA)."""
    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_seconds(jobs: list[Job], device: torch.device | str, warmup: int = 2,
                    steps: int = 5) -> dict[str, float | None]:
    """Seconds per step of every job that trains, by :attr:`Job.key` (each key timed once), at the job's batch on
    ``device``; None (and a note on the jobs) where the device runs out of memory or the step fails there."""
    device = torch.device(device)
    seconds: dict[str, float | None] = {}
    for j in jobs:
        if j.builder is None or not j.steps or j.key in seconds:
            continue
        try:
            seconds[j.key] = seconds_per_step(j.build(device), device, warmup, steps)
        except torch.cuda.OutOfMemoryError:
            seconds[j.key], failure = None, "out of GPU memory"
        except Exception as exc:  # a step that fails on this device: the other rows are still worth having
            seconds[j.key], failure = None, f"timing failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
        if seconds[j.key] is None:
            for same in (k for k in jobs if k.key == j.key):
                same.note = (same.note + "; " if same.note else "") + failure
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return seconds


def budget_rows(jobs: list[Job], flops: dict[str, int], seconds: dict[str, float | None] | None = None,
                fp32_rate: float = T4_SUSTAINED_FP32, amp_rate: float = T4_SUSTAINED_AMP) -> list[dict[str, Any]]:
    """One row per job, then a "total" row per lesson. ``flops``: FLOP per step by :attr:`Job.key`; ``seconds``:
    seconds per step measured on a GPU by key (None where it could not be measured; ``seconds=None``: nothing was
    timed). Minutes on a T4 at the assumed sustained rates, in float32 and in mixed precision; ``t4_lesson_min`` at
    the precision the job trains in, and a lesson's total flags ``over_budget`` from it."""
    rows: list[dict[str, Any]] = []
    for lesson in dict.fromkeys(j.lesson for j in jobs):
        mine = [j for j in jobs if j.lesson == lesson]
        sums = {"t4_fp32_min": 0.0, "t4_amp_min": 0.0, "t4_lesson_min": 0.0, "measured_min": 0.0}
        for j in mine:
            f = flops[j.key] if j.builder is not None and j.steps else (0 if not j.steps else None)
            est = {"t4_fp32_min": None, "t4_amp_min": None, "t4_lesson_min": None}
            if f is not None:
                est = {"t4_fp32_min": minutes(f, j.steps, fp32_rate), "t4_amp_min": minutes(f, j.steps, amp_rate)}
                est["t4_lesson_min"] = est["t4_amp_min"] if j.amp else est["t4_fp32_min"]
            if seconds is None:
                measured = None
            elif not j.steps:
                measured = 0.0
            else:
                s = seconds.get(j.key) if j.builder is not None else None
                measured = None if s is None else s * j.steps / 60
            rows.append({"lesson": lesson, "model": j.model, "img_size": j.img_size, "batch": j.batch,
                         "steps": j.steps, "gflop_per_step": None if f is None or not j.steps else f / 1e9, **est,
                         "precision": "amp" if j.amp else "fp32", "measured_min": measured, "over_budget": None,
                         "note": j.note})
            for k in sums:
                value = measured if k == "measured_min" else est[k]
                sums[k] = None if sums[k] is None or value is None else sums[k] + value
        rows.append({"lesson": lesson, "model": "total", "img_size": None, "batch": None,
                     "steps": sum(j.steps for j in mine), "gflop_per_step": None, **sums,
                     "precision": "amp" if any(j.amp for j in mine) else "fp32",
                     "over_budget": None if sums["t4_lesson_min"] is None else sums["t4_lesson_min"] > BUDGET_MINUTES,
                     "note": "" if sums["t4_lesson_min"] is not None else "some rows not counted"})
    return rows


def format_table(rows: list[dict[str, Any]], measured_label: str | None = None) -> str:
    """The rows as a fixed-width text table (the measured column only when ``measured_label``)."""
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    head = (f"{'lesson':<13}{'model':<50}{'px':>5}{'batch':>6}{'steps':>7}{'GFLOP/step':>11}{'T4 fp32 min':>12}"
            f"{'T4 AMP min':>11}{'trains in':>10}" + (f"{measured_label:>14}" if measured_label else "")
            + f"  {f'> {BUDGET_MINUTES:g} min':<9}note")
    lines = [head, "-" * len(head)]
    for r in rows:
        total = r["model"] == "total"
        flag = "" if r["over_budget"] is None else ("YES" if r["over_budget"] else "no")
        lines.append(f"{r['lesson']:<13}{r['model'][:49]:<50}{num(r['img_size'], 'd'):>5}{num(r['batch'], 'd'):>6}"
                     f"{r['steps']:>7}{num(r['gflop_per_step'], ',.1f'):>11}{num(r['t4_fp32_min'], ',.1f'):>12}"
                     f"{num(r['t4_amp_min'], ',.1f'):>11}{r['precision'] if total else '':>10}"
                     + (f"{num(r['measured_min'], ',.1f'):>14}" if measured_label else "")
                     + f"  {flag:<9}{r['note']}")
        if total:
            lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="lessons, comma-separated (04 selects 04 and its deep dive)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows (and the assumptions) here")
    parser.add_argument("--count-on", choices=("meta", "cpu"), default="meta",
                        help="meta: count from the shapes alone (default); cpu: with real arithmetic (slow)")
    parser.add_argument("--count-batch", type=int, default=None,
                        help="count at this batch and scale linearly to the lesson's (default: the lesson's batch)")
    parser.add_argument("--no-timing", action="store_true", help="do not time real steps, even where CUDA is available")
    parser.add_argument("--timed-steps", type=int, default=5, help="timed GPU steps per model (the median is used)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed GPU steps before them")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.time()
    jobs = all_jobs([o for o in args.only.split(",") if o.strip()] or None)
    flops: dict[str, int] = {}
    for j in jobs:
        if j.builder is not None and j.key not in flops:
            flops[j.key] = count_flops(j, args.count_on, args.count_batch)
    seconds: dict[str, float | None] = {}
    cuda = torch.cuda.is_available() and not args.no_timing
    label = None
    if cuda:
        label = "GPU min"
        seconds = measure_seconds(jobs, "cuda", args.warmup, args.timed_steps)
    rows = budget_rows(jobs, flops, seconds if cuda else None)
    print(f"torch {torch.__version__}, {platform.machine()}; gpu profile of every lesson as set today; FLOP counted "
          f"on {args.count_on} " + ("at the lessons' batches" if args.count_batch is None else
                                    f"at batch {args.count_batch}, scaled linearly to the lessons' batches"))
    print(f"T4 assumed sustained: {T4_SUSTAINED_FP32 / 1e12:g} TFLOP/s float32 "
          f"({T4_SUSTAINED_FP32 / T4_PEAK_FP32:.0%} of its {T4_PEAK_FP32 / 1e12:g} peak), "
          f"{T4_SUSTAINED_AMP / 1e12:g} TFLOP/s mixed precision "
          f"({T4_SUSTAINED_AMP / T4_PEAK_FP16_TENSOR:.0%} of its {T4_PEAK_FP16_TENSOR / 1e12:g} float16 tensor-core "
          f"peak); counted: convolutions and matrix products, forward and backward, of the training steps only")
    if cuda:
        print(f"GPU min: measured on {torch.cuda.get_device_name(0)}: the median of {args.timed_steps} steps after "
              f"{args.warmup} warm-up steps, at the lesson's batch and precision, times its steps")
    print()
    print(format_table(rows, label))
    totals = [r for r in rows if r["model"] == "total"]
    over = [r["lesson"] for r in totals if r["over_budget"]]
    print(f"{len(over)} of {len(totals)} notebooks above {BUDGET_MINUTES:g} estimated T4 minutes (at the precision "
          f"each trains in): {', '.join(over) or 'none'}. ({time.time() - t_start:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {"torch": torch.__version__, "counted_on": args.count_on, "count_batch": args.count_batch,
                "t4_sustained_fp32_flops": T4_SUSTAINED_FP32, "t4_sustained_amp_flops": T4_SUSTAINED_AMP,
                "t4_peak_fp32_flops": T4_PEAK_FP32, "t4_peak_fp16_tensor_flops": T4_PEAK_FP16_TENSOR,
                "budget_minutes": BUDGET_MINUTES,
                "measured_on": torch.cuda.get_device_name(0) if cuda else None,
                "timed_steps": args.timed_steps if cuda else None}
        args.json.write_text(json.dumps({"assumptions": meta, "rows": rows}, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
