"""ToyFaces: a procedural two-domain face dataset with ground truth.

Every sample is an *attribute record* (head roll, face width, skin tone, hair colour and style,
eye colour, expression, glasses, background, plus nuisance values such as the light direction).
The same record can be rendered in two styles:

* ``"human"``: photo-like - soft shading from a light direction, skin texture, small eyes with iris,
  pupil and lids, a shaded nose, lips, textured hair, slight camera blur, no outlines;
* ``"anime"``: big eyes (about twice the size) with highlights and lashes, a tiny nose stroke,
  a small mouth, flat two-tone cel shading, dark outlines, a pointier chin, saturated hair.

So every image comes with its ground truth: the record, five CelebA-style landmarks (eye centres,
nose tip, mouth corners) and its *counterpart*, the same record rendered in the other style.

Rendering is vectorised in torch (signed-distance shapes with anti-aliased coverage), deterministic
by (seed, domain, split, index), and cached on disk so a rendered set reloads instantly.
Images are uint8 in storage; :meth:`ToySet.tensor` gives float images in [-1, 1].
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

RENDER_VERSION = 2  # 2: larger, more distinct mouths (expression readable at 64 px)
DOMAINS = ("human", "anime")
SPLITS = {"train": 0, "test": 1, "probe": 2, "val": 3, "extra": 4}

#: Categorical attributes and their class names. The probe predicts each of these plus ``roll``.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "skin_tone": ("light", "medium", "tan", "dark"),
    "hair_colour": ("black", "brown", "blonde", "auburn", "pink", "blue", "purple"),
    "hair_style": ("short", "long", "bangs", "bob"),
    "eye_colour": ("brown", "blue", "green"),
    "expression": ("neutral", "smile", "open"),
    "glasses": ("no", "yes"),
    "background": ("white", "sky", "mint", "peach", "lilac"),
    "face_width": ("narrow", "medium", "wide"),
}
ATTRIBUTE_NAMES = tuple(ATTRIBUTES)
ROLL_RANGE = 30.0  # degrees, uniform in [-ROLL_RANGE, ROLL_RANGE]
VIVID_HAIR = ("pink", "blue", "purple")
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

#: Attribute frequencies per domain. The anime side skews to light skin, vivid and long hair,
#: as the real anime datasets do; ``balanced=True`` gives both domains the human frequencies.
FREQUENCIES: dict[str, dict[str, tuple[float, ...]]] = {
    "human": {
        "skin_tone": (0.30, 0.30, 0.20, 0.20),
        "hair_colour": (0.30, 0.30, 0.15, 0.13, 0.04, 0.04, 0.04),
        "hair_style": (0.35, 0.25, 0.20, 0.20),
        "eye_colour": (0.45, 0.30, 0.25),
        "expression": (0.40, 0.35, 0.25),
        "glasses": (0.75, 0.25),
        "background": (0.20, 0.20, 0.20, 0.20, 0.20),
        "face_width": (0.30, 0.40, 0.30),
    },
    "anime": {
        "skin_tone": (0.70, 0.20, 0.07, 0.03),
        "hair_colour": (0.12, 0.12, 0.14, 0.08, 0.18, 0.20, 0.16),
        "hair_style": (0.15, 0.45, 0.25, 0.15),
        "eye_colour": (0.25, 0.40, 0.35),
        "expression": (0.35, 0.45, 0.20),
        "glasses": (0.85, 0.15),
        "background": (0.20, 0.20, 0.20, 0.20, 0.20),
        "face_width": (0.40, 0.40, 0.20),
    },
}

_SKIN = np.array([[0.96, 0.83, 0.73], [0.86, 0.67, 0.53], [0.70, 0.50, 0.36], [0.45, 0.31, 0.22]])
_HAIR = np.array(
    [
        [0.10, 0.09, 0.09],
        [0.40, 0.25, 0.14],
        [0.92, 0.80, 0.48],
        [0.66, 0.24, 0.12],
        [0.98, 0.52, 0.72],
        [0.28, 0.50, 0.96],
        [0.58, 0.34, 0.86],
    ]
)
_EYE = np.array([[0.38, 0.22, 0.10], [0.20, 0.48, 0.92], [0.20, 0.64, 0.28]])
_BG = np.array(
    [[0.95, 0.95, 0.93], [0.62, 0.80, 0.96], [0.66, 0.90, 0.74], [0.98, 0.80, 0.64], [0.82, 0.72, 0.94]]
)
_CLOTHES = np.array(
    [[0.20, 0.25, 0.45], [0.55, 0.12, 0.15], [0.20, 0.45, 0.30], [0.30, 0.30, 0.32], [0.85, 0.85, 0.82], [0.90, 0.60, 0.15]]
)
_WIDTH = np.array([0.88, 1.0, 1.12])
_FACE_CENTRE = (0.0, 0.06)  # in image coordinates [-1, 1], y down


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------
@dataclass
class Records:
    """Attribute records of N faces, as arrays (one entry per face).

    ``attrs[name]`` are class indices (int64); ``roll`` is in degrees (positive = clockwise on
    screen, i.e. the right eye lower); ``light`` (radians) and ``clothes``/``noise_seed`` are
    nuisance values shared by both renderings of a record.
    """

    attrs: dict[str, np.ndarray]
    roll: np.ndarray
    light: np.ndarray
    clothes: np.ndarray
    noise_seed: np.ndarray

    def __len__(self) -> int:
        return len(self.roll)

    def subset(self, idx: Sequence[int] | np.ndarray | slice) -> "Records":
        return Records(
            attrs={k: v[idx] for k, v in self.attrs.items()},
            roll=self.roll[idx],
            light=self.light[idx],
            clothes=self.clothes[idx],
            noise_seed=self.noise_seed[idx],
        )

    def record(self, i: int) -> dict:
        """One record as a readable dict (class names, roll in degrees)."""
        out = {k: ATTRIBUTES[k][int(v[i])] for k, v in self.attrs.items()}
        out["roll"] = round(float(self.roll[i]), 2)
        return out

    @staticmethod
    def concat(parts: Iterable["Records"]) -> "Records":
        parts = list(parts)
        return Records(
            attrs={k: np.concatenate([p.attrs[k] for p in parts]) for k in parts[0].attrs},
            roll=np.concatenate([p.roll for p in parts]),
            light=np.concatenate([p.light for p in parts]),
            clothes=np.concatenate([p.clothes for p in parts]),
            noise_seed=np.concatenate([p.noise_seed for p in parts]),
        )


def _stream(seed: int, domain: str, split: str, key: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), DOMAINS.index(domain), SPLITS[split], key])


def sample_records(
    n: int,
    domain: str = "human",
    split: str = "train",
    seed: int = 0,
    balanced: bool = False,
    frequencies: dict[str, Sequence[float]] | None = None,
) -> Records:
    """Draw N attribute records with the frequencies of ``domain``.

    Each attribute has its own random stream and uses only ``rng.random(n)``, so the record at
    index i does not depend on N: ``sample_records(10)`` equals the first 10 of ``sample_records(50)``.
    ``balanced=True`` uses the human frequencies for both domains (the bias switch);
    ``frequencies`` overrides individual attributes, e.g. ``{"skin_tone": (0, 0, 0, 1)}``.
    """
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    table = dict(FREQUENCIES["human" if balanced else domain])
    if frequencies:
        for k, p in frequencies.items():
            if k not in ATTRIBUTES or len(p) != len(ATTRIBUTES[k]):
                raise ValueError(f"frequencies[{k!r}] must have {len(ATTRIBUTES.get(k, ()))} entries")
            table[k] = tuple(p)
    attrs = {}
    for key, name in enumerate(ATTRIBUTE_NAMES):
        p = np.asarray(table[name], dtype=np.float64)
        cdf = np.cumsum(p / p.sum())
        u = _stream(seed, domain, split, key).random(n)
        attrs[name] = np.minimum(np.searchsorted(cdf, u, side="right"), len(p) - 1).astype(np.int64)
    base = len(ATTRIBUTE_NAMES)
    roll = (_stream(seed, domain, split, base).random(n) * 2 - 1) * ROLL_RANGE
    light = (_stream(seed, domain, split, base + 1).random(n) * 2 - 1) * math.radians(60)
    clothes = np.floor(_stream(seed, domain, split, base + 2).random(n) * len(_CLOTHES)).astype(np.int64)
    noise_seed = np.floor(_stream(seed, domain, split, base + 3).random(n) * 1e6).astype(np.int64)
    return Records(attrs=attrs, roll=roll, light=light, clothes=clothes, noise_seed=noise_seed)


# --------------------------------------------------------------------------------------------
# Geometry: where the parts of a face sit, in face-local units (face centre = origin, v down)
# --------------------------------------------------------------------------------------------
_GEOMETRY = {
    "human": dict(
        face_a=0.42, face_b=0.53, chin=0.12,
        eye_x=0.165, eye_y=-0.04, eye_a=0.085, eye_b=0.042, iris_r=0.042, pupil_r=0.018,
        brow_y=-0.15, brow_t=0.026,
        nose_y=0.13, mouth_y=0.29, mouth_w=(0.115, 0.13, 0.10),
        glasses_r=0.125,
    ),
    "anime": dict(
        face_a=0.42, face_b=0.53, chin=0.42,
        eye_x=0.185, eye_y=0.05, eye_a=0.12, eye_b=0.15, iris_r=0.0, pupil_r=0.0,
        brow_y=-0.16, brow_t=0.016,
        nose_y=0.22, mouth_y=0.35, mouth_w=(0.06, 0.095, 0.075),
        glasses_r=0.175,
    ),
}


def landmarks_local(records: Records, domain: str) -> np.ndarray:
    """Five landmarks in face-local units, shape (N, 5, 2): eyes, nose tip, mouth corners."""
    g = _GEOMETRY[domain]
    ws = _WIDTH[records.attrs["face_width"]]
    mw = np.asarray(g["mouth_w"])[records.attrs["expression"]]
    n = len(records)
    pts = np.zeros((n, 5, 2))
    pts[:, 0] = np.stack([-g["eye_x"] * ws, np.full(n, g["eye_y"])], 1)
    pts[:, 1] = np.stack([g["eye_x"] * ws, np.full(n, g["eye_y"])], 1)
    pts[:, 2] = np.stack([np.zeros(n), np.full(n, g["nose_y"])], 1)
    pts[:, 3] = np.stack([-mw, np.full(n, g["mouth_y"])], 1)
    pts[:, 4] = np.stack([mw, np.full(n, g["mouth_y"])], 1)
    return pts


def landmarks_pixels(records: Records, domain: str, size: int) -> np.ndarray:
    """Five landmarks in pixel coordinates (x right, y down), shape (N, 5, 2), float32."""
    loc = landmarks_local(records, domain)
    th = np.radians(records.roll)[:, None]
    c, s = np.cos(th), np.sin(th)
    u, v = loc[..., 0], loc[..., 1]
    x = _FACE_CENTRE[0] + c * u - s * v
    y = _FACE_CENTRE[1] + s * u + c * v
    return (np.stack([x, y], -1) + 1) / 2 * size


# --------------------------------------------------------------------------------------------
# Rendering primitives (all on tensors of shape (N, H, W) in face-local units)
# --------------------------------------------------------------------------------------------
def _ellipse(u, v, cx, cy, a, b):
    """Approximate signed distance to an axis-aligned ellipse (negative inside)."""
    q = torch.sqrt(((u - cx) / a) ** 2 + ((v - cy) / b) ** 2 + 1e-12)
    return (q - 1) * torch.minimum(torch.as_tensor(a), torch.as_tensor(b))


def _capsule(u, v, x0, y0, x1, y1, r):
    """Signed distance to a segment of thickness 2r."""
    dx, dy = x1 - x0, y1 - y0
    t = (((u - x0) * dx + (v - y0) * dy) / (dx * dx + dy * dy + 1e-12)).clamp(0, 1)
    return torch.sqrt((u - x0 - t * dx) ** 2 + (v - y0 - t * dy) ** 2 + 1e-12) - r


def _cover(d, px):
    """Anti-aliased coverage of the region d < 0 (one pixel ramp)."""
    return (0.5 - d / px).clamp(0, 1)


def _hash_noise(n_seed, ix, iy):
    """Deterministic per-pixel white noise in [-1, 1] from a per-sample seed (a shader-style hash)."""
    h = torch.sin(ix * 12.9898 + iy * 78.233 + n_seed * 0.0137) * 43758.5453
    return (h - torch.floor(h)) * 2 - 1


class _Canvas:
    def __init__(self, bg):
        self.img = bg  # (N, 3, H, W)

    def paint(self, alpha, colour):
        # one fused in-place blend: img += a * (colour - img)
        self.img.lerp_(colour.expand_as(self.img) if colour.shape[-1] == 1 else colour, alpha.unsqueeze(1))


def _col(arr: np.ndarray, dev) -> torch.Tensor:
    return torch.as_tensor(arr, dtype=torch.float32, device=dev)[:, :, None, None]


def _saturate(c: np.ndarray, k: float) -> np.ndarray:
    grey = c.mean(-1, keepdims=True)
    return np.clip(grey + k * (c - grey), 0, 1)


def _render_chunk(rec: Records, domain: str, size: int) -> torch.Tensor:
    """Render a chunk of records; returns float images (N, 3, H, W) in [0, 1]."""
    anime = domain == "anime"
    g = _GEOMETRY[domain]
    n = len(rec)
    dev = torch.device("cpu")
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)[:, None, None]  # noqa: E731

    lin = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")
    gx, gy = gx[None], gy[None]
    px = 2.0 / size  # one pixel in image (and face-local) units
    th = t(np.radians(rec.roll))
    c, s = torch.cos(th), torch.sin(th)
    dx, dy = gx - _FACE_CENTRE[0], gy - _FACE_CENTRE[1]
    u = c * dx + s * dy
    v = -s * dx + c * dy

    A = rec.attrs
    ws = t(_WIDTH[A["face_width"]])
    skin = _SKIN[A["skin_tone"]]
    hair = _HAIR[A["hair_colour"]]
    eye_c = _EYE[A["eye_colour"]]
    bg = _BG[A["background"]]
    clothes = _CLOTHES[rec.clothes]
    if anime:
        skin = np.clip(skin * 1.04 + 0.02, 0, 1)
        hair = _saturate(hair, 1.3)
        eye_c = _saturate(eye_c, 1.3)
        clothes = _saturate(clothes, 1.2)
    else:
        hair = _saturate(hair, 0.8)  # dyed hair in a photo is less vivid than in a drawing
    style = A["hair_style"]
    is_long, is_bangs, is_bob = (t((style == k).astype(np.float32)) for k in (1, 2, 3))
    expr = A["expression"]
    smile, open_m = t((expr == 1).astype(np.float32)), t((expr == 2).astype(np.float32))
    neutral = 1 - smile - open_m
    glasses = t(A["glasses"].astype(np.float32))
    seedt = t(rec.noise_seed.astype(np.float32) % 9973)
    ink = torch.tensor([0.13, 0.08, 0.09])[None, :, None, None]
    line = max(0.022, 1.1 * px)  # anime outline thickness

    # light direction, in face-local coordinates (x right, y down, z towards viewer)
    lt = t(rec.light)
    lx, ly, lz = torch.sin(lt) * 0.8, torch.full_like(lt, -0.35), torch.cos(lt) * 0.8

    def shade_sphere(cu, cv, a, b):
        nx = ((u - cu) / a).clamp(-1, 1)
        ny = ((v - cv) / b).clamp(-1, 1)
        nz = (1 - nx**2 - ny**2).clamp(min=0).sqrt()
        return (nx * lx + ny * ly + nz * lz).clamp(-1, 1)

    # ---- background
    bgc = _col(bg, dev)
    if anime:
        canvas = _Canvas(bgc.expand(n, 3, size, size).clone())
    else:
        vign = 1 - 0.18 * (gx**2 + gy**2)
        grad = 1 + 0.08 * (-gy)
        canvas = _Canvas(bgc * (vign * grad).unsqueeze(1))

    # ---- shoulders and neck
    d_sh = _ellipse(u, v, 0.0, 1.0, 0.95 * ws, 0.42)
    cl = _col(clothes, dev)
    if anime:
        canvas.paint(_cover(d_sh, px), cl)
        canvas.paint(_cover(d_sh.abs() - line / 2, px), ink)
    else:
        canvas.paint(_cover(d_sh, px), cl * (0.85 + 0.15 * shade_sphere(0, 1.0, 0.95, 0.42)).unsqueeze(1))
    d_neck = torch.maximum((u.abs() - 0.15 * ws), (0.25 - v))
    d_neck = torch.maximum(d_neck, v - 0.85)
    skc = _col(skin, dev)
    neck_col = skc * (0.72 if anime else 0.68)
    canvas.paint(_cover(d_neck, px), neck_col)
    if anime:
        canvas.paint(_cover(torch.maximum(d_neck.abs() - line / 2, v - 0.75), px), ink)

    # ---- back hair (long, bob) drawn behind the face
    hc = _col(hair, dev)
    if anime:
        hair_fill = hc
    else:
        strands = 1 + 0.14 * torch.sin(55 * u + 5 * torch.sin(9 * v + seedt) + seedt)
        hair_fill = hc * strands.unsqueeze(1)
    d_long = torch.maximum(_ellipse(u, v, 0.0, 0.22, 0.62 * ws, 0.86), -0.15 - v)
    d_bob = torch.maximum(_ellipse(u, v, 0.0, 0.0, 0.6 * ws, 0.52), v - 0.3)
    back = torch.maximum(_cover(d_long, px) * is_long, _cover(d_bob, px) * is_bob)
    canvas.paint(back, hair_fill)
    if anime:
        d_back = torch.where(is_long > 0, d_long, d_bob)
        canvas.paint(_cover(d_back.abs() - line / 2, px) * (is_long + is_bob), ink)

    # ---- face (pointier chin in the anime style)
    fa, fb = g["face_a"] * ws, g["face_b"]
    narrowing = 1 - g["chin"] * (v.clamp(min=0) / fb) ** 1.6
    u_face = u / narrowing.clamp(min=0.2)
    d_face = _ellipse(u_face, v, 0.0, 0.0, fa, fb)
    face_a = _cover(d_face, px)
    ndl = shade_sphere(0.0, 0.0, fa, fb)
    if anime:
        shadow = torch.sigmoid((0.15 - ndl) / 0.02)  # hard two-tone terminator
        shadow_col = _col(np.clip(skin * np.array([0.9, 0.8, 0.8]), 0, 1), dev)
        face_col = skc * (1 - shadow.unsqueeze(1)) + shadow_col * shadow.unsqueeze(1)
    else:
        tex = (
            0.5 * torch.sin(63 * u + 17 * v + seedt) * torch.sin(41 * v - 23 * u + 2 * seedt)
            + 0.5 * _hash_noise(seedt, gx * size, gy * size)
        )
        lum = 0.62 + 0.38 * ndl.clamp(min=-0.2) + 0.035 * tex
        cheek = torch.exp(-(((u.abs() - 0.22 * ws) / 0.09) ** 2 + ((v - 0.12) / 0.07) ** 2))
        face_col = skc * lum.unsqueeze(1) + torch.tensor([0.06, -0.02, -0.02])[None, :, None, None] * cheek.unsqueeze(1)
    canvas.paint(face_a, face_col)
    if anime:
        canvas.paint(_cover(d_face.abs() - line / 2, px), ink)

    # ---- hair cap (with hairline by style) drawn over the forehead
    cap = _ellipse(u, v, 0.0, -0.1, 0.485 * ws, 0.57)
    uu = u / ws
    hl_short = -0.30 + 0.9 * uu**2
    hl_bangs = -0.15 + 0.45 * uu**2
    if anime:
        hl_bangs = hl_bangs + 0.045 * torch.abs(torch.sin(uu * 26)) - 0.02
    hl_bob = -0.22 + 0.3 * uu + 0.9 * uu**2
    hl_long = -0.30 + 1.1 * uu**2
    is_short = 1 - is_long - is_bangs - is_bob
    hairline = hl_short * is_short + hl_long * is_long + hl_bangs * is_bangs + hl_bob * is_bob
    d_cap = torch.maximum(cap, v - hairline)
    cap_a = _cover(d_cap, px)
    if anime:
        hn = shade_sphere(0.0, -0.1, 0.485, 0.57)
        h_shadow = torch.sigmoid((0.05 - hn) / 0.02).unsqueeze(1)
        hcol = hc * (1 - 0.25 * h_shadow)
        q = torch.sqrt((u / (0.485 * ws)) ** 2 + ((v + 0.1) / 0.57) ** 2)
        band = (torch.sigmoid((0.05 - (q - 0.72).abs()) / 0.01) * (v < -0.3).float()).unsqueeze(1)
        hcol = hcol * (1 - 0.6 * band) + torch.clamp(hc * 1.35 + 0.15, 0, 1) * 0.6 * band
        canvas.paint(cap_a, hcol)
        canvas.paint(_cover(d_cap.abs() - line / 2, px), ink)
    else:
        hn = shade_sphere(0.0, -0.1, 0.485, 0.57)
        canvas.paint(cap_a, hair_fill * (0.7 + 0.3 * hn.clamp(min=-0.3)).unsqueeze(1))

    # ---- the small parts below all lie within 0.47 of the face centre for any roll: evaluate
    # them on that window only (a fifth of the pixels), painting through a view of the canvas
    full = canvas.img
    lo = lambda z: max(0, int(math.floor((z + 1) / 2 * size)) - 1)  # noqa: E731
    hi = lambda z: min(size, int(math.ceil((z + 1) / 2 * size)) + 1)  # noqa: E731
    r0, r1 = lo(_FACE_CENTRE[1] - 0.47), hi(_FACE_CENTRE[1] + 0.47)
    c0, c1 = lo(_FACE_CENTRE[0] - 0.47), hi(_FACE_CENTRE[0] + 0.47)
    u, v = u[..., r0:r1, c0:c1], v[..., r0:r1, c0:c1]
    canvas = _Canvas(full[..., r0:r1, c0:c1])

    # ---- nose
    nose_y = g["nose_y"]
    if anime:
        d_nose = _capsule(u, v, 0.0, nose_y - 0.03, 0.012, nose_y, 0.008 + 0.35 * px)
        canvas.paint(_cover(d_nose, px) * 0.8, _col(np.clip(skin * 0.55, 0, 1), dev))
    else:
        side = torch.sign(-torch.sin(lt))
        blob = torch.exp(-(((u - side * 0.04) / 0.035) ** 2 + ((v - (nose_y - 0.07)) / 0.1) ** 2))
        canvas.paint(0.35 * blob, skc * 0.6)
        tip = torch.exp(-((u / 0.05) ** 2 + ((v - nose_y + 0.01) / 0.035) ** 2))
        canvas.paint(0.25 * tip, torch.clamp(skc * 1.12, 0, 1))
        for sx in (-1, 1):
            d_nos = _ellipse(u, v, sx * 0.035, nose_y + 0.02, 0.018, 0.011)
            canvas.paint(_cover(d_nos, px) * 0.7, skc * 0.35)

    # ---- mouth
    my = g["mouth_y"]
    mw = [w for w in g["mouth_w"]]
    lip = _col(np.clip(skin * np.array([0.95, 0.55, 0.55]) + np.array([0.05, 0, 0]), 0, 1), dev)
    dark = torch.tensor([0.35, 0.05, 0.08])[None, :, None, None]
    if anime:
        d_neutral = _capsule(u, v, -mw[0], my, mw[0], my, 0.007 + 0.4 * px)
        # smile: a deep upward arc; open: a "D"-shaped mouth with a tongue, clearly taller than it is wide
        d_sm = _ellipse(u, v, 0.0, my - 0.06, mw[1], 0.075).abs() - (0.009 + 0.4 * px)
        d_smile = torch.maximum(d_sm, (my - 0.03) - v)
        d_open = torch.maximum(_ellipse(u, v, 0.0, my - 0.015, mw[2], 0.09), (my - 0.015) - v)
        canvas.paint(_cover(d_neutral, px) * neutral + _cover(d_smile, px) * smile, ink)
        canvas.paint(_cover(d_open, px) * open_m, dark)
        tongue = _ellipse(u, v, 0.0, my + 0.04, mw[2] * 0.6, 0.02)
        canvas.paint(_cover(torch.maximum(tongue, d_open), px) * open_m, torch.tensor([0.9, 0.45, 0.5])[None, :, None, None])
        canvas.paint(_cover(d_open.abs() - line / 2, px) * open_m, ink)
    else:
        d_lips_n = _ellipse(u, v, 0.0, my, mw[0], 0.032)
        d_sm_outer = _ellipse(u, v, 0.0, my - 0.07, mw[1], 0.11)
        d_lips_s = torch.maximum(torch.maximum(d_sm_outer, -_ellipse(u, v, 0.0, my - 0.085, mw[1] * 0.95, 0.1)), (my - 0.06) - v)
        # a smile shows a band of teeth inside the crescent
        d_teeth_s = torch.maximum(_ellipse(u, v, 0.0, my - 0.07, mw[1] * 0.85, 0.095), (my - 0.01) - v)
        d_open_out = _ellipse(u, v, 0.0, my, mw[2], 0.065)
        lips = _cover(d_lips_n, px) * neutral + _cover(d_lips_s, px) * smile + _cover(d_open_out, px) * open_m
        canvas.paint(lips * 0.9, lip)
        canvas.paint(_cover(d_teeth_s, px) * smile * 0.9, torch.tensor([0.93, 0.92, 0.88])[None, :, None, None])
        d_gap = _capsule(u, v, -mw[0] * 0.9, my, mw[0] * 0.9, my, 0.004 + 0.3 * px)
        canvas.paint(_cover(d_gap, px) * neutral * 0.8, dark)
        d_open_in = _ellipse(u, v, 0.0, my + 0.002, mw[2] * 0.78, 0.045)
        canvas.paint(_cover(d_open_in, px) * open_m, dark)
        teeth = torch.maximum(d_open_in, v - (my - 0.018))
        canvas.paint(_cover(teeth, px) * open_m, torch.tensor([0.93, 0.92, 0.88])[None, :, None, None])

    # ---- eyes and brows
    ex, ey = g["eye_x"] * ws, g["eye_y"]
    ec = _col(eye_c, dev)
    brow_col = _col(np.clip(hair * 0.6, 0, 1), dev)
    white = torch.tensor([0.97, 0.97, 0.96])[None, :, None, None]
    for sx in (-1.0, 1.0):
        cx = sx * ex
        if anime:
            ea, eb = g["eye_a"], g["eye_b"]
            d_eye = _ellipse(u, v, cx, ey, ea, eb)
            canvas.paint(_cover(d_eye, px), white)
            d_iris = torch.maximum(_ellipse(u, v, cx, ey + 0.015, ea * 0.78, eb * 0.85), d_eye)
            grad = (0.65 + 0.35 * ((v - (ey - eb)) / (2 * eb)).clamp(0, 1)).unsqueeze(1)
            canvas.paint(_cover(d_iris, px), ec * grad)
            d_pupil = _ellipse(u, v, cx, ey + 0.02, ea * 0.33, eb * 0.42)
            canvas.paint(_cover(d_pupil, px), ink)
            d_hl = _ellipse(u, v, cx - 0.035, ey - 0.045, 0.032, 0.036)
            canvas.paint(_cover(d_hl, px), white)
            d_hl2 = _ellipse(u, v, cx + 0.03, ey + 0.06, 0.015, 0.015)
            canvas.paint(_cover(d_hl2, px) * 0.9, white)
            # thick upper lash line with a wing at the outer corner, thin lower line
            d_lash = torch.maximum(d_eye.abs() - 0.022 - 0.4 * px, v - (ey - eb * 0.35))
            d_wing = _capsule(u, v, cx + sx * ea * 0.8, ey - eb * 0.55, cx + sx * (ea + 0.045), ey - eb * 0.75, 0.012)
            canvas.paint(_cover(torch.minimum(d_lash, d_wing), px), ink)
            d_low = torch.maximum(d_eye.abs() - line / 2, (ey + eb * 0.5) - v)
            canvas.paint(_cover(d_low, px) * 0.8, ink)
            d_brow = _capsule(u, v, cx - sx * 0.07, g["brow_y"] - 0.06, cx + sx * 0.09, g["brow_y"] - 0.08, g["brow_t"] / 2 + 0.3 * px)
            canvas.paint(_cover(d_brow, px), brow_col)
        else:
            ea, eb = g["eye_a"], g["eye_b"]
            d_eye = _ellipse(u, v, cx, ey, ea, eb)
            canvas.paint(_cover(d_eye, px), white * 0.92)
            d_iris = torch.maximum(_ellipse(u, v, cx, ey, g["iris_r"], g["iris_r"]), d_eye)
            canvas.paint(_cover(d_iris, px), ec)
            d_pupil = _ellipse(u, v, cx, ey, g["pupil_r"], g["pupil_r"])
            canvas.paint(_cover(d_pupil, px), ink * 0.5)
            d_lid = torch.maximum(d_eye.abs() - 0.006 - 0.3 * px, v - ey)
            canvas.paint(_cover(d_lid, px) * 0.8, skc * 0.35)
            crease = torch.maximum(_ellipse(u, v, cx, ey - 0.012, ea * 1.1, eb * 1.7).abs() - 0.005, v - (ey - 0.03))
            canvas.paint(_cover(crease, px) * 0.35, skc * 0.5)
            d_brow = _capsule(u, v, cx - sx * 0.075, g["brow_y"] + 0.005, cx + sx * 0.085, g["brow_y"] - 0.01, g["brow_t"] / 2)
            canvas.paint(_cover(d_brow, px) * 0.85, brow_col)

    # ---- glasses
    gr = g["glasses_r"]
    frame = torch.tensor([0.08, 0.07, 0.07])[None, :, None, None]
    d_gl = torch.minimum(_ellipse(u, v, -ex, ey, gr, gr * 0.85).abs(), _ellipse(u, v, ex, ey, gr, gr * 0.85).abs())
    d_gl = d_gl - (0.012 + 0.35 * px)
    d_bridge = _capsule(u, v, -ex + gr, ey - 0.01, ex - gr, ey - 0.01, 0.01 + 0.3 * px)
    canvas.paint(_cover(torch.minimum(d_gl, d_bridge), px) * glasses, frame)
    if not anime:
        lens = torch.minimum(_ellipse(u, v, -ex, ey, gr, gr * 0.85), _ellipse(u, v, ex, ey, gr, gr * 0.85))
        canvas.paint(_cover(lens, px) * glasses * 0.08, white)

    img = full
    if not anime:
        # camera: a slight blur and sensor noise
        img = _gaussian_blur(img, sigma=0.5 * size / 64)
        img = img + 0.012 * _hash_noise(seedt + 7, gx * size, gy * size).unsqueeze(1)
    return img.clamp(0, 1)


def _gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Approximate Gaussian blur by repeated [1, 2, 1] / 4 passes (each adds variance 0.5 px^2)."""
    passes = int(round(2 * sigma**2))
    for _ in range(passes):
        p = F.pad(img, (1, 1, 1, 1), mode="replicate")
        h = 0.25 * (p[..., :, :-2] + p[..., :, 2:]) + 0.5 * p[..., :, 1:-1]
        img = 0.25 * (h[..., :-2, :] + h[..., 2:, :]) + 0.5 * h[..., 1:-1, :]
    return img


