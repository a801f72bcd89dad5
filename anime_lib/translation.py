"""The translator interface: one call for every model that turns a face of one domain into the other.

Every translating model of the course (difference vectors, encoder-decoder, conditional DCGAN, CycleGAN,
geometry CycleGAN, U-GAT-IT and every later one) is a :class:`Translator`::

    fake = model.translate(x, "human->anime")            # one batch, x in [-1, 1] on the model's device
    fake = model.translate(x, "human->anime", roll=r)    # extra conditions as keyword arguments
    maps = model.extras(x, "human->anime")               # attention maps and other by-products, a dict

and a whole set, in batches, in eval mode, without gradients, back on the CPU::

    fake = translate_set(model, test_faces, "human->anime")           # (N, 3, S, S) in [-1, 1]
    fake, extras = translate_set(model, test_faces, "human->anime", with_extras=True)

Directions are named ``"<source>-><target>"`` with the domains ``"human"`` (A in the papers) and
``"anime"`` (B). A plain ``nn.Module`` (one generator ``G(x)``) or a function can be used wherever a
translator is expected through :func:`as_translator`.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from anime_lib.models.blocks import eval_mode

__all__ = ["DOMAINS", "DIRECTIONS", "parse_direction", "reverse", "Translator", "FunctionTranslator",
           "as_translator", "translate_set"]

DOMAINS = ("human", "anime")
DIRECTIONS = ("human->anime", "anime->human")


def parse_direction(direction: str) -> tuple[str, str]:
    """``"human->anime"`` -> ``("human", "anime")``; a clear error for anything else."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    src, dst = direction.split("->")
    return src, dst


def reverse(direction: str) -> str:
    """``"human->anime"`` -> ``"anime->human"``."""
    src, dst = parse_direction(direction)
    return f"{dst}->{src}"


class Translator(nn.Module):
    """Base class of every translating model: ``translate(x, direction, **conditions)``.

    ``x``: (N, 3, S, S) in [-1, 1] on the model's device; the result has the same shape and range.
    Subclasses set :attr:`directions` (the ones they were built or trained for) and implement either
    :meth:`generator` (models with one network per direction, such as CycleGAN's ``G_AB`` / ``G_BA``) or
    :meth:`translate` itself. By-products (attention maps, CAM logits) come from :meth:`extras`, never from
    ``translate``, so every translator returns the same thing from the same call.
    """

    directions: tuple[str, ...] = DIRECTIONS

    def check_direction(self, direction: str) -> None:
        parse_direction(direction)
        if direction not in self.directions:
            raise ValueError(f"{type(self).__name__} translates {' and '.join(self.directions)} only, "
                             f"not {direction!r}")

    def generator(self, direction: str) -> nn.Module:
        """The network that translates in ``direction`` (models with one network per direction)."""
        raise NotImplementedError(f"{type(self).__name__} has no per-direction generator; call translate()")

    def translate(self, x: torch.Tensor, direction: str = "human->anime", **conditions: Any) -> torch.Tensor:
        """One batch: (N, 3, S, S) in [-1, 1] -> (N, 3, S, S) in [-1, 1]."""
        self.check_direction(direction)
        if conditions:
            raise TypeError(f"{type(self).__name__} takes no conditions, got {sorted(conditions)}")
        return self.generator(direction)(x)

    def extras(self, x: torch.Tensor, direction: str = "human->anime", **conditions: Any) -> dict[str, torch.Tensor]:
        """By-products of translating ``x`` (attention maps, ...), one tensor of N rows each; {} by default."""
        self.check_direction(direction)
        return {}


class FunctionTranslator(Translator):
    """A translator made from ``fn(x, direction, **conditions) -> images`` (baselines such as "identity")."""

    def __init__(self, fn: Callable[..., torch.Tensor], directions: Sequence[str] = DIRECTIONS, name: str = ""):
        super().__init__()
        self.fn = fn
        self.directions = tuple(directions)
        self.name = name or getattr(fn, "__name__", "function")

    def translate(self, x: torch.Tensor, direction: str = "human->anime", **conditions: Any) -> torch.Tensor:
        self.check_direction(direction)
        return self.fn(x, direction, **conditions)

    def extra_repr(self) -> str:
        return f"{self.name}, directions={self.directions}"


