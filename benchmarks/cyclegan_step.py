"""Speed of one CycleGAN training step (both generators and both discriminators), in images per second.

    python benchmarks/cyclegan_step.py [--sizes 64 128] [--batch 4] [--ngf 64] [--ndf 64] [--steps 3] [--threads N]
                                       [--n-layers 2] [--norm layer] [--upsampling resize]
                                       [--layout both|contiguous|channels_last]
    # the lesson's cpu profile: --sizes 32 --batch 8 --ngf 16 --ndf 64 --n-layers 2 --norm layer --upsampling resize

For each image size it builds ``anime_lib.models.cyclegan.CycleGAN`` with the lesson's scaling rules
(residual blocks and, unless ``--n-layers`` is given, PatchGAN depth from the image size), runs a warm-up step and then times ``--steps``
calls of ``train_step`` (LSGAN, cycle + identity, pools of 50) on random images, on the CPU and, when
available, on CUDA (with the mixed precision ``pick_amp`` chooses). One "image" is one (human, anime)
pair, so images/s = batch / seconds per step. The defaults take about a minute on a 2-core CPU.

``--layout`` times the networks with contiguous (NCHW) weights, with ``channels_last`` (NHWC) weights,
or both (the default). Lesson 04 trains with channels_last: the same arithmetic in another memory order.
Measured on 2 idle CPU cores (batch 8, the lesson's cpu networks: ngf 16, ndf 64, 2 D layers, layer norm,
resize decoder) it cut the step time by 15-20 % at 32, 64 and 128 px; at the paper's widths (ngf 64,
batch 4) the two layouts tied at 64 px and channels_last was 7 % slower at 128 px.
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from anime_lib.models.blocks import ImagePool, count_parameters
from anime_lib.models.cyclegan import CycleGAN, train_step
from anime_lib.training import autocast_context, pick_amp


def time_steps(size: int, batch: int, ngf: int, steps: int, device: torch.device, ndf: int | None = None,
               n_layers: int | None = None, norm: str = "instance", upsampling: str = "transpose",
               layout: str = "contiguous") -> dict:
    """Seconds per training step (median of ``steps`` after one warm-up) and the configuration used."""
    torch.manual_seed(0)
    model = CycleGAN(img_size=size, ngf=ngf, ndf=ngf if ndf is None else ndf, n_layers=n_layers, norm=norm,
                     upsampling=upsampling).to(device)
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    opt_G = torch.optim.Adam(model.generators(), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(model.discriminators(), lr=2e-4, betas=(0.5, 0.999))
    pool_A, pool_B = ImagePool(50), ImagePool(50)
    amp = pick_amp(device)
    scaler = torch.amp.GradScaler(device.type) if amp.use_grad_scaler else None
    autocast = lambda: autocast_context(device, amp.enabled, amp.dtype)  # noqa: E731
    a = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    b = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    times = []
    for i in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        train_step(model, a, b, opt_G, opt_D, pool_A, pool_B, autocast=autocast, scaler=scaler)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i > 0:  # the first step pays for allocation and kernel selection
            times.append(time.perf_counter() - t0)
    seconds = sorted(times)[len(times) // 2]
    return {"device": device.type, "size": size, "batch": batch, "layout": layout, **model.config,
            "G_params": count_parameters(model.G_AB), "D_params": count_parameters(model.D_B),
            "amp": str(amp.dtype).replace("torch.", "") if amp.enabled else "off",
            "s_per_step": seconds, "images_per_s": batch / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--ngf", type=int, default=64, help="generator width, and D's unless --ndf (paper: 64)")
    parser.add_argument("--ndf", type=int, default=None, help="discriminator width (default: --ngf)")
    parser.add_argument("--n-layers", type=int, default=None, help="PatchGAN stride-2 layers (default: from the size)")
    parser.add_argument("--norm", choices=("instance", "layer"), default="instance", help="generator normalisation")
    parser.add_argument("--upsampling", choices=("transpose", "resize"), default="transpose", help="generator decoder")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per size (after one warm-up)")
    parser.add_argument("--cuda-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--layout", choices=("both", "contiguous", "channels_last"), default="both",
                        help="memory format of the networks' weights (default: time both)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"generator norm {args.norm}, upsampling {args.upsampling}")
    print(f"{'device':6} {'size':>4} {'batch':>5} {'ngf':>4} {'ndf':>4} {'blocks':>6} {'D layers':>8} {'G params':>9} "
          f"{'amp':>8} {'layout':>13} {'s/step':>8} {'images/s':>9}")
    for device in devices:
        steps = args.steps if device.type == "cpu" else args.cuda_steps
        layouts = ("contiguous", "channels_last") if args.layout == "both" else (args.layout,)
        for size in args.sizes:
            for layout in layouts:
                r = time_steps(size, args.batch, args.ngf, steps, device, args.ndf, args.n_layers, args.norm,
                               args.upsampling, layout)
                print(f"{r['device']:6} {r['size']:>4} {r['batch']:>5} {r['ngf']:>4} {r['ndf']:>4} {r['n_blocks']:>6} "
                      f"{r['n_layers']:>8} {r['G_params']:>9,} {r['amp']:>8} {r['layout']:>13} {r['s_per_step']:>8.3f} "
                      f"{r['images_per_s']:>9.1f}", flush=True)
    if torch.cuda.is_available():
        print(f"CUDA device: {torch.cuda.get_device_name(0)}")


if __name__ == "__main__":
    main()
