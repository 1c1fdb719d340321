"""One training step of the sub-centroids: functions over the head's buffers.

Shape legend: B batch, C classes, K sub-centroids per class (the largest K
when K is per class), D embedding width, h, w feature size, N = B*h*w, M
labelled pixels of the step, S pixels stored in the memory.

The head (``DNCDecodeHead``) owns the buffers and the settings; a step is
:func:`labelled_pixels` (what the step learns from), then
:func:`assign_and_update` (seed unseen classes, Sinkhorn over the batch and the
memory, momentum step, restart dead sub-centroids, enqueue), each buffer
updated in place under no_grad, the way an EMA codebook is
(vector-quantize-pytorch). The verbs they call are pure functions in
``dnc_core`` and ``subcentroid_learning``, tested by hand; nothing here
knows mmseg.
"""
import logging
import math
from typing import NamedTuple, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor

from . import dnc_core
from . import subcentroid_learning as learning
from .lean_grad import ppc_cross_entropy
from .subcentroid_memory import enqueue_, stored_entries


class SubcentroidState(NamedTuple):
    """The head's learning buffers (views, updated in place); None where a
    mechanism is off."""
    sub_centroids: Tensor  # (C, K, D) unit vectors
    used_slots: Tensor  # (C, K) bool: the slots each class uses
    slot_mask: Optional[Tensor]  # used_slots, or None when every slot is used
    seeded: Optional[Tensor]  # (C,) bool, k-means++ start
    updates: Optional[Tensor]  # (C, K) momentum warm-up counts
    wins: Optional[Tensor]  # (C, K) dead-restart window counts
    window_step: Optional[Tensor]  # () steps into the restart window
    memory: Optional[Tensor]  # (C, S, D) FIFO of embeddings
    memory_filled: Optional[Tensor]  # (C,)
    memory_pointer: Optional[Tensor]  # (C,)

    @classmethod
    def of(cls, head) -> 'SubcentroidState':
        """The buffers of a ``DNCDecodeHead``, by name."""
        return cls(head.sub_centroids, head.used_slots, head.slot_mask,
                   *(getattr(head, name) for name in (
                       'subcentroid_seeded', 'subcentroid_updates', 'subcentroid_wins',
                       'restart_window_step', 'memory', 'memory_filled', 'memory_pointer')))


class LearningSettings(NamedTuple):
    """The head's learning settings (checked when the head is built)."""
    num_subcentroids: Sequence[int]  # K per class
    momentum: float
    sinkhorn_epsilon: float
    sinkhorn_iterations: int
    update_from: str
    restart_dead_below: float
    restart_dead_every: int
    restart_on: str
    memory_per_step: int
    update_assignment: str = 'sinkhorn_argmax'  # or ProtoSeg's 'gumbel_sample'


class LabelledPixels(NamedTuple):
    """What a step learns from: the labelled pixels at feature resolution."""
    index: Tensor  # (M,) int64, each labelled pixel's place among the N
    y: Tensor  # (M,) classes
    scores: Tensor  # (N, C*K) sub-centroid scores of every pixel (with grad), a view
    x: Tensor  # (M, D) unit embeddings, detached
    own: Tensor  # (M, K) scores against their own class's sub-centroids, detached
    correct: Tensor  # (M,) bool, pixels the prediction gets right


def check_label_range(seg_label: Tensor, num_classes: int, ignore_index: int,
                      batch_data_samples=None) -> None:
    """Every label is a class or ``ignore_index``, before any loss sees it
    (mmseg's cross-entropy would fail with 'Target 20 is out of bounds'):
    the training step's one label check.

    Args:
        seg_label (Tensor): (B, 1, H, W) ground truth.
        batch_data_samples: their data samples (for the file names), or None.

    Raises:
        ValueError: naming each label file with values outside the classes.
    """
    c = num_classes
    bad = (seg_label != ignore_index) & ((seg_label < 0) | (seg_label >= c))
    if not bad.any():
        return
    lines = []
    for i in bad.flatten(1).any(dim=1).nonzero().flatten().tolist():
        values = sorted(seg_label[i][bad[i]].unique().tolist())
        path = batch_data_samples[i].metainfo.get('seg_map_path', f'batch image {i}') \
            if batch_data_samples is not None else f'batch image {i}'
        lines.append(f'  {path}: values {values[:10]}')
    raise ValueError(
        f'Labels outside the {c} classes (0..{c - 1}, or ignore_index={ignore_index}):\n'
        + '\n'.join(lines) + '\nCheck num_classes against the dataset, reduce_zero_label '
        '(ADE20K), and that the label files hold class indices (not colours).')


