"""The ToyFaces probe: a small CNN that reads the domain and every attribute of a face image.

It is the measuring instrument of the course's metrics. Inputs are images in [0, 1], any size
(resized to 64 px inside). Trained on both styles with blur, noise and colour jitter so that it stays
fair to generated images. Train it with ``python -m anime_lib.probe``; weights live in
``anime_lib/weights/probe.pt``.
"""
from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from anime_lib.data import toyfaces as tf

WEIGHTS = Path(__file__).parent / "weights" / "probe.pt"
PROBE_SIZE = 64
FEATURE_DIM = 128


class Probe(nn.Module):
    """Conv encoder -> 128-d feature -> one head per attribute, a domain head and a roll regressor."""

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        # One full-resolution conv keeps small details (irises, pupils); then stride-2 stages keep it cheap.
        plan = [(3, w, 1), (w, 2 * w, 2), (2 * w, 2 * w, 1), (2 * w, 4 * w, 2), (4 * w, 4 * w, 1),
                (4 * w, 8 * w, 2), (8 * w, 8 * w, 1), (8 * w, 8 * w, 2)]
        layers: list[nn.Module] = []
        for cin, cout, stride in plan:
            layers += [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        self.encoder = nn.Sequential(*layers)
        cin = 8 * w
        self.feature = nn.Linear(cin, FEATURE_DIM)
        self.heads = nn.ModuleDict({k: nn.Linear(FEATURE_DIM, len(v)) for k, v in tf.ATTRIBUTES.items()})
        self.domain = nn.Linear(FEATURE_DIM, 2)
        self.roll = nn.Linear(FEATURE_DIM, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, H, W) in [0, 1] -> (N, 128) features."""
        if x.shape[-1] != PROBE_SIZE or x.shape[-2] != PROBE_SIZE:
            x = F.interpolate(x, size=(PROBE_SIZE, PROBE_SIZE), mode="bilinear", antialias=True, align_corners=False)
        h = self.encoder(x * 2 - 1).mean((2, 3))
        return F.relu(self.feature(h))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.heads_from_features(self.features(x))

    def heads_from_features(self, f: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per attribute and for the domain, roll in degrees, from (N, 128) features."""
        out = {k: head(f) for k, head in self.heads.items()}
        out["domain"] = self.domain(f)  # logits: 0 human, 1 anime
        out["roll"] = self.roll(f).squeeze(1) * tf.ROLL_RANGE  # degrees
        return out


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Blur, noise, mild colour jitter and small shifts, on images in [0, 1]."""
    n = x.shape[0]
    r = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    # mild brightness/contrast jitter (kept small: colours are attributes)
    b = (r(n, 1, 1, 1) - 0.5) * 0.12
    c = 1 + (r(n, 1, 1, 1) - 0.5) * 0.2
    m = x.mean((1, 2, 3), keepdim=True)
    x = (x - m) * c + m + b
    # blur a third of the batch
    blur = r(n) < 0.33
    if blur.any():
        k = torch.tensor([1.0, 2.0, 1.0]) / 4
        xb = F.pad(x[blur], (1, 1, 1, 1), mode="replicate")
        xb = F.conv2d(xb, (k[:, None] * k[None, :]).expand(3, 1, 3, 3).contiguous(), groups=3)
        x = x.clone()
        x[blur] = xb
    # a quarter pass through a lower resolution (24-48 px), as small generators' outputs do
    low = r(n) < 0.25
    if low.any():
        side = int(torch.randint(24, 49, (1,), generator=g))
        h, w = x.shape[-2:]
        xl = F.interpolate(x[low], size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        x = x.clone()
        x[low] = F.interpolate(xl, size=(h, w), mode="bilinear", align_corners=False)
    # noise on a third
    noisy = (r(n, 1, 1, 1) < 0.33).float()
    x = x + noisy * torch.randn(x.shape, generator=g) * (r(n, 1, 1, 1) * 0.08)
    # shifts of up to 2 px
    dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=g))
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    return x.clamp(0, 1)


def _labels(ds: tf.ToySet) -> dict[str, torch.Tensor]:
    lab = {k: torch.as_tensor(v) for k, v in ds.records.attrs.items()}
    lab["roll"] = torch.as_tensor(ds.records.roll, dtype=torch.float32)
    lab["domain"] = torch.full((len(ds),), tf.DOMAINS.index(ds.domain), dtype=torch.long)
    return lab


def _loss(out, lab):
    loss = sum(F.cross_entropy(out[k], lab[k]) for k in list(tf.ATTRIBUTE_NAMES) + ["domain"])
    return loss + F.smooth_l1_loss(out["roll"] / 10, lab["roll"] / 10)


def train_probe(n_per_domain: int = 8000, epochs: int = 8, batch: int = 64, seed: int = 0, lr: float = 2e-3) -> Probe:
    """Train a probe on both styles (balanced frequencies, so it sees every class in both)."""
    torch.manual_seed(seed)
    sets = [tf.toyfaces(d, n=n_per_domain, size=PROBE_SIZE, split="probe", seed=seed, balanced=True) for d in tf.DOMAINS]
    x = torch.cat([s.images for s in sets])
    labs = [_labels(s) for s in sets]
    lab = {k: torch.cat([l[k] for l in labs]) for k in labs[0]}
    model = Probe()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * (len(x) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    model.train()
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, desc="probe")
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(len(x) // batch):
            idx = perm[i * batch : (i + 1) * batch]
            xb = augment(x[idx].float() / 255, g)
            loss = _loss(model(xb), {k: v[idx] for k, v in lab.items()})
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return model.eval()


@torch.no_grad()
def evaluate_probe(model: Probe, n: int = 500, seed: int = 123, size: int = PROBE_SIZE,
                   per_domain: bool = False) -> dict[str, float]:
    """Accuracy per attribute and for the domain, and the roll mean absolute error (degrees), on fresh
    balanced test faces of both styles (``n`` per style). ``per_domain`` adds "human/<name>" and
    "anime/<name>" entries."""
    res: dict[str, list] = {}
    for d in tf.DOMAINS:
        ds = tf.toyfaces(d, n=n, size=size, split="test", seed=seed, balanced=True, cache=False)
        out = predict(model, ds.unit())
        lab = _labels(ds)
        scores = {k: (out[k] == lab[k]).float().mean().item() for k in list(tf.ATTRIBUTE_NAMES) + ["domain"]}
        scores["roll_mae"] = (out["roll"] - lab["roll"]).abs().mean().item()
        for k, v in scores.items():
            res.setdefault(k, []).append(v)
            if per_domain:
                res[f"{d}/{k}"] = [v]
    return {k: float(np.mean(v)) for k, v in res.items()}


@torch.no_grad()
def predict(model: Probe, images01: torch.Tensor, batch: int = 256, with_features: bool = False) -> dict[str, torch.Tensor]:
    """Class indices per attribute and domain, roll in degrees, and p_anime; images in [0, 1].

    ``with_features=True`` also returns the (N, 128) 'features' the heads read (for toy_fid). Results
    are on the CPU, whatever the model's device.
    """
    model.eval()
    dev = next(model.parameters()).device
    outs = []
    for i in range(0, len(images01), batch):
        f = model.features(images01[i : i + batch].float().to(dev))
        o = model.heads_from_features(f)
        part = {k: (v if k == "roll" else v.argmax(1)) for k, v in o.items()} | {"p_anime": o["domain"].softmax(1)[:, 1]}
        if with_features:
            part["features"] = f
        outs.append({k: v.cpu() for k, v in part.items()})
    return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}


def save_probe(model: Probe, path: str | Path) -> Path:
    """Save the weights with the ToyFaces render version they were trained on (atomic rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    torch.save({"state_dict": model.state_dict(), "render_version": tf.RENDER_VERSION}, tmp)
    tmp.replace(p)
    return p


def load_probe(path: str | Path | None = None) -> Probe:
    """Load the committed probe weights (weights_only=True); a clear error if they are missing or
    corrupt, a warning if they were trained on another version of the ToyFaces renderer."""
    from anime_lib.pretrained import WeightsError, load_weights_file

    p = Path(path) if path else WEIGHTS
    if not p.exists():
        raise FileNotFoundError(f"probe weights not found at {p}; train them with `python -m anime_lib.probe`")
    blob = load_weights_file(p, what="probe weights")
    model = Probe()
    try:
        model.load_state_dict(blob.get("state_dict", blob) if isinstance(blob, dict) else blob)
    except Exception as exc:
        raise WeightsError(f"probe weights at {p} are from another version of the probe ({type(exc).__name__}); "
                           f"retrain with `python -m anime_lib.probe`") from None
    version = blob.get("render_version")
    if version != tf.RENDER_VERSION:
        warnings.warn(f"the probe at {p} was trained on ToyFaces render version {version}, but the renderer is version "
                      f"{tf.RENDER_VERSION}; its readings may be off. Retrain it with `python -m anime_lib.probe`.",
                      stacklevel=2)
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description="Train the ToyFaces probe and save its weights.")
    ap.add_argument("--n", type=int, default=8000, help="faces per domain")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--out", default=str(WEIGHTS))
    a = ap.parse_args()
    t0 = time.time()
    model = train_probe(a.n, a.epochs)
    save_probe(model, a.out)
    print(f"trained in {time.time() - t0:.0f} s; saved {a.out}")
    for k, v in evaluate_probe(model).items():
        print(f"  {k:12s} {v:.3f}")


if __name__ == "__main__":
    main()
