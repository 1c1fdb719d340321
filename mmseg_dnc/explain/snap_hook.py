"""A classifier made of real training pixels, trained end to end.

Shape legend: C classes, K sub-centroids per class, D embedding width, R ranks.

:class:`SnapSubcentroidsHook` snaps, at an iteration of the schedule, every
sub-centroid to the embedding of its nearest real training pixel of its class
(one pass over the training set with the test pipeline, the case base code of
``tools/snap_subcentroids.py``), then holds the sub-centroids there while
training goes on, so the embedding adapts to a classifier of real pixels. It
can snap again every ``every`` iterations. The head keeps each sub-centroid's
provenance, ``decode_head.subcentroid_source`` (C, K, 3) = (image, y, x) at
the image's original size, in the state dict; the images' paths are in the
checkpoint's ``meta['dnc_pixel_sources']``, indexed by ``image``. So the final
checkpoint's classifier is literally real training pixels (their embeddings
by the network at the last snap), and says which.

    custom_hooks = [dict(type='SnapSubcentroidsHook', begin=0.75)]

Across ranks, each rank searches its share of the training set and the most
similar pixel of all ranks wins, so every rank holds the same sub-centroids.
"""
import logging
import math
import time
from typing import Dict, List, Optional, Union

import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from torch import Tensor

from mmseg_dnc.models import DNCDecodeHead
from mmseg_dnc.models.build_checks import is_int, is_real
from mmseg_dnc.models.dnc_core import all_reduce_
# the provenance format lives with the head that carries it; names kept here too
from mmseg_dnc.models.provenance import (  # noqa: F401
    META_KEY, STATE_KEY, check_source_table, check_sources_meta, compact_sources, source_paths)
from mmseg_dnc.utils.dist import rank_and_world, unwrap
from .casebase import build_case_base
from .data import one_by_one, training_set


