"""Shared test helpers."""

from __future__ import annotations

import torch


def pyramid(h: int, w: int, channels=(40, 112, 320), batch: int = 2, first_level: int = 3) -> list[torch.Tensor]:
    """Random backbone features for an h x w image, sized like a ceil-halving backbone."""
    out = []
    for i, c in enumerate(channels):
        s = 2 ** (first_level + i)
        out.append(torch.randn(batch, c, -(-h // s), -(-w // s)))
    return out
