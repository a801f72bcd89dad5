"""Measuring translations and generators on ToyFaces, against ground truth.

Every function takes images in **[0, 1]** (N, 3, H, W), any size (the probe resizes to 64 px).
The instrument is the ToyFaces probe (:mod:`anime_lib.probe`), which reads the domain, every
attribute and the roll angle of a face.

- :func:`realism`: mean probability that images belong to the target domain (lenient: big eyes on
  a noisy image still read as anime, so it is never the only realism figure).
- :func:`attr_preservation`: agreement between the source records and what the probe reads from the
  translations (mean over the 8 attributes and roll; roll agrees within 5 degrees).
- :func:`gt_l1`: mean absolute pixel error against the ground-truth counterparts.
- :func:`toy_fid`: Frechet distance (:func:`frechet_distance`, the formula of FID) in the probe's feature
  space, normalised: 0 = as close as a fresh real target set, 1 = as far as real
  images of the source domain. The headline realism figure. For translations the real target set is
  drawn with the source's attribute frequencies (``matched=True``), so that keeping a dark-skinned
  face dark is not penalised by the anime data's light-skin skew.
- :func:`diversity`: distance between the attribute distribution of samples and of real data
  (mean total variation over attributes; 0 = as varied as real data; mode collapse pushes it up).
- :func:`pixel_spread` and :func:`sharpness`: pixel statistics that need no ground truth (how much the
  images of a set differ from their mean image; how large the steps between neighbouring pixels are).
- :func:`feature_spread`: how far apart two images of a set are in the probe's feature space (content
  variety; compare with real data of the same size).
- :func:`inception_fid_kid`: standard FID/KID with Inception-v3, only where its weights are present.
"""
from __future__ import annotations

import functools
import os
import warnings
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
            "models work in [-1, 1]: convert with anime_lib.ranges.to_unit_range(x)"
        )
    return images.clamp(0, 1)


def analyse(images01: torch.Tensor, probe=None, batch: int = 256) -> dict[str, torch.Tensor]:
    """One pass of the probe: 'features' (N, 128), a class index per attribute, 'domain', 'roll'
    (degrees) and 'p_anime'. Every metric below is computed from this, so each image set goes
    through the probe once."""
    from anime_lib.probe import predict

    return predict(_probe(probe), _check01(images01), batch=batch, with_features=True)


def read_faces(images01: torch.Tensor, probe=None, batch: int = 256) -> dict[str, torch.Tensor]:
    """What the probe reads: class index per attribute, 'domain', 'roll' (degrees), 'p_anime'."""
    out = analyse(images01, probe, batch)
    out.pop("features")
    return out


def _reading(images_or_reading, probe) -> dict[str, torch.Tensor]:
    """Accept images (analysed now) or the result of :func:`analyse` (reused)."""
    return images_or_reading if isinstance(images_or_reading, dict) else analyse(images_or_reading, probe)


_REAL_READINGS: dict[tuple, dict] = {}


def _real_reading(model, domain: str, n: int, size: int, split: str, balanced: bool,
                  records_from: str | None = None) -> dict[str, torch.Tensor]:
    """The probe's reading of real ToyFaces of ``domain``, computed once per session.

    ``records_from``: draw the attribute records with that domain's frequencies (default: ``domain``'s
    own). Faces of ``domain`` drawn with the other domain's frequencies are the ground-truth
    translations of a real set of that other domain.
    """
    records_from = records_from or domain
    key = (id(model), domain, records_from, n, size, split, balanced)
    if key not in _REAL_READINGS:
        ds = tf.toyfaces(records_from, n=n, size=size, split=split, balanced=balanced, with_counterpart=records_from != domain)
        _REAL_READINGS[key] = analyse((ds if records_from == domain else ds.counterpart()).unit(), model)
    return _REAL_READINGS[key]


# --------------------------------------------------------------------------- translation metrics

def realism(images01, domain: str, probe=None) -> float:
    """Mean probability, by the probe, that the images belong to ``domain`` ("human" or "anime")."""
    _check_domain(domain)
    p = _reading(images01, probe)["p_anime"]
    return float((p if domain == "anime" else 1 - p).mean())


