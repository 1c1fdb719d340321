"""Snapping: every sub-centroid's nearest real training pixels (its case base).

Shape legend: C classes, K sub-centroids per class, D embedding width,
M labelled pixels of one image, T the number of pixels kept per sub-centroid,
P candidates (one per image) held per sub-centroid during the pass.

One pass over a training set (with the test pipeline: no augmentation) keeps,
for each sub-centroid of class c, T pixels labelled c whose embedding is most
similar to it, from T different images (different video sequences first):
image, position (image coordinates), similarity and whether the pixel sits on
the image's edge, plus the embedding of the nearest one. It also counts, for
every labelled pixel, which of its class's sub-centroids is nearest: the share
of training pixels each sub-centroid wins.
"""
import os.path as osp
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmengine.utils import ProgressBar
from torch import Tensor

from mmseg_dnc.checkpointing import load_checkpoint_file
from mmseg_dnc.models import DNCDecodeHead
from mmseg_dnc.models.provenance import (STATE_KEY, check_case_base_indices,
                                         check_source_table, resolve_images, source_paths)
from mmseg_dnc.visualization.geometry import unpadded_feature_size
from .evidence import border_flags, distinct_evidence, on_border, sequence_key


def _merge_best(pool: Dict[str, Tensor], cand: Dict[str, Tensor],
                size: int) -> Dict[str, Tensor]:
    """Keep the ``size`` best per column of (running pool) + (new candidates).

    Args:
        pool: tensors (P, N, ...) with key ``score`` (P, N), P = size.
        cand: tensors (1, N, ...), the same keys.
    """
    merged = {key: torch.cat([pool[key], cand[key]]) for key in pool}
    order = merged['score'].topk(size, dim=0).indices
    return {key: _take(values, order) for key, values in merged.items()}


def _take(values: Tensor, rows: Tensor) -> Tensor:
    """values (P, N, ...) at rows (T, N) of each column -> (T, N, ...)."""
    index = rows.view(rows.shape + (1,) * (values.dim() - 2)).expand(
        (-1, -1) + values.shape[2:])
    return values.gather(0, index)


def _image_offers(s: Tensor, valid: Tensor, fh: int, fw: int, ori_hw) -> Dict[str, Tensor]:
    """One image's best pixel for every sub-centroid.

    Args:
        s (Tensor): (M, N) scores of the image's labelled cells, -inf where the
            cell's class is not the sub-centroid's.
        valid (Tensor): (fh*fw,) bool, the labelled cells (M of them).
        ori_hw: (H, W) original image size.

    Returns:
        dict: ``score`` (N,), ``at`` (N,) row of s, ``yx`` (N, 2) the cell's
        centre at the original size, ``border`` (N,) bool.
    """
    best, at = s.max(dim=0)
    pos = valid.nonzero()[:, 0][at]
    fy, fx = pos // fw, pos % fw
    oy = ((fy.float() + 0.5) * ori_hw[0] / fh).long().clamp(max=ori_hw[0] - 1)
    ox = ((fx.float() + 0.5) * ori_hw[1] / fw).long().clamp(max=ori_hw[1] - 1)
    return dict(score=best, at=at, yx=torch.stack([oy, ox], 1),
                border=on_border(fy, fx, fh, fw))


