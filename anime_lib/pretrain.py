"""Train a lesson's main model for longer and ship it: the command that makes the weights ``USE_PRETRAINED`` loads.

    python -m anime_lib.pretrain list
    python -m anime_lib.pretrain run 04_cyclegan [--out runs/pretrain] [--timeout SECONDS] [--param NAME=VALUE ...]
    python -m anime_lib.pretrain export 04_cyclegan [--out runs/pretrain]
    python -m anime_lib.pretrain stylegan2 --domain human [--size 32] [--steps N] [--batch B] [--channels C]
        [--style-dim D] [--n-mlp M] [--n-train N] [--n-eval N] [--seed S] [--out runs/pretrain] [--no-progress]
        [--export [--profile cpu]]
    torchrun --nproc_per_node 2 -m anime_lib.pretrain stylegan2 ...   (several processes: gloo on CPU, nccl on CUDA)

A lesson that ships a model trains it in a run of its own, named in :data:`SHIPPED` (lesson 04: the run
``cyclegan_long``, ``PRETRAINED_STEPS`` steps): with ``USE_PRETRAINED = True`` that run loads the shipped
weights, with ``False`` the lesson trains it itself. ``run`` is exactly the second case: it executes the
lesson (papermill, the course runner's per-cell timeout) with ``USE_PRETRAINED=False`` into
``<out>/<lesson>``, so the shipped model is trained by the lesson's own code and settings, resumably (run
the command again after an interruption: the lesson continues from its checkpoints). Then it exports.

``export`` takes the last checkpoint of each shipped run, checks that it finished (its step equals the
``n_steps`` of its settings), keeps only what a lesson loads (the models, EMAs and logs named in
:class:`Shipment`, plus the runner's step, settings, loss history and training seconds; optimisers, pools
and random states are left out), stores floating-point tensors as float16 (half the bytes; the lessons
compute in float32 again after loading) and writes ``anime_lib/weights/<lesson>--<run>--<profile>.pt``
and its entry in ``anime_lib/weights/shipped.json``: size, SHA-256, steps, training seconds, the machine's
speed (:mod:`anime_lib.machine_speed`), the command, the date and the lesson's measured figures of that
model (its rows in the lesson's ``metrics.json``). :mod:`anime_lib.pretrained` registers every entry of
that file, and a test keeps all committed weights together under :data:`MAX_TOTAL_BYTES`.

``stylegan2`` is not a lesson run but a model trained here (:func:`pretrain_stylegan2`): a small StyleGAN2
(:mod:`anime_lib.models.stylegan2_training`) on ToyFaces faces of one domain, in the Run ``stylegan2_<domain>``
under ``<out>/09_stylegan2`` (run again to continue), then its EMA generator's samples measured against the
real-vs-real floor; ``--export`` ships g_ema, D (for FreezeD fine-tuning) and the loop's state as
:func:`stylegan2_shipment`. Under ``torchrun`` every process trains on its own batches with averaged gradients
and only rank 0 writes.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from anime_lib import machine_speed
from anime_lib.data.download import sha256_of
from anime_lib.pretrained import MANIFEST, PACKAGE_ROOT, WeightsError, load_weights_file, read_shipped

__all__ = ["Shipment", "SHIPPED", "MAX_TOTAL_BYTES", "RUNNER_KEYS", "compact", "export", "pretrain",
           "stylegan2_shipment", "pretrain_stylegan2", "main"]

#: All committed weights together (the probe included) stay below this many bytes.
MAX_TOTAL_BYTES = 40_000_000
#: What the training runner itself writes into every checkpoint and a shipped file keeps.
RUNNER_KEYS = ("step", "config", "history", "train_seconds")


@dataclass(frozen=True)
class Shipment:
    """One shipped model: the lesson (notebook id) and its run that trains it, the profile whose
    architecture it has, the checkpoint entries a lesson loads (``keep``), the methods of its rows in the
    lesson's metrics.json (``methods``) and the parameters the lesson is run with besides
    ``USE_PRETRAINED=False`` (``parameters``)."""

    lesson: str
    run: str
    keep: tuple[str, ...]
    methods: tuple[str, ...]
    profile: str = "cpu"
    parameters: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def name(self) -> str:
        """The registry name, as lessons ask for it: ``<lesson>/<run>/<profile>``."""
        return f"{self.lesson}/{self.run}/{self.profile}"

    @property
    def filename(self) -> str:
        return f"{self.lesson}--{self.run}--{self.profile}.pt"


#: Every model the course ships, by lesson. Lessons name them ``f"{lesson}/{run}/{PROFILE}"``.
SHIPPED: dict[str, tuple[Shipment, ...]] = {
    "04_cyclegan": (Shipment(
        "04_cyclegan", "cyclegan_long", keep=("model", "ema_G_AB", "ema_G_BA", "monitor"),
        methods=("CycleGAN, long run",),
        description="lesson 04's CycleGAN (the cpu profile's 64 px networks) trained PRETRAINED_STEPS steps"),),
}


def _half(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.half() if value.is_floating_point() else value
    if isinstance(value, Mapping):
        return {k: _half(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_half(v) for v in value)
    return value


def compact(state: Mapping[str, Any], keep: Sequence[str]) -> dict[str, Any]:
    """The entries ``keep`` of a checkpoint plus the runner's own (:data:`RUNNER_KEYS`), floating-point
    tensors as float16. A missing ``keep`` entry raises: the lesson saves under other names."""
    missing = [k for k in keep if k not in state]
    if missing:
        raise KeyError(f"the checkpoint has no {missing} (it has {sorted(state)}): update Shipment.keep")
    return {k: _half(state[k]) for k in (*RUNNER_KEYS, *keep) if k in state}


def export(shipment: Shipment, checkpoint: str | Path, *, figures: Sequence[Mapping[str, Any]] = (),
           weights_dir: Path | None = None, manifest: Path | None = None,
           speed: machine_speed.MachineSpeed | None = None, command: str = "",
           unfinished: bool = False) -> dict[str, Any]:
    """Write the compact weights of ``checkpoint`` (a finished run of ``shipment``) and their manifest entry.

    ``figures``: the lesson's metrics rows of this model (kept in the entry as the shipped model's figures).
    Returns the entry. Refuses an unfinished run (shipping it would misstate its steps) unless ``unfinished``:
    a run stopped on purpose by a time budget, whose entry then records the steps it reached of the planned ones.
    """
    weights_dir = Path(weights_dir) if weights_dir is not None else PACKAGE_ROOT / "weights"
    manifest = Path(manifest) if manifest is not None else weights_dir / MANIFEST.name
    state = load_weights_file(checkpoint, what="checkpoint")
    steps, wanted = int(state.get("step", -1)), int(state.get("config", {}).get("n_steps", -2))
    if steps != wanted and not unfinished:
        raise WeightsError(f"checkpoint {checkpoint} is at step {steps} of {wanted}: the run has not finished; "
                           f"run `python -m anime_lib.pretrain run {shipment.lesson}` again to continue it")
    weights_dir.mkdir(parents=True, exist_ok=True)
    path = weights_dir / shipment.filename
    tmp = path.with_suffix(".tmp")
    torch.save(compact(state, shipment.keep), tmp)
    tmp.replace(path)
    keys = ("realism", "attr_preservation", "gt_l1", "toy_fid", "diversity", "recon_l1")
    entry = {
        "file": path.name, "size": path.stat().st_size, "sha256": sha256_of(path),
        "lesson": shipment.lesson, "profile": shipment.profile, "run": shipment.run,
        "description": shipment.description, "steps": steps, **({"planned_steps": wanted} if steps != wanted else {}),
        "train_seconds": round(float(state.get("train_seconds", 0.0)), 1),
        "machine": speed.describe() if speed is not None else None,
        "train_seconds_at_reference": round(speed.at_reference(float(state.get("train_seconds", 0.0))), 1)
        if speed is not None else None,
        "made_by": command or f"python -m anime_lib.pretrain run {shipment.lesson}",
        "date": date.today().isoformat(),
        "figures": [{"method": r.get("method"), "direction": r.get("direction"), **{k: r.get(k) for k in keys}}
                    for r in figures],
    }
    entries = read_shipped(manifest)
    entries[shipment.name] = entry
    manifest.write_text(json.dumps(dict(sorted(entries.items())), indent=1) + "\n", encoding="utf-8")
    return entry


def export_lesson(lesson: str, out: Path, speed: machine_speed.MachineSpeed | None = None,
                  command: str = "") -> list[dict[str, Any]]:
    """Export every :data:`SHIPPED` model of ``lesson`` from the run folder ``<out>/<lesson>``."""
    from anime_lib.results import read_metrics
    from anime_lib.training import Checkpointer

    folder = out / lesson
    metrics = folder / "metrics.json"
    rows = read_metrics(metrics)["rows"] if metrics.exists() else []
    entries = []
    for shipment in SHIPPED[lesson]:
        latest = Checkpointer(folder / "checkpoints" / shipment.run).latest()
        if latest is None:
            raise WeightsError(f"no checkpoint of run {shipment.run!r} in {folder / 'checkpoints'}: run "
                               f"`python -m anime_lib.pretrain run {lesson}` first")
        figures = [r for r in rows if r.get("method") in shipment.methods]
        entry = export(shipment, latest, figures=figures, speed=speed, command=command)
        print(f"{shipment.name}: {entry['file']} ({entry['size'] / 1e6:.2f} MB, {entry['steps']} steps, "
              f"{entry['train_seconds']:.0f} s of training)")
        entries.append(entry)
    return entries


def pretrain(lesson: str, out: str | Path = "runs/pretrain", timeout: float | None = None,
             extra: Mapping[str, Any] | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Run ``lesson`` with ``USE_PRETRAINED=False`` (its shipped runs train) into ``<out>/<lesson>``, then
    :func:`export_lesson`. ``extra``: more parameters (checked against the lesson's parameters cell)."""
    from anime_lib import course

    if lesson not in SHIPPED:
        raise SystemExit(f"lesson {lesson!r} ships no model; known: {', '.join(SHIPPED)}")
    notebook = course.default_notebooks_dir() / f"{lesson}.ipynb"
    profiles = {s.profile for s in SHIPPED[lesson]}
    params = {k: v for s in SHIPPED[lesson] for k, v in s.parameters.items()}
    params.update(course.check_extra_params(extra))
    params.update({"USE_PRETRAINED": False})
    course.check_param_types(params, [notebook])
    out = Path(out)
    folder = out / lesson
    speed = machine_speed.measure()
    print(f"machine speed: {speed.describe()}")
    t0 = time.perf_counter()
    with course.run_lock(out, "pretraining"):
        result = course.execute_notebook(notebook, out / f"{lesson}.ipynb",
                                         {"PROFILE": profiles.pop(), "OUT_DIR": str(folder), **params},
                                         cwd=notebook.parent, out_dir=folder,
                                         timeout=course.DEFAULT_CELL_TIMEOUT if timeout is None else timeout,
                                         progress=progress)
    print(f"{lesson}: {result.status} in {time.perf_counter() - t0:.0f} s" + (f": {result.error}" if result.error else ""))
    if not result.ok:
        raise SystemExit(f"the lesson failed ({result.error}); see {result.executed}. Run the command again to "
                         "continue from the last checkpoint")
    command = " ".join(["python -m anime_lib.pretrain run", lesson, *(f"--param {k}={v!r}" for k, v in (extra or {}).items())])
    return export_lesson(lesson, out, speed, command)


