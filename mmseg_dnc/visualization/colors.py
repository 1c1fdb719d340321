"""Colours of the pictures: classes by their palette, sub-centroids by index.

No pyplot: importing this leaves the caller's matplotlib backend as it is.
"""
from typing import Sequence

import matplotlib
import numpy as np


def subcentroid_colors(k: int) -> np.ndarray:
    """The colours of sub-centroid indices for K = ``k``: (10, 3) uint8 (tab10)
    up to K = 10, else (20, 3) (tab20); index ``k % len(colours)``. The same
    for every class."""
    cmap = matplotlib.colormaps['tab10' if k <= 10 else 'tab20']
    return (np.asarray(cmap.colors)[:, :3] * 255).astype(np.uint8)


def colorize(labels: np.ndarray, palette: Sequence, ignore: int = 255) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8 colours of ``palette``; ``ignore`` black."""
    colors = np.zeros((256, 3), np.uint8)
    colors[:len(palette)] = np.asarray(palette, np.uint8)
    out = colors[np.clip(labels, 0, 255)]
    out[labels == ignore] = 0
    return out


def boundaries(labels: np.ndarray) -> np.ndarray:
    """(H, W) class indices -> (H, W) bool: pixels on a class boundary."""
    edge = np.zeros(labels.shape, bool)
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    return edge