def attr_agreement(images01, records: tf.Records, probe=None) -> dict[str, float]:
    """Per-attribute agreement between ``records`` and what the probe reads (roll: within 5 degrees)."""
    got = _reading(images01, probe)
    if len(records) != len(got["roll"]):
        raise ValueError(f"{len(got['roll'])} images but {len(records)} records")
    res = {k: float((got[k].numpy() == np.asarray(records.attrs[k])).mean()) for k in tf.ATTRIBUTE_NAMES}
    res["roll"] = float((np.abs(got["roll"].numpy() - np.asarray(records.roll)) <= ROLL_TOLERANCE).mean())
    return res


def reading_agreement(images_a, images_b, probe=None) -> dict[str, float]:
    """Per-attribute agreement between what the probe reads in two sets of paired images (``a[i]`` and ``b[i]``:
    the same latent drawn by two generators, say), each attribute's class and roll within ``ROLL_TOLERANCE``
    degrees. Images in [0, 1] or readings of :func:`analyse`. Unlike :func:`attr_agreement` no records are needed:
    image a's reading plays the record for image b."""
    a, b = _reading(images_a, probe), _reading(images_b, probe)
    if len(a["roll"]) != len(b["roll"]):
        raise ValueError(f"paired sets differ in length: {len(a['roll'])} and {len(b['roll'])} images")
    res = {k: float((a[k] == b[k]).float().mean()) for k in tf.ATTRIBUTE_NAMES}
    res["roll"] = float(((a["roll"] - b["roll"]).abs() <= ROLL_TOLERANCE).float().mean())
    return res


def attr_preservation(images01, records: tf.Records, probe=None) -> float:
    """Mean over attributes (and roll) of :func:`attr_agreement`: 1 = every attribute kept."""
    return float(np.mean(list(attr_agreement(images01, records, probe).values())))


def roll_error(images01, records: tf.Records, probe=None) -> float:
    """Mean absolute difference, in degrees, between the source roll and the roll the probe reads."""
    got = _reading(images01, probe)["roll"].numpy()
    return float(np.abs(got - np.asarray(records.roll)).mean())


def gt_l1(images01: torch.Tensor, targets01: torch.Tensor) -> float:
    """Mean absolute pixel error (in [0, 1] units) between translations and ground-truth counterparts."""
    x, y = _check01(images01), _check01(targets01, "targets")
    if x.shape != y.shape:
        raise ValueError(f"translations {tuple(x.shape)} and counterparts {tuple(y.shape)} differ in shape")
    return float((x - y).abs().mean())


# --------------------------------------------------------------------------- toy_fid

class _Precomputed(nn.Module):
    """torchmetrics feature extractor for the probe features that :func:`analyse` already computed
    (so torchmetrics' FID does the maths and each image set goes through the probe once)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def gaussian_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (D,), covariance (D, D)) of features (N, D), in float64; the covariance with N - 1 (unbiased)."""
    x = features.detach().to(torch.float64).reshape(len(features), -1)
    mu = x.mean(0)
    centred = x - mu
    return mu, centred.T @ centred / (len(x) - 1)