def stylegan2_shipment(domain: str, profile: str = "cpu") -> Shipment:
    """The shipped StyleGAN2 of ``domain``: lesson ``09_stylegan2``, run ``stylegan2_<domain>``. It keeps ``g_ema``
    (the EMA generator that samples and is fine-tuned from), ``G`` (the raw generator: the run's models load
    whole), ``D`` (fine-tuning, FreezeD too, starts from the trained discriminator) and ``loop_state`` (the
    path-length mean and ADA's p); the optimisers are left out."""
    return Shipment("09_stylegan2", f"stylegan2_{domain}", keep=("g_ema", "G", "D", "loop_state"),
                    methods=(f"StyleGAN2 g_ema ({domain})",), profile=profile,
                    description=f"a small StyleGAN2 trained on ToyFaces {domain} faces (python -m anime_lib.pretrain "
                                f"stylegan2 --domain {domain})")


#: Lesson 09's human generator, trained by ``python -m anime_lib.pretrain stylegan2 --domain human --export`` (the
#: lesson builds the same Run, name and settings, so ``run 09_stylegan2`` would train it in the notebook instead).
SHIPPED["09_stylegan2"] = (stylegan2_shipment("human"),)


def _init_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device): ``torch.distributed`` initialised from torchrun's environment variables when
    WORLD_SIZE > 1 (nccl on CUDA, gloo on the CPU); (0, 1, cuda or cpu) in a single process."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world > 1 and not torch.distributed.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if cuda:
            torch.cuda.set_device(local)
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        rank, world = 0, 1
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if cuda else "cpu")
    return rank, world, device


