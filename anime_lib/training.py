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
    "count_parameters",
    "ImagePool",
    "linear_decay_lambda",
    "init_weights",
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
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint at {path}")
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as exc:  # truncated zip, random bytes, a pickle with forbidden objects, ...
            reason = f"{type(exc).__name__}: {_first_line(exc)}"
            raise CheckpointError(
                f"checkpoint {path} is corrupt or not a checkpoint: {reason}; delete it to start fresh"
            ) from exc
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


def restore(state: Mapping[str, Any], **objects: Any) -> None:
    """Load ``state[name]`` into each object given by name (the inverse of :func:`state_of`).

    Plain values cannot be restored in place; read them from ``state`` directly.
    """
    for name, obj in objects.items():
        if name not in state:
            raise KeyError(f"the checkpoint has no entry {name!r}; it has {sorted(state)}")
        if isinstance(obj, torch.Generator):
            obj.set_state(state[name])
        elif callable(getattr(obj, "load_state_dict", None)):
            obj.load_state_dict(state[name])
        else:
            raise TypeError(
                f"cannot restore {name!r} in place: {type(obj).__name__} has no load_state_dict; "
                f"read state[{name!r}] instead"
            )


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


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """``with eval_mode(G): ...`` runs the block with ``model`` in eval mode and gives it back in the mode
    it had (train or eval), also when the block raises."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@torch.no_grad()
def translate(G: nn.Module, images: torch.Tensor, batch: int = 128, device: torch.device | str | None = None) -> torch.Tensor:
    """Run generator ``G`` over ``images`` (N, 3, S, S) in [-1, 1] in batches, in eval mode; returns the
    translations on the CPU in [-1, 1]."""
    dev = torch.device(device) if device is not None else next(G.parameters()).device
    with eval_mode(G):
        out = [G(images[i:i + batch].to(dev)).float().cpu() for i in range(0, len(images), batch)]
    return torch.cat(out) if out else images.new_zeros((0, *images.shape[1:]))


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


class ImagePool:
    """The CycleGAN history buffer of generated images (Shrivastava et al. 2017).

    The discriminator is shown a mix of the newest fakes and older ones, which damps oscillation.
    Per image of the batch: while the pool holds fewer than ``size`` images, store it and return it;
    once full, with probability 1/2 return a random stored image and put the new one in its place,
    otherwise return the new image. Everything returned is detached. ``size=0`` disables the pool.
    """

    def __init__(self, size: int = 50, generator: torch.Generator | None = None):
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self.size = int(size)
        self.generator = generator
        self.images: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, C, H, W) -> (N, C, H, W), detached (unless ``size == 0``: returned unchanged)."""
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator).item() < 0.5:
                idx = int(torch.randint(self.size, (), generator=self.generator).item())
                out.append(self.images[idx])
                self.images[idx] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    __call__ = query

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"size": self.size, "images": list(self.images)}
        if self.generator is not None:
            state["generator"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.size = int(state["size"])
        self.images = [t.clone() for t in state["images"]]
        if self.generator is not None and "generator" in state:
            self.generator.set_state(state["generator"])


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


_NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm, nn.GroupNorm, nn.LayerNorm)
_WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear)


def init_weights(module: nn.Module, std: float = 0.02) -> nn.Module:
    """DCGAN/pix2pix initialisation, in place: conv and linear weights ~ N(0, std), biases 0,
    affine normalisation weights ~ N(1, std) and biases 0. Returns ``module``.

    Works with spectral norm (both the old hook and the parametrization version): the raw weight is set.
    """
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, _WEIGHTED):
                nn.init.normal_(_raw_weight(m), 0.0, std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, _NORMS):
                if getattr(m, "weight", None) is not None:
                    nn.init.normal_(m.weight, 1.0, std)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
    return module


def _raw_weight(m: nn.Module) -> torch.Tensor:
    parametrizations = getattr(m, "parametrizations", None)
    if parametrizations is not None and "weight" in parametrizations:
        return parametrizations.weight.original
    if hasattr(m, "weight_orig"):  # torch.nn.utils.spectral_norm (hook version)
        return m.weight_orig
    return m.weight
