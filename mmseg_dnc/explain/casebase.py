"""Snapping: every sub-centroid's nearest real training pixels (its case base).

Shape legend: C classes, K sub-centroids per class, D embedding width,
M labelled pixels of one batch, T the number of nearest pixels kept.

One pass over a training set (with the test pipeline: no augmentation) keeps,
for each sub-centroid of class c, the T pixels labelled c whose embedding is
most similar to it: image, position (feature map and image coordinates) and
similarity, plus the embedding of the nearest one. It also counts, for every
labelled pixel, which of its class's sub-centroids is nearest: the share of
training pixels each sub-centroid wins.
"""
import os.path as osp
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmengine.utils import ProgressBar
from torch import Tensor

from mmseg_dnc.checkpoint import load_checkpoint_file
from mmseg_dnc.models import DNCDecodeHead
from mmseg_dnc.visualization.geometry import unpadded_feature_size


def _merge_topk(best: Dict[str, Tensor], scores: Tensor, payload: Dict[str, Tensor],
                top_n: int) -> Dict[str, Tensor]:
    """Keep the ``top_n`` best per column of (running best) + (new candidates).

    Args:
        best: tensors (T, C*K, ...) with key ``score`` (T, C*K).
        scores (Tensor): (M, C*K) candidate scores, -inf where not eligible.
        payload: per-candidate tensors (M, ...) to keep alongside.
    """
    cand_scores, cand_idx = scores.topk(min(top_n, scores.shape[0]), dim=0)  # (t, C*K)
    merged = {'score': torch.cat([best['score'], cand_scores])}
    for key, values in payload.items():
        picked = values[cand_idx]  # (t, C*K, ...)
        merged[key] = torch.cat([best[key], picked])
    order = merged['score'].topk(min(top_n, merged['score'].shape[0]), dim=0).indices
    out = {}
    for key, values in merged.items():
        index = order.view(order.shape + (1,) * (values.dim() - 2)).expand(
            (-1, -1) + values.shape[2:])
        out[key] = values.gather(0, index)
    return out


