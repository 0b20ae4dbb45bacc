"""Analytic steerable filters (paper section 4.1): the first derivative of a Gaussian at angle theta.

``f_theta = cos(theta) * G_x + sin(theta) * G_y`` with ``G(x, y) = exp(-(x^2 + y^2) / (2 sigma^2))
/ (2 pi sigma^2)`` sampled on the integer grid ``-(size // 2) .. size // 2``; ``x`` runs along
columns (to the right), ``y`` along rows (down). Applied with :func:`dfn.ops.dynamic_conv`
(cross-correlation, zero padding), as the generated filters are.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def gaussian_derivatives(size: int = 9, sigma: float = 1.0, dtype: torch.dtype = torch.float32
                         ) -> tuple[Tensor, Tensor]:
    """``(G_x, G_y)``, each ``(size, size)``."""
    r = torch.arange(size, dtype=torch.float64) - size // 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    g = torch.exp(-(x ** 2 + y ** 2) / (2 * sigma ** 2)) / (2 * math.pi * sigma ** 2)
    return (-x / sigma ** 2 * g).to(dtype), (-y / sigma ** 2 * g).to(dtype)


def steerable_filters(angles: Tensor, size: int = 9, sigma: float = 1.0) -> Tensor:
    """``angles (B,)`` in radians -> filters ``(B, size, size)`` in the dtype of ``angles``."""
    gx, gy = gaussian_derivatives(size, sigma, angles.dtype)
    gx, gy = gx.to(angles.device), gy.to(angles.device)
    return torch.cos(angles)[:, None, None] * gx + torch.sin(angles)[:, None, None] * gy
