"""Render the README's ToyFaces sample grid: each human face above its anime counterpart."""
import sys
from pathlib import Path

import torch
from torchvision.utils import save_image

from anime_lib.data.toyfaces import render, sample_records


def main(out: str = "docs/toyfaces_grid.png", size: int = 64, n: int = 8) -> None:
    rec = sample_records(n, "human", split="test", seed=3)
    rows = torch.cat([render(rec, "human", size), render(rec, "anime", size)]).float() / 255
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_image(rows, out, nrow=n, padding=2, pad_value=1.0)
    print(f"wrote {out}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(*args[:1], *map(int, args[1:]))