@torch.no_grad()
def build_case_base(model, dataloader, top_n: int = 8, progress: bool = True) -> dict:
    """One pass over ``dataloader`` (labelled, unaugmented) with a DNC segmentor.

    Returns:
        dict of tensors and plain lists (loadable with ``weights_only=True``):
        ``score``, ``image``, ``y``, ``x`` (T, C, K) for the T nearest pixels of
        every sub-centroid (image index into ``image_paths``; y, x at the
        original image size; score = cosine; -inf and -1 where fewer than T
        pixels of the class exist), ``nearest_embedding`` (C, K, D), ``wins``
        (C, K) pixel counts, ``image_paths``, ``feature_stride``, ``classes``.
    """
    head = model.decode_head
    if not isinstance(head, DNCDecodeHead):
        raise TypeError(f'{type(head).__name__} is not a DNC head: it has no sub-centroids.')
    model.eval()
    c, k, d = head.sub_centroids.shape
    ck = c * k
    best = dict(score=torch.full((0, ck), float('-inf')),
                image=torch.zeros((0, ck), dtype=torch.long),
                yx=torch.zeros((0, ck, 2), dtype=torch.long),
                embedding=torch.zeros((0, ck, d)))
    wins = torch.zeros(c * k, dtype=torch.long)
    paths: List[str] = []
    stride = None
    bar = ProgressBar(len(dataloader.dataset)) if progress else None
    for data in dataloader:
        batch = model.data_preprocessor(data, False)
        # (B, D, h, w) embeddings, (B, C*K, h, w) scores
        emb, sub_scores, _ = head.classify(model.extract_feat(batch['inputs']))
        b, _, h, w = emb.shape
        stride = batch['inputs'].shape[-1] / w
        for i, sample in enumerate(batch['data_samples']):
            label = sample.gt_sem_seg.data.float()[None]  # (1, 1, H, W) original size
            ori_h, ori_w = label.shape[-2:]
            img_h, img_w = sample.img_shape
            # labels at the feature cells that cover the image (not the padding)
            fh, fw = unpadded_feature_size((img_h, img_w), batch['inputs'].shape[2:], (h, w))
            small = F.interpolate(label, size=(fh, fw), mode='nearest').long().view(-1)
            valid = (small != head.ignore_index) & (small < c)
            x = emb[i, :, :fh, :fw].permute(1, 2, 0).reshape(-1, d)[valid]
            s = sub_scores[i, :, :fh, :fw].permute(1, 2, 0).reshape(-1, ck)[valid]
            y = small[valid]
            own = (torch.arange(ck)[None, :] // k) == y[:, None]  # (M, C*K)
            if head.subcentroid_active is not None:
                own &= head.subcentroid_active.view(1, -1)
            s = s.masked_fill(~own, float('-inf'))
            wins += torch.bincount(s.argmax(dim=1), minlength=ck)
            pos = valid.nonzero()[:, 0]
            fy, fx = pos // fw, pos % fw
            # centre of the feature pixel, at the original image size
            oy = ((fy.float() + 0.5) * ori_h / fh).long().clamp(max=ori_h - 1)
            ox = ((fx.float() + 0.5) * ori_w / fw).long().clamp(max=ori_w - 1)
            image_index = torch.full_like(y, len(paths))
            best = _merge_topk(best, s, dict(image=image_index, yx=torch.stack([oy, ox], 1),
                                             embedding=x), top_n)
            paths.append(sample.img_path)
            if bar is not None:
                bar.update()
    # pad to T when the set had fewer pixels than T
    t = best['score'].shape[0]
    if t < top_n:
        pad = top_n - t
        best['score'] = torch.cat([best['score'], torch.full((pad, ck), float('-inf'))])
        best['image'] = torch.cat([best['image'], torch.full((pad, ck), -1)])
        best['yx'] = torch.cat([best['yx'], torch.full((pad, ck, 2), -1)])
    found = torch.isfinite(best['score'])
    best['image'][~found] = -1
    best['yx'][~found] = -1
    return dict(
        score=best['score'].view(top_n, c, k), image=best['image'].view(top_n, c, k),
        y=best['yx'][..., 0].view(top_n, c, k), x=best['yx'][..., 1].view(top_n, c, k),
        nearest_embedding=best['embedding'][0].view(c, k, d) if best['embedding'].shape[0]
        else torch.zeros(c, k, d),
        has_pixels=found[0].view(c, k), wins=wins.view(c, k), image_paths=paths,
        feature_stride=float(stride or 0.0), classes=list(model.dataset_meta['classes']))


def case_base_path(checkpoint: str) -> str:
    """Where the case base of ``checkpoint`` lives: beside it."""
    return osp.splitext(checkpoint)[0] + '.casebase.pth'


def load_case_base(config: str, checkpoint: str, path: Optional[str] = None) -> dict:
    """The case base of ``checkpoint`` (default: beside it), loaded weights-only.

    Raises:
        FileNotFoundError: there is none yet; the message says how to make it.
    """
    path = path or case_base_path(checkpoint)
    if not osp.isfile(path):
        raise FileNotFoundError(f'no case base at {path}; make it first with\n'
                                f'  python tools/snap_subcentroids.py {config} {checkpoint}')
    return load_checkpoint_file(path)


def diversity(sub_centroids: Tensor, wins: Tensor) -> Dict[str, Tensor]:
    """Are a class's sub-centroids diverse or collapsed?

    Args:
        sub_centroids (Tensor): (C, K, D) unit vectors.
        wins (Tensor): (C, K) training pixels won by each sub-centroid.

    Returns:
        dict: ``mean_pairwise_cosine`` (C,) over the K(K-1)/2 pairs of each
        class (1.0 = all identical), ``share`` (C, K) of the class's pixels
        each sub-centroid wins, ``effective_k`` (C,) = exp(entropy of share).
    """
    p = sub_centroids.float()
    k = p.shape[1]
    gram = p @ p.transpose(1, 2)  # (C, K, K)
    off_diagonal = ~torch.eye(k, dtype=torch.bool)
    mean_cos = gram[:, off_diagonal].mean(dim=1) if k > 1 else torch.ones(p.shape[0])
    share = wins.float() / wins.sum(dim=1, keepdim=True).clamp(min=1)
    entropy = -(share * share.clamp(min=1e-12).log()).sum(dim=1)
    return dict(mean_pairwise_cosine=mean_cos, share=share, effective_k=entropy.exp())
