"""The DNC math: pure functions, tensors in and tensors out (torch only).

Shape legend: B batch, C classes, K sub-centroids per class (the largest K when
classes have different K), D embedding width, h, w feature-map size,
N = B*h*w pixels, M labelled pixels taking part in a training step.

Everything here follows ../shared/DNC.md: class score = max over a class's K
cosine similarities; Sinkhorn-Knopp assigns the pixels of each class to that
class's K sub-centroids with equal mass per sub-centroid, for all classes in one
batched pass; the hard assignment is the argmax of the plan; the update is a
momentum step towards the normalised mean of the assigned embeddings. When a
process group exists, the Sinkhorn marginals and the update's sums and counts
are all-reduced, so every rank computes what one process would on the global
batch.
"""
import math
from typing import NamedTuple, Optional, Tuple, Union

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from ..utils.dist import distributed
from .lean_grad import max_over_k, score_conv

# plan entries within this relative distance of a row's maximum count as tied
TIE_TOLERANCE = 1e-5


def all_reduce_(tensor: Tensor, op=None) -> Tensor:
    """All-reduce in place when a process group exists; a no-op otherwise."""
    if distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op is None else op)
    return tensor


def embed(features: Tensor, ln_weight: Tensor, ln_bias: Tensor,
          ln_eps: float = 1e-5) -> Tensor:
    """LayerNorm over D, then L2 normalisation, per pixel.

    Args:
        features (Tensor): (B, D, h, w) decoder features.
        ln_weight, ln_bias (Tensor): (D,) LayerNorm affine parameters.

    Returns:
        Tensor: (B, D, h, w) unit-length embeddings, stored channels-last so
        that the (N, D) view used in training is free.
    """
    x = features.permute(0, 2, 3, 1)  # (B, h, w, D)
    # the parameters' (static) shape, not the tensor's: exporters with dynamic
    # H, W trace a tensor's shape as a runtime value, which LayerNorm refuses
    x = F.layer_norm(x, ln_weight.shape, ln_weight, ln_bias, ln_eps)
    x = F.normalize(x, p=2, dim=-1)
    return x.permute(0, 3, 1, 2)


