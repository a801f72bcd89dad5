"""Training plumbing shared by the lessons: checkpoints, EMA, loss history, a small loop, AMP, ImagePool.

A few functions, not a framework. A lesson writes its own ``step_fn(step) -> dict of losses`` (the
interesting part: the GAN or diffusion update) and hands it to :func:`train_loop`, which adds a
progress bar, NaN checks, periodic checkpoints, sample grids, a time budget and resuming.

Resuming is exact: a run that is stopped and restarted ends with the same loss history and the same
weights as one that never stopped, provided that

* the checkpoint holds everything that changes during training (weights, optimizer, scheduler,
  EMA, and the random number generators: ``rng=rng_state()``), and
* the data a step sees is derived from the step number (for example
  ``batch = dataset[perm[step % n]]``), not from an iterator that would restart from the beginning.

Checkpoints are read with ``torch.load(weights_only=True)``, so they may hold only tensors, state
dicts and plain Python values (numbers, strings, lists, tuples, dicts). That is why the loss history
is stored as lists of floats and random states as tensors.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import os
import random
import re
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NamedTuple

import numpy as np
import torch
from torch import nn

__all__ = [
    "CheckpointError",
    "TrainingDiverged",
    "Checkpointer",
    "state_of",
    "restore",
    "rng_state",
    "restore_rng_state",
    "EMA",
    "LossHistory",
    "check_finite",
    "TrainResult",
    "train_loop",
    "AmpSettings",
    "pick_amp",
    "autocast_context",
    "linear_decay_lambda",
    "batch_indices",
    "Run",
    "RunResult",
]


class CheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be read (truncated, corrupt, or not a checkpoint)."""


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite. ``name``, ``step`` and ``value`` say which, when and what."""

    def __init__(self, message: str, name: str, step: int, value: float):
        super().__init__(message)
        self.name = name
        self.step = step
        self.value = value


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------

_CKPT_RE = re.compile(r"^ckpt_(\d+)\.pt$")
_TMP_PREFIX = ".tmp_ckpt_"


class Checkpointer:
    """Numbered checkpoints ``ckpt_{step:07d}.pt`` in one folder, written atomically, newest ``keep`` kept.

    Atomic means a crash or a Colab disconnect in the middle of :meth:`save` leaves either the old
    files or the complete new one, never a half-written ``ckpt_*.pt``: the state is written to a
    temporary file in the same folder, flushed to disk, then renamed over the final name.
    """

    def __init__(self, folder: str | os.PathLike, keep: int | None = 2):
        if keep is not None and keep < 1:
            raise ValueError(f"keep must be >= 1 (or None to keep all), got {keep}")
        self.folder = Path(folder)
        self.keep = keep

    def __repr__(self) -> str:
        return f"Checkpointer({str(self.folder)!r}, keep={self.keep})"

    def path_for(self, step: int) -> Path:
        return self.folder / f"ckpt_{int(step):07d}.pt"

    def paths(self) -> list[Path]:
        """All checkpoint files, oldest (lowest step) first."""
        if not self.folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := _CKPT_RE.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        """The checkpoint with the highest step, or None when there is none."""
        paths = self.paths()
        return paths[-1] if paths else None

    def save(self, step: int, state: Mapping[str, Any]) -> Path:
        """Write ``state`` as ``ckpt_{step:07d}.pt`` atomically, then delete all but the newest ``keep``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.path_for(step)
        fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=".pt", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(dict(state), f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_name, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        _fsync_dir(self.folder)
        self._prune()
        return final

    def _prune(self) -> None:
        # Temporary files left behind by a save that was killed half-way are garbage by now.
        for p in self.folder.glob(_TMP_PREFIX + "*"):
            with contextlib.suppress(OSError):
                p.unlink()
        if self.keep is None:
            return
        for p in self.paths()[: -self.keep]:
            with contextlib.suppress(OSError):
                p.unlink()

    def load(self, path: str | os.PathLike, map_location: Any = "cpu") -> dict:
        """Read one checkpoint; raise :class:`CheckpointError` if the file is not a readable checkpoint."""
        from anime_lib.pretrained import WeightsError, load_weights_file

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint at {path}")
        try:
            state = load_weights_file(path, map_location=map_location, what="checkpoint",
                                      advice="delete it to start fresh")
        except WeightsError as exc:
            raise CheckpointError(str(exc)) from None
        if not isinstance(state, dict):
            raise CheckpointError(
                f"checkpoint {path} is corrupt or not a checkpoint: expected a dict, found "
                f"{type(state).__name__}; delete it to start fresh"
            )
        return state

    def load_latest(self, map_location: Any = "cpu") -> dict | None:
        """The newest readable checkpoint, or None. Unreadable ones are skipped with a warning."""
        for path in reversed(self.paths()):
            try:
                return self.load(path, map_location=map_location)
            except CheckpointError as exc:
                warnings.warn(f"skipping unreadable checkpoint {path.name}: {exc}", RuntimeWarning, stacklevel=2)
        return None

    def prepare(self, config: Mapping[str, Any], resume: bool = True, name: str | None = None) -> bool:
        """Make the folder ready for a run with the settings ``config``; True if a checkpoint is left to resume.

        The checkpoint files are deleted (the run starts over) when ``resume`` is False, when none of them
        is readable, or when the newest readable one was saved with other settings: its ``"config"`` entry
        differs from ``config``, or it has none. Without this check a changed seed, step count or loss
        weight would silently continue the old run, or, if that one had finished, report its numbers as the
        new run's. Save ``config=config`` in every checkpoint's state (``state_fn``) for the check to work.
        Prints why it starts over (which settings changed). Other files in the folder are left alone.
        """
        config = dict(config)
        latest = self.load_latest()
        if resume and latest is not None and latest.get("config") == config:
            return True
        if not self.paths():
            return False
        label = name or self.folder.name
        if not resume:
            why = "RESUME is off"
        elif latest is None:
            why = "no checkpoint there is readable"
        elif not isinstance(latest.get("config"), Mapping):
            why = "the checkpoint has no record of its settings (an older checkpoint)"
        else:
            old = latest["config"]
            keys = [k for k in {**old, **config} if old.get(k) != config.get(k)]  # old order, then new keys
            changed = ", ".join(f"{k} {old.get(k)!r} -> {config.get(k)!r}" for k in keys)
            why = f"the checkpoint was made with other settings ({changed})"
        print(f"{label}: {why}; deleting the checkpoints in {self.folder} and starting over")
        for path in self.paths():
            with contextlib.suppress(OSError):
                path.unlink()
        return False


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX only; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def state_of(**objects: Any) -> dict[str, Any]:
    """Collect a checkpoint dict: ``state_dict()`` of modules/optimizers/schedulers/EMA, plain values as they are.

    ``torch.Generator`` objects contribute ``get_state()``. The result is a snapshot (tensors are
    copied), so training on afterwards does not change it; keep "best so far" states this way.

    >>> state = state_of(G=G, opt_G=opt_G, ema=ema, rng=rng_state(), lr=2e-4)
    """
    state: dict[str, Any] = {}
    for name, obj in objects.items():
        if isinstance(obj, torch.Generator):
            state[name] = obj.get_state()
        elif callable(getattr(obj, "state_dict", None)):
            state[name] = copy.deepcopy(obj.state_dict())
        else:
            state[name] = copy.deepcopy(obj)
    return state


def restore(state: Mapping[str, Any], *, where: str = "the checkpoint", **objects: Any) -> None:
    """Load ``state[name]`` into each object given by name (the inverse of :func:`state_of`).

    Modules, optimizers, schedulers, EMAs and pools load their state dicts; a ``torch.Generator`` its state;
    a plain dict or list (a lesson's log) is refilled in place. A module whose checkpoint entry was saved
    by another architecture raises :class:`CheckpointError` naming ``where`` (the checkpoint) and what
    differs (missing and unexpected parameters, shapes), instead of torch's long size-mismatch dump.
    """
    for name, obj in objects.items():
        if name not in state:
            raise CheckpointError(f"{where} has no entry {name!r} (it has {sorted(state)}): it was saved by other "
                                  f"code; delete it or set RESUME = False to start over")
        value = state[name]
        if isinstance(obj, torch.Generator):
            obj.set_state(value)
        elif isinstance(obj, nn.Module):
            problem = architecture_difference(obj, value)
            if problem:
                raise CheckpointError(f"{where} holds {name!r} of another architecture: {problem}. Start over with "
                                      f"RESUME = False (or another OUT_DIR), or build the model with the checkpoint's "
                                      f"settings")
            obj.load_state_dict(value)
        elif callable(getattr(obj, "load_state_dict", None)):
            obj.load_state_dict(value)
        elif isinstance(obj, dict):
            obj.clear()
            obj.update(copy.deepcopy(value))
        elif isinstance(obj, list):
            obj[:] = copy.deepcopy(value)
        else:
            raise TypeError(
                f"cannot restore {name!r} in place: {type(obj).__name__} has no load_state_dict; "
                f"read state[{name!r}] instead"
            )


def architecture_difference(module: nn.Module, state: Mapping[str, Any], show: int = 3) -> str:
    """What differs between ``module``'s parameters and buffers and a state dict: "" when they match.

    Names up to ``show`` missing entries, unexpected entries and shape mismatches, with counts.
    """
    if not isinstance(state, Mapping):
        return f"expected a state dict, found {type(state).__name__}"
    mine = module.state_dict()
    missing = [k for k in mine if k not in state]
    unexpected = [k for k in state if k not in mine]
    shapes = [f"{k} {tuple(state[k].shape)} in the checkpoint, {tuple(v.shape)} here" for k, v in mine.items()
              if k in state and isinstance(state[k], torch.Tensor) and tuple(state[k].shape) != tuple(v.shape)]
    parts = []
    for label, items in (("missing in the checkpoint", missing), ("not in this model", unexpected),
                         ("other shapes", shapes)):
        if items:
            more = f" and {len(items) - show} more" if len(items) > show else ""
            parts.append(f"{len(items)} {label} ({'; '.join(items[:show])}{more})")
    return ", ".join(parts)


def rng_state() -> dict[str, Any]:
    """The state of torch (CPU and CUDA), Python ``random`` and NumPy generators, as tensors and numbers."""
    version, mt, gauss_next = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": (version, torch.tensor(mt, dtype=torch.int64), gauss_next),
        "numpy": (np_name, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss),
                  float(np_cached)),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    if "python" in state:
        version, mt, gauss_next = state["python"]
        random.setstate((version, tuple(int(v) for v in mt.tolist()), gauss_next))
    if "numpy" in state:
        np_name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((np_name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))


