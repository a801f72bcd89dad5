"""Inference time of AnimeGANv2's generator per image (lesson 08): the published layout, one face at a time.

    python benchmarks/animegan_inference.py [--sizes 256 512] [--repeats 5] [--threads N] [--width 1.0]

Times ``anime_lib.models.animegan.Generator(width)`` in eval mode without gradients on one image of each size
(batch 1, as a filter paints one photo), after one untimed warm-up pass, and prints the median seconds per image,
images per second and the work per image (multiply-accumulates of its convolutions). The weights are random: the
published face_paint weights take exactly the same time, since the arithmetic does not depend on their values.
The default width 1.0 is the layout of the public weights (2.14 M parameters); ``--width 0.25`` is lesson 08's
CPU training variant. On a CUDA machine ``--device cuda`` times the GPU (synchronised). About a minute on two
CPU cores at 256 and 512 px.

Measured 2026-12-01 on 2 CPU cores of a shared machine that was busy at the time (lesson 03's yardstick,
``benchmarks/dcgan_step.py``, ran 7.2x slower than on the README's reference machine): 1.78 s per image at 256 px
(26.3 GMAC) and 10.0 s at 512 px (105.1 GMAC). The work grows with the pixels (x4 from 256 to 512 px); the time
grew x5.6 here. Run it on your machine rather than converting these figures.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch import nn

from anime_lib.models.animegan import Generator
from anime_lib.models.blocks import count_parameters


def conv_macs(G: nn.Module, size: int) -> int:
    """Multiply-accumulates of every convolution of ``G`` for one ``size`` x ``size`` image (hooks on one pass)."""
    total = 0

    def hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        total += output.numel() // output.shape[0] * k

    handles = [m.register_forward_hook(hook) for m in G.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        G(torch.zeros(1, 3, size, size, device=next(G.parameters()).device))
    for h in handles:
        h.remove()
    return total


def seconds_per_image(G: nn.Module, size: int, repeats: int, device: torch.device) -> list[float]:
    """Wall times of ``repeats`` single-image passes (after one warm-up pass), in seconds."""
    x = torch.rand(1, 3, size, size, device=device) * 2 - 1
    times = []
    with torch.no_grad():
        G(x)
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            G(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="image sides in pixels (even)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per size (the median is reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--width", type=float, default=1.0, help="generator width (1.0: the public weights' layout)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    G = Generator(args.width).to(device).eval()
    print(f"torch {torch.__version__}, {platform.machine()}, {device}"
          + (f", {torch.get_num_threads()} CPU threads" if device.type == "cpu" else ""))
    print(f"AnimeGANv2 generator, width {args.width:g}: {count_parameters(G):,} parameters "
          f"({4 * count_parameters(G) / 1e6:.1f} MB in float32); batch 1, eval mode, no gradients, median of {args.repeats}")
    print(f"{'size':>6} {'s/image':>9} {'images/s':>9} {'min s':>8} {'max s':>8} {'GMAC/image':>11}")
    for size in args.sizes:
        times = seconds_per_image(G, size, args.repeats, device)
        median = statistics.median(times)
        print(f"{size:>6} {median:>9.3f} {1 / median:>9.2f} {min(times):>8.3f} {max(times):>8.3f} "
              f"{conv_macs(G, size) / 1e9:>11.1f}")


if __name__ == "__main__":
    main()