def pixel_rows(maps: Tensor, index: Tensor) -> Tensor:
    """The rows of pixels ``index`` of (B, D, h, w) ``maps``: (M, D), the
    entries of ``maps.permute(0, 2, 3, 1).reshape(-1, D)[index]``, without a
    copy of the whole map in either memory layout.

    Args:
        maps (Tensor): (B, D, h, w).
        index (Tensor): (M,) int64 flat pixel indices, in (b, y, x) order.
    """
    hw = maps.shape[2] * maps.shape[3]
    return maps.flatten(2)[index // hw, :, index % hw]


def embed_rows(features: Tensor, index: Tensor, ln_weight: Tensor, ln_bias: Tensor,
               ln_eps: float = 1e-5) -> Tensor:
    """:func:`embed` of pixels ``index`` only: (B, D, h, w) features -> (M, D)
    unit embeddings (what the training step recomputes rather than keep the
    whole embedding map, issue 23)."""
    x = F.layer_norm(pixel_rows(features, index), ln_weight.shape, ln_weight, ln_bias, ln_eps)
    return F.normalize(x, p=2, dim=-1)


class EmbeddingSource(NamedTuple):
    """Where a training step reads pixels' unit embeddings from, by row.

    ``maps`` (B, D, h, w) are the unit embeddings themselves (``norm`` None),
    or the features they were computed from, with ``norm`` the LayerNorm's
    (weight, bias, eps): their rows are then embedded again on demand
    (:func:`embed_rows`), so that no whole embedding map outlives the
    forward (issue 23)."""
    maps: Tensor
    norm: Optional[Tuple[Tensor, Tensor, float]] = None

    def rows(self, index: Tensor) -> Tensor:
        """(M,) flat pixel indices -> (M, D) unit embeddings."""
        if self.norm is None:
            return pixel_rows(self.maps, index)
        return embed_rows(self.maps, index, *self.norm)

    def detach(self) -> 'EmbeddingSource':
        norm = None if self.norm is None else (self.norm[0].detach(), self.norm[1].detach(),
                                               self.norm[2])
        return EmbeddingSource(self.maps.detach(), norm)


def subcentroid_scores(embeddings: Tensor, sub_centroids: Tensor) -> Tensor:
    """Cosine similarity of every pixel to every sub-centroid.

    A 1x1 convolution with the C*K unit sub-centroids as its filters: the
    same kernel the parametric head runs, K times wider.

    Args:
        embeddings (Tensor): (B, D, h, w) unit embeddings.
        sub_centroids (Tensor): (C, K, D) unit vectors.

    Returns:
        Tensor: (B, C*K, h, w); channel c*K + k is the score of sub-centroid k
        of class c.
    """
    num_classes, k, d = sub_centroids.shape
    weight = sub_centroids.reshape(num_classes * k, d, 1, 1)
    # its backward keeps the sub-centroids, not the embeddings (lean_grad)
    return score_conv(embeddings, weight)


def class_scores(sub_scores: Tensor, num_classes: int,
                 active: Optional[Tensor] = None) -> Tensor:
    """Class score = the best score among the class's sub-centroids.

    Args:
        sub_scores (Tensor): (B, C*K, h, w) from :func:`subcentroid_scores`.
        num_classes (int): C.
        active (Tensor, optional): (C, K) bool, False for the unused slots of
            classes with fewer than K sub-centroids. None: all slots used.

    Returns:
        Tensor: (B, C, h, w), stored channels-last like its input: the max
        runs over the innermost K, with no copy of the (B, C*K, h, w) scores;
        its backward keeps the winners' indices, not the scores (lean_grad).
    """
    b, ck, h, w = sub_scores.shape
    scores = sub_scores.permute(0, 2, 3, 1).reshape(b, h, w, num_classes, ck // num_classes)
    if active is not None:
        # cosines are >= -1, so -2 never wins the max
        scores = scores.masked_fill(~active, -2.0)
    return max_over_k(scores).permute(0, 3, 1, 2)


def nearest_subcentroid(sub_scores: Tensor, num_classes: int,
                        active: Optional[Tensor] = None) -> Tensor:
    """For every pixel and class, which of the class's sub-centroids is nearest.

    Args:
        sub_scores (Tensor): (B, C*K, h, w).
        active (Tensor, optional): (C, K) bool mask of used slots.

    Returns:
        Tensor: (B, C, h, w) int64 in [0, K).
    """
    b, ck, h, w = sub_scores.shape
    scores = sub_scores.permute(0, 2, 3, 1).reshape(b, h, w, num_classes, ck // num_classes)
    if active is not None:
        scores = scores.masked_fill(~active, -2.0)
    return scores.argmax(dim=-1).permute(0, 3, 1, 2)


def _scatter_logsumexp(values: Tensor, index: Tensor, num_groups: int) -> Tensor:
    """Per-group, per-column logsumexp over rows, all-reduced across ranks.

    Args:
        values (Tensor): (M, K) float32, may hold -inf.
        index (Tensor): (M,) group of each row, in [0, num_groups).

    Returns:
        Tensor: (num_groups, K); -inf for a column with no finite entry.
    """
    k = values.shape[1]
    expanded = index[:, None].expand(-1, k)
    peak = values.new_full((num_groups, k), -math.inf)
    peak.scatter_reduce_(0, expanded, values, reduce='amax', include_self=True)
    all_reduce_(peak, dist.ReduceOp.MAX if dist.is_available() else None)
    peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    total = values.new_zeros((num_groups, k))
    total.index_add_(0, index, torch.exp(values - peak[index]))
    all_reduce_(total)
    return torch.log(total) + peak


def sinkhorn_assign(scores: Tensor, labels: Tensor, num_classes: int,
                    epsilon: float = 0.05, iterations: int = 3,
                    active: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Sinkhorn-Knopp assignment of each pixel to a sub-centroid of its class.

    For each class c, with its n_c pixels and K_c sub-centroids, the plan
    starts from exp(scores / epsilon) and alternately gets equal mass 1/K_c per
    sub-centroid and mass 1/n_c per pixel (``iterations`` times), as in SwAV
    and ProtoSeg. Runs in the log domain and float32, so no epsilon overflows
    or underflows; all classes go in one batched pass. Across ranks the
    per-sub-centroid marginals and n_c are all-reduced, which makes the plan
    that of the global batch.

    Args:
        scores (Tensor): (M, K) similarity of each pixel to the K
            sub-centroids of its own class.
        labels (Tensor): (M,) int64 class of each pixel.
        num_classes (int): C.
        epsilon (float): entropy regularisation; smaller is harder.
        iterations (int): Sinkhorn iterations.
        active (Tensor, optional): (C, K) bool mask of used slots.

    Returns:
        tuple[Tensor, Tensor]: the plan (M, K), each row summing to 1, and the
        hard assignment (M,) int64, the argmax of each row; among entries
        tied for the maximum (to ``TIE_TOLERANCE``), the highest score.
    """
    with torch.autocast(device_type=scores.device.type, enabled=False):
        log_plan = scores.float() / epsilon
        if active is not None:
            log_plan = log_plan.masked_fill(~active[labels], -math.inf)
            log_k = torch.log(active.sum(dim=1).float())[labels, None]
        else:
            log_k = math.log(scores.shape[1])
        count = torch.bincount(labels, minlength=num_classes).float()
        log_n = torch.log(all_reduce_(count))[labels, None]
        for _ in range(iterations):
            per_subcentroid = _scatter_logsumexp(log_plan, labels, num_classes)
            if active is not None:  # unused slots stay at -inf, not nan
                per_subcentroid = per_subcentroid.masked_fill(~active, 0.0)
            log_plan = log_plan - per_subcentroid[labels] - log_k
            log_plan = log_plan - torch.logsumexp(log_plan, dim=1, keepdim=True) - log_n
        plan = torch.exp(log_plan + log_n)
        # Ties go to the nearest sub-centroid. They are not rare: a class with
        # a single pixel in the batch gets a uniform row (the per-sub-centroid
        # step leaves one entry per column), and a plain argmax would send
        # every such pixel to sub-centroid 0.
        tied = plan >= plan.max(dim=1, keepdim=True).values * (1 - TIE_TOLERANCE)
        nearest_tied = scores.float().masked_fill(~tied, -math.inf)
    return plan, nearest_tied.argmax(dim=1)


def momentum_update(sub_centroids: Tensor, embeddings: Tensor, labels: Tensor,
                    assignment: Tensor, momentum: Union[float, Tensor] = 0.999
                    ) -> Tuple[Tensor, Tensor]:
    """One momentum step of every sub-centroid that got pixels.

    m = normalise(sum of the embeddings assigned to (c, k)), then
    p <- normalise(momentum * p + (1 - momentum) * m). Sums and counts are
    all-reduced across ranks first, so every rank computes the same result.

    Args:
        sub_centroids (Tensor): (C, K, D) current unit vectors.
        embeddings (Tensor): (M, D) embeddings of the pixels to learn from.
        labels (Tensor): (M,) their classes.
        assignment (Tensor): (M,) their sub-centroid, in [0, K).
        momentum (float | Tensor): weight of the old sub-centroid, in
            [0, 1); one for all, or (C, K), one per sub-centroid.

    Returns:
        tuple[Tensor, Tensor]: the new sub-centroids (C, K, D) in float32 and
        the number of pixels per sub-centroid (C, K).
    """
    num_classes, k, d = sub_centroids.shape
    with torch.autocast(device_type=embeddings.device.type, enabled=False):
        flat = labels * k + assignment
        sums = embeddings.new_zeros((num_classes * k, d), dtype=torch.float32)
        sums.index_add_(0, flat, embeddings.float())
        counts = torch.bincount(flat, minlength=num_classes * k).float()
        all_reduce_(sums)
        all_reduce_(counts)
        old = sub_centroids.reshape(num_classes * k, d).float()
        means = F.normalize(sums, p=2, dim=1)
        if isinstance(momentum, Tensor):
            momentum = momentum.reshape(num_classes * k, 1).float()
        moved = F.normalize(momentum * old + (1.0 - momentum) * means, p=2, dim=1)
        new = torch.where(counts[:, None] > 0, moved, old)
    return new.view(num_classes, k, d), counts.view(num_classes, k)


def ppc_loss(sub_scores: Tensor, target: Tensor, temperature: float = 0.1) -> Tensor:
    """Pixel-prototype contrastive loss: cross-entropy over all C*K scores.

    Args:
        sub_scores (Tensor): (M, C*K) similarities (-inf for unused slots).
        target (Tensor): (M,) index c*K + k of each pixel's assigned
            sub-centroid.
    """
    return F.cross_entropy(sub_scores.float() / temperature, target)


def ppd_loss(sub_scores: Tensor, target: Tensor, rows: Optional[Tensor] = None) -> Tensor:
    """Pixel-prototype distance loss: mean of (1 - cos(x, p_assigned))^2.

    Args:
        sub_scores (Tensor): (M, C*K) similarities, or (N, C*K) with ``rows``.
        target (Tensor): (M,) index of each pixel's assigned sub-centroid.
        rows (Tensor, optional): (M,) int64, the pixels' rows of
            ``sub_scores``; default: one row each, in order.
    """
    if rows is None:
        rows = torch.arange(target.numel(), device=target.device)
    # indexing, not gather: its backward keeps the indices, not sub_scores
    assigned = sub_scores[rows, target].float()
    return (1.0 - assigned).pow(2).mean()