# --------------------------------------------------------------------------------------------------
# EMA of weights
# --------------------------------------------------------------------------------------------------


class EMA:
    """Exponential moving average of a model's weights: ``shadow = decay * shadow + (1 - decay) * weights``.

    Generators sampled from the averaged weights look smoother and less jittery than the raw ones
    (used by StyleGAN, diffusion models, ...). Use ``ema.module`` (or ``ema(x)``) for sampling; it is
    always in eval mode and never needs gradients. Buffers (BatchNorm running stats) are copied as is.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1], got {decay}")
        self.decay = float(decay)
        self.num_updates = 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow weights a step ``1 - decay`` towards ``model``'s current weights."""
        shadow_params = dict(self.module.named_parameters())
        for name, p in model.named_parameters():
            s = shadow_params[name]
            if s.dtype.is_floating_point:
                s.lerp_(p.detach().to(s.dtype), 1.0 - self.decay)
            else:
                s.copy_(p)
        shadow_buffers = dict(self.module.named_buffers())
        for name, b in model.named_buffers():
            if name in shadow_buffers:
                shadow_buffers[name].copy_(b)
        self.num_updates += 1

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "num_updates": self.num_updates, "module": self.module.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.decay = float(state.get("decay", self.decay))
        self.num_updates = int(state.get("num_updates", 0))


