"""Value ranges, in one place: images are in [-1, 1] inside models and in [0, 1] for metrics and plots.

Feeding one range where the other is expected is the most common bug in this field; these two functions
are the course's only conversions, and they refuse values that are clearly in yet another range (0-255).
"""
from __future__ import annotations

from typing import Tuple

import torch

__all__ = ["to_unit_range", "to_model_range"]

ValueRange = Tuple[float, float]


def to_unit_range(images: torch.Tensor, value_range: ValueRange = (-1.0, 1.0)) -> torch.Tensor:
    """Map images from ``value_range`` (models: [-1, 1]) to [0, 1] for metrics and plots.

    Returns float32 on the CPU, detached, clipped. Values far outside ``value_range`` (more than half its
    width beyond it, such as 0-255 images) raise ``ValueError`` instead of silently clipping to white.
    """
    low, high = float(value_range[0]), float(value_range[1])
    if not high > low:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")
    x = images.detach().to("cpu", torch.float32)
    margin = 0.5 * (high - low)
    if x.numel() and (float(x.min()) < low - margin or float(x.max()) > high + margin):
        raise ValueError(f"expected images in [{low:g}, {high:g}], got values in [{float(x.min()):.2f}, "
                         f"{float(x.max()):.2f}] (0-255 images: use to_model_range first)")
    return ((x - low) / (high - low)).clamp_(0.0, 1.0)


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats or uint8 0-255 -> [-1, 1] for models (float32, same device, clipped)."""
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    if x.numel() and (float(x.min()) < -0.5 or float(x.max()) > 1.5):
        raise ValueError(f"expected images in [0, 1] (or uint8), got values in [{float(x.min()):.2f}, "
                         f"{float(x.max()):.2f}]")
    return x.clamp(0, 1) * 2 - 1