class _ModuleTranslator(Translator):
    """One generator ``G(x)`` used as a translator in the given directions."""

    def __init__(self, G: nn.Module, directions: Sequence[str]):
        super().__init__()
        self.G = G
        self.directions = tuple(directions)

    def generator(self, direction: str) -> nn.Module:
        return self.G


def as_translator(obj: Any, directions: Sequence[str] | str = DIRECTIONS) -> Translator:
    """``obj`` as a :class:`Translator`: a translator is returned as is, an ``nn.Module`` (one generator,
    ``G(x)``) translates in ``directions``, a function is called as ``fn(x, direction, **conditions)``."""
    if isinstance(directions, str):
        directions = (directions,)
    for d in directions:
        parse_direction(d)
    if isinstance(obj, Translator):
        return obj
    if isinstance(obj, nn.Module):
        return _ModuleTranslator(obj, directions)
    if callable(obj):
        return FunctionTranslator(obj, directions)
    raise TypeError(f"expected a Translator, an nn.Module or a function, got {type(obj).__name__}")


def _device_of(model: nn.Module) -> torch.device:
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def _rows(value: Any, start: int, stop: int, n: int) -> Any:
    """The rows ``start:stop`` of a per-image condition (a tensor, array or list of length n); others as they are."""
    if isinstance(value, torch.Tensor) and value.ndim > 0 and len(value) == n:
        return value[start:stop]
    if hasattr(value, "__len__") and hasattr(value, "__getitem__") and not isinstance(value, (str, bytes, Mapping)) \
            and len(value) == n:
        return torch.as_tensor(value[start:stop])
    return value


def _images(images: Any) -> torch.Tensor:
    """A tensor (N, 3, S, S) in [-1, 1] from a tensor or a dataset with ``.tensor()`` (a ToySet, a FolderSet)."""
    if isinstance(images, torch.Tensor):
        x = images
    elif callable(getattr(images, "tensor", None)):
        x = images.tensor()
    else:
        raise TypeError(f"images must be a (N, 3, S, S) tensor in [-1, 1] or a dataset with .tensor(), "
                        f"got {type(images).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"images must have the shape (N, 3, S, S), got {tuple(x.shape)}")
    return x


@torch.no_grad()
def translate_set(translator: Any, images: Any, direction: str = "human->anime", *, batch: int = 128,
                  device: torch.device | str | None = None, with_extras: bool = False, **conditions: Any):
    """Translate a whole set in batches, in eval mode (the mode is restored afterwards), without gradients.

    ``images``: (N, 3, S, S) in [-1, 1] (any device) or a dataset with ``.tensor()``. Per-image conditions
    (a tensor, array or list with N rows, such as ``roll=``) are cut into the same batches; other
    conditions are passed as they are. Returns the translations (N, 3, S, S) in [-1, 1] on the CPU, as
    float32; with ``with_extras`` also a dict of the :meth:`Translator.extras` tensors, concatenated.
    """
    model = as_translator(translator, direction)
    model.check_direction(direction)
    x = _images(images)
    dev = torch.device(device) if device is not None else _device_of(model)
    n = len(x)
    outs: list[torch.Tensor] = []
    extras: dict[str, list[torch.Tensor]] = {}
    with eval_mode(model):
        for i in range(0, n, batch):
            cond = {k: _rows(v, i, i + batch, n) for k, v in conditions.items()}
            cond = {k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in cond.items()}
            xb = x[i:i + batch].to(dev)
            outs.append(model.translate(xb, direction, **cond).float().cpu())
            if with_extras:
                for k, v in model.extras(xb, direction, **cond).items():
                    extras.setdefault(k, []).append(v.float().cpu())
    fake = torch.cat(outs) if outs else x.new_zeros((0, *x.shape[1:]), dtype=torch.float32)
    if not with_extras:
        return fake
    return fake, {k: torch.cat(v) for k, v in extras.items()}