# --------------------------------------------------------------------------------------------------
# Loss history and divergence checks
# --------------------------------------------------------------------------------------------------


class LossHistory:
    """Losses per step as aligned plain lists: ``{"step": [...], "loss_G": [...], ...}``.

    JSON-friendly (``json.dumps(history.as_dict())``) and safe in a ``weights_only`` checkpoint.
    A loss that was not reported at some step holds ``None`` there.
    """

    def __init__(self, data: Mapping[str, Iterable] | None = None):
        self._data: dict[str, list] = {"step": []}
        if data:
            self.load_state_dict(data)

    def add(self, step: int, **losses: Any) -> None:
        """Record the losses of one step; tensors and numpy scalars become Python floats, None stays None."""
        n = len(self._data["step"])
        self._data["step"].append(int(step))
        for name in losses:
            if name == "step":
                raise ValueError("'step' is reserved for the step number and cannot be a loss name")
            if name not in self._data:
                self._data[name] = [None] * n  # a loss that appears late is back-filled with None
        for name, column in self._data.items():
            if name != "step":
                value = losses.get(name)
                column.append(None if value is None else _to_float(value))

    @property
    def names(self) -> list[str]:
        return [k for k in self._data if k != "step"]

    @property
    def steps(self) -> list[int]:
        return list(self._data["step"])

    def __len__(self) -> int:
        return len(self._data["step"])

    def __getitem__(self, name: str) -> list:
        return list(self._data[name])

    def last(self) -> dict[str, float]:
        """The most recent value of every loss (skipping None)."""
        out = {}
        for name in self.names:
            for v in reversed(self._data[name]):
                if v is not None:
                    out[name] = v
                    break
        return out

    def as_dict(self) -> dict[str, list]:
        """A copy: ``{"step": [int, ...], name: [float | None, ...], ...}``."""
        return {k: list(v) for k, v in self._data.items()}

    state_dict = as_dict

    def load_state_dict(self, data: Mapping[str, Iterable]) -> None:
        """Replace the content with ``data`` (the format of :meth:`as_dict`)."""
        if "step" not in data:
            raise ValueError("a loss history needs a 'step' column")
        columns = {k: [None if v is None else (int(v) if k == "step" else float(v)) for v in vals]
                   for k, vals in data.items()}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"loss history columns have different lengths: { {k: len(v) for k, v in columns.items()} }")
        self._data = {"step": columns.pop("step"), **columns}

    def smoothed(self, name: str, window: int = 50) -> list[float]:
        """Trailing moving average of ``name`` over the last ``window`` recorded values (None skipped).

        Returns one value per recorded step (NaN before the first value); the first few average over
        fewer points so the curve starts at the first step.
        """
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        values = self._data[name]
        out: list[float] = []
        recent: list[float] = []
        total = 0.0
        for v in values:
            if v is not None:
                recent.append(v)
                total += v
                if len(recent) > window:
                    total -= recent.pop(0)
            out.append(total / len(recent) if recent else math.nan)
        return out

    def __repr__(self) -> str:
        return f"LossHistory({len(self)} steps, losses={self.names})"


