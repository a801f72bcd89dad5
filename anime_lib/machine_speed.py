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
  is slow today".
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # torch is imported when something is timed: the course runner's `list` stays quick
    import torch

__all__ = [
    "REFERENCE_SECONDS_PER_STEP",
    "MachineSpeed",
    "dcgan_seconds_per_step",
    "measure",
    "combine",
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
