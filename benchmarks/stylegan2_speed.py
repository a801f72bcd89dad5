"""Speed of StyleGAN2 (:mod:`anime_lib.models.stylegan2`): generator and discriminator passes and training steps.

    python benchmarks/stylegan2_speed.py [--sizes 32 64 256] [--batch 8] [--repeats 3] [--threads N] [--device cpu]

For each size it builds G and D and prints images per second (the median of ``--repeats`` timed runs after one
untimed warm-up) of: G forward (no gradients, fresh noise), D forward (no gradients), a training step (a D step
with the logistic loss on a real and a fake batch, then a G step with the non-saturating loss; Adam, no
regularisers), and, separately, a lazy-regularisation R1 step of D (gradient penalty on real images, one double
backward). The weights are random: trained ones take the same time.

Models: from 256 px up, the published layout (channel multiplier 2, style_dim 512, 8 mapping layers; 30.0 M + 28.9 M
parameters at 256 px), the one public checkpoints have. Below 256 px, a small CPU layout: ``--channels`` (64)
channels at every resolution, style_dim ``--style-dim`` (64), 8 mapping layers; ``--published`` uses the published
layout at every size (512 channels up to 32 px: slow on a CPU). The real images are random values in [-1, 1].

The 256 px published model takes seconds per image on two CPU cores: time it on a GPU (``--device cuda``,
synchronised) or with ``--batch 2 --repeats 1``.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Callable

import torch

from anime_lib.models import stylegan2 as sg
from anime_lib.models.blocks import count_parameters


def build(size: int, args: argparse.Namespace, device: torch.device) -> tuple[sg.Generator, sg.Discriminator, str]:
    """G, D and a description of their layout for ``size`` (see the module docstring)."""
    if size >= 256 or args.published:
        G, D = sg.Generator(size), sg.Discriminator(size)
        what = "published layout (channel multiplier 2, style_dim 512)"
    else:
        G = sg.Generator(size, style_dim=args.style_dim, channels=args.channels)
        D = sg.Discriminator(size, channels=args.channels)
        what = f"small layout ({args.channels} channels, style_dim {args.style_dim})"
    return G.to(device), D.to(device), what


def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """The median wall time of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def images_per_second(G: sg.Generator, D: sg.Discriminator, n: int, repeats: int,
                      device: torch.device) -> list[float]:
    """Images per second of G forward, D forward, a D + G training step and an R1 step, batch ``n``."""
    opt_g = torch.optim.Adam(G.parameters(), lr=0.002, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=0.002, betas=(0.0, 0.99))
    real = torch.rand(n, 3, G.size, G.size, device=device) * 2 - 1
    with torch.no_grad():
        fakes = G([torch.randn(n, G.style_dim, device=device)])[0]

    def z() -> torch.Tensor:
        return torch.randn(n, G.style_dim, device=device)

    def g_forward() -> None:
        with torch.no_grad():
            G([z()])

    def d_forward() -> None:
        with torch.no_grad():
            D(fakes)

    def train_step() -> None:
        sg.requires_grad(G, False)
        sg.requires_grad(D, True)
        fake, _ = G([z()])
        loss_d = sg.d_logistic_loss(D(real), D(fake))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        sg.requires_grad(G, True)
        sg.requires_grad(D, False)
        fake, _ = G([z()])
        loss_g = sg.g_nonsaturating_loss(D(fake))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

    def r1_step() -> None:
        sg.requires_grad(D, True)
        x = real.detach().requires_grad_(True)
        pred = D(x)
        loss = 10 / 2 * sg.d_r1_loss(pred, x) * 16 + 0 * pred[0, 0]  # gamma 10, every 16 steps (the paper's)
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()

    return [n / median_seconds(fn, repeats, device) for fn in (g_forward, d_forward, train_step, r1_step)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 256], help="image sides (powers of 2)")
    parser.add_argument("--batch", type=int, default=8, help="images per pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (the median is reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--channels", type=int, default=64, help="channels of the small layout (below 256 px)")
    parser.add_argument("--style-dim", type=int, default=64, help="style_dim of the small layout")
    parser.add_argument("--published", action="store_true", help="the published layout at every size")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {platform.machine()}, {device}"
          + (f", {torch.get_num_threads()} CPU threads" if device.type == "cpu" else "")
          + f"; batch {args.batch}, median of {args.repeats} after a warm-up; images per second")
    print(f"{'size':>5} {'G params':>11} {'D params':>11} {'G fwd':>9} {'D fwd':>9} {'D+G step':>9} {'R1 step':>9}  layout")
    for size in args.sizes:
        G, D, what = build(size, args, device)
        rates = images_per_second(G, D, args.batch, args.repeats, device)
        print(f"{size:>5} {count_parameters(G, False):>11,} {count_parameters(D, False):>11,} "
              + " ".join(f"{r:>9.2f}" for r in rates) + f"  {what}")

if __name__ == "__main__":
    main()
