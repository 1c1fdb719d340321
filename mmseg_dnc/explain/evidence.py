"""Which training pixels a sub-centroid is shown by: distinct images, distinct
sequences first, and whether they sit on the image's edge.

Torch only. Shape legend: P candidates kept per sub-centroid (at most one per
image), N sub-centroids (C*K flattened), T pixels shown per sub-centroid, C
classes, K sub-centroids per class.
"""
import os.path as osp

import torch
from torch import Tensor


def sequence_key(path: str) -> str:
    """The video sequence an image belongs to: its file name without the
    extension, up to its last '_' (CamVid ``0001TP_006690.png`` -> ``0001TP``,
    ``Seq05VD_f00030.png`` -> ``Seq05VD``; ADE20K ``ADE_train_00000001.jpg``
    -> ``ADE_train``, one sequence for all). A name without '_' is its own
    sequence."""
    stem = osp.splitext(osp.basename(path))[0]
    return stem.rsplit('_', 1)[0] if '_' in stem else stem


def _pick_column(scores: list, images: list, sequences: list, top_n: int) -> list:
    """Candidate rows of one sub-centroid, best first (see distinct_evidence)."""
    order = sorted((p for p, s in enumerate(scores) if s != float('-inf')),
                   key=lambda p: -scores[p])
    chosen, seen_images, seen_sequences = [], set(), set()
    for new_sequences_only in (True, False):
        for p in order:
            if len(chosen) == top_n:
                break
            if images[p] in seen_images or (new_sequences_only
                                            and sequences[p] in seen_sequences):
                continue
            chosen.append(p)
            seen_images.add(images[p])
            seen_sequences.add(sequences[p])
    return sorted(chosen, key=lambda p: -scores[p])


def distinct_evidence(score: Tensor, image: Tensor, sequence: Tensor, top_n: int) -> Tensor:
    """Choose each sub-centroid's T shown pixels among its candidates.

    Greedily by similarity, one candidate per image, and no sequence twice
    until every sequence with a candidate has one; then the best remaining
    candidates of images not chosen yet fill the free places. The most similar
    candidate is always chosen first, so T=1 gives the single nearest pixel.

    Args:
        score (Tensor): (P, N) similarity, -inf where there is no candidate.
        image (Tensor): (P, N) image index of each candidate.
        sequence (Tensor): (P, N) sequence index of each candidate's image.
        top_n (int): T.

    Returns:
        Tensor: (T, N) long, rows of the candidates chosen, by decreasing
        score; -1 where fewer than T candidates (of distinct images) exist.
    """
    n = score.shape[1]
    out = torch.full((top_n, n), -1, dtype=torch.long)
    columns = zip(score.t().tolist(), image.t().tolist(), sequence.t().tolist())
    for j, (scores, images, sequences) in enumerate(columns):
        rows = _pick_column(scores, images, sequences, top_n)
        out[:len(rows), j] = torch.tensor(rows, dtype=torch.long)
    return out


def on_border(fy: Tensor, fx: Tensor, fh: int, fw: int) -> Tensor:
    """(M,) bool: the feature cell (fy, fx) is in the first or last row or
    column of the image's unpadded fh x fw feature area."""
    return (fy == 0) | (fy == fh - 1) | (fx == 0) | (fx == fw - 1)


def border_flags(border: Tensor, found: Tensor) -> Tensor:
    """Sub-centroids shown mostly by the image's edge.

    Args:
        border (Tensor): (T, C, K) bool, the shown pixel's cell is on the border.
        found (Tensor): (T, C, K) bool, a pixel is shown there (not padding).

    Returns:
        Tensor: (C, K) bool, at least half of the found pixels are border
        cells (False where none was found).
    """
    count = found.sum(dim=0)
    on_edge = (border & found).sum(dim=0)
    return (count > 0) & (2 * on_edge >= count)
