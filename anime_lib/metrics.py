"""Measuring translations and generators on ToyFaces, against ground truth.

Every function takes images in **[0, 1]** (N, 3, H, W), any size (the probe resizes to 64 px).
The instrument is the ToyFaces probe (:mod:`anime_lib.probe`), which reads the domain, every
attribute and the roll angle of a face.

- :func:`realism`: mean probability that images belong to the target domain (lenient: big eyes on
  a noisy image still read as anime, so it is never the only realism figure).
- :func:`attr_preservation`: agreement between the source records and what the probe reads from the
  translations (mean over the 8 attributes and roll; roll agrees within 5 degrees).
- :func:`gt_l1`: mean absolute pixel error against the ground-truth counterparts.
- :func:`toy_fid`: Frechet distance in the probe's feature space (torchmetrics' FID with the probe as a
  custom feature extractor), normalised: 0 = as close as a fresh real target set, 1 = as far as real
  images of the source domain. The headline realism figure.
- :func:`diversity`: distance between the attribute distribution of samples and of real data
  (mean total variation over attributes; 0 = as varied as real data; mode collapse pushes it up).
- :func:`inception_fid_kid`: standard FID/KID with Inception-v3, only where its weights are present.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from anime_lib.data import toyfaces as tf

ROLL_TOLERANCE = 5.0  # degrees: a translated roll within this of the source counts as preserved
REFERENCE_MIN = 1000  # the real reference set for toy_fid has at least this many images


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here (for example: Inception weights offline). Never faked."""


# --------------------------------------------------------------------------- the probe

@functools.lru_cache(maxsize=2)
def get_probe(path: str | None = None):
    """The committed ToyFaces probe, loaded once (weights_only=True)."""
    from anime_lib.probe import load_probe

    return load_probe(path)


def _probe(probe):
    return probe if probe is not None else get_probe()