def frechet_distance(stats_1: tuple[torch.Tensor, torch.Tensor], stats_2: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Frechet distance between two Gaussians (:func:`gaussian_statistics`), the formula of FID:
    ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)), the trace of the square root taken as the sum of the
    square roots of the eigenvalues of S_1 S_2 (float64). The same number torchmetrics' FID computes from the same
    features, without importing torchmetrics (about 12 s on two cores) for every toy_fid."""
    (mu_1, s_1), (mu_2, s_2) = stats_1, stats_2
    sqrt_trace = torch.linalg.eigvals(s_1 @ s_2).sqrt().real.sum()
    return float((mu_1 - mu_2).square().sum() + s_1.trace() + s_2.trace() - 2 * sqrt_trace)


_FID_REFERENCES: dict[tuple, tuple] = {}


def _fid_reference(model, target_domain: str, n: int, size: int, balanced: bool, matched: bool):
    """(the real target set's Gaussian statistics, raw FID of a fresh real target set, raw FID of real source).

    ``matched``: the real target sets are drawn with the *source* domain's attribute frequencies (the
    ground-truth translations of real source sets) instead of the target's own. Computed once per
    (probe, domain, set size, image size, balance, matching) and kept for the session.
    """
    key = (id(model), target_domain, n, size, balanced, matched)
    if key not in _FID_REFERENCES:
        source = "human" if target_domain == "anime" else "anime"
        records_from = source if matched else target_domain
        real = _real_reading(model, target_domain, max(REFERENCE_MIN, n), size, "val", balanced, records_from)
        stats = gaussian_statistics(real["features"])
        raw = [frechet_distance(stats, gaussian_statistics(_real_reading(model, dom, n, size, "extra", balanced,
                                                                         rec)["features"]))
               for dom, rec in ((target_domain, records_from), (source, source))]
        _FID_REFERENCES[key] = (stats, raw[0], raw[1])
    return _FID_REFERENCES[key]


def toy_fid(images01, target_domain: str, probe=None, balanced: bool = False, raw: bool = False,
            size: int | None = None, matched: bool = False) -> float:
    """Normalised Frechet distance to real ``target_domain`` images in the probe's feature space.

    0 = as close as a fresh real target set of the same size, 1 = as far as real images of the
    other (source) domain. References are rendered at the images' own size, with the natural
    (biased) frequencies unless ``balanced``.

    ``matched=True`` (what :func:`evaluate_translation` uses) draws the real target references with
    the *source* domain's attribute frequencies: they are ground-truth translations of fresh source
    faces. A faithful translator keeps the source's attributes (dark skin stays dark), so it must not
    be compared with the target's skewed population; with ``matched=False`` a perfect human->anime
    translation would score well above 0 only because real anime faces are mostly light-skinned.

    ``raw=True`` returns the unnormalised distance. Needs at least 2 images; below about 200 the
    figure is noisy. (``images01`` may also be a reading from :func:`analyse`; then give ``size``.)
    """
    _check_domain(target_domain)
    model = _probe(probe)
    if isinstance(images01, dict):
        reading = images01
        if size is None:
            raise ValueError("toy_fid of a reading needs the image size (size=...)")
    else:
        x = _check01(images01)
        size = int(x.shape[-1])
        reading = analyse(x, model)
    n = len(reading["features"])
    if n < 2:
        raise ValueError("toy_fid needs at least 2 images")
    real_stats, f_fresh, f_source = _fid_reference(model, target_domain, n, size, balanced, matched)
    value = frechet_distance(real_stats, gaussian_statistics(reading["features"]))
    if raw:
        return value
    return (value - f_fresh) / max(f_source - f_fresh, 1e-8)


# --------------------------------------------------------------------------- generators

def attribute_histograms(images01, probe=None) -> dict[str, np.ndarray]:
    """Probability of each class per attribute as read by the probe, plus roll in 6 bins of 10 degrees."""
    got = _reading(images01, probe)
    hist = {k: np.bincount(got[k].numpy(), minlength=len(v)) / len(got[k]) for k, v in tf.ATTRIBUTES.items()}
    bins = np.linspace(-tf.ROLL_RANGE, tf.ROLL_RANGE, 7)
    roll = np.clip(got["roll"].numpy(), -tf.ROLL_RANGE + 1e-3, tf.ROLL_RANGE - 1e-3)
    hist["roll"] = np.histogram(roll, bins=bins)[0] / len(roll)
    return hist


def diversity(images01, domain: str, probe=None, balanced: bool = False, size: int | None = None) -> float:
    """Distance between the attribute distribution of samples and of real ``domain`` data.

    Mean total-variation distance over the attributes and roll, both sides read by the probe
    (so its errors cancel). 0 = the samples vary like real data; a collapsed generator that draws
    one face scores close to 1. Compare with :func:`reference_points` (real vs fresh real).
    """
    _check_domain(domain)
    model = _probe(probe)
    if not isinstance(images01, dict):
        size = int(_check01(images01).shape[-1])
    elif size is None:
        raise ValueError("diversity of a reading needs the image size (size=...)")
    got = _reading(images01, model)
    real = _real_reading(model, domain, max(REFERENCE_MIN, len(got["roll"])), size, "val", balanced)
    hs, hr = attribute_histograms(got, model), attribute_histograms(real, model)
    return float(np.mean([0.5 * np.abs(hs[k] - hr[k]).sum() for k in hs]))


# --------------------------------------------------------------------------- bundles

def pixel_spread(images01: torch.Tensor) -> float:
    """Mean absolute distance of each image from the set's mean image, images in [0, 1] (N, 3, H, W).

    Real faces differ from one another, so their spread is large; a translator that outputs the same
    average face for every input scores close to 0. Pixels also count noise and speckle as variety;
    :func:`feature_spread` reads content instead.
    """
    x = _check01(images01)
    return float((x - x.mean(0, keepdim=True)).abs().mean())


def sharpness(images01: torch.Tensor) -> float:
    """Mean absolute difference between neighbouring pixels (horizontal and vertical), images in [0, 1].

    Blur shrinks the steps between neighbours, so it lowers this number; real ToyFaces with their outlines
    and textures score highest. (N, 3, H, W) -> a float.
    """
    x = _check01(images01)
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
    return float((dx + dy) / 2)


def feature_spread(images01, probe=None, seed: int = 0) -> float:
    """How different the images of a set are from each other *in content*: the mean Euclidean distance
    between the probe features of each image and of another one of the set (a seeded random pairing).

    Pixel spread (mean L1 between two images) also counts noise and speckle as variety; this figure reads
    what the faces show. Compare it with a real set of the same size: a collapsed generator scores far
    below real data, and identical images score 0. Needs at least 2 images (or a reading of them).
    """
    f = _reading(images01, probe)["features"]
    if len(f) < 2:
        raise ValueError("feature_spread needs at least 2 images")
    perm = torch.randperm(len(f), generator=torch.Generator().manual_seed(seed))
    same = perm == torch.arange(len(f))
    perm[same] = (perm[same] + 1) % len(f)  # never pair an image with itself
    return float((f - f[perm]).norm(dim=1).mean())


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
    reading = analyse(fake01, probe)
    size = int(fake01.shape[-1])
    return {
        "realism": realism(reading, target_domain, probe),
        "attr_preservation": attr_preservation(reading, source.records, probe),
        "gt_l1": gt_l1(fake01, counterpart01),
        "toy_fid": toy_fid(reading, target_domain, probe, size=size, balanced=source.balanced, matched=True),
        "roll_error": roll_error(reading, source.records, probe),
    }


def evaluate_generator(samples01: torch.Tensor, domain: str, probe=None) -> dict[str, float]:
    """realism, toy_fid and diversity of unconditional samples of ``domain``."""
    reading = analyse(samples01, probe)
    size = int(samples01.shape[-1])
    return {
        "realism": realism(reading, domain, probe),
        "toy_fid": toy_fid(reading, domain, probe, size=size),
        "diversity": diversity(reading, domain, probe, size=size),
    }


def reference_points(n: int = 500, size: int = 64, probe=None) -> list[dict[str, Any]]:
    """The numbers every result should be read against, measured on fresh ToyFaces test sets.

    Rows: real images of each domain (realism, toy_fid against an independent real set, diversity);
    per direction, the identity mapping (the input returned unchanged: the floor) and the ground truth
    (the true counterparts, what a perfect translator would output: the ceiling).
    """
    rows = []
    for dom in tf.DOMAINS:
        real = tf.toyfaces(dom, n=n, size=size, split="test")
        r = analyse(real.unit(), probe)
        rows.append({"method": "real data", "direction": dom, "realism": realism(r, dom, probe),
                     "attr_preservation": attr_preservation(r, real.records, probe), "gt_l1": None,
                     "toy_fid": toy_fid(r, dom, probe, size=size), "diversity": diversity(r, dom, probe, size=size)})
    for src, dst in (("human", "anime"), ("anime", "human")):
        source = tf.toyfaces(src, n=n, size=size, split="test", with_counterpart=True)
        m = evaluate_translation(source.unit(), source, dst, probe=probe)
        rows.append({"method": "identity (no translation)", "direction": f"{src}->{dst}", **m, "diversity": None})
        m = evaluate_translation(source.counterpart().unit(), source, dst, probe=probe)
        rows.append({"method": "ground truth (perfect translator)", "direction": f"{src}->{dst}", **m, "diversity": None})
    return rows


# --------------------------------------------------------------------------- Inception FID / KID

INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"


def inception_weights_path() -> Path | None:
    """Where torch-fidelity's Inception weights are, if they are on this machine."""
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    p = hub / INCEPTION_WEIGHTS
    return p if p.exists() else None


