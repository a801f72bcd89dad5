"""How fast this machine trains, so that wall times measured on different machines (or days) can be compared.

The yardstick is one step of lesson 03's DCGAN at the cpu profile's setting (32 px, widths 32, batch 32:
D on a real and a fake batch, then G), timed on random images. It is mostly convolutions forward and
backward, like every lesson's training, so a lesson's wall time roughly scales with it (lessons 01-04 took
2.7-3.4x as long on 2026-11-30 and 12-01, when the step took 0.10-0.11 s, as on 2026-11-21, when it took
0.033-0.042 s). Roughly: lesson 05's small-batch CycleGAN steps took 4.7x as long on 12-01, so read the
conversion as an estimate, not a measurement.

* :func:`dcgan_seconds_per_step` times the step for any setting and device (``benchmarks/dcgan_step.py``
  prints it for both profiles' settings);
* :func:`measure` times the cpu setting in about 3 seconds (3 on two idle cores, 6 on a slow day) and returns
  a :class:`MachineSpeed`; the course runner calls it before and after the lessons of a cpu or gpu run and
  writes, beside each lesson's wall time, what that time would be on the reference machine
  (:data:`REFERENCE_SECONDS_PER_STEP`), so "lesson 05 took 12 minutes" can be told apart from "this machine
  is slow today";
* :func:`training_step_flops` counts the floating-point operations of one training step (convolutions and matrix
  products, forward and backward), so that a step's cost can be told without timing it
  (``benchmarks/gpu_budget.py`` turns it into minutes on a T4).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:  # torch is imported when something is timed: the course runner's `list` stays quick
    import torch

__all__ = [
    "REFERENCE_SECONDS_PER_STEP",
    "MachineSpeed",
    "dcgan_seconds_per_step",
    "measure",
    "combine",
    "training_step_flops",
]

#: Seconds per step of the yardstick on the reference machine: 2 idle CPU cores on 2026-11-21/22, the day of the
#: README's cpu wall-time table (three runs of ``benchmarks/dcgan_step.py`` gave 0.033-0.042 s; this is their middle).
REFERENCE_SECONDS_PER_STEP = 0.038


def dcgan_seconds_per_step(size: int = 32, width: int = 32, batch: int = 32, r1_gamma: float = 0.0,
                           steps: int = 20, device: torch.device | str = "cpu", warmup: int = 2) -> float:
    """Median wall time of ``steps`` DCGAN training steps on random images, after ``warmup`` untimed steps.

    The defaults are the cpu profile's setting of lesson 03. The global random state is saved and restored, so
    a caller's seeded run is not disturbed. Raises ``ValueError`` for ``steps`` < 1.
    """
    import torch

    from anime_lib.models.dcgan import Discriminator, Generator, adversarial_step

    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    device = torch.device(device)
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else []):
        torch.manual_seed(0)
        G, D = Generator(100, size, width).to(device), Discriminator(size, width).to(device)
        opt_G = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt_D = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        real = torch.rand(batch, 3, size, size, device=device) * 2 - 1
        times = []
        for i in range(steps + warmup):
            z = torch.randn(batch, 100, device=device)
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            adversarial_step(G, D, opt_G, opt_D, z, real, r1_gamma=r1_gamma)
            if cuda:
                torch.cuda.synchronize()
            if i >= warmup:  # the first steps pay for allocation and kernel selection
                times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


@dataclass(frozen=True)
class MachineSpeed:
    """The yardstick's seconds per step on this machine, and what that makes of a wall time."""

    seconds_per_step: float
    reference: float = REFERENCE_SECONDS_PER_STEP

    def __post_init__(self) -> None:
        if not self.seconds_per_step > 0 or not self.reference > 0:
            raise ValueError(f"seconds per step must be positive, got {self.seconds_per_step} "
                             f"(reference {self.reference})")

    @property
    def slowdown(self) -> float:
        """How many times longer than the reference machine this one takes (2.9: a 100 s job takes 290 s here)."""
        return self.seconds_per_step / self.reference

    def at_reference(self, seconds: float) -> float:
        """``seconds`` measured here, converted to the reference machine."""
        return seconds / self.slowdown

    def describe(self) -> str:
        return (f"{self.seconds_per_step:.3f} s per yardstick step (reference machine {self.reference:.3f} s): "
                f"{self.slowdown:.2f}x the reference's times")

    def as_dict(self) -> dict[str, float]:
        return {"seconds_per_step": self.seconds_per_step, "reference": self.reference, "slowdown": self.slowdown}