def render(records: Records, domain: str, size: int = 64, chunk: int | None = None) -> torch.Tensor:
    """Render records in one style. Returns uint8 images (N, 3, size, size) (0..255).

    Rendering happens at 2x for sizes below 64 and is downsampled (extra anti-aliasing for tiny
    faces); the result does not depend on ``chunk``.
    """
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    if not 32 <= size <= 256:
        raise ValueError(f"ToyFaces renders sizes 32 to 256, got {size}")
    n = len(records)
    scale = 2 if size < 64 else 1
    rs = size * scale
    chunk = chunk or max(16, (1 << 22) // (rs * rs))
    out = torch.empty((n, 3, size, size), dtype=torch.uint8)
    with torch.no_grad():
        for start in range(0, n, chunk):
            sl = slice(start, min(n, start + chunk))
            img = _render_chunk(records.subset(sl), domain, rs)
            if scale > 1:
                img = F.avg_pool2d(img, scale)
            out[sl] = (img * 255 + 0.5).clamp(0, 255).to(torch.uint8)
    return out


# --------------------------------------------------------------------------------------------
# Rendered sets with ground truth, cached on disk
# --------------------------------------------------------------------------------------------
@dataclass
class ToySet(torch.utils.data.Dataset):
    """A rendered ToyFaces set with its ground truth.

    images: uint8 (N, 3, H, W); attrs: name -> int64 (N,); roll: float32 (N,) degrees;
    landmarks: float32 (N, 5, 2) pixels (x, y). ``ds[i]`` returns a float image (3, H, W) in [-1, 1].
    """

    images: torch.Tensor
    records: Records
    domain: str
    size: int
    split: str = "train"
    seed: int = 0
    balanced: bool = False
    _counterpart: "ToySet | None" = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i].float().div(127.5).sub(1)

    @property
    def attrs(self) -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(v) for k, v in self.records.attrs.items()}

    @property
    def roll(self) -> torch.Tensor:
        return torch.as_tensor(self.records.roll, dtype=torch.float32)

    @property
    def landmarks(self) -> torch.Tensor:
        return torch.as_tensor(landmarks_pixels(self.records, self.domain, self.size), dtype=torch.float32)

    def tensor(self, idx: Sequence[int] | torch.Tensor | slice | None = None) -> torch.Tensor:
        """Float images in [-1, 1], shape (N, 3, H, W); all of them or those at ``idx``."""
        x = self.images if idx is None else self.images[idx]
        return x.float().div(127.5).sub(1)

    def unit(self, idx=None) -> torch.Tensor:
        """Float images in [0, 1] (for metrics and plots)."""
        x = self.images if idx is None else self.images[idx]
        return x.float().div(255)

    def counterpart(self) -> "ToySet":
        """The same records rendered in the other style: the ground-truth translation."""
        if self._counterpart is None:
            other = "anime" if self.domain == "human" else "human"
            imgs = render(self.records, other, self.size)
            self._counterpart = ToySet(imgs, self.records, other, self.size, self.split, self.seed, self.balanced)
            self._counterpart._counterpart = self
        return self._counterpart

    def subset(self, idx: Sequence[int] | np.ndarray) -> "ToySet":
        idx = np.asarray(idx)
        sub = ToySet(self.images[torch.as_tensor(idx)], self.records.subset(idx), self.domain, self.size, self.split, self.seed, self.balanced)
        if self._counterpart is not None:
            sub._counterpart = ToySet(self._counterpart.images[torch.as_tensor(idx)], sub.records, self._counterpart.domain, self.size, self.split, self.seed, self.balanced)
        return sub

    def record(self, i: int) -> dict:
        return self.records.record(i)