def _to_float(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().item())
    return float(value)


def check_finite(losses: Mapping[str, Any], step: int) -> None:
    """Raise :class:`TrainingDiverged` if any loss is NaN or infinite, naming the loss and the step.

    ``None`` values (a loss not computed at this step) are ignored.
    """
    for name, value in losses.items():
        if value is None:
            continue
        v = _to_float(value)
        if not math.isfinite(v):
            raise TrainingDiverged(
                f"loss {name!r} became {v} at step {step}: training diverged. Things to try: lower the "
                f"learning rate (halve it), check that input images are in [-1, 1] (not [0, 255] or [0, 1]), "
                f"disable mixed precision (AMP), or restart from the last checkpoint with another seed.",
                name=name, step=step, value=v,
            )


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What :func:`train_loop` did.

    ``steps_done`` counts all completed steps including those before a resume; ``seconds`` is the
    wall time of this call only; ``resumed_from`` is the step the run resumed at (None for a fresh run).
    """

    history: LossHistory
    steps_done: int
    seconds: float
    resumed_from: int | None
    stopped_early: bool
    last_checkpoint: Path | None = None

    def __repr__(self) -> str:
        return (f"TrainResult(steps_done={self.steps_done}, seconds={self.seconds:.1f}, "
                f"resumed_from={self.resumed_from}, stopped_early={self.stopped_early})")


def train_loop(
    step_fn: Callable[[int], Mapping[str, Any] | None],
    n_steps: int,
    *,
    checkpointer: Checkpointer | None = None,
    checkpoint_every: int | None = 500,
    state_fn: Callable[[], Mapping[str, Any]] | None = None,
    restore_fn: Callable[[Mapping[str, Any]], None] | None = None,
    time_budget_s: float | None = None,
    sample_fn: Callable[[int], Any] | None = None,
    sample_every: int | None = None,
    log_every: int = 10,
    record_every: int = 1,
    desc: str = "train",
    history: LossHistory | None = None,
    progress: bool = True,
) -> TrainResult:
    """Run ``step_fn(step)`` for ``step = start .. n_steps - 1`` with the chores around it.

    * ``step_fn(step)`` performs one optimisation step and returns ``{loss_name: float or 0-d tensor}``
      (``None`` for a loss not computed at this step, e.g. a discriminator updated every other step);
      every value is checked with :func:`check_finite` and recorded in ``history`` every
      ``record_every`` steps (under the index ``step`` that was passed to ``step_fn``).
    * With a ``checkpointer`` the loop first resumes from ``checkpointer.load_latest()``: it calls
      ``restore_fn(state)`` and continues at ``state["step"]``. It saves
      ``{"step": steps completed, "history": ..., **state_fn()}`` every ``checkpoint_every`` steps,
      at the end, and when it stops early. ``state_fn`` should include ``rng=rng_state()`` for exact resumes.
    * ``sample_fn(steps_completed)`` runs every ``sample_every`` steps (store sample grids there).
    * ``time_budget_s``: stop (after a checkpoint) once this much wall time is spent; a later call
      continues where this one stopped. At least one step always runs.
    * ``log_every``: how often the progress bar's postfix shows the latest losses.
    """
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    if checkpointer is not None and (state_fn is None or restore_fn is None):
        raise ValueError("with a checkpointer, pass state_fn (what to save) and restore_fn (how to load it)")
    for name, every in (("log_every", log_every), ("record_every", record_every)):
        if every < 1:
            raise ValueError(f"{name} must be >= 1, got {every}")
    from tqdm.auto import tqdm  # imported here so that importing anime_lib stays light

    t0 = time.perf_counter()
    history = history if history is not None else LossHistory()
    start = 0
    resumed_from: int | None = None
    last_checkpoint: Path | None = None
    if checkpointer is not None:
        state = checkpointer.load_latest()
        if state is not None:
            if "step" not in state:
                raise CheckpointError(f"the latest checkpoint in {checkpointer.folder} has no 'step' entry")
            start = int(state["step"])
            resumed_from = start
            if "history" in state:
                history.load_state_dict(state["history"])
            restore_fn(state)
            last_checkpoint = checkpointer.latest()
            if start >= n_steps:
                print(f"{desc}: found a checkpoint at step {start} >= n_steps={n_steps}; nothing to train.")
            else:
                print(f"{desc}: resuming from step {start} ({last_checkpoint.name if last_checkpoint else '?'}).")

    def save(step_count: int) -> Path:
        extra = dict(state_fn())  # type: ignore[misc]
        for reserved in ("step", "history"):
            if reserved in extra:
                raise ValueError(f"state_fn must not return the reserved key {reserved!r}")
        return checkpointer.save(step_count, {"step": step_count, "history": history.as_dict(), **extra})  # type: ignore[union-attr]

    step = start
    last_saved = start if resumed_from is not None else None
    stopped_early = False
    bar = tqdm(total=n_steps, initial=start, desc=desc, disable=not progress, dynamic_ncols=True)
    try:
        while step < n_steps:
            losses = {k: None if v is None else _to_float(v) for k, v in (step_fn(step) or {}).items()}
            check_finite(losses, step)
            if step % record_every == 0:
                history.add(step, **losses)
            step += 1
            bar.update(1)
            if losses and (step % log_every == 0 or step == n_steps):
                bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items() if v is not None}, refresh=False)
            if sample_fn is not None and sample_every and step % sample_every == 0:
                sample_fn(step)
            if checkpointer is not None and checkpoint_every and step % checkpoint_every == 0:
                last_checkpoint = save(step)
                last_saved = step
            if time_budget_s is not None and step < n_steps and time.perf_counter() - t0 >= time_budget_s:
                stopped_early = True
                break
    finally:
        bar.close()
    if checkpointer is not None and last_saved != step and step > 0:
        last_checkpoint = save(step)
    seconds = time.perf_counter() - t0
    if stopped_early:
        where = f"; checkpoint {last_checkpoint.name}, run again to continue" if last_checkpoint else ""
        print(f"{desc}: time budget of {time_budget_s:g}s spent after {seconds:.1f}s at step "
              f"{step}/{n_steps}{where}.")
    return TrainResult(history=history, steps_done=step, seconds=seconds, resumed_from=resumed_from,
                       stopped_early=stopped_early, last_checkpoint=last_checkpoint)


# --------------------------------------------------------------------------------------------------
# Mixed precision and small helpers
# --------------------------------------------------------------------------------------------------


class AmpSettings(NamedTuple):
    """What :func:`pick_amp` chose. ``use_grad_scaler`` is True for float16, which needs loss scaling."""

    enabled: bool
    dtype: torch.dtype | None
    use_grad_scaler: bool


def pick_amp(device: str | torch.device) -> AmpSettings:
    """bfloat16 on CUDA GPUs that support it natively (Ampere+), float16 on older ones (T4), off on CPU."""
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        major, _ = torch.cuda.get_device_capability(dev)
        if major >= 8:
            return AmpSettings(True, torch.bfloat16, False)
        return AmpSettings(True, torch.float16, True)
    return AmpSettings(False, None, False)


def autocast_context(device: str | torch.device, enabled: bool, dtype: torch.dtype | None = None):
    """``torch.autocast`` for ``device`` when enabled, otherwise a do-nothing context manager."""
    if not enabled:
        return contextlib.nullcontext()
    dev = torch.device(device)
    if dtype is None:
        dtype = pick_amp(dev).dtype or torch.bfloat16  # CPU autocast supports bfloat16
    return torch.autocast(device_type=dev.type, dtype=dtype)


def linear_decay_lambda(n_constant: int, n_decay: int) -> Callable[[int], float]:
    """Learning-rate factor for ``LambdaLR``: 1.0 for ``n_constant`` epochs, then linearly down to 0.

    The factor is 1 at epoch ``n_constant`` and reaches 0 at epoch ``n_constant + n_decay``
    (the CycleGAN schedule: 100 epochs constant, 100 epochs decaying).
    """
    if n_constant < 0 or n_decay < 0:
        raise ValueError(f"n_constant and n_decay must be >= 0, got {n_constant}, {n_decay}")

    def factor(epoch: int) -> float:
        if epoch < n_constant:
            return 1.0
        if n_decay == 0:
            return 0.0
        return max(0.0, 1.0 - (epoch - n_constant) / n_decay)

    return factor


def batch_indices(step: int, batch_size: int, n: int, seed: int = 0, stream: int = 0) -> torch.Tensor:
    """Indices of the batch at ``step``: a fresh permutation of range(n) per epoch, derived from
    (seed, stream, epoch) only, so a resumed run sees exactly the batches an uninterrupted one would.
    ``stream`` keeps independent orders apart (the two domains of unpaired data, two models of a lesson)."""
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} is larger than the dataset ({n})")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    per_epoch = n // batch_size
    epoch, k = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(stream) * 7919 + int(epoch))
    return torch.randperm(n, generator=g)[k * batch_size:(k + 1) * batch_size]


# --------------------------------------------------------------------------------------------------
# The runner: what every training lesson calls
# --------------------------------------------------------------------------------------------------


@dataclass
class RunResult(TrainResult):
    """What :meth:`Run.train` did: :class:`TrainResult` plus ``train_seconds``, the training time of the
    whole run summed over every session that worked on it (resumes included), and ``pretrained``: True
    when the shipped weights were loaded instead of training."""

    train_seconds: float = 0.0
    pretrained: bool = False

    def __repr__(self) -> str:
        return (f"RunResult(steps_done={self.steps_done}, train_seconds={self.train_seconds:.1f}, "
                f"resumed_from={self.resumed_from}, stopped_early={self.stopped_early}, pretrained={self.pretrained})")


class Run:
    """One training run of a lesson: its checkpoint folder, its settings, its seed and its clock.

    A lesson writes what it teaches (the models, the losses, ``step_fn``) and hands the chores to the runner::

        run = Run("cyclegan", OUT, config={"lambda_cycle": 10.0, ...}, seed=P.SEED, resume=P.RESUME)
        model = cg.CycleGAN(...)            # built after the runner seeded every generator
        opt = torch.optim.Adam(...)
        result = run.train(step_fn, P.N_STEPS, save={"model": model, "opt": opt, "log": log})
        result.train_seconds                # total over resumes

    * **Seeding**: the constructor seeds Python, NumPy and torch with ``seed``, so what is built next is
      the same every time.
    * **Settings**: ``config`` (plus ``seed`` and ``n_steps``) is saved in every checkpoint by the same code
      that compares it on resume (:meth:`Checkpointer.prepare`): a run with other settings starts over and
      says which settings changed, never continues or reports the old run.
    * **Checkpoints and resume**: ``OUT/checkpoints/<name>/ckpt_*.pt``, written atomically every
      ``checkpoint_every`` steps and at the end, with every object of ``save`` (state dicts; plain dicts and
      lists are refilled in place), the random generators and the loss history. A re-run continues at the
      saved step, exactly (data must come from the step number: :func:`batch_indices`).
    * **Time**: ``time_budget_s`` stops after that many seconds (a checkpoint first; run again to continue);
      ``result.train_seconds`` adds up the training time of every session.
    * **Progress bar** and NaN checks come from :func:`train_loop`.
    * **Borrowed runs**: ``borrowed=True`` marks a folder that belongs to another notebook (a deep dive
      reusing its main part's run). A checkpoint there made with other settings is then left alone: this
      run trains in a sibling folder ``<name>-<settings hash>`` instead of deleting the owner's checkpoints.
    * **Pretrained weights** (a lesson's ``USE_PRETRAINED`` switch): with ``use_pretrained=True`` and
      ``weights`` naming an entry of :data:`anime_lib.pretrained.WEIGHTS` (conventionally
      ``"<lesson>/<run name>/<profile>"``), :meth:`train` loads that finished run instead of training; when
      no such weights are shipped it says so and trains.
    """

    def __init__(self, name: str, out_dir: str | os.PathLike, config: Mapping[str, Any] | None = None, *,
                 seed: int = 0, resume: bool = True, keep: int | None = 2, use_pretrained: bool = False,
                 weights: str | None = None, borrowed: bool = False):
        from anime_lib.config import seed_everything

        if not name or "/" in name or "\\" in name:
            raise ValueError(f"a run name is a plain folder name, got {name!r}")
        self.name = name
        self.config = {**dict(config or {}), "seed": int(seed)}
        self.seed = int(seed)
        self.resume = bool(resume)
        self.borrowed = bool(borrowed)
        self.pretrained = None
        if use_pretrained:
            from anime_lib.pretrained import WEIGHTS

            if weights is not None and weights in WEIGHTS:
                self.pretrained = WEIGHTS[weights]
            else:
                print(f"{name}: no shipped weights{f' named {weights!r}' if weights else ''} for this run yet; "
                      f"training it here")
        self.checkpointer = Checkpointer(Path(out_dir) / "checkpoints" / name, keep=keep)
        seed_everything(self.seed)

    def __repr__(self) -> str:
        return f"Run({self.name!r}, {str(self.checkpointer.folder)!r}, seed={self.seed})"

    @property
    def folder(self) -> Path:
        return self.checkpointer.folder

    def train(self, step_fn: Callable[[int], Mapping[str, Any] | None], n_steps: int, save: Mapping[str, Any], *,
              checkpoint_every: int | None = 500, time_budget_s: float | None = None,
              sample_fn: Callable[[int], Any] | None = None, sample_every: int | None = None,
              log_every: int = 10, record_every: int = 1, progress: bool = True) -> RunResult:
        """Train for ``n_steps`` (resuming when a checkpoint of these settings exists) and return a :class:`RunResult`.

        ``save``: name -> object to checkpoint and restore (modules, optimizers, schedulers, EMA, image pools,
        ``torch.Generator``, GradScaler, plain dicts and lists). The names ``step``, ``history``, ``config``,
        ``rng`` and ``train_seconds`` are the runner's own.
        """
        reserved = {"step", "history", "config", "rng", "train_seconds"} & set(save)
        if reserved:
            raise ValueError(f"save must not use the runner's own names {sorted(reserved)}")
        config = {**self.config, "n_steps": int(n_steps)}
        if self.pretrained is not None:
            return self._load_pretrained(save, config)
        if self.borrowed:
            latest = self.checkpointer.load_latest()
            if latest is not None and latest.get("config") != config:
                digest = hashlib.sha256(repr(sorted(config.items())).encode()).hexdigest()[:8]
                folder = self.checkpointer.folder.with_name(f"{self.checkpointer.folder.name}-{digest}")
                print(f"{self.name}: {self.checkpointer.folder} holds a run with other settings (another notebook's); "
                      f"it is left alone and this run uses {folder}")
                self.checkpointer = Checkpointer(folder, keep=self.checkpointer.keep)
        self.checkpointer.prepare(config, resume=self.resume, name=self.name)
        clock = {"before": 0.0, "t0": time.perf_counter()}

        def state_fn() -> dict[str, Any]:
            seconds = clock["before"] + time.perf_counter() - clock["t0"]
            clock["saved"] = seconds  # the last save is at the end of the session: the run's total so far
            return {**state_of(**save), "rng": rng_state(), "config": config, "train_seconds": seconds}

        def restore_fn(state: Mapping[str, Any]) -> None:
            where = f"checkpoint {self.checkpointer.latest()}"
            restore(state, where=where, **save)
            restore_rng_state(state["rng"])
            clock["before"] = float(state.get("train_seconds", 0.0))
            clock["t0"] = time.perf_counter()

        result = train_loop(step_fn, n_steps, checkpointer=self.checkpointer, checkpoint_every=checkpoint_every,
                            state_fn=state_fn, restore_fn=restore_fn, time_budget_s=time_budget_s,
                            sample_fn=sample_fn, sample_every=sample_every, log_every=log_every,
                            record_every=record_every, desc=self.name, progress=progress)
        return RunResult(**vars(result), train_seconds=clock.get("saved", clock["before"]))

    def _load_pretrained(self, save: Mapping[str, Any], config: Mapping[str, Any]) -> RunResult:
        from anime_lib.pretrained import load_weights_file, weights_path

        entry = self.pretrained
        path = weights_path(entry.name)
        state = load_weights_file(path, what=f"pretrained weights {entry.name!r}")
        if not isinstance(state, Mapping):
            raise CheckpointError(f"pretrained weights {entry.name!r} ({path}) are not a saved run")
        # the shipped file holds the models (optimizer states etc. may be left out to keep it small)
        wanted = {k: v for k, v in save.items() if k in state or isinstance(v, nn.Module)}
        restore(state, where=f"pretrained weights {entry.name!r} ({path})", **wanted)
        saved = state.get("config", {})
        differ = [k for k in config if k in saved and saved[k] != config[k] and k != "seed"]
        note = f"; trained with {', '.join(f'{k}={saved[k]!r}' for k in differ)}" if differ else ""
        steps = int(state.get("step", 0))
        # the run's seconds: a lesson that also ran a monitor inside the loop reports its training time without it
        print(f"{self.name}: loaded the shipped weights {entry.name!r} ({steps} steps, "
              f"{float(state.get('train_seconds', 0.0)):.0f} s of run time, evaluations inside the loop included{note}); "
              "set USE_PRETRAINED = False to train")
        history = LossHistory(state.get("history"))
        return RunResult(history=history, steps_done=steps, seconds=0.0, resumed_from=None, stopped_early=False,
                         last_checkpoint=None, train_seconds=float(state.get("train_seconds", 0.0)), pretrained=True)