def inception_fid_kid(fake01: torch.Tensor, real01: torch.Tensor, kid_subset: int = 100, *,
                      feature_extractor: nn.Module | None = None, batch: int = 64) -> dict[str, float]:
    """Standard FID and KID (Inception-v3 pool features, 2048-d) between two image sets in [0, 1].

    ``fake01`` and ``real01``: (N, 3, H, W) tensors in [0, 1] (or uint8), at least 2 images each.
    Returns ``{"fid": ..., "kid": ..., "kid_std": ...}`` (0 for identical distributions; lower is
    better). Each image set goes through the feature extractor once, in batches of ``batch``
    images; the features feed torchmetrics' ``FrechetInceptionDistance`` and
    ``KernelInceptionDistance`` (KID subsets of :func:`kid_subset_size` images: at most half of each set).

    ``feature_extractor``: None for Inception-v3, which needs the ``torch-fidelity`` package and
    its weights (downloaded automatically in Colab on first use); offline it raises
    :class:`MetricUnavailable` with what to do and never substitutes a number. Any other
    ``nn.Module`` (or callable) mapping float images (n, 3, H, W) in [0, 1] to features (n, D) is
    used instead, with the same maths (tests use a tiny stand-in; the numbers are then not
    comparable with published Inception FIDs).
    """
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    x, y = _check01(fake01), _check01(real01, "real images")
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"FID/KID need at least 2 images per set, got {len(x)} fake and {len(y)} real")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    extract = feature_extractor if feature_extractor is not None else _inception_extractor()
    fake_features = _batched_features(extract, x, batch)
    real_features = _batched_features(extract, y, batch)
    dim = int(real_features.shape[1])
    if fake_features.shape[1] != dim:
        raise ValueError(f"the feature extractor gave {fake_features.shape[1]} features for the fake images and "
                         f"{dim} for the real ones")
    fid = FrechetInceptionDistance(feature=_Precomputed(dim))
    with warnings.catch_warnings():  # "will save all extracted features": they are a few thousand numbers here
        warnings.filterwarnings("ignore", message=".*save all extracted features.*")
        kid = KernelInceptionDistance(feature=_Precomputed(dim), subset_size=kid_subset_size(kid_subset, len(x), len(y)))
    for metric in (fid, kid):
        metric.update(real_features, real=True)
        metric.update(fake_features, real=False)
    kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std)}