def _cache_path(domain, n, size, split, seed, balanced, with_counterpart) -> Path:
    from anime_lib.config import data_root

    tag = f"{domain}_{split}_n{n}_s{size}_seed{seed}_{'bal' if balanced else 'bias'}{'_pair' if with_counterpart else ''}_v{RENDER_VERSION}"
    return data_root() / "toyfaces" / f"{tag}.pt"


def toyfaces(
    domain: str = "human",
    n: int = 1000,
    size: int = 64,
    split: str = "train",
    seed: int = 0,
    balanced: bool = False,
    with_counterpart: bool = False,
    cache: bool = True,
) -> ToySet:
    """A ToyFaces set: N faces of ``domain`` drawn with that domain's attribute frequencies.

    ``with_counterpart=True`` also renders the ground-truth translations (``ds.counterpart()``).
    With ``cache=True`` the rendered uint8 images are stored under ``$ANIME_LIB_DATA/toyfaces`` and
    reloaded on the next call (a 10,000-image set at 64 px reloads in well under a second).
    """
    records = sample_records(n, domain, split, seed, balanced)
    path = _cache_path(domain, n, size, split, seed, balanced, with_counterpart)
    if cache and path.exists():
        try:
            blob = torch.load(path, weights_only=True)
            ds = ToySet(blob["images"], records, domain, size, split, seed, balanced)
            if with_counterpart:
                other = "anime" if domain == "human" else "human"
                ds._counterpart = ToySet(blob["counterpart"], records, other, size, split, seed, balanced)
                ds._counterpart._counterpart = ds
            return ds
        except Exception:
            path.unlink(missing_ok=True)  # a damaged cache file is simply rendered again
    ds = ToySet(render(records, domain, size), records, domain, size, split, seed, balanced)
    if with_counterpart:
        ds.counterpart()
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = {"images": ds.images}
        if with_counterpart:
            blob["counterpart"] = ds.counterpart().images
        tmp = path.with_suffix(".tmp")
        torch.save(blob, tmp)
        tmp.replace(path)
    return ds