def labelled_pixels(embeddings: Union[Tensor, dnc_core.EmbeddingSource], sub_scores: Tensor,
                    seg_logits: Tensor, seg_label: Tensor, ignore_index: int,
                    num_classes: int) -> LabelledPixels:
    """The step's pixels: labels resized to (h, w) (nearest), ignored ones out.

    Args:
        embeddings (Tensor | dnc_core.EmbeddingSource): (B, D, h, w) unit
            embeddings, or the features they come from.
        sub_scores (Tensor): (B, C*K, h, w) their sub-centroid scores.
        seg_logits (Tensor): (B, C, h, w) class logits.
        seg_label (Tensor): (B, 1, H, W) ground truth, already range-checked.
    """
    source = as_source(embeddings)
    h, w = source.maps.shape[2:]
    c = num_classes
    k = sub_scores.shape[1] // c
    labels = F.interpolate(seg_label.float(), size=(h, w), mode='nearest')
    labels = labels.long().view(-1)  # (N,), pixel order b, h, w
    index = (labels != ignore_index).nonzero().squeeze(1)
    y = labels[index]
    # a view; the losses read the labelled rows of it a chunk at a time
    scores = sub_scores.permute(0, 2, 3, 1).reshape(-1, c * k)
    with torch.no_grad():
        x = source.detach().rows(index)
        own = scores.detach().view(-1, c, k)[index, y]  # (M, K)
        # the labelled rows first: an argmax over C in place is a strided,
        # slow reduction
        correct = seg_logits.detach().permute(0, 2, 3, 1).reshape(-1, c)[index].argmax(1) == y
    return LabelledPixels(index, y, scores, x, own, correct)


def as_source(embeddings: Union[Tensor, dnc_core.EmbeddingSource]) -> dnc_core.EmbeddingSource:
    """``embeddings`` as an ``EmbeddingSource`` (a tensor: the unit embeddings)."""
    if isinstance(embeddings, dnc_core.EmbeddingSource):
        return embeddings
    return dnc_core.EmbeddingSource(embeddings)


def register_learning_buffers(module, per_class: Sequence[int], dim: int, seeded: bool,
                              warmup: bool, restart: bool, memory_size: int) -> None:
    """The head's learning state, as buffers saved and resumed with the
    sub-centroids; None (absent from the state_dict) where a mechanism is off:
    ``subcentroid_source`` (C, K, 3), the real pixel each sub-centroid is
    (SnapSubcentroidsHook registers it; models/provenance.py), the k-means++
    flags (C,), warm-up counts and restart wins (C, K), the restart window
    step, and the memory (C, S, D) with its fill and pointer (C,)."""
    c, k = len(per_class), max(per_class)
    module.register_buffer('subcentroid_source', None)
    for name, value in (
            ('subcentroid_seeded', torch.zeros(c, dtype=torch.bool) if seeded else None),
            ('subcentroid_updates', torch.zeros(c, k) if warmup else None),
            ('subcentroid_wins', torch.zeros(c, k) if restart else None),
            ('restart_window_step', torch.zeros((), dtype=torch.long) if restart else None),
            ('memory', torch.zeros(c, memory_size, dim) if memory_size else None),
            ('memory_filled', torch.zeros(c, dtype=torch.long) if memory_size else None),
            ('memory_pointer', torch.zeros(c, dtype=torch.long) if memory_size else None)):
        module.register_buffer(name, value)


def own_scores_masked(own: Tensor, y: Tensor, used_slots: Tensor) -> Tensor:
    """(M, K) float own-class scores, unused slots of each pixel's class at -inf."""
    return own.float().masked_fill(~used_slots[y], -math.inf)


