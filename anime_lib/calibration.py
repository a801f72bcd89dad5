"""The calibration ladder: what the probe's figures say about translations whose flaw is known.

Every rung starts from the ground-truth translations of a ToyFaces test set (what a perfect translator would
return) and spoils them in one known way: blur, noise, a lower resolution, JPEG blocking, a colour cast, a
half-done translation, the right style on the wrong face, or no translation at all. Measured like any
translator (:func:`anime_lib.evaluation.measure_translations`), the rungs show what toy_fid 0.1, 0.5 or 1
looks like, and what each metric does not see: toy_fid compares *sets*, so the wrong face scores as well
as the right one (gt_l1 and attr_preservation catch it), and realism is a classifier's vote that most
spoiled images still win.

* :data:`RUNGS`: the rung names, mildest first; :func:`spoil` makes a rung's images;
* :func:`ladder`: one result row per rung (the columns of every lesson table, plus ``rung``), and the
  images for a figure;
* :func:`fid_ladder`: the same idea on real photos, read with FID/KID: real target-domain faces that are not
  the test set (what a perfect translator would return) spoiled rung by rung, so the FID/KID of the lessons'
  real-photo parts can be read at the sample size they are measured with.

``benchmarks/toy_fid_ladder.py`` prints the ladder at 32 and 64 px; lesson 00 shows it with pictures.
"""
from __future__ import annotations

import io
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

from anime_lib.ranges import to_model_range, to_unit_range
from anime_lib.translation import parse_direction

__all__ = ["RUNGS", "REAL_RUNGS", "spoil", "ladder", "fid_ladder"]

#: The rungs, roughly from harmless to no translation at all. The numbers are part of the name, so that a
#: table or a figure says exactly what was done.
RUNGS = (
    "ground truth",
    "noise sigma 0.05",
    "noise sigma 0.1",
    "blur sigma 1.2 px",
    "downsample x2 and back",
    "JPEG quality 10",
    "colour cast (+0.1 red, -0.1 blue)",
    "50/50 blend of input and ground truth",
    "another face's ground truth",
    "identity (no translation)",
)


#: The rungs that mean something without pairs (real photos): a blend mixes a photo with an unrelated anime face.
REAL_RUNGS = tuple(r for r in RUNGS if r != "another face's ground truth")


def _jpeg(x01: torch.Tensor, quality: int) -> torch.Tensor:
    """Each image saved as a JPEG of ``quality`` and read back, through the library's image reader."""
    from anime_lib.data.images import to_image, to_tensor

    out = []
    for img in x01:
        buf = io.BytesIO()
        to_image(to_model_range(img)).save(buf, format="JPEG", quality=quality)
        out.append(to_tensor(buf.getvalue(), x01.shape[-1]))
    return to_unit_range(torch.stack(out))


