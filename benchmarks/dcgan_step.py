"""Speed of one DCGAN training step (lesson 03's ``adversarial_step``: D on a real and a fake batch, then G).

    python benchmarks/dcgan_step.py [--steps 100] [--threads N] [--r1 0 1] [--settings cpu gpu]

Times the settings lesson 03 trains with, each with and without the R1 penalty (``--r1`` lists the gammas):
``cpu`` (32 px, widths 32, batch 32: the cpu profile) and ``gpu`` (64 px, widths 64, batch 128: the paper's
networks). By default the CPU runs the cpu setting and CUDA, when available, runs both; ``--settings`` picks
them for every device (the gpu setting takes 2-4 s per step on two CPU cores). It prints the median seconds per
step (after two warm-up steps), images per second, and what the lesson's steps (4,000 in the cpu profile, 6,000
in the gpu profile) would cost at that speed, so that a reader can tell whether a slow lesson is the machine.
About 20 seconds on two CPU cores. The timing itself is :func:`anime_lib.machine_speed.dcgan_seconds_per_step`,
which the course runner also uses as its yardstick of the machine's speed.

Measured on 2 idle CPU cores, 2026-11-22, three runs: the cpu setting takes 0.033-0.042 s per step (133-169 s for
the cpu profile's 4,000 steps; lesson 03's DCGAN trained in 114 s and 141 s on two different days), and 0.045-0.055 s
with R1 (gamma 1), which costs one more backward pass through D. Single runs vary by about 15% on these shared
machines, so compare medians of a few runs. The gpu setting takes 2-4 s per step on the two cores (hours for
6,000 steps); it has not been timed on a GPU yet.
"""
from __future__ import annotations

import argparse
import platform

import torch

from anime_lib.machine_speed import REFERENCE_SECONDS_PER_STEP, dcgan_seconds_per_step

SETTINGS = {  # name: (image size, G and D width, batch, the lesson's N_STEPS in that profile)
    "cpu": (32, 32, 32, 4000),
    "gpu": (64, 64, 128, 6000),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="timed steps per setting (after two warm-up steps)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--r1", type=float, nargs="+", default=[0.0, 1.0], help="R1 gammas to time (0: none)")
    parser.add_argument("--settings", nargs="+", choices=tuple(SETTINGS), default=None,
                        help="default: cpu on the CPU, both on CUDA")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"{'device':6} {'setting':7} {'size':>4} {'width':>5} {'batch':>5} {'R1':>4} {'s/step':>8} {'images/s':>9} "
          f"{'lesson steps':>12} {'would take':>10}")
    for device in devices:
        for name in args.settings or (["cpu"] if device.type == "cpu" else list(SETTINGS)):
            size, width, batch, n_steps = SETTINGS[name]
            for gamma in args.r1:
                s = dcgan_seconds_per_step(size, width, batch, gamma, args.steps, device)
                print(f"{device.type:6} {name:7} {size:>4} {width:>5} {batch:>5} {gamma:>4g} {s:>8.4f} {batch / s:>9.0f} "
                      f"{n_steps:>12,} {n_steps * s:>9.0f}s", flush=True)
    print(f"reference machine (README's cpu table, cpu setting, no R1): {REFERENCE_SECONDS_PER_STEP:.3f} s/step; "
          "the course runner times this step before and after a cpu or gpu run (anime_lib.machine_speed)")
    if torch.cuda.is_available():
        print(f"CUDA device: {torch.cuda.get_device_name(0)}")


if __name__ == "__main__":
    main()