@torch.no_grad()
def assign_and_update(state: SubcentroidState, settings: LearningSettings, x: Tensor,
                      y: Tensor, own: Tensor, correct: Tensor, fixed: bool = False) -> Tensor:
    """One learning step of the sub-centroids, in place on ``state``.

    Args:
        x (Tensor): (M, D) unit embeddings of the labelled pixels.
        y (Tensor): (M,) their classes.
        own (Tensor): (M, K) their scores against their own class's
            sub-centroids.
        correct (Tensor): (M,) bool, the pixels the current prediction
            gets right.
        fixed (bool): the sub-centroids are held (real pixels,
            ``SnapSubcentroidsHook``): assign for the losses, move nothing.

    Returns:
        Tensor: (M,) assignment of the batch pixels to their class's slots.
    """
    m = y.numel()
    c = state.sub_centroids.shape[0]
    # decided across ranks: a rank that skipped would leave the others
    # waiting in the update's all-reduce
    # x are unit rows: their sum is finite exactly when every entry is (and
    # one sum is cheaper than an (M, D) isfinite)
    non_finite = dnc_core.all_reduce_((~torch.isfinite(x.sum())).float())
    if non_finite.item() > 0:
        print_log('DNCDecodeHead: non-finite decoder features in this batch; '
                  'sub-centroids not updated this step.', logger='current',
                  level=logging.WARNING)
        return own_scores_masked(own, y, state.used_slots).argmax(dim=1)
    if fixed:
        return dnc_core.sinkhorn_assign(own, y, c, settings.sinkhorn_epsilon,
                                        settings.sinkhorn_iterations, state.slot_mask)[1]
    if state.seeded is not None:
        # in the step that seeds a class, its PPC/PPD targets come from the
        # seeds while the loss scores still use the random start: one step
        # per class, once
        own = seed_unseen_classes(state, settings.num_subcentroids, x, y, own)
    if state.memory is not None:
        stored, stored_y, filled = stored_entries(state.memory, state.memory_filled)
        stored_own = torch.bmm(state.memory, state.sub_centroids.transpose(1, 2))[filled]
        x_all, y_all = torch.cat([x, stored.to(x.dtype)]), torch.cat([y, stored_y])
        own_all = torch.cat([own.float(), stored_own.float()])
    else:
        x_all, y_all, own_all = x, y, own
    plan, assignment_all = dnc_core.sinkhorn_assign(
        own_all, y_all, c, settings.sinkhorn_epsilon, settings.sinkhorn_iterations,
        state.slot_mask)
    assignment = assignment_all[:m]
    if settings.update_assignment == 'gumbel_sample':  # ProtoSeg: the update's own draw
        assignment_all = learning.gumbel_sample(plan, y_all, state.slot_mask)

    learn = torch.ones_like(y_all, dtype=torch.bool)
    learn[:m] = learning.learning_mask(y, correct, c, settings.update_from)
    momentum = settings.momentum
    if state.updates is not None:
        momentum = learning.warmup_momentum(settings.momentum, state.updates)
    if state.seeded is not None:  # unseeded classes stay as they are
        learn &= state.seeded[y_all]
    new, counts = dnc_core.momentum_update(
        state.sub_centroids, x_all[learn], y_all[learn], assignment_all[learn], momentum)
    state.sub_centroids.copy_(new)
    if state.updates is not None:
        state.updates.add_((counts > 0).float())
    if state.wins is not None:
        restart_dead(state, settings, x, y, own)
    if state.memory is not None:
        keep = learn[:m]
        enqueue_(state.memory, state.memory_filled, state.memory_pointer,
                 x[keep], y[keep], settings.memory_per_step)
    return assignment


