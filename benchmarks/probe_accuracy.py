"""Print the committed probe's accuracy on fresh ToyFaces, its speed, and the metrics' reference points.

    python benchmarks/probe_accuracy.py [--n 1000] [--size 64]
"""
import argparse
import time

import torch

from anime_lib import metrics
from anime_lib.data import toyfaces as tf
from anime_lib.probe import evaluate_probe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="fresh test faces per style")
    ap.add_argument("--size", type=int, default=64)
    a = ap.parse_args()
    probe = metrics.get_probe()
    print(f"probe: {sum(p.numel() for p in probe.parameters()):,} parameters, torch threads {torch.get_num_threads()}")

    t0 = time.perf_counter()
    acc = evaluate_probe(probe, n=a.n, size=a.size, per_domain=True)
    print(f"\naccuracy on {a.n} fresh balanced faces per style at {a.size} px ({time.perf_counter() - t0:.1f} s incl. rendering)")
    print(f"  {'':14s} {'both':>6s} {'human':>6s} {'anime':>6s}")
    for k in list(tf.ATTRIBUTE_NAMES) + ["domain", "roll_mae"]:
        print(f"  {k:14s} {acc[k]:6.3f} {acc['human/' + k]:6.3f} {acc['anime/' + k]:6.3f}" + ("  (degrees)" if k == "roll_mae" else ""))

    x = tf.toyfaces("anime", n=a.n, size=a.size, split="test").unit()
    metrics.read_faces(x[:64], probe)
    t0 = time.perf_counter()
    metrics.read_faces(x, probe)
    dt = time.perf_counter() - t0
    print(f"\nprobe inference: {len(x) / dt:,.0f} images/s at {a.size} px")

    t0 = time.perf_counter()
    rows = metrics.reference_points(n=min(a.n, 500), size=a.size, probe=probe)
    print(f"\nreference points (n={min(a.n, 500)}, {a.size} px, {time.perf_counter() - t0:.1f} s)")
    cols = ["realism", "attr_preservation", "gt_l1", "toy_fid", "diversity"]
    print(f"  {'method':34s} {'direction':14s} " + " ".join(f"{c:>17s}" for c in cols))
    for r in rows:
        cells = " ".join(f"{'-':>17s}" if r.get(c) is None else f"{r[c]:17.3f}" for c in cols)
        print(f"  {r['method']:34s} {r['direction']:14s} {cells}")


if __name__ == "__main__":
    main()