#: The feature networks a lesson's ``FID_FEATURES`` parameter can name for FID/KID on real photos.
FID_FEATURES = ("inception", "probe")


def fid_feature_extractor(kind: str = "inception", probe=None):
    """The ``feature_extractor`` argument of :func:`inception_fid_kid` that ``kind`` names.

    ``"inception"``: None, i.e. the standard Inception-v3 (torch-fidelity; what published FID/KID figures use).
    ``"probe"``: the ToyFaces probe's 128 features, a small stand-in that runs anywhere offline (the test suite
    uses it); its numbers are not comparable with published FIDs, and the probe never saw a real photo, so
    treat them as a smoke signal, not a measurement.
    """
    kind = str(kind).lower()
    if kind == "inception":
        return None
    if kind == "probe":
        model = _probe(probe)
        return lambda images01: analyse(images01, model)["features"]
    raise ValueError(f"unknown FID_FEATURES {kind!r}; choose one of {FID_FEATURES}")


def kid_subset_size(kid_subset: int, n_fake: int, n_real: int) -> int:
    """KID's subset size: ``kid_subset``, at most half of the smaller set (at least 2), so that the random subsets
    differ and ``kid_std`` says how much the estimate moves (subsets of a whole set are all the same set)."""
    return max(2, min(kid_subset, n_fake // 2, n_real // 2))


def _inception_extractor():
    """torchmetrics' Inception-v3 (torch-fidelity weights) as a function of float images in [0, 1] -> (n, 2048).

    Raises :class:`MetricUnavailable` when torch-fidelity or the weights (offline) are missing.
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
    return _inception_network()


@functools.lru_cache(maxsize=1)
def _inception_network():
    """The Inception-v3 feature function, built once per session (on the GPU when there is one)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = FrechetInceptionDistance(feature=2048).inception.to(device)  # expects uint8 images in [0, 255]
    return lambda images01: net((images01.to(device) * 255).round().to(torch.uint8))


@torch.no_grad()
def _batched_features(extract, images01: torch.Tensor, batch: int) -> torch.Tensor:
    """``extract`` applied to ``images01`` in chunks of ``batch``: (N, D) float64 features on the CPU."""
    parts = []
    for start in range(0, len(images01), batch):
        chunk = images01[start:start + batch]
        feats = extract(chunk)
        if not isinstance(feats, torch.Tensor) or feats.ndim < 1 or feats.shape[0] != len(chunk):
            raise ValueError(f"the feature extractor must return (n, D) features for n images, got "
                             f"{getattr(feats, 'shape', type(feats))} for {len(chunk)}")
        parts.append(feats.reshape(len(chunk), -1).detach().double().cpu())
    return torch.cat(parts)


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


# --------------------------------------------------------------------------- image statistics of samples

def speckle(images01: torch.Tensor) -> float:
    """High-frequency residual of images in [0, 1] (N, 3, H, W): the std of each image minus its 3x3 median
    (flat cartoon regions give about 0, noisy generator samples more)."""
    import torch.nn.functional as F

    x = _check01(images01)
    p = F.pad(x, (1, 1, 1, 1), mode="replicate").unfold(2, 3, 1).unfold(3, 3, 1)
    return float((x - p.reshape(*x.shape, 9).median(-1).values).std())


def degraded_like(real01: torch.Tensor, samples01: torch.Tensor, seed: int = 0) -> tuple[float, dict[str, torch.Tensor]]:
    """Real faces ([0, 1]) degraded the way generator samples are: Gaussian noise of the strength ``sigma`` at which
    they carry the samples' :func:`speckle` (found on 250 faces), a 3x3 blur, and twice that noise.
    Returns ``(sigma, {name: images})``, the names saying what was done. Whatever the probe reads differently on
    these *real* faces is its own misreading of the degradation (lesson 03's instrument check)."""
    import torch.nn.functional as F

    real01 = _check01(real01, "real01")
    noise = torch.randn(real01.shape, generator=torch.Generator().manual_seed(seed))
    sigmas = np.linspace(0, 0.2, 21)
    levels = [speckle((real01[:250] + s * noise[:250]).clamp(0, 1)) for s in sigmas]
    sigma = float(np.interp(speckle(samples01), levels, sigmas))
    k = torch.tensor([1.0, 2.0, 1.0]) / 4
    blurred = F.conv2d(F.pad(real01, (1, 1, 1, 1), mode="replicate"), (k[:, None] * k).expand(3, 1, 3, 3).contiguous(),
                       groups=3)
    return sigma, {f"real + noise {sigma:.3f}": (real01 + sigma * noise).clamp(0, 1), "real, blurred 3x3": blurred,
                   f"real + noise {2 * sigma:.3f} (twice)": (real01 + 2 * sigma * noise).clamp(0, 1)}