def best_across_ranks(score: Tensor, payload: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """For every entry, the payload of the rank with the highest score.

    Without a process group, returns ``payload`` and ``score`` as they are.
    Ties go to the lowest rank.

    Args:
        score (Tensor): (C, K) this rank's best similarity per sub-centroid,
            -inf where this rank found no pixel.
        payload: tensors (C, K, ...) found with those scores.

    Returns:
        dict: ``score`` (C, K), the best over ranks, and each payload key, the
        winning rank's values; identical on every rank.
    """
    rank, world = rank_and_world()
    if world == 1:
        return dict(payload, score=score)
    scores = [torch.empty_like(score) for _ in range(world)]
    dist.all_gather(scores, score.contiguous())
    stacked = torch.stack(scores)  # (R, C, K)
    winner = stacked.argmax(dim=0)  # first maximum: the lowest rank
    mine = winner == rank
    out = {'score': stacked.max(dim=0).values}
    for key, values in payload.items():
        keep = mine.view(mine.shape + (1,) * (values.dim() - 2))
        out[key] = all_reduce_(torch.where(keep, values, torch.zeros_like(values)))
    return out


@HOOKS.register_module()
class SnapSubcentroidsHook(Hook):
    """Snap the sub-centroids to real training pixels and hold them there.

    Args:
        begin (float | int): when to snap: a fraction of ``max_iters`` in
            (0, 1) (default 0.75: the last quarter trains the embedding on a
            classifier of real pixels), or an iteration >= 0.
        every (int): snap again every this many iterations after ``begin``;
            0 (default) = once.
        max_images (int, optional): search an evenly spaced subset of this
            many training images (ADE20K has 20,210); None = all.
        num_workers (int): data loader workers of the pass.
    """

    priority = 'NORMAL'

    def __init__(self, begin: Union[float, int] = 0.75, every: int = 0,
                 max_images: Optional[int] = None, num_workers: int = 2):
        if not is_real(begin) or begin < 0 or (not is_int(begin) and not 0 < begin < 1):
            raise ValueError(f'SnapSubcentroidsHook(begin={begin!r}): give a fraction of the '
                             'schedule in (0, 1), e.g. 0.75, or an iteration (int >= 0).')
        for name, value, low in (('every', every, 0), ('num_workers', num_workers, 0)):
            if not is_int(value) or value < low:
                raise ValueError(f'SnapSubcentroidsHook({name}={value!r}): an int >= {low}.')
        if max_images is not None and (not is_int(max_images) or max_images < 1):
            raise ValueError(f'SnapSubcentroidsHook(max_images={max_images!r}): an int >= 1, '
                             'or None for the whole training set.')
        self.begin = begin
        self.every = every
        self.max_images = max_images
        self.num_workers = num_workers
        self.image_paths: List[str] = []

    # ------------------------------------------------------------ schedule
    def begin_iter(self, max_iters: int) -> int:
        if not is_int(self.begin):  # a fraction of the schedule
            return int(round(self.begin * max_iters))
        return self.begin

    def snaps_at(self, it: int, max_iters: int) -> bool:
        start = self.begin_iter(max_iters)
        if it < start:
            return False
        return it == start or (self.every > 0 and (it - start) % self.every == 0)

    # --------------------------------------------------------------- hooks
    @staticmethod
    def model_of(runner):
        """The segmentor, unwrapped from DDP."""
        return unwrap(runner.model)

    @classmethod
    def head_of(cls, runner) -> DNCDecodeHead:
        head = getattr(cls.model_of(runner), 'decode_head', None)
        if not isinstance(head, DNCDecodeHead):
            raise TypeError(f'SnapSubcentroidsHook: the decode head is {type(head).__name__}, '
                            'not a DNC head; it has no sub-centroids to snap. Remove the hook '
                            'from custom_hooks, or use DNCDecodeHead.')
        return head

    def before_run(self, runner) -> None:
        # before any checkpoint loads, so that resume restores the provenance
        self.head_of(runner).enable_pixel_sources()

    def before_train(self, runner) -> None:
        start = self.begin_iter(runner.max_iters)
        if start >= runner.max_iters:
            print_log(f'SnapSubcentroidsHook: begin={self.begin} is iteration {start}, at or '
                      f'after the last ({runner.max_iters}); nothing will be snapped.',
                      logger='current', level=logging.WARNING)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        head = self.head_of(runner)
        head.subcentroids_fixed = runner.iter >= self.begin_iter(runner.max_iters)
        if self.snaps_at(runner.iter, runner.max_iters):
            self.snap(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.image_paths:
            checkpoint.setdefault('meta', {})[META_KEY] = list(self.image_paths)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # a resumed checkpoint's provenance is checked before it is carried on
        paths = source_paths(checkpoint, origin='the resumed checkpoint') or []
        source = (checkpoint.get('state_dict') or {}).get(STATE_KEY)
        if source is not None:
            head = self.head_of(runner)
            check_source_table(source, head.sub_centroids.shape[:2], len(paths),
                               origin='the resumed checkpoint')
        self.image_paths = list(paths)

    # ---------------------------------------------------------------- snap
    def image_indices(self, size: int) -> List[int]:
        """The training images searched: all, or ``max_images`` evenly spaced."""
        if self.max_images is None or self.max_images >= size:
            return list(range(size))
        return sorted({int(i * size / self.max_images) for i in range(self.max_images)})

    @torch.no_grad()
    def snap(self, runner) -> None:
        from torch.utils.data import Subset
        model = self.model_of(runner)
        head = self.head_of(runner)
        rank, world = rank_and_world()
        dataset = training_set(runner.cfg)
        indices = self.image_indices(len(dataset))
        mine = indices[rank::world]
        print_log(f'SnapSubcentroidsHook: iteration {runner.iter}: snapping the '
                  f'sub-centroids to their nearest real training pixels ({len(indices)} '
                  'images)', logger='current')
        was_training = model.training
        # the case base reads the class names where init_model puts them
        lent_meta = getattr(model, 'dataset_meta', None) is None
        if lent_meta:
            model.dataset_meta = dict(dataset.metainfo)
        start = time.perf_counter()
        try:
            case = build_case_base(model, one_by_one(Subset(dataset, mine), self.num_workers),
                                   top_n=1, progress=rank == 0)
        finally:
            model.train(was_training)
            if lent_meta:
                del model.dataset_meta
        found = case['has_pixels']  # (C, K)
        local = case['image'][0].clamp(min=0)  # index into this rank's share
        image = torch.tensor(mine, dtype=torch.long)[local] if mine else local
        source = torch.stack([image, case['y'][0], case['x'][0]], dim=-1)  # (C, K, 3)
        device = head.sub_centroids.device
        best = best_across_ranks(
            case['score'][0].float().masked_fill(~found, -math.inf).to(device),
            dict(embedding=case['nearest_embedding'].float().to(device),
                 source=source.to(device)))
        has = torch.isfinite(best['score'])
        has &= head.used_slots
        self.apply(head, best['embedding'], best['source'], has, dataset, runner,
                   time.perf_counter() - start)

    def apply(self, head: DNCDecodeHead, embedding: Tensor, source: Tensor, has: Tensor,
              dataset, runner, seconds: float = 0.0) -> None:
        """Set the found sub-centroids and their provenance; the rest keep
        their learned vectors (and source -1)."""
        head.sub_centroids[has] = embedding[has].to(head.sub_centroids.dtype)
        rows, self.image_paths = compact_sources(
            source, has, lambda i: dataset.get_data_info(i)['img_path'])
        head.subcentroid_source.copy_(rows.to(head.subcentroid_source.device))
        used = self.image_paths
        # used slots (all, or those of each class's own K) that found no pixel
        empty = head.used_slots.cpu() & ~has
        missing = int(empty.sum())
        classes = dataset.metainfo.get('classes')
        lacking = sorted(set(empty.nonzero()[:, 0].tolist()))
        note = ''
        if missing:
            names = [classes[c] if classes else str(c) for c in lacking]
            note = (f'; {missing} have no pixel of their class in the training set and keep '
                    f'their learned vectors (classes {names})')
        print_log(f'SnapSubcentroidsHook: {int(has.sum())} sub-centroids are now real '
                  f'training pixels from {len(used)} images, held there from iteration '
                  f'{runner.iter} (the pass took {seconds:.0f} s){note}.', logger='current')
