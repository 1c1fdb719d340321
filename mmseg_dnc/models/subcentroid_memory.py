"""Per-class FIFO memory of recent pixel embeddings (pure functions).

Shape legend: C classes, S slots per class, D embedding width, M pixels.

With small batches a class may have a handful of pixels in a step; the memory
lets Sinkhorn-Knopp cluster them together with the recent past (DNC.md, 8).
The memory is three buffers: ``memory`` (C, S, D), ``filled`` (C,) and
``pointer`` (C,), the next slot to write for each class.
"""
from typing import Tuple

import torch
from torch import Tensor


def stored_entries(memory: Tensor, filled: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """The filled slots, flattened.

    Args:
        memory (Tensor): (C, S, D).
        filled (Tensor): (C,) number of filled slots per class.

    Returns:
        tuple: embeddings (Q, D), their classes (Q,) and the (C, S) mask of
        filled slots, Q = filled.sum().
    """
    num_classes, slots, _ = memory.shape
    mask = torch.arange(slots, device=memory.device)[None, :] < filled[:, None]
    classes = torch.arange(num_classes, device=memory.device)[:, None].expand(-1, slots)
    return memory[mask], classes[mask], mask


@torch.no_grad()
def enqueue_(memory: Tensor, filled: Tensor, pointer: Tensor, embeddings: Tensor,
             labels: Tensor, per_step: int) -> None:
    """Write up to ``per_step`` random pixels of each class into its ring.

    All classes at once: pixels are shuffled, grouped by class with a stable
    sort, and each keeps its rank within its class as its write offset.

    Args:
        memory (Tensor): (C, S, D), updated in place.
        filled, pointer (Tensor): (C,) int64, updated in place.
        embeddings (Tensor): (M, D) detached embeddings.
        labels (Tensor): (M,) their classes.
        per_step (int): most pixels written per class per call.
    """
    num_classes, slots, _ = memory.shape
    if labels.numel() == 0:
        return
    shuffle = torch.randperm(labels.numel(), device=labels.device)
    order = shuffle[torch.argsort(labels[shuffle], stable=True)]
    sorted_labels = labels[order]
    counts = torch.bincount(labels, minlength=num_classes)
    first = torch.cumsum(counts, 0) - counts
    rank = torch.arange(labels.numel(), device=labels.device) - first[sorted_labels]
    limit = min(per_step, slots)
    keep = rank < limit
    cls = sorted_labels[keep]
    slot = (pointer[cls] + rank[keep]) % slots
    memory[cls, slot] = embeddings[order[keep]].to(memory.dtype)
    written = counts.clamp(max=limit)
    pointer.copy_((pointer + written) % slots)
    filled.copy_((filled + written).clamp(max=slots))