def seed_unseen_classes(state: SubcentroidState, num_subcentroids: Sequence[int], x: Tensor,
                        y: Tensor, own: Tensor) -> Tensor:
    """k-means++ seeds for every class seen for the first time with at least
    K pixels (on some rank; the lowest such rank's seeds win), in place.

    Returns:
        Tensor: (M, K) own-class scores, recomputed for the seeded classes.
    """
    counts = torch.bincount(y, minlength=state.sub_centroids.shape[0])
    ready = (~state.seeded) & (counts >= torch.tensor(num_subcentroids, device=counts.device))
    seeds = learning.class_seeds(x, y, ready, num_subcentroids, state.sub_centroids)
    # every rank's ready classes are unseeded (the flags agree across ranks)
    seeds, seeded_now = learning.gather_per_class(seeds, ready)
    if not seeded_now.any():
        return own
    # unused slots of per-class K stay as they are
    seeds = torch.where(state.used_slots[..., None], seeds, state.sub_centroids)
    state.sub_centroids[seeded_now] = seeds[seeded_now].to(state.sub_centroids.dtype)
    state.seeded.bitwise_or_(seeded_now)
    if state.updates is not None:
        state.updates[seeded_now] = 0
    return learning.rescore_rows(own, x, y, state.sub_centroids, seeded_now[y])


def restart_dead(state: SubcentroidState, settings: LearningSettings, x: Tensor, y: Tensor,
                 own: Tensor) -> None:
    """Count each sub-centroid's wins; at the end of a window, restart those
    below ``restart_dead_below`` of the fair share on the class's pixels of
    this step: its worst-fitted ones, or (``restart_on='random'``) those with
    the lowest uniform random keys, all ranks together. In place."""
    c, k, _ = state.sub_centroids.shape
    best, nearest = own_scores_masked(own, y, state.used_slots).max(dim=1)
    wins = torch.bincount(y * k + nearest, minlength=c * k).float().view(c, k)
    state.wins.add_(dnc_core.all_reduce_(wins))
    state.window_step.add_(1)
    if int(state.window_step) % settings.restart_dead_every:
        return
    dead = learning.dead_subcentroids(state.wins, settings.restart_dead_below,
                                      state.slot_mask)
    if state.seeded is not None:
        dead &= state.seeded[:, None]
    state.wins.zero_()
    if not dead.any():
        return
    # the pixels of lowest key: the worst-fitted, or a uniform sample
    keys = best if settings.restart_on == 'worst' else torch.rand(best.shape,
                                                                  device=best.device)
    worst, exists = learning.worst_fitted(x, y, keys, c, k)
    restart, picks = learning.restart_picks(dead, worst, exists)
    state.sub_centroids[restart] = picks.to(state.sub_centroids.dtype)
    if state.updates is not None:
        state.updates[restart] = 0
    print_log(f'DNCDecodeHead: restarted {int(restart.sum())} dead sub-centroids '
              f'(classes {sorted(set(restart.nonzero()[:, 0].tolist()))}) on '
              f"{'their worst-fitted' if settings.restart_on == 'worst' else 'random'} "
              'pixels.', logger='current', level=logging.INFO)


def learning_losses(pixels: LabelledPixels, assignment: Tensor, sub_scores: Tensor,
                    embeddings: Union[Tensor, dnc_core.EmbeddingSource], sub_centroids: Tensor,
                    slot_mask: Optional[Tensor], ppc_weight: float, ppd_weight: float,
                    ppc_temperature: float) -> dict:
    """PPC and PPD on the labelled pixels, each sub-centroid target ``y * K +
    assignment``; zero losses that keep the graph when nothing is labelled.

    PPC's backward recomputes the labelled pixels' scores from ``embeddings``
    (the (B, D, h, w) unit embeddings, or an ``EmbeddingSource``) and
    ``sub_centroids`` (C, K, D), the ones ``sub_scores`` came from, rather
    than keeping their softmax (lean_grad)."""
    if pixels.y.numel() == 0:
        zero = sub_scores.sum() * 0.0
        return dict(loss_ppc=zero, loss_ppd=zero)
    c, k, d = sub_centroids.shape
    target = pixels.y * k + assignment
    ppc = ppc_cross_entropy(
        pixels.scores, pixels.index, target, ppc_temperature, as_source(embeddings),
        sub_centroids.reshape(c * k, d), None if slot_mask is None else slot_mask.reshape(-1))
    return dict(loss_ppc=ppc_weight * ppc,
                loss_ppd=ppd_weight * dnc_core.ppd_loss(pixels.scores, target, pixels.index))
