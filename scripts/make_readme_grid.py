"""Render the README's ToyFaces sample grid: each human face above its anime counterpart."""
import sys

import torch

from anime_lib.data.toyfaces import render, sample_records
from anime_lib.viz import save_grid


def main(out: str = "docs/toyfaces_grid.png", size: int = 64, n: int = 8) -> None:
    rec = sample_records(n, "human", split="test", seed=3)
    rows = torch.cat([render(rec, "human", size), render(rec, "anime", size)]).float() / 255
    save_grid(rows, out, nrow=n, value_range=(0, 1))
    print(f"wrote {out}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(*args[:1], *map(int, args[1:]))
