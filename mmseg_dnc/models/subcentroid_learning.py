"""How sub-centroids learn in short schedules: pure functions (torch only).

Shape legend: C classes, K sub-centroids per class, D embedding width,
M labelled pixels taking part in a training step, R ranks.

The reference (DNC.md) starts every sub-centroid at a random unit vector,
moves it with a fixed momentum of 0.999 and only from correctly predicted
pixels. After 600 updates the random start still weighs 0.999^600 = 0.55, and
a class the network never predicts right never moves. Each function here is
one remedy, off unless the head's settings turn it on:

- :func:`kmeans_pp_seeds`: a class starts from its own pixels (k-means++
  seeding), the first time a batch holds at least K of them;
- :func:`warmup_momentum`: the momentum of a sub-centroid grows with its
  number of updates, ``min(m, (1 + n) / (10 + n))`` (the num_updates rule of
  TensorFlow's ExponentialMovingAverage), so its start is forgotten;
- :func:`learning_mask` with ``'correct_or_all'``: a class with no correctly
  predicted pixel in the step learns from all its labelled pixels;
- :func:`subcentroids_from_frequency`: K per class from its pixel count, for
  ``num_subcentroids`` (the paper's future work);
- :func:`dead_subcentroids` and :func:`worst_fitted`: a sub-centroid that
  wins almost none of its class's pixels over a window restarts on the
  class's worst-fitted pixel (dead-code replacement, as in VQ codebooks).

Anything that must agree across ranks goes through ``all_reduce_`` or
:func:`gather_per_class` when a process group exists.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from ..utils.dist import distributed
from .dnc_core import all_reduce_

# TensorFlow's ExponentialMovingAverage(num_updates=n): min(decay, (1+n)/(10+n))
WARMUP_OFFSET = 10.0


def kmeans_pp_seeds(x: Tensor, k: int, generator: Optional[torch.Generator] = None) -> Tensor:
    """k-means++ seeding on unit vectors: k distinct rows of ``x``.

    The first seed is a uniformly drawn pixel; each next one is drawn with
    probability proportional to its squared distance to the nearest seed so
    far (for unit vectors, 2 - 2 cos). Pixels already chosen have distance 0
    and are never drawn again while others remain.

    Args:
        x (Tensor): (n, D) unit embeddings of one class, n >= k.
        k (int): number of seeds.

    Returns:
        Tensor: (k, D) float32 seeds, each a row of ``x``.
    """
    n = x.shape[0]
    if n < k:
        raise ValueError(f'kmeans_pp_seeds: {n} pixels cannot seed {k} sub-centroids')
    x = x.float()
    first = torch.randint(n, (1,), generator=generator, device='cpu').item()
    chosen = [first]
    nearest = (2.0 - 2.0 * (x @ x[first])).clamp_min(0.0)  # (n,)
    for _ in range(1, k):
        weights = nearest.clone()
        weights[chosen] = 0.0
        if weights.sum() <= 0:  # duplicates only: any pixel not yet chosen
            weights = torch.ones_like(nearest)
            weights[chosen] = 0.0
        pick = torch.multinomial(weights.cpu(), 1, generator=generator).item()
        chosen.append(pick)
        nearest = torch.minimum(nearest, (2.0 - 2.0 * (x @ x[pick])).clamp_min(0.0))
    return x[chosen]


def class_seeds(x: Tensor, y: Tensor, ready: Tensor, num_subcentroids: Sequence[int],
                like: Tensor) -> Tensor:
    """k-means++ seeds of the ``ready`` classes, in class order.

    Args:
        x (Tensor): (M, D) unit embeddings; y (Tensor): (M,) their classes.
        ready (Tensor): (C,) bool, the classes to seed (each has >= K_c pixels).
        num_subcentroids: K_c per class.
        like (Tensor): (C, K, D) the sub-centroids (shape and dtype).

    Returns:
        Tensor: (C, K, D) float32 rows of ``x`` at ``[c, :K_c]`` for ready
        classes, zero elsewhere. Under bfloat16/float16 autocast a pixel's
        embedding is unit only to about 1e-2, so such seeds are normalised
        (float32 rows are left bit for bit).
    """
    seeds = torch.zeros_like(like)
    for cls in ready.nonzero().flatten().tolist():
        k = num_subcentroids[cls]
        found = kmeans_pp_seeds(x[y == cls], k)  # float32 rows of x
        if x.dtype != torch.float32:
            found = F.normalize(found, dim=-1)
        seeds[cls, :k] = found
    return seeds


def rescore_rows(own: Tensor, x: Tensor, y: Tensor, sub_centroids: Tensor,
                 rows: Tensor) -> Tensor:
    """(M, K) own-class scores with ``rows`` (M,) bool recomputed against
    ``sub_centroids`` (C, K, D): cos(x_m, p_{y_m, k}); the others as given."""
    own = own.clone()
    own[rows] = torch.einsum('md,mkd->mk', x[rows].float(),
                             sub_centroids[y[rows]].float()).to(own.dtype)
    return own


def gather_per_class(values: Tensor, present: Tensor) -> Tuple[Tensor, Tensor]:
    """Every rank's per-class values -> those of the lowest rank that has them.

    Without a process group, returns its inputs.

    Args:
        values (Tensor): (C, ...) this rank's values (anything where absent).
        present (Tensor): (C,) bool, which classes this rank has values for.

    Returns:
        tuple[Tensor, Tensor]: (C, ...) values, identical on every rank (zero
        for classes no rank has), and (C,) bool, classes that some rank had.
    """
    if not distributed():
        return values, present
    world = dist.get_world_size()
    all_values = [torch.empty_like(values) for _ in range(world)]
    all_present = [torch.empty_like(present) for _ in range(world)]
    dist.all_gather(all_values, values.contiguous())
    dist.all_gather(all_present, present.contiguous())
    merged, any_present = torch.zeros_like(values), torch.zeros_like(present)
    for rank_values, rank_present in zip(all_values, all_present):
        take = rank_present & ~any_present
        merged[take] = rank_values[take]
        any_present |= rank_present
    return merged, any_present


def gumbel_sample(plan: Tensor, labels: Tensor, active: Optional[Tensor] = None,
                  generator: Optional[torch.Generator] = None) -> Tensor:
    """ProtoSeg's update assignment: a hard Gumbel-softmax sample of the
    Sinkhorn plan used as logits, ``argmax(plan + g)``, g ~ Gumbel(0, 1)
    (``F.gumbel_softmax(plan, tau=0.5, hard=True)``; for a hard sample the
    temperature does not matter). The plan's rows sum to 1, so its entries
    are small against the noise: at K=10 the Sinkhorn choice is drawn with
    probability about e / (e + K - 1) = 0.23, and the update pulls every
    sub-centroid of a class towards the class mean.

    Args:
        plan (Tensor): (M, K) Sinkhorn plan, rows summing to 1.
        labels (Tensor): (M,) classes.
        active (Tensor, optional): (C, K) used slots; unused ones are never drawn.

    Returns:
        Tensor: (M,) int64 sub-centroid of each pixel.
    """
    uniform = torch.rand(plan.shape, generator=generator, device='cpu').to(plan.device)
    gumbel = -torch.log(-torch.log(uniform.clamp(1e-20, 1.0 - 1e-7)))
    logits = plan.float() + gumbel
    if active is not None:
        logits = logits.masked_fill(~active[labels], float('-inf'))
    return logits.argmax(dim=1)


def warmup_momentum(momentum: float, updates: Tensor) -> Tensor:
    """Momentum of each sub-centroid after ``updates`` updates.

    ``min(momentum, (1 + n) / (10 + n))``: 0.1 at the first update, 0.55
    after 10, 0.92 after 100, and ``momentum`` once n reaches
    ``(10 momentum - 1) / (1 - momentum)`` (8,990 for 0.999). The start keeps
    a weight of prod_i (1 + i) / (10 + i) = 9! n! / (n + 9)! after n updates
    (1.0e-7 after 20), where a fixed 0.999 keeps 0.999^n (0.55 after 600).

    Args:
        momentum (float): the final momentum, in [0, 1).
        updates (Tensor): (C, K) number of updates each sub-centroid had.

    Returns:
        Tensor: (C, K) float32 momentum for the next update.
    """
    n = updates.float()
    return torch.clamp((1.0 + n) / (WARMUP_OFFSET + n), max=momentum)


def learning_mask(labels: Tensor, correct: Tensor, num_classes: int,
                  rule: str) -> Tensor:
    """Which labelled pixels the sub-centroids learn from this step.

    Args:
        labels (Tensor): (M,) int64 classes.
        correct (Tensor): (M,) bool, pixels the current prediction gets right.
        rule (str): ``'correct'`` (the reference), ``'all'``, or
            ``'correct_or_all'``: the correct pixels, and every pixel of a
            class with no correct pixel in the (global) batch.

    Returns:
        Tensor: (M,) bool.
    """
    if rule == 'all':
        return torch.ones_like(correct)
    if rule == 'correct':
        return correct.clone()
    if rule != 'correct_or_all':
        raise ValueError(f'unknown update rule {rule!r}')
    hits = torch.bincount(labels[correct], minlength=num_classes).float()
    starved = all_reduce_(hits) == 0  # (C,)
    return correct | starved[labels]


def dead_subcentroids(wins: Tensor, threshold: float,
                      active: Optional[Tensor] = None) -> Tensor:
    """Sub-centroids whose share of their class's wins is below ``threshold / K``.

    Args:
        wins (Tensor): (C, K) pixels each sub-centroid was nearest to (of its
            class's pixels) over the window, summed over ranks.
        threshold (float): fraction of the fair share 1/K; e.g. 0.1 flags a
            sub-centroid of K=10 winning under 1% of its class.
        active (Tensor, optional): (C, K) bool mask of used slots.

    Returns:
        Tensor: (C, K) bool; False for every class with no pixels in the window.
    """
    k = wins.shape[1] if active is None else active.sum(dim=1, keepdim=True).float()
    total = wins.sum(dim=1, keepdim=True)
    dead = (wins < threshold * total / k) & (total > 0)
    return dead if active is None else dead & active


def worst_fitted(x: Tensor, labels: Tensor, best_score: Tensor, num_classes: int,
                 count: int) -> Tuple[Tensor, Tensor]:
    """Per class, the ``count`` pixels least similar to any sub-centroid of
    their class, across ranks; with any other per-pixel key in ``best_score``,
    the ``count`` pixels of lowest key (uniform random keys: a uniform sample
    without replacement, the same on every rank).

    Args:
        x (Tensor): (M, D) unit embeddings.
        labels (Tensor): (M,) classes.
        best_score (Tensor): (M,) each pixel's best cosine to its own class's
            sub-centroids.
        count (int): pixels wanted per class (K, the most that can be dead).

    Returns:
        tuple[Tensor, Tensor]: (C, count, D) float32 embeddings, worst first,
        and (C, count) bool, which of them exist (a class may have fewer
        pixels, on all ranks together, than ``count``).
    """
    d = x.shape[1]
    embeddings = x.new_zeros((num_classes, count, d), dtype=torch.float32)
    scores = best_score.new_full((num_classes, count), float('inf'), dtype=torch.float32)
    for c in labels.unique().tolist():
        own = (labels == c).nonzero().squeeze(1)
        n = min(count, own.numel())
        worst = best_score[own].float().topk(n, largest=False).indices
        embeddings[c, :n] = x[own[worst]].float()
        scores[c, :n] = best_score[own[worst]].float()
    if distributed():
        world = dist.get_world_size()
        all_emb = [torch.empty_like(embeddings) for _ in range(world)]
        all_scores = [torch.empty_like(scores) for _ in range(world)]
        dist.all_gather(all_emb, embeddings)
        dist.all_gather(all_scores, scores)
        scores, order = torch.cat(all_scores, dim=1).topk(count, dim=1, largest=False)
        embeddings = torch.cat(all_emb, dim=1).gather(1, order[..., None].expand(-1, -1, d))
    return embeddings, torch.isfinite(scores)


def restart_picks(dead: Tensor, pixels: Tensor, exists: Tensor) -> Tuple[Tensor, Tensor]:
    """The i-th dead sub-centroid of a class takes the class's i-th pixel.

    Args:
        dead (Tensor): (C, K) bool.
        pixels (Tensor): (C, P, D) per class, candidate pixels in order
            (:func:`worst_fitted`).
        exists (Tensor): (C, P) bool, which candidates exist.

    Returns:
        tuple[Tensor, Tensor]: (C, K) bool, the dead sub-centroids that get a
        pixel (a class with fewer candidates than dead ones restarts only
        that many), and (R, D) their new unit vectors, R = the count of True.
    """
    rank = dead.long().cumsum(dim=1) - 1
    index = rank.clamp(min=0).clamp(max=pixels.shape[1] - 1)
    pick = pixels.gather(1, index[..., None].expand(-1, -1, pixels.shape[2]))
    restart = dead & exists.gather(1, index)
    return restart, F.normalize(pick[restart], dim=-1)


def subcentroids_from_frequency(pixel_counts: Sequence[float], mean_k: float = 10.0,
                                k_min: int = 2, k_max: int = 20) -> List[int]:
    """K per class from its pixel frequency (the paper's future work):
    K_c proportional to the square root of class c's pixel count, scaled so
    that the classes' K average ``mean_k``, then rounded and kept in
    [k_min, k_max] (which moves the average a little). A frequent class gets
    more modes to cover, a rare one fewer sub-centroids to feed, for about
    the same C x K total.

    Args:
        pixel_counts: labelled training pixels of each class (C values).

    Returns:
        list[int]: one K per class, for ``num_subcentroids``.
    """
    counts = torch.tensor([float(c) for c in pixel_counts])
    if counts.numel() == 0 or (counts < 0).any() or not torch.isfinite(counts).all():
        raise ValueError('subcentroids_from_frequency: pixel counts must be finite and >= 0, '
                         f'one per class; got {list(pixel_counts)}')
    if not 1 <= k_min <= k_max:
        raise ValueError(f'subcentroids_from_frequency: need 1 <= k_min <= k_max, got '
                         f'{k_min}, {k_max}')
    root = counts.sqrt()
    if root.sum() == 0:
        return [int(round(min(max(mean_k, k_min), k_max)))] * counts.numel()
    k = root * (mean_k * counts.numel() / root.sum())
    return [int(v) for v in k.round().clamp(k_min, k_max).tolist()]