def measure(steps: int = 20) -> MachineSpeed:
    """Time the yardstick on the CPU (about 3 s on two idle cores) and return this machine's speed.

    The CPU is timed even where there is a GPU: the speed tells how a CPU-bound wall time compares, and the
    gpu profile's times are not comparable with the cpu table anyway.
    """
    return MachineSpeed(dcgan_seconds_per_step(steps=steps))


def combine(speeds: Sequence[MachineSpeed]) -> MachineSpeed:
    """One speed for a run timed several times (before and after its lessons): the mean seconds per step."""
    if not speeds:
        raise ValueError("no speed to combine")
    reference = speeds[0].reference
    return MachineSpeed(sum(s.seconds_per_step for s in speeds) / len(speeds), reference)


def training_step_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Floating-point operations of one call ``fn(*args, **kwargs)``, typically one training step (forward passes,
    backward passes and optimiser updates), as ``torch.utils.flop_counter.FlopCounterMode`` counts them.

    What is counted: convolutions, matrix products (``mm``, ``addmm``, ``bmm``, ...) and attention, forward and
    backward, at 2 operations per multiply-accumulate. A bias, a normalisation, an activation, a loss and the
    optimiser's update are not counted: they are elementwise, cheap in arithmetic but not free in time. Backward
    counts what autograd really computes: a convolution's backward costs one forward for the weight gradient plus
    one for the input gradient, which is skipped when nothing before the layer needs a gradient (the first layer
    of a network fed with images); a frozen network (requires_grad off) computes only input gradients. So a
    network's forward + backward is close to, but a little under, 3 times its forward.

    One correction to the counter: PyTorch's formula for a convolution's weight gradient forgets the ``groups``
    of a grouped or depthwise convolution and counts it ``groups`` times over (a depthwise 3x3 conv over 64
    channels: 64x; fixed upstream after torch 2.14). Where the installed formula has that fault, the weight
    gradient of a grouped convolution is divided by its groups here, so forward + backward stays 3 forwards.

    The count depends only on the shapes, never on the values: models and tensors on the ``meta`` device give the
    same count without computing anything (a step at 256 px counts in a blink), and reading a number out of a meta
    tensor (``.item()``, ``float(loss)``: what a step does to return its losses) gives 0 instead of an error.
    ``fn``'s own side effects happen as usual (its optimiser steps, its image pools fill). Returns the total as an int.
    """
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    class _MetaScalarsAreZero(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten._local_scalar_dense.default and args[0].device.type == "meta":
                dtype = args[0].dtype
                return False if dtype == torch.bool else 0.0 if dtype.is_floating_point or dtype.is_complex else 0
            return func(*args, **(kwargs or {}))

    mapping = {}
    if _grouped_weight_gradient_overcounted():
        mapping[torch.ops.aten.convolution_backward] = _grouped_conv_backward_flop
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    with counter, _MetaScalarsAreZero():
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


def _builtin_conv_backward_flop() -> Callable[..., int]:
    import torch
    from torch.utils.flop_counter import flop_registry

    return flop_registry[torch.ops.aten.convolution_backward]


def _grouped_conv_backward_flop(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
    """``convolution_backward``'s FLOP with the weight gradient of a grouped convolution divided by its groups.
    The arguments are the op's (grad_output, input, weight, bias_sizes, stride, padding, dilation, transposed,
    output_padding, groups, output_mask), as FlopCounterMode passes them."""
    count = _builtin_conv_backward_flop()
    args = list(args)
    groups, mask = args[9], list(args[10])
    if groups == 1 or not mask[1]:
        return count(*args, out_val=out_val, **kwargs)
    grad_input = count(*args[:10], [mask[0], False, False], *args[11:], out_val=out_val, **kwargs) if mask[0] else 0
    grad_weight = count(*args[:10], [False, True, False], *args[11:], out_val=out_val, **kwargs)
    return grad_input + grad_weight // groups


_grouped_conv_backward_flop._get_raw = True  # FlopCounterMode passes the op's arguments, not their shapes


def _grouped_weight_gradient_overcounted() -> bool:
    """Whether the installed FlopCounterMode counts a grouped convolution's weight gradient ``groups`` times over:
    asks its formula about a depthwise 1x1 convolution over 4 channels of one pixel (right answer: 2 x 4 = 8)."""
    import torch

    meta = {"device": "meta"}
    x, w = torch.empty(1, 4, 1, 1, **meta), torch.empty(4, 1, 1, 1, **meta)
    count = _builtin_conv_backward_flop()(x, x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 4,
                                          [False, True, False], out_val=(None, w, None))
    return count == 4 * 8