@torch.no_grad()
def build_case_base(model, dataloader, top_n: int = 8, progress: bool = True,
                    candidates: Optional[int] = None) -> dict:
    """One pass over ``dataloader`` (labelled, unaugmented) with a DNC segmentor.

    Each image offers every sub-centroid its most similar pixel of the class;
    the best ``candidates`` offers (default 4*T) are kept during the pass and
    T of them chosen at the end: distinct images, distinct sequences first
    (``evidence.distinct_evidence``), so that a video's consecutive frames do
    not fill a sub-centroid's row.

    Returns:
        dict of tensors and plain lists (loadable with ``weights_only=True``):
        ``score``, ``image``, ``y``, ``x`` (T, C, K) for the T chosen pixels of
        every sub-centroid, by decreasing score (image index into
        ``image_paths``; y, x at the original image size; score = cosine; -inf
        and -1 where fewer than T images hold pixels of the class);
        ``border`` (T, C, K) bool, the pixel's feature cell is in the first or
        last row or column of the image's unpadded feature map;
        ``border_flagged`` (C, K) bool, at least half of the found pixels are
        border cells; ``nearest_embedding`` (C, K, D) the embedding of the
        single most similar pixel (the first of the T), ``has_pixels`` (C, K),
        ``wins`` (C, K) pixel counts, ``image_paths``, ``feature_stride``,
        ``classes``.
    """
    head = model.decode_head
    if not isinstance(head, DNCDecodeHead):
        raise TypeError(f'{type(head).__name__} is not a DNC head: it has no sub-centroids.')
    model.eval()
    c, k, d = head.sub_centroids.shape
    ck = c * k
    size = candidates or 4 * top_n
    if size < top_n:
        raise ValueError(f'candidates={size} is fewer than top_n={top_n}')
    # (P, C*K, ...) candidates, one per image; -inf rows are none
    pool = dict(score=torch.full((size, ck), float('-inf')),
                image=torch.full((size, ck), -1),
                sequence=torch.full((size, ck), -1),
                yx=torch.full((size, ck, 2), -1),
                border=torch.zeros((size, ck), dtype=torch.bool))
    nearest_score = torch.full((ck,), float('-inf'))
    nearest_embedding = torch.zeros(ck, d)
    wins = torch.zeros(c * k, dtype=torch.long)
    paths: List[str] = []
    sequences: Dict[str, int] = {}
    stride = None
    bar = ProgressBar(len(dataloader.dataset)) if progress else None
    for data in dataloader:
        batch = model.data_preprocessor(data, False)
        # (B, D, h, w) embeddings, (B, C*K, h, w) scores
        out = head.classify(model.extract_feat(batch['inputs']))
        emb, sub_scores = out.embeddings, out.sub_scores
        b, _, h, w = emb.shape
        stride = batch['inputs'].shape[-1] / w
        for i, sample in enumerate(batch['data_samples']):
            image_index = len(paths)
            paths.append(sample.img_path)
            sequence = sequences.setdefault(sequence_key(sample.img_path), len(sequences))
            if bar is not None:
                bar.update()
            label = sample.gt_sem_seg.data.float()[None]  # (1, 1, H, W) original size
            ori_h, ori_w = label.shape[-2:]
            img_h, img_w = sample.img_shape
            # labels at the feature cells that cover the image (not the padding)
            fh, fw = unpadded_feature_size((img_h, img_w), batch['inputs'].shape[2:], (h, w))
            small = F.interpolate(label, size=(fh, fw), mode='nearest').long().view(-1)
            valid = (small != head.ignore_index) & (small < c)
            if not valid.any():
                continue
            x = emb[i, :, :fh, :fw].permute(1, 2, 0).reshape(-1, d)[valid]
            s = sub_scores[i, :, :fh, :fw].permute(1, 2, 0).reshape(-1, ck)[valid]
            y = small[valid]
            own = (torch.arange(ck, device=s.device)[None, :] // k) == y[:, None]  # (M, C*K)
            own &= head.used_slots.view(1, -1)
            s = s.masked_fill(~own, float('-inf'))
            wins += torch.bincount(s.argmax(dim=1), minlength=ck).cpu()
            # the running bookkeeping stays on the CPU, whatever the model's device
            offer = {key: v.cpu() for key, v in
                     _image_offers(s, valid, fh, fw, (ori_h, ori_w)).items()}
            offer['score'] = offer['score'].float()
            closer = offer['score'] > nearest_score
            nearest_score = torch.where(closer, offer['score'], nearest_score)
            nearest_embedding[closer] = x[offer['at'][closer].to(x.device)].float().cpu()
            cand = dict(score=offer['score'][None], image=torch.full((1, ck), image_index),
                        sequence=torch.full((1, ck), sequence), yx=offer['yx'][None],
                        border=offer['border'][None])
            pool = _merge_best(pool, cand, size)
    rows = distinct_evidence(pool['score'], pool['image'], pool['sequence'], top_n)
    found = rows >= 0  # (T, C*K)
    chosen = {key: _take(values, rows.clamp(min=0)) for key, values in pool.items()}
    score = chosen['score'].masked_fill(~found, float('-inf'))
    image = chosen['image'].masked_fill(~found, -1)
    yx = chosen['yx'].masked_fill(~found[..., None], -1)
    border = chosen['border'] & found
    shape = (top_n, c, k)
    return dict(
        score=score.view(shape), image=image.view(shape),
        y=yx[..., 0].reshape(shape), x=yx[..., 1].reshape(shape),
        border=border.view(shape),
        border_flagged=border_flags(border.view(shape), found.view(shape)),
        nearest_embedding=nearest_embedding.view(c, k, d),
        has_pixels=found[0].view(c, k), wins=wins.view(c, k), image_paths=paths,
        active=head.used_slots.cpu().clone(),
        feature_stride=float(stride or 0.0), classes=list(model.dataset_meta['classes']))


def used_slots(case_base: dict) -> Tensor:
    """(C, K) bool: the slots each class uses; all of them for a case base
    that does not record them (made before K per class was recorded, or from a
    snapped checkpoint's provenance)."""
    active = case_base.get('active')
    return torch.ones(case_base['wins'].shape, dtype=torch.bool) if active is None else active


def case_base_path(checkpoint: str) -> str:
    """Where the case base of ``checkpoint`` lives: beside it."""
    return osp.splitext(checkpoint)[0] + '.casebase.pth'


def load_case_base(config: str, checkpoint: str, path: Optional[str] = None,
                   data_root: Optional[str] = None) -> dict:
    """The case base of ``checkpoint`` (default: beside it), loaded weights-only;
    without one, the case base the checkpoint itself carries when its
    sub-centroids are real pixels (:func:`case_base_from_sources`).

    Its image paths are untrusted: each must be a regular image file inside
    ``data_root`` (default: the config's training set's), and they come back
    resolved (:func:`mmseg_dnc.models.provenance.resolve_image`).

    Raises:
        FileNotFoundError: there is neither; the message says how to make one.
        UntrustedSourceError: a path or index it holds is refused.
    """
    given = path is not None
    path = path or case_base_path(checkpoint)
    if osp.isfile(path):
        case_base, origin = load_checkpoint_file(path), f'case base {path}'
    elif not given and (case_base := case_base_from_sources(
            load_checkpoint_file(checkpoint), origin=f'checkpoint {checkpoint}')) is not None:
        origin = f'checkpoint {checkpoint}'
    else:
        raise FileNotFoundError(f'no case base at {path}; make it first with\n'
                                f'  python tools/snap_subcentroids.py {config} {checkpoint}')
    if not isinstance(case_base, dict):
        raise TypeError(f'{origin} is {type(case_base).__name__}, not a case base (a dict): '
                        'make it again with tools/snap_subcentroids.py.')
    check_case_base_indices(case_base, origin)
    root = data_root or training_data_root(config)
    key = 'image_paths' if origin.startswith('case base') else "meta['dnc_pixel_sources']"
    case_base['image_paths'] = resolve_images(case_base['image_paths'], root, origin, key)
    return case_base


def training_data_root(config) -> Optional[str]:
    """The data root of a config's (a path or a Config) training set."""
    from mmengine.config import Config
    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    dataset = cfg.train_dataloader.dataset
    while 'data_root' not in dataset and 'dataset' in dataset:  # RepeatDataset and friends
        dataset = dataset.dataset
    return dataset.get('data_root')


def case_base_from_sources(checkpoint: dict, origin: str = 'checkpoint') -> Optional[dict]:
    """The case base of a checkpoint whose sub-centroids are real training
    pixels (trained with ``SnapSubcentroidsHook``): T=1, each sub-centroid
    shown by the pixel it is (score 1: the pixel's embedding at the last snap),
    with no pass over the training set. The share of pixels each sub-centroid
    wins is not known without that pass (``wins_known`` False).

    Returns:
        dict with the keys of :func:`build_case_base` (T=1; no ``border``,
        no ``active``: with K per class, every slot is shown; image paths as
        the checkpoint names them, not yet resolved), or None when the
        checkpoint has no provenance.
    """
    state = checkpoint.get('state_dict') or {}
    source = state.get(STATE_KEY) if isinstance(state, dict) else None
    paths = source_paths(checkpoint, origin)
    if source is None or paths is None:
        return None
    sub_centroids = state.get('decode_head.sub_centroids')
    shape = source.shape[:2] if sub_centroids is None else sub_centroids.shape[:2]
    check_source_table(source, shape, len(paths), origin)
    classes = (checkpoint.get('meta', {}).get('dataset_meta') or {}).get('classes')
    c, k, _ = source.shape
    source = source.long()
    found = source[..., 0] >= 0  # (C, K)
    return dict(
        score=torch.where(found, 1.0, float('-inf'))[None], image=source[..., 0][None],
        y=source[..., 1][None], x=source[..., 2][None], has_pixels=found,
        wins=torch.zeros(c, k, dtype=torch.long), wins_known=False, image_paths=list(paths),
        feature_stride=0.0,
        classes=list(classes) if classes else [str(i) for i in range(c)])


def diversity(sub_centroids: Tensor, wins: Tensor,
              active: Optional[Tensor] = None) -> Dict[str, Tensor]:
    """Are a class's sub-centroids diverse or collapsed?

    Args:
        sub_centroids (Tensor): (C, K, D) unit vectors.
        wins (Tensor): (C, K) training pixels won by each sub-centroid.
        active (Tensor, optional): (C, K) bool, the slots a class uses (K per
            class); unused slots take no part. Default: all.

    Returns:
        dict: ``mean_pairwise_cosine`` (C,) over the K_c(K_c-1)/2 pairs of
        each class (1.0 = all identical, and for K_c = 1), ``share`` (C, K)
        of the class's pixels each sub-centroid wins (0 at unused slots),
        ``effective_k`` (C,) = exp(entropy of share).
    """
    p = sub_centroids.float()
    c, k = p.shape[:2]
    active = torch.ones(c, k, dtype=torch.bool) if active is None else active.bool().cpu()
    gram = p @ p.transpose(1, 2)  # (C, K, K)
    pairs = active[:, :, None] & active[:, None, :] & ~torch.eye(k, dtype=torch.bool)
    count = pairs.sum(dim=(1, 2))
    mean_cos = torch.where(count > 0, (gram * pairs).sum(dim=(1, 2)) / count.clamp(min=1),
                           torch.ones(c))
    wins = wins.float() * active
    share = wins / wins.sum(dim=1, keepdim=True).clamp(min=1)
    entropy = -(share * share.clamp(min=1e-12).log()).sum(dim=1)
    return dict(mean_pairwise_cosine=mean_cos, share=share, effective_k=entropy.exp())