def render_one(domain: str = "human", size: int = 128, roll: float = 0.0, light: float = 0.0, clothes: int = 0, noise_seed: int = 1, **attrs: str | int) -> torch.Tensor:
    """Render a single face from attribute names, e.g. ``render_one('anime', hair_colour='pink')``.

    Unspecified attributes take class 0 (or "medium" face width). Returns a float image (3, H, W)
    in [0, 1]. Handy for the widget explorer and for figures.
    """
    values = {k: 0 for k in ATTRIBUTE_NAMES}
    values["face_width"] = 1
    for k, v in attrs.items():
        if k not in ATTRIBUTES:
            raise ValueError(f"unknown attribute {k!r}; known: {ATTRIBUTE_NAMES}")
        values[k] = ATTRIBUTES[k].index(v) if isinstance(v, str) else int(v)
    rec = Records(
        attrs={k: np.array([v]) for k, v in values.items()},
        roll=np.array([float(roll)]),
        light=np.array([float(light)]),
        clothes=np.array([int(clothes)]),
        noise_seed=np.array([int(noise_seed)]),
    )
    return render(rec, domain, size)[0].float() / 255


def attribute_table(records_by_domain: dict[str, Records]) -> "list[dict]":
    """Rows (attribute, class, share per domain) for an EDA-style frequency table."""
    rows = []
    for name, classes in ATTRIBUTES.items():
        for ci, cname in enumerate(classes):
            row = {"attribute": name, "class": cname}
            for dom, rec in records_by_domain.items():
                row[dom] = float(np.mean(rec.attrs[name] == ci))
            rows.append(row)
    return rows