def spoil(rung: str, truth01: torch.Tensor, source01: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The images of ``rung`` (one of :data:`RUNGS`), in [0, 1], from the ground-truth translations ``truth01``
    and their inputs ``source01`` (both (N, 3, S, S) in [0, 1], the same faces in the same order).

    Noise uses a generator seeded with ``seed``; "another face's ground truth" shifts the set by one face, so
    every image is a real translation of somebody else. Raises ``ValueError`` for an unknown rung.
    """
    if rung not in RUNGS:
        raise ValueError(f"unknown rung {rung!r}; the ladder has {', '.join(RUNGS)}")
    if truth01.shape != source01.shape:
        raise ValueError(f"ground truth {tuple(truth01.shape)} and inputs {tuple(source01.shape)} differ in shape")
    x = truth01.float()
    if rung == "ground truth":
        out = x
    elif rung.startswith("noise sigma"):
        sigma = float(rung.split()[-1])
        out = x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    elif rung == "blur sigma 1.2 px":
        out = gaussian_blur(x, kernel_size=9, sigma=1.2)  # 9 taps: +-3.3 sigma
    elif rung == "downsample x2 and back":
        small = F.interpolate(x, scale_factor=0.5, mode="area")
        out = F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)
    elif rung == "JPEG quality 10":
        out = _jpeg(x, 10)
    elif rung.startswith("colour cast"):
        out = x + torch.tensor([0.1, 0.0, -0.1]).view(1, 3, 1, 1)
    elif rung.startswith("50/50 blend"):
        out = 0.5 * x + 0.5 * source01.float()
    elif rung == "another face's ground truth":
        out = x.roll(1, dims=0)
    else:  # identity
        out = source01.float()
    return out.clamp(0, 1)


def ladder(source: Any, direction: str = "human->anime", rungs: Sequence[str] = RUNGS, *, probe=None,
           seed: int = 0, with_diversity: bool = False) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    """Measure every rung on the test set ``source`` (a ToyFaces set of the direction's source domain, with its
    ground truth): returns ``(rows, images)``, one metrics row per rung (``method`` and ``rung`` are the rung's
    name) and ``{rung: images in [0, 1]}`` for figures. Use at least 200 faces: toy_fid is noisy below that.
    """
    from anime_lib.evaluation import has_ground_truth, measure_translations

    src, _ = parse_direction(direction)
    if getattr(source, "domain", src) != src:
        raise ValueError(f"the ladder of {direction} needs a {src} test set, got a {source.domain} one")
    if not has_ground_truth(source):
        raise ValueError("the calibration ladder needs ground-truth translations (a ToyFaces test set)")
    truth01, source01 = source.counterpart().unit(), source.unit()
    rows, images = [], {}
    for rung in rungs:
        images[rung] = spoil(rung, truth01, source01, seed)
        row = measure_translations(to_model_range(images[rung]), source, direction, method=rung, probe=probe,
                                   with_diversity=with_diversity)
        rows.append({"rung": rung, **row})
    return rows, images



def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def fid_ladder(real: Any, direction: str = "human->anime", rungs: Sequence[str] = REAL_RUNGS, *,
               features: Any = "inception", probe=None, seed: int = 0) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    """The ladder on real photos, measured with FID/KID against the target domain's test set.

    ``real``: a :class:`~anime_lib.data.domains.Domains` of real photos (``load_real_photos``). The "ground truth"
    of each rung is as many real target-domain *training* images as the test set has (real faces of the target
    domain that are not the test faces: what a perfect translator's outputs would score), the "inputs" as many
    training images of the source domain; they are not pairs, so "50/50 blend" mixes a photo with an unrelated
    anime face. ``features``: "inception" (standard) or "probe" (offline stand-in), as for
    :func:`anime_lib.evaluation.fid_kid`. Returns ``(rows, images)``: one row per rung (``method`` and ``rung``
    the rung's name, ``method`` a label that says what it is on photos, ``fid``, ``kid``, ``kid_std``; None where the feature network is not available) and
    ``{rung: images in [0, 1]}``.
    """
    from anime_lib.evaluation import fid_kid
    from anime_lib.results import normalize_row

    src, dst = parse_direction(direction)
    n = len(real.test[dst])
    if len(real.train[dst]) < n or len(real.train[src]) < n:
        raise ValueError(f"the ladder needs at least {n} training images per domain (as many as the {dst} test set)")
    truth01, source01 = real.train[dst].unit(slice(0, n)), real.train[src].unit(slice(0, n))
    rows, images = [], {}
    for rung in rungs:
        if rung not in REAL_RUNGS:
            raise ValueError(f"rung {rung!r} needs pairs; on real photos the ladder has {', '.join(REAL_RUNGS)}")
        images[rung] = spoil(rung, truth01, source01, seed)
        label = {"ground truth": f"real {dst} faces (training images)",
                 "50/50 blend of input and ground truth": f"50/50 blend of {_a(src)} image and {_a(dst)} one"}.get(rung, rung)
        row = {"method": label, "rung": rung, "direction": direction, "img_size": int(truth01.shape[-1]),
               **fid_kid(images[rung], real.test[dst], features, probe)}
        rows.append(normalize_row(row))
    return rows, images
