"""Stylisation helpers: CartoonGAN's edge smoothing.

:func:`edge_smooth` (uint8 arrays) and :func:`edge_smooth_tensor` (batches in [-1, 1]) blur a cartoon
only near its edges; CartoonGAN and AnimeGAN train their discriminators to tell these "fake cartoons"
with soft edges from the real, crisp ones.
"""
from __future__ import annotations

import numpy as np
import torch

from anime_lib.data.images import require_cv2

__all__ = ["edge_smooth", "edge_smooth_tensor"]


# --------------------------------------------------------------------------------------------
# CartoonGAN edge smoothing
# --------------------------------------------------------------------------------------------


def _edge_mask(img_uint8: np.ndarray, kernel: int) -> np.ndarray:
    """Boolean (H, W): Canny(100, 200) edges of the grey image, dilated by a kernel x kernel square."""
    cv2 = require_cv2()
    grey = img_uint8 if img_uint8.ndim == 2 else cv2.cvtColor(img_uint8, cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(grey, 100, 200)
    return cv2.dilate(edges, np.ones((kernel, kernel), np.uint8)) > 0


def _check_kernel(kernel: int) -> None:
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel must be a positive odd number, got {kernel}")


def edge_smooth(img_uint8_rgb: np.ndarray, kernel: int = 5) -> np.ndarray:
    """CartoonGAN's edge-smoothed copy of a cartoon: blur only near its edges.

    Input: uint8 array (H, W, 3) RGB or (H, W) grey, values 0..255. Output: same shape and dtype.
    Canny(100, 200) on the grey image, dilated with a kernel x kernel square, marks the edge zone;
    there the image is replaced by its kernel x kernel Gaussian blur, elsewhere it is unchanged.
    """
    cv2 = require_cv2()
    _check_kernel(kernel)
    img = np.asarray(img_uint8_rgb)
    if img.dtype != np.uint8:
        raise TypeError(f"edge_smooth expects uint8 values 0..255, got {img.dtype}; for tensors use edge_smooth_tensor")
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"edge_smooth expects (H, W, 3) or (H, W), got shape {img.shape}")
    mask = _edge_mask(img, kernel)
    blurred = cv2.GaussianBlur(img, (kernel, kernel), 0)
    if img.ndim == 3:
        mask = mask[..., None]
    return np.where(mask, blurred, img)


def edge_smooth_tensor(x: torch.Tensor, kernel: int = 5) -> torch.Tensor:
    """Batch version of :func:`edge_smooth`: (N, 3, H, W) in [-1, 1] -> (N, 3, H, W) in [-1, 1].

    Canny needs 8-bit images, so the edge masks are found with OpenCV on a uint8 copy (CPU); the
    blur and the blend run in torch on ``x``'s device and dtype, so pixels away from edges keep
    their exact values.
    """
    cv2 = require_cv2()
    _check_kernel(kernel)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"edge_smooth_tensor expects (N, 3, H, W), got shape {tuple(x.shape)}")
    with torch.no_grad():
        as_uint8 = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        as_uint8 = as_uint8.permute(0, 2, 3, 1).cpu().numpy()
        masks = np.stack([_edge_mask(np.ascontiguousarray(im), kernel) for im in as_uint8])
    mask = torch.from_numpy(masks).to(x.device)[:, None]  # (N, 1, H, W)

    # The same Gaussian as cv2.GaussianBlur(ksize=kernel, sigma=0), as a separable depthwise conv;
    # torch's "reflect" padding equals OpenCV's default border (BORDER_REFLECT_101).
    g = torch.from_numpy(cv2.getGaussianKernel(kernel, 0)[:, 0]).to(x.device, x.dtype)
    pad = kernel // 2
    blurred = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
    blurred = torch.nn.functional.conv2d(blurred, g.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    blurred = torch.nn.functional.conv2d(blurred, g.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    return torch.where(mask, blurred, x)