def _check01(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must be a (N, 3, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    if images.dtype == torch.uint8:
        return images.float() / 255
    images = images.detach().float()
    lo, hi = float(images.min()), float(images.max())
    if lo < -0.02 or hi > 1.02:
        raise ValueError(
            f"{name} must be in [0, 1] for metrics (got min {lo:.2f}, max {hi:.2f}); "
            "models work in [-1, 1]: convert with anime_lib.viz.to_unit_range(x) or (x + 1) / 2"
        )
    return images.clamp(0, 1)


@torch.no_grad()
def read_faces(images01: torch.Tensor, probe=None, batch: int = 256) -> dict[str, torch.Tensor]:
    """What the probe reads: class index per attribute, 'domain', 'roll' (degrees), 'p_anime'."""
    from anime_lib.probe import predict

    model = _probe(probe)
    x = _check01(images01)
    dev = next(model.parameters()).device
    out = predict(model, x.to(dev), batch=batch)
    return {k: v.cpu() for k, v in out.items()}


# --------------------------------------------------------------------------- translation metrics

def realism(images01: torch.Tensor, domain: str, probe=None) -> float:
    """Mean probability, by the probe, that the images belong to ``domain`` ("human" or "anime")."""
    _check_domain(domain)
    p = read_faces(images01, probe)["p_anime"]
    return float((p if domain == "anime" else 1 - p).mean())


def attr_agreement(images01: torch.Tensor, records: tf.Records, probe=None) -> dict[str, float]:
    """Per-attribute agreement between ``records`` and what the probe reads (roll: within 5 degrees)."""
    if len(records) != len(images01):
        raise ValueError(f"{len(images01)} images but {len(records)} records")
    got = read_faces(images01, probe)
    res = {k: float((got[k].numpy() == np.asarray(records.attrs[k])).mean()) for k in tf.ATTRIBUTE_NAMES}
    res["roll"] = float((np.abs(got["roll"].numpy() - np.asarray(records.roll)) <= ROLL_TOLERANCE).mean())
    return res


def attr_preservation(images01: torch.Tensor, records: tf.Records, probe=None) -> float:
    """Mean over attributes (and roll) of :func:`attr_agreement`: 1 = every attribute kept."""
    return float(np.mean(list(attr_agreement(images01, records, probe).values())))


def roll_error(images01: torch.Tensor, records: tf.Records, probe=None) -> float:
    """Mean absolute difference, in degrees, between the source roll and the roll the probe reads."""
    got = read_faces(images01, probe)["roll"].numpy()
    return float(np.abs(got - np.asarray(records.roll)).mean())


def gt_l1(images01: torch.Tensor, targets01: torch.Tensor) -> float:
    """Mean absolute pixel error (in [0, 1] units) between translations and ground-truth counterparts."""
    x, y = _check01(images01), _check01(targets01, "targets")
    if x.shape != y.shape:
        raise ValueError(f"translations {tuple(x.shape)} and counterparts {tuple(y.shape)} differ in shape")
    return float((x - y).abs().mean())


# --------------------------------------------------------------------------- toy_fid

class ProbeFeatures(nn.Module):
    """The probe's 128-d feature layer as a torchmetrics feature extractor (inputs in [0, 1])."""

    def __init__(self, probe):
        super().__init__()
        self.probe = probe
        from anime_lib.probe import FEATURE_DIM

        self.num_features = FEATURE_DIM

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dev = next(self.probe.parameters()).device
        return self.probe.eval().features(x.float().to(dev)).cpu()


def _fid_metric(probe):
    from torchmetrics.image.fid import FrechetInceptionDistance

    return FrechetInceptionDistance(feature=ProbeFeatures(probe), reset_real_features=False, normalize=True)


def _update(metric, images01: torch.Tensor, real: bool, batch: int = 500) -> None:
    for i in range(0, len(images01), batch):
        metric.update(images01[i : i + batch], real=real)


def _real(domain: str, n: int, size: int, split: str, balanced: bool) -> torch.Tensor:
    return tf.toyfaces(domain, n=n, size=size, split=split, balanced=balanced).unit()


_FID_REFERENCES: dict[tuple, tuple] = {}


def _fid_reference(model, target_domain: str, n: int, size: int, balanced: bool):
    """(metric holding the real target statistics, raw FID of a fresh real target set, raw FID of real source).

    Computed once per (probe, domain, set size, image size, balance) and kept for the session.
    """
    key = (id(model), target_domain, n, size, balanced)
    if key not in _FID_REFERENCES:
        source = "human" if target_domain == "anime" else "anime"
        metric = _fid_metric(model)
        _update(metric, _real(target_domain, max(REFERENCE_MIN, n), size, "val", balanced), real=True)
        raw = []
        for dom in (target_domain, source):
            metric.reset()  # keeps the real statistics (reset_real_features=False)
            _update(metric, _real(dom, n, size, "extra", balanced), real=False)
            raw.append(float(metric.compute()))
        _FID_REFERENCES[key] = (metric, raw[0], raw[1])
    return _FID_REFERENCES[key]


def toy_fid(images01: torch.Tensor, target_domain: str, probe=None, balanced: bool = False,
            raw: bool = False) -> float:
    """Normalised Frechet distance to real ``target_domain`` images in the probe's feature space.

    0 = as close as a fresh real target set of the same size, 1 = as far as real images of the
    other (source) domain. References are rendered at the images' own size and with the natural
    (biased) frequencies unless ``balanced``. ``raw=True`` returns the unnormalised distance.
    Needs at least 2 images; below about 200 the figure is noisy.
    """
    _check_domain(target_domain)
    x = _check01(images01)
    if len(x) < 2:
        raise ValueError("toy_fid needs at least 2 images")
    model = _probe(probe)
    metric, f_fresh, f_source = _fid_reference(model, target_domain, len(x), int(x.shape[-1]), balanced)
    metric.reset()
    _update(metric, x, real=False)
    value = float(metric.compute())
    if raw:
        return value
    return (value - f_fresh) / max(f_source - f_fresh, 1e-8)


# --------------------------------------------------------------------------- generators

def attribute_histograms(images01: torch.Tensor, probe=None) -> dict[str, np.ndarray]:
    """Probability of each class per attribute as read by the probe, plus roll in 6 bins of 10 degrees."""
    got = read_faces(images01, probe)
    hist = {k: np.bincount(got[k].numpy(), minlength=len(v)) / len(got[k]) for k, v in tf.ATTRIBUTES.items()}
    bins = np.linspace(-tf.ROLL_RANGE, tf.ROLL_RANGE, 7)
    roll = np.clip(got["roll"].numpy(), -tf.ROLL_RANGE + 1e-3, tf.ROLL_RANGE - 1e-3)
    hist["roll"] = np.histogram(roll, bins=bins)[0] / len(roll)
    return hist


def diversity(images01: torch.Tensor, domain: str, probe=None, balanced: bool = False) -> float:
    """Distance between the attribute distribution of samples and of real ``domain`` data.

    Mean total-variation distance over the attributes and roll, both sides read by the probe
    (so its errors cancel). 0 = the samples vary like real data; a collapsed generator that draws
    one face scores close to 1. Compare with :func:`reference_points` (real vs fresh real).
    """
    _check_domain(domain)
    x = _check01(images01)
    real = _real(domain, max(REFERENCE_MIN, len(x)), int(x.shape[-1]), "val", balanced)
    hs, hr = attribute_histograms(x, probe), attribute_histograms(real, probe)
    return float(np.mean([0.5 * np.abs(hs[k] - hr[k]).sum() for k in hs]))


# --------------------------------------------------------------------------- bundles

def evaluate_translation(fake01: torch.Tensor, source: tf.ToySet, target_domain: str,
                         counterpart01: torch.Tensor | None = None, probe=None) -> dict[str, float]:
    """realism, attr_preservation, gt_l1, toy_fid and roll_error of translations of ``source``.

    ``fake01``: the translations in [0, 1]; ``source``: the ToySet that was translated (its records
    are the ground truth); the counterparts are rendered from it unless given.
    """
    if len(fake01) != len(source):
        raise ValueError(f"{len(fake01)} translations for {len(source)} source faces")
    if counterpart01 is None:
        counterpart01 = source.counterpart().unit()
        if counterpart01.shape[-1] != fake01.shape[-1]:
            counterpart01 = torch.nn.functional.interpolate(counterpart01, size=fake01.shape[-2:], mode="bilinear",
                                                            antialias=True, align_corners=False)
    return {
        "realism": realism(fake01, target_domain, probe),
        "attr_preservation": attr_preservation(fake01, source.records, probe),
        "gt_l1": gt_l1(fake01, counterpart01),
        "toy_fid": toy_fid(fake01, target_domain, probe),
        "roll_error": roll_error(fake01, source.records, probe),
    }


def evaluate_generator(samples01: torch.Tensor, domain: str, probe=None) -> dict[str, float]:
    """realism, toy_fid and diversity of unconditional samples of ``domain``."""
    return {
        "realism": realism(samples01, domain, probe),
        "toy_fid": toy_fid(samples01, domain, probe),
        "diversity": diversity(samples01, domain, probe),
    }


def reference_points(n: int = 500, size: int = 64, probe=None) -> list[dict[str, Any]]:
    """The numbers every result should be read against, measured on fresh ToyFaces test sets.

    Rows: real images of each domain (realism, toy_fid against an independent real set, diversity),
    and the identity mapping in each direction (the input returned unchanged: its gt_l1,
    attr_preservation, realism and toy_fid).
    """
    rows = []
    for dom in tf.DOMAINS:
        real = tf.toyfaces(dom, n=n, size=size, split="test")
        x = real.unit()
        rows.append({"method": "real data", "direction": dom, "realism": realism(x, dom, probe),
                     "attr_preservation": attr_preservation(x, real.records, probe), "gt_l1": None,
                     "toy_fid": toy_fid(x, dom, probe), "diversity": diversity(x, dom, probe)})
    for src, dst in (("human", "anime"), ("anime", "human")):
        source = tf.toyfaces(src, n=n, size=size, split="test", with_counterpart=True)
        m = evaluate_translation(source.unit(), source, dst, probe=probe)
        rows.append({"method": "identity (no translation)", "direction": f"{src}->{dst}", **m, "diversity": None})
    return rows


# --------------------------------------------------------------------------- Inception FID / KID

INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"


def inception_weights_path() -> Path | None:
    """Where torch-fidelity's Inception weights are, if they are on this machine."""
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    p = hub / INCEPTION_WEIGHTS
    return p if p.exists() else None


def inception_fid_kid(fake01: torch.Tensor, real01: torch.Tensor, kid_subset: int = 100) -> dict[str, float]:
    """Standard FID and KID (Inception-v3 pool features) between two image sets in [0, 1].

    Needs the ``torch-fidelity`` package and its Inception weights (downloaded automatically in
    Colab on first use). Offline, raises :class:`MetricUnavailable` with what to do; it never
    substitutes a number.
    """
    try:
        import torch_fidelity  # noqa: F401
    except ImportError as exc:
        raise MetricUnavailable(
            "Inception FID/KID needs the torch-fidelity package: `pip install torch-fidelity` (in Colab it then "
            "downloads the Inception weights, about 100 MB). Until then use toy_fid on ToyFaces."
        ) from exc
    if inception_weights_path() is None and not _online():
        raise MetricUnavailable(
            f"Inception weights ({INCEPTION_WEIGHTS}) are not on this machine and there is no network. Run once where "
            "the network works (Colab), or copy the file into ~/.cache/torch/hub/checkpoints/."
        )
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    x, y = _check01(fake01), _check01(real01, "real images")
    fid = FrechetInceptionDistance(normalize=True)
    kid = KernelInceptionDistance(normalize=True, subset_size=min(kid_subset, len(x), len(y)))
    for m in (fid, kid):
        _update(m, y, real=True, batch=64)
        _update(m, x, real=False, batch=64)
    kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std)}


def _online(host: str = "github.com", timeout: float = 2.0) -> bool:
    import socket

    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _check_domain(domain: str) -> None:
    if domain not in tf.DOMAINS:
        raise ValueError(f"domain must be one of {tf.DOMAINS}, got {domain!r}")
