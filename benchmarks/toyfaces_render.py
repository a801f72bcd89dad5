"""Print how long ToyFaces takes to render a 10,000-image set at 64 px, and to reload it from cache."""
import os
import tempfile
import time

import torch

from anime_lib.data import toyfaces as tf


def main(n: int = 10_000, size: int = 64) -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    for domain in tf.DOMAINS:
        rec = tf.sample_records(n, domain)
        t0 = time.perf_counter()
        tf.render(rec, domain, size)
        print(f"render {n} {domain} faces at {size}px: {time.perf_counter() - t0:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ANIME_LIB_DATA"] = tmp
        tf.toyfaces("human", n=n, size=size)
        t0 = time.perf_counter()
        tf.toyfaces("human", n=n, size=size)
        print(f"reload {n} cached faces: {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