def _measure_stylegan2(g_ema: Any, domain: str, size: int, n_eval: int, seed: int, steps: int) -> list[dict[str, Any]]:
    """Rows of realism, toy_fid and diversity: ``n_eval`` samples of ``g_ema`` and as many real test faces (the
    floor: real against real), printed as a table."""
    from anime_lib import metrics
    from anime_lib.data.toyfaces import toyfaces
    from anime_lib.models import stylegan2_training as st

    samples = st.sample(g_ema, n_eval, seed=seed + 1)
    real = toyfaces(domain, n=n_eval, size=size, split="test", seed=seed).unit()
    rows = [{"method": f"StyleGAN2 g_ema ({domain})", "direction": domain, "steps": steps,
             **metrics.evaluate_generator(samples, domain)},
            {"method": f"real data ({domain}, test)", "direction": domain, **metrics.evaluate_generator(real, domain)}]
    print(f"{'method':<32} {'realism':>8} {'toy_fid':>8} {'diversity':>9}   ({n_eval} images at {size} px)")
    for row in rows:
        print(f"{row['method']:<32} {row['realism']:>8.3f} {row['toy_fid']:>8.3f} {row['diversity']:>9.3f}")
    return rows


def pretrain_stylegan2(domain: str = "human", *, size: int = 32, steps: int = 20_000, batch: int = 8,
                       channels: int = 64, style_dim: int = 64, n_mlp: int = 8, n_train: int = 4000,
                       n_eval: int = 500, seed: int = 0, out: str | Path = "runs/pretrain", augment: bool = False,
                       checkpoint_every: int = 500, progress: bool = True, export_weights: bool = False,
                       profile: str = "cpu", weights_dir: Path | None = None, manifest: Path | None = None,
                       command: str = "", time_budget_s: float | None = None) -> dict[str, Any]:
    """Train (or continue) a small StyleGAN2 on ``n_train`` ToyFaces ``domain`` faces (train split) in the Run
    ``stylegan2_<domain>`` under ``<out>/09_stylegan2``, then on rank 0 measure ``n_eval`` samples of its EMA
    generator and the same number of real test faces (the floor) with :func:`anime_lib.metrics.evaluate_generator`
    and print both; with ``export_weights`` ship it (:func:`stylegan2_shipment`, ``weights_dir``/``manifest``
    default to the package's). ``time_budget_s`` stops training after that many seconds of this session (a
    checkpoint first; the same command continues), then measures and exports what was trained. Under torchrun every rank trains; the returned dict (rank 0's) holds ``rows``, the
    per-rank ``digests`` of G (equal: the replicas stayed identical), ``checkpoint`` and ``entry`` (if exported)."""
    from anime_lib.data.toyfaces import toyfaces
    from anime_lib.models import stylegan2_training as st
    from anime_lib.training import Run

    if size < 32 or size & (size - 1):
        raise SystemExit(f"--size must be a power of 2 of at least 32 (ToyFaces renders 32 to 256 px), got {size}")
    if export_weights and n_eval <= 0:
        raise SystemExit("--export records the shipped model's figures: give --n-eval > 0")
    rank, world, device = _init_distributed()
    try:
        recipe = st.Recipe(size=size, channels=channels, style_dim=style_dim, n_mlp=n_mlp, batch=batch,
                           augment=augment)
        for r in range(world):  # rank 0 renders (and caches) the faces first: no two processes write the cache
            if r == rank:
                images = toyfaces(domain, n=n_train, size=size, split="train", seed=seed).tensor()
            if world > 1:
                torch.distributed.barrier()
        folder = Path(out) / "09_stylegan2"
        run = Run(f"stylegan2_{domain}", folder, config=st.pretrain_config(recipe, domain, n_train, world), seed=seed)
        G, D = recipe.build()
        G, D = G.to(device), D.to(device)
        g_ema, result = st.fit(run, G, D, images, steps, recipe, checkpoint_every=checkpoint_every,
                               progress=progress, time_budget_s=time_budget_s)
        digests = [st.module_digest(G)]
        if world > 1:
            gathered: list[Any] = [None] * world
            torch.distributed.all_gather_object(gathered, digests[0])
            digests = gathered
            # training is over: leave the group, so the measurement (torchmetrics syncs over any live group) is rank 0's
            torch.distributed.destroy_process_group()
        report: dict[str, Any] = {"digests": digests, "checkpoint": run.checkpointer.latest(), "rows": []}
        if rank != 0:
            return report
        print(f"stylegan2_{domain}: {result.steps_done} steps, {result.train_seconds:.0f} s of training, "
              f"{world} process(es); G sha256 per rank: {', '.join(digests)}")
        if n_eval <= 0:
            print("measurement skipped (--n-eval 0)")
        else:
            report["rows"] = _measure_stylegan2(g_ema, domain, size, n_eval, seed, result.steps_done)
        if export_weights:
            speed = machine_speed.measure()
            entry = export(stylegan2_shipment(domain, profile), report["checkpoint"], figures=report["rows"],
                           weights_dir=weights_dir, manifest=manifest, speed=speed,
                           command=command or f"python -m anime_lib.pretrain stylegan2 --domain {domain}",
                           unfinished=time_budget_s is not None)
            print(f"{stylegan2_shipment(domain, profile).name}: {entry['file']} ({entry['size'] / 1e6:.2f} MB, "
                  f"{entry['steps']} steps)")
            report["entry"] = entry
        return report
    finally:
        if world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def main(argv: Sequence[str] | None = None) -> int:
    from anime_lib import course

    parser = argparse.ArgumentParser(prog="python -m anime_lib.pretrain", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the models the course ships and their recorded figures")
    for name, text in (("run", "train a lesson's shipped models (the lesson with USE_PRETRAINED=False) and export"),
                       ("export", "export the finished shipped runs of an earlier `run`")):
        p = sub.add_parser(name, help=text)
        p.add_argument("lesson", choices=sorted(SHIPPED))
        p.add_argument("--out", default="runs/pretrain", help="run folder (default runs/pretrain)")
        if name == "run":
            p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                           help=f"longest a cell may run (default {course.DEFAULT_CELL_TIMEOUT:.0f}; 0: no limit)")
            p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
            p.add_argument("--no-progress", action="store_true")
    p = sub.add_parser("stylegan2", help="train a small StyleGAN2 on ToyFaces faces (resumable; torchrun works)")
    p.add_argument("--domain", choices=("human", "anime"), default="human")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=8, help="images per step and process")
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--style-dim", type=int, default=64)
    p.add_argument("--n-mlp", type=int, default=8)
    p.add_argument("--n-train", type=int, default=4000, help="ToyFaces training faces")
    p.add_argument("--n-eval", type=int, default=500, help="samples (and real faces) measured at the end")
    p.add_argument("--augment", action="store_true", help="ADA")
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="stop training after this many seconds (checkpoint first; run again to continue), "
                        "then measure (and --export) what was trained; single process only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/pretrain", help="run folder (default runs/pretrain)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--export", action="store_true", help="ship the finished run into anime_lib/weights")
    p.add_argument("--profile", default="cpu", help="the profile name the shipped weights are registered under")
    p.add_argument("--weights-dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.command == "stylegan2":
        pretrain_stylegan2(args.domain, size=args.size, steps=args.steps, batch=args.batch, channels=args.channels,
                           style_dim=args.style_dim, n_mlp=args.n_mlp, n_train=args.n_train, n_eval=args.n_eval,
                           seed=args.seed, out=args.out, augment=args.augment,
                           checkpoint_every=args.checkpoint_every, progress=not args.no_progress,
                           export_weights=args.export, profile=args.profile, weights_dir=args.weights_dir,
                           time_budget_s=args.time_budget,
                           command="python -m anime_lib.pretrain " + " ".join(sys.argv[1:] if argv is None else argv))
        return 0
    if args.command == "list":
        entries = read_shipped()
        if not SHIPPED:
            print("no lesson ships a model yet")
        for shipments in SHIPPED.values():
            for s in shipments:
                e = entries.get(s.name)
                print(f"{s.name}: " + (f"{e['steps']} steps, {e['train_seconds']:.0f} s, {e['size'] / 1e6:.2f} MB, "
                                        f"{e['date']}" if e else "not shipped yet"))
        return 0
    if args.command == "export":
        export_lesson(args.lesson, Path(args.out))
        return 0
    extra = dict(course.parse_param(p) for p in args.param)
    pretrain(args.lesson, args.out, args.timeout, extra, progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
